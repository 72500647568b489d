//! Reading a sweep file and the files it `extends`, and merging their top-level keys.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::config::yaml::{self, Key, Node, Value};
use crate::diag::{Diagnostic, Mark, Source};
use crate::spec::located::{at, dir_of, not_a_file};
use crate::spec::normalize;

/// A top-level entry with the file it was written in (a sweep may inherit keys via `extends`).
pub(super) struct Entry {
    pub key: Key,
    pub node: Node,
    pub src: Rc<Source>,
}

/// One file of an `extends` chain: its text and its top-level mapping.
type Link = (Rc<Source>, Node);

/// Reads `path` and its `extends` chain, leaf first. `None` when a file is missing, unparsable,
/// not a mapping, or the chain loops (the problems are in `errs`).
pub(super) fn read_chain(path: &Path, errs: &mut Vec<Diagnostic>) -> Option<Vec<Link>> {
    let mut chain: Vec<Link> = Vec::new();
    let mut seen: Vec<(PathBuf, PathBuf)> = Vec::new(); // (canonical, as shown)
    let mut cur = path.to_path_buf();
    let mut from: Option<(Rc<Source>, Mark)> = None;
    loop {
        if let Some((src, mark)) = &from {
            if let Err(d) = check_extended(src, *mark, &cur, &seen) {
                errs.push(d);
                return None;
            }
        }
        let (src, root) = read_root(&cur, errs)?;
        seen.push((
            cur.canonicalize().unwrap_or_else(|_| cur.clone()),
            cur.clone(),
        ));
        let next = extends_of(&src, &root, &cur, errs);
        chain.push((src.clone(), root));
        match next {
            Some((p, mark)) => {
                from = Some((src, mark));
                cur = p;
            }
            None => return Some(chain),
        }
    }
}

/// The file an `extends:` at `mark` in `src` names exists and does not close a loop.
fn check_extended(
    src: &Source,
    mark: Mark,
    cur: &Path,
    seen: &[(PathBuf, PathBuf)],
) -> Result<(), Diagnostic> {
    if !cur.is_file() {
        return Err(at(
            src,
            mark,
            "extends",
            format!("extended sweep `{}` {}", cur.display(), not_a_file(cur)),
        )
        .hint("`extends` is a path relative to the sweep file that contains it"));
    }
    let canon = cur.canonicalize().unwrap_or_else(|_| cur.to_path_buf());
    if let Some(pos) = seen.iter().position(|(c, _)| *c == canon) {
        let cycle: Vec<String> = seen[pos..]
            .iter()
            .map(|(_, shown)| shown.display().to_string())
            .chain(std::iter::once(cur.display().to_string()))
            .collect();
        return Err(at(
            src,
            mark,
            "extends",
            format!("circular `extends`: {}", cycle.join(" → ")),
        )
        .hint("a sweep cannot extend itself, directly or through others; remove one `extends:`"));
    }
    Ok(())
}

/// Reads and parses one sweep file, which must be a mapping of keys.
fn read_root(cur: &Path, errs: &mut Vec<Diagnostic>) -> Option<Link> {
    let src = match Source::read(cur) {
        Ok(s) => Rc::new(s),
        Err(d) if d.hint.is_some() || cur.is_dir() => {
            errs.push(d);
            return None;
        }
        Err(d) => {
            errs.push(d.hint("check the path; sweep files are usually under sweeps/"));
            return None;
        }
    };
    let root = match yaml::parse(&src) {
        Ok(root) => root,
        Err(e) => {
            errs.extend(e);
            return None;
        }
    };
    if !matches!(root.value, Value::Map(_)) {
        errs.push(
            at(
                &src,
                root.mark,
                "",
                format!(
                    "a sweep file must be a mapping of keys, got {}",
                    root.value.type_name()
                ),
            )
            .hint("start with `name: my_sweep` and `base: ../configs/td3.yaml`"),
        );
        return None;
    }
    Some((src, root))
}

/// The file `root`'s `extends:` names (resolved against `cur`'s folder) and where it says so.
fn extends_of(
    src: &Source,
    root: &Node,
    cur: &Path,
    errs: &mut Vec<Diagnostic>,
) -> Option<(PathBuf, Mark)> {
    match root.get("extends") {
        None
        | Some(Node {
            value: Value::Null, ..
        }) => None,
        Some(Node {
            value: Value::Str(s),
            mark,
        }) => Some((normalize(&dir_of(cur).join(s)), *mark)),
        Some(n) => {
            errs.push(
                at(
                    src,
                    n.mark,
                    "extends",
                    format!("must be a path, got {}", n.value.type_name()),
                )
                .hint("e.g. `extends: actor_lr.yaml` (relative to this file)"),
            );
            None
        }
    }
}

/// Merges the chain: the leaf's keys win; `name` and `extends` are never inherited.
pub(super) fn merge(chain: Vec<Link>) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for (i, (src, root)) in chain.into_iter().enumerate() {
        let Value::Map(entries) = root.value else {
            continue;
        };
        for (key, node) in entries {
            let inherited = i > 0;
            if inherited && (key.name == "name" || key.name == "extends") {
                continue;
            }
            if out.iter().any(|e| e.key.name == key.name) {
                continue;
            }
            out.push(Entry {
                key,
                node,
                src: src.clone(),
            });
        }
    }
    out
}
