//! Reading a sweep file (and the files it extends) into a validated [`SweepSpec`] plus the
//! located overrides that expansion applies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::config::load::{check_override, ConfigDoc, Override};
use crate::config::schema;
use crate::config::yaml::{self, Key, Node, Value};
use crate::diag::{did_you_mean, Diagnostic, Diagnostics, Mark, Source};

use super::{
    normalize, parse_duration, CriteriaRef, Devices, Resources, SweepSpec, VariantSpec, MAX_RUNS,
};

/// Top-level keys of a sweep file, in documentation order.
pub(super) const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "extends",
    "base",
    "set",
    "steps",
    "seeds",
    "grid",
    "variants",
    "resources",
    "timeout",
    "criteria",
    "stop_on_fail",
    "stages",
    "backend",
    "slurm",
];
const VARIANT_KEYS: &[&str] = &["name", "description", "set"];
const RESOURCE_KEYS: &[&str] = &["devices", "runs_per_device", "threads_per_run"];

/// One swept key with its values, each ready to apply.
pub(super) struct Axis {
    pub key: String,
    pub values: Vec<Override>,
}

/// A variant with its overrides ready to apply.
pub(super) struct Variant {
    pub name: String,
    /// Position of the variant's name (or its list item), for messages about the variant.
    pub at: Diagnostic,
    pub description: Option<String>,
    pub set: Vec<Override>,
}

/// Everything expansion needs.
pub(super) struct Parsed {
    pub spec: SweepSpec,
    pub base: ConfigDoc,
    pub set: Vec<Override>,
    pub grid: Vec<Axis>,
    pub variants: Vec<Variant>,
    pub steps: Option<Override>,
    /// Each seed with the override that sets it, ascending.
    pub seeds: Vec<(u64, Override)>,
    /// Where to point messages about the whole sweep's size.
    pub size_at: Diagnostic,
}

/// A top-level entry with the file it was written in (a sweep may inherit keys via `extends`).
struct Entry {
    key: Key,
    node: Node,
    src: Rc<Source>,
}

fn at(src: &Source, mark: Mark, key: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic::new(src, mark, message).key(key)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn dir_of(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new(""))
}

/// Reads `path` and its `extends` chain, leaf first. `None` when a file is missing, unparsable,
/// not a mapping, or the chain loops (the problems are in `errs`).
fn read_chain(path: &Path, errs: &mut Vec<Diagnostic>) -> Option<Vec<(Rc<Source>, Node)>> {
    let mut chain: Vec<(Rc<Source>, Node)> = Vec::new();
    let mut seen: Vec<(PathBuf, PathBuf)> = Vec::new(); // (canonical, as shown)
    let mut cur = path.to_path_buf();
    let mut from: Option<(Rc<Source>, Mark)> = None;
    loop {
        if let Some((src, mark)) = &from {
            if !cur.is_file() {
                errs.push(
                    at(
                        src,
                        *mark,
                        "extends",
                        format!("extended sweep `{}` {}", cur.display(), not_a_file(&cur)),
                    )
                    .hint("`extends` is a path relative to the sweep file that contains it"),
                );
                return None;
            }
            let canon = cur.canonicalize().unwrap_or_else(|_| cur.clone());
            if let Some(pos) = seen.iter().position(|(c, _)| *c == canon) {
                let cycle: Vec<String> = seen[pos..]
                    .iter()
                    .map(|(_, shown)| shown.display().to_string())
                    .chain(std::iter::once(cur.display().to_string()))
                    .collect();
                errs.push(
                    at(src, *mark, "extends", format!("circular `extends`: {}", cycle.join(" → ")))
                        .hint("a sweep cannot extend itself, directly or through others; remove one `extends:`"),
                );
                return None;
            }
        }
        let src = match Source::read(&cur) {
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
        seen.push((
            cur.canonicalize().unwrap_or_else(|_| cur.clone()),
            cur.clone(),
        ));
        let next = match root.get("extends") {
            None
            | Some(Node {
                value: Value::Null, ..
            }) => None,
            Some(Node {
                value: Value::Str(s),
                mark,
            }) => Some((normalize(&dir_of(&cur).join(s)), *mark)),
            Some(n) => {
                errs.push(
                    at(
                        &src,
                        n.mark,
                        "extends",
                        format!("must be a path, got {}", n.value.type_name()),
                    )
                    .hint("e.g. `extends: actor_lr.yaml` (relative to this file)"),
                );
                None
            }
        };
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

/// Merges the chain: the leaf's keys win; `name` and `extends` are never inherited.
fn merge(chain: Vec<(Rc<Source>, Node)>) -> Vec<Entry> {
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

fn unknown(src: &Source, key: &Key, path: &str, valid: &[&str]) -> Diagnostic {
    let d = at(src, key.mark, path, format!("unknown key `{}`", key.name));
    match did_you_mean(&key.name, valid.iter().copied()) {
        Some(s) => d.hint(format!("did you mean `{s}`?")),
        None => d.hint(format!("valid keys: {}", valid.join(", "))),
    }
}

/// Prefixes the key path of diagnostics from [`check_override`] with where the override sits.
fn prefixed(ds: Vec<Diagnostic>, prefix: &str) -> impl Iterator<Item = Diagnostic> + '_ {
    ds.into_iter().map(move |mut d| {
        d.key = Some(match d.key {
            Some(k) => format!("{prefix}.{k}"),
            None => prefix.to_string(),
        });
        d
    })
}

fn positive_int(node: &Node) -> Option<u64> {
    match node.value {
        Value::Int(i) if i >= 1 => Some(i as u64),
        _ => None,
    }
}

/// Overrides from a `set:` mapping, checked against the agent config schema. Keys that sweeps
/// control directly (`seed`, `training.steps`) are refused.
fn overrides_of(
    src: &Rc<Source>,
    node: &Node,
    path: &str,
    errs: &mut Vec<Diagnostic>,
) -> Vec<Override> {
    let Value::Map(entries) = &node.value else {
        errs.push(
            at(
                src,
                node.mark,
                path,
                format!(
                    "must be a mapping of dotted keys to values, got {}",
                    node.value.type_name()
                ),
            )
            .hint("e.g. `set: { networks.cnn.actor_cnn_lr: 1.0e-5 }`"),
        );
        return Vec::new();
    };
    let mut out: Vec<Override> = Vec::new();
    for (k, v) in entries {
        let o = Override {
            key: k.name.clone(),
            key_mark: k.mark,
            value: v.clone(),
            origin: (**src).clone(),
        };
        if let Some(d) = reserved(src, k, path) {
            errs.push(d);
            continue;
        }
        let problems = check_override(&o);
        if !problems.is_empty() {
            errs.extend(prefixed(problems, path));
            continue;
        }
        // A group written as a mapping (`networks.cnn: { actor_cnn_lr: ... }`) merges key by
        // key, so it is checked key by key: against the reserved keys, against the same key
        // written twice, and (by the callers) against the grid.
        for leaf in leaves(o) {
            let k = Key {
                name: leaf.key.clone(),
                mark: leaf.key_mark,
            };
            if let Some(d) = reserved(src, &k, path) {
                errs.push(d);
                continue;
            }
            if let Some(prev) = out.iter().find(|p| p.key == leaf.key) {
                errs.push(
                    at(src, leaf.key_mark, &format!("{path}.{}", leaf.key), format!("`{}` is set twice", leaf.key))
                        .hint(format!(
                            "first set at line {}, column {}; the later value would silently win, so keep one",
                            prev.key_mark.line, prev.key_mark.col
                        )),
                );
                continue;
            }
            out.push(leaf);
        }
    }
    out
}

/// An override whose value is a mapping for a group key, split into one override per leaf key
/// (recursively); any other override as it is.
fn leaves(o: Override) -> Vec<Override> {
    let is_group = schema::lookup(&o.key).is_some_and(|s| s.kind == schema::Kind::Group);
    match &o.value.value {
        Value::Map(entries) if is_group => entries
            .iter()
            .flat_map(|(k, v)| {
                leaves(Override {
                    key: format!("{}.{}", o.key, k.name),
                    key_mark: k.mark,
                    value: v.clone(),
                    origin: o.origin.clone(),
                })
            })
            .collect(),
        _ => vec![o],
    }
}

/// `seed` and `training.steps` have their own sweep keys.
fn reserved(src: &Source, k: &Key, path: &str) -> Option<Diagnostic> {
    let (top, example) = match k.name.as_str() {
        "seed" => ("seeds", "seeds: [0, 1, 2]"),
        "training.steps" => ("steps", "steps: 1000"),
        _ => return None,
    };
    Some(
        at(
            src,
            k.mark,
            &format!("{path}.{}", k.name),
            format!("`{}` is set by the sweep's `{top}:` key", k.name),
        )
        .hint(format!(
            "remove it here and write `{example}` at the top level"
        )),
    )
}

pub(super) fn parse(path: &Path) -> Result<Parsed, Diagnostics> {
    let mut errs: Vec<Diagnostic> = Vec::new();
    let Some(chain) = read_chain(path, &mut errs) else {
        return Err(Diagnostics(errs));
    };
    let extends: Vec<PathBuf> = chain.iter().skip(1).map(|(s, _)| s.path.clone()).collect();
    let leaf = chain[0].0.clone();
    let entries = merge(chain);

    let mut by_key: BTreeMap<&str, &Entry> = BTreeMap::new();
    for e in &entries {
        if TOP_KEYS.contains(&e.key.name.as_str()) {
            by_key.insert(e.key.name.as_str(), e);
        } else {
            let mut d = unknown(&e.src, &e.key, &e.key.name, TOP_KEYS);
            if schema::lookup(&e.key.name).is_some() && e.key.name != "seed" {
                d = d.hint(format!(
                    "`{}` is an agent config key: put it under `set:` (or sweep it under `grid:`)",
                    e.key.name
                ));
            }
            errs.push(d);
        }
    }
    let get = |k: &str| {
        by_key
            .get(k)
            .copied()
            .filter(|e| !matches!(e.node.value, Value::Null))
    };

    // name
    let name = match get("name") {
        Some(e) => match &e.node.value {
            Value::Str(s) if valid_name(s) => s.clone(),
            other => {
                let hint = match other {
                    // `name: 123` or `name: 1e-4` is a number to YAML.
                    Value::Int(_) | Value::Float(_) | Value::Bool(_) => format!(
                        "YAML reads it as {}; quote it: name: \"{}\"",
                        other.type_name(),
                        schema::fmt_scalar(other)
                    ),
                    _ => "use letters, digits, `_` and `-` only (it names the folder results/<name>/)".into(),
                };
                errs.push(
                    at(
                        &e.src,
                        e.node.mark,
                        "name",
                        format!("invalid sweep name {}", schema::describe(other)),
                    )
                    .hint(hint),
                );
                String::new()
            }
        },
        None => {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !valid_name(&stem) {
                errs.push(
                    at(
                        &leaf,
                        Mark { line: 1, col: 1 },
                        "name",
                        "missing `name:` (the file name is not a valid one)",
                    )
                    .hint("add `name: my_sweep` (letters, digits, `_` and `-`)"),
                );
            }
            stem
        }
    };

    let description = match get("description") {
        Some(e) => match &e.node.value {
            Value::Str(s) => Some(s.clone()),
            other => {
                errs.push(
                    at(
                        &e.src,
                        e.node.mark,
                        "description",
                        format!("must be text, got {}", other.type_name()),
                    )
                    .hint("quote it: `description: \"...\"`"),
                );
                None
            }
        },
        None => None,
    };

    // base
    let mut base_doc = None;
    let mut base = PathBuf::new();
    match get("base") {
        None => {
            // `validate configs/td3.yaml`: an agent config given where a sweep file goes.
            let agent_keys: Vec<&str> = ["env", "networks", "training", "logging", "evaluation"]
                .into_iter()
                .filter(|k| entries.iter().any(|e| e.key.name == *k))
                .collect();
            let hint = if agent_keys.len() >= 2 {
                format!(
                    "this looks like an agent config (it has {}), not a sweep file; a sweep names one with `base:`. To check an agent config alone: td3-sweep train --config FILE --steps 1 --out /tmp/check",
                    agent_keys.iter().map(|k| format!("`{k}:`")).collect::<Vec<_>>().join(", ")
                )
            } else {
                "add `base: ../configs/td3.yaml` (relative to this sweep file)".to_string()
            };
            errs.push(
                at(
                    &leaf,
                    Mark { line: 1, col: 1 },
                    "base",
                    "missing `base:`, the agent config every run starts from",
                )
                .hint(hint),
            )
        }
        Some(e) => {
            match &e.node.value {
                Value::Str(s) => {
                    base = normalize(&dir_of(&e.src.path).join(s));
                    if !base.is_file() {
                        errs.push(
                        at(&e.src, e.node.mark, "base", format!("base config `{}` {}", base.display(), not_a_file(&base)))
                            .hint("`base` is a path relative to the sweep file, e.g. ../configs/td3.yaml"),
                    );
                    } else if let Some(keys) = sweep_keys_in(&base) {
                        // A sweep file given as `base:` would fail on every sweep key it has.
                        errs.push(
                            at(&e.src, e.node.mark, "base", format!(
                                "`{}` is a sweep file (it has {keys}), not an agent config",
                                base.display()
                            ))
                            .hint(format!(
                                "`base:` takes an agent config such as ../configs/td3.yaml; to build on another sweep, write `extends: {s}`"
                            )),
                        );
                    } else {
                        match ConfigDoc::load(&base) {
                            Ok(doc) => base_doc = Some(doc),
                            Err(d) => errs.extend(d.0),
                        }
                    }
                }
                other => errs.push(
                    at(
                        &e.src,
                        e.node.mark,
                        "base",
                        format!("must be a path, got {}", other.type_name()),
                    )
                    .hint("e.g. `base: ../configs/td3.yaml`"),
                ),
            }
        }
    }

    // set
    let set = match get("set") {
        Some(e) => overrides_of(&e.src, &e.node, "set", &mut errs),
        None => Vec::new(),
    };

    // steps
    let mut steps = None;
    let mut steps_override = None;
    if let Some(e) = get("steps") {
        match positive_int(&e.node) {
            Some(n) => {
                steps = Some(n);
                steps_override = Some(Override {
                    key: "training.steps".into(),
                    key_mark: e.key.mark,
                    value: e.node.clone(),
                    origin: (*e.src).clone(),
                });
            }
            None => errs.push(
                at(
                    &e.src,
                    e.node.mark,
                    "steps",
                    format!(
                        "must be a positive integer, got {}",
                        schema::describe(&e.node.value)
                    ),
                )
                .hint("environment steps per run (overrides training.steps), e.g. `steps: 1000`"),
            ),
        }
    }

    // seeds
    let mut seeds: Vec<(u64, Override)> = Vec::new();
    let seed_override = |e: &Entry, seed: u64, mark: Mark| Override {
        key: "seed".into(),
        key_mark: e.key.mark,
        value: Node {
            value: Value::Int(seed as i64),
            mark,
        },
        origin: (*e.src).clone(),
    };
    match get("seeds") {
        None => {}
        Some(e) => match &e.node.value {
            Value::Int(n) if *n >= 1 && (*n as usize) <= MAX_RUNS => {
                seeds = (0..*n as u64)
                    .map(|s| (s, seed_override(e, s, e.node.mark)))
                    .collect();
            }
            Value::Int(n) => errs.push(
                at(
                    &e.src,
                    e.node.mark,
                    "seeds",
                    format!("a seed count must be between 1 and {MAX_RUNS}, got {n}"),
                )
                .hint("`seeds: 3` means seeds 0, 1, 2; or list them: `seeds: [0, 1, 2]`"),
            ),
            Value::Seq(items) if items.is_empty() => errs.push(
                at(&e.src, e.node.mark, "seeds", "the seed list is empty")
                    .hint("list at least one seed, e.g. `seeds: [0]`, or give a count: `seeds: 3`"),
            ),
            Value::Seq(items) => {
                let mut first_at: BTreeMap<i64, Mark> = BTreeMap::new();
                for item in items {
                    match item.value {
                        Value::Int(s) if s >= 0 => {
                            if let Some(prev) = first_at.get(&s) {
                                errs.push(
                                    at(
                                        &e.src,
                                        item.mark,
                                        "seeds",
                                        format!("seed {s} is listed twice"),
                                    )
                                    .hint(format!(
                                        "first listed at line {}, column {}; remove one",
                                        prev.line, prev.col
                                    )),
                                );
                            } else {
                                first_at.insert(s, item.mark);
                                seeds.push((s as u64, seed_override(e, s as u64, item.mark)));
                            }
                        }
                        ref other => errs.push(
                            at(
                                &e.src,
                                item.mark,
                                "seeds",
                                format!(
                                    "a seed must be an integer >= 0, got {}",
                                    schema::describe(other)
                                ),
                            )
                            .hint("e.g. `seeds: [0, 1, 2]`"),
                        ),
                    }
                }
            }
            other => errs.push(
                at(
                    &e.src,
                    e.node.mark,
                    "seeds",
                    format!(
                        "must be a list of seeds or a count, got {}",
                        schema::describe(other)
                    ),
                )
                .hint("e.g. `seeds: [0, 1, 2]` or `seeds: 3`"),
            ),
        },
    }
    seeds.sort_by_key(|(s, _)| *s);

    // grid
    let mut grid: Vec<Axis> = Vec::new();
    let mut grid_at = None;
    if let Some(e) = by_key.get("grid").copied() {
        grid_at = Some(at(&e.src, e.key.mark, "grid", ""));
        match &e.node.value {
            Value::Map(axes) if axes.is_empty() => errs.push(
                at(&e.src, e.node.mark, "grid", "the grid is empty")
                    .hint("add a key with a list of values, e.g. `networks.cnn.actor_cnn_lr: [1.0e-4, 1.0e-5]`, or remove `grid:`"),
            ),
            Value::Null => errs.push(
                at(&e.src, e.key.mark, "grid", "the grid is empty")
                    .hint("add a key with a list of values, e.g. `networks.cnn.actor_cnn_lr: [1.0e-4, 1.0e-5]`, or remove `grid:`"),
            ),
            Value::Map(axes) => {
                for (k, v) in axes {
                    let path = format!("grid.{}", k.name);
                    if let Some(d) = reserved(&e.src, k, "grid") {
                        errs.push(d);
                        continue;
                    }
                    let items = match &v.value {
                        Value::Seq(items) if items.is_empty() => {
                            errs.push(
                                at(&e.src, v.mark, &path, "empty list of values")
                                    .hint("a swept key needs at least one value, e.g. `[1.0e-4, 1.0e-5]`"),
                            );
                            continue;
                        }
                        Value::Seq(items) => items,
                        other => {
                            errs.push(
                                at(&e.src, v.mark, &path, format!("grid values must be a list, got {}", schema::describe(other)))
                                    .hint(format!("write `{}: [{}]`, or move a single value to `set:`", k.name, schema::fmt_scalar(other))),
                            );
                            continue;
                        }
                    };
                    let mut values = Vec::new();
                    let mut key_ok = true;
                    for (i, item) in items.iter().enumerate() {
                        let o = Override { key: k.name.clone(), key_mark: k.mark, value: item.clone(), origin: (*e.src).clone() };
                        let problems = check_override(&o);
                        let unknown_key = problems.iter().any(|d| d.mark == k.mark);
                        if unknown_key {
                            // Report an unknown key once, not once per value.
                            if key_ok {
                                errs.extend(prefixed(problems, "grid"));
                            }
                            key_ok = false;
                            continue;
                        }
                        if !problems.is_empty() {
                            // A list-valued key swept with scalars: the grid's list is the values
                            // to try, so each value is itself a list.
                            let list_key = schema::lookup(&k.name)
                                .is_some_and(|s| matches!(s.kind, schema::Kind::IntList { .. }));
                            if list_key && !matches!(item.value, Value::Seq(_)) {
                                let scalars: Vec<String> = items.iter().map(|n| schema::fmt_scalar(&n.value)).collect();
                                errs.push(
                                    at(&e.src, v.mark, &path, format!("`{}` takes a list, so each grid value must be a list", k.name))
                                        .hint(format!(
                                            "one value: `{}: [[{}]]`; several: `{}: [[64, 64], [256, 256]]`",
                                            k.name,
                                            scalars.join(", "),
                                            k.name
                                        )),
                                );
                                key_ok = false;
                                break;
                            }
                            errs.extend(prefixed(problems, "grid"));
                            continue;
                        }
                        if let Some(j) = items[..i].iter().position(|p| p.value == item.value) {
                            errs.push(
                                at(&e.src, item.mark, &path, format!("value {} is listed twice", schema::fmt_scalar(&item.value)))
                                    .hint(format!(
                                        "first listed at line {}, column {}; each value makes its own runs, so remove the repeat",
                                        items[j].mark.line, items[j].mark.col
                                    )),
                            );
                            continue;
                        }
                        values.push(o);
                    }
                    if key_ok {
                        grid.push(Axis { key: k.name.clone(), values });
                    }
                }
            }
            other => errs.push(
                at(&e.src, e.node.mark, "grid", format!("must be a mapping of dotted keys to lists, got {}", schema::describe(other)))
                    .hint("e.g. `grid: { networks.cnn.actor_cnn_lr: [1.0e-4, 1.0e-5] }`"),
            ),
        }
    }
    grid.sort_by(|a, b| a.key.cmp(&b.key));
    let grid_keys: Vec<&str> = grid.iter().map(|a| a.key.as_str()).collect();
    for o in &set {
        if grid_keys.contains(&o.key.as_str()) {
            errs.push(
                at(
                    &o.origin,
                    o.key_mark,
                    &format!("set.{}", o.key),
                    format!("`{}` is also swept by `grid:`", o.key),
                )
                .hint(
                    "the grid's values would replace this one in every run; remove it from `set:`",
                ),
            );
        }
    }

    // variants
    let mut variants: Vec<Variant> = Vec::new();
    match by_key.get("variants").copied() {
        None => {}
        Some(e) => match &e.node.value {
            Value::Seq(items) if items.is_empty() => errs.push(
                at(&e.src, e.node.mark, "variants", "the variant list is empty")
                    .hint("remove `variants:` to get one `baseline` variant, or add `- name: baseline`"),
            ),
            Value::Null => errs.push(
                at(&e.src, e.key.mark, "variants", "the variant list is empty")
                    .hint("remove `variants:` to get one `baseline` variant, or add `- name: baseline`"),
            ),
            Value::Seq(items) => {
                let mut names: BTreeMap<String, Mark> = BTreeMap::new();
                for (i, item) in items.iter().enumerate() {
                    let here = format!("variants[{i}]");
                    let Value::Map(fields) = &item.value else {
                        let hint = match &item.value {
                            Value::Str(s) => format!("write `- name: {s}`"),
                            _ => "write `- name: clip` with an optional `set: {...}`".to_string(),
                        };
                        errs.push(
                            at(&e.src, item.mark, &here, format!("a variant must be a mapping, got {}", schema::describe(&item.value)))
                                .hint(hint),
                        );
                        continue;
                    };
                    for (k, _) in fields {
                        if !VARIANT_KEYS.contains(&k.name.as_str()) {
                            errs.push(unknown(&e.src, k, &format!("{here}.{}", k.name), VARIANT_KEYS));
                        }
                    }
                    let name = match item.get("name") {
                        None | Some(Node { value: Value::Null, .. }) => {
                            errs.push(
                                at(&e.src, item.mark, &here, "variant without a `name`")
                                    .hint("every variant needs a name, e.g. `- name: clip`"),
                            );
                            continue;
                        }
                        Some(n) => match &n.value {
                            Value::Str(s) if valid_name(s) => (s.clone(), n.mark),
                            other => {
                                errs.push(
                                    at(&e.src, n.mark, &format!("{here}.name"), format!("invalid variant name {}", schema::describe(other)))
                                        .hint("use letters, digits, `_` and `-` only (it starts every run id)"),
                                );
                                continue;
                            }
                        },
                    };
                    if let Some(prev) = names.get(&name.0) {
                        errs.push(
                            at(&e.src, name.1, &format!("{here}.name"), format!("duplicate variant name `{}`", name.0))
                                .hint(format!("first used at line {}, column {}; give each variant its own name", prev.line, prev.col)),
                        );
                        continue;
                    }
                    names.insert(name.0.clone(), name.1);
                    let description = match item.get("description") {
                        Some(Node { value: Value::Str(s), .. }) => Some(s.clone()),
                        None | Some(Node { value: Value::Null, .. }) => None,
                        Some(n) => {
                            errs.push(
                                at(&e.src, n.mark, &format!("{here}.description"), format!("must be text, got {}", n.value.type_name()))
                                    .hint("quote it: `description: \"...\"`"),
                            );
                            None
                        }
                    };
                    let vpath = format!("variants.{}.set", name.0);
                    let vset = match item.get("set") {
                        None | Some(Node { value: Value::Null, .. }) => Vec::new(),
                        Some(n) => overrides_of(&e.src, n, &vpath, &mut errs),
                    };
                    for o in &vset {
                        if grid_keys.contains(&o.key.as_str()) {
                            errs.push(
                                at(&o.origin, o.key_mark, &format!("{vpath}.{}", o.key), format!("`{}` is also swept by `grid:`", o.key))
                                    .hint("the grid's values would replace the variant's in every run; sweep it in one place only"),
                            );
                        }
                    }
                    variants.push(Variant {
                        name: name.0,
                        at: at(&e.src, name.1, &format!("{here}.name"), ""),
                        description,
                        set: vset,
                    });
                }
            }
            other => errs.push(
                at(&e.src, e.node.mark, "variants", format!("must be a list of variants, got {}", schema::describe(other)))
                    .hint("e.g. `variants: [{name: baseline}, {name: clip, set: {training.actor_cnn_grad_clip.max_norm: 1.0}}]`"),
            ),
        },
    }
    if !by_key.contains_key("variants") {
        variants.push(Variant {
            name: "baseline".into(),
            at: at(&leaf, Mark { line: 1, col: 1 }, "variants", ""),
            description: None,
            set: Vec::new(),
        });
    }

    // resources
    let mut resources = Resources::default();
    if let Some(e) = get("resources") {
        match &e.node.value {
            Value::Map(fields) => {
                for (k, v) in fields {
                    let path = format!("resources.{}", k.name);
                    match k.name.as_str() {
                        "devices" => {
                            match &v.value {
                                Value::Str(s) if s == "auto" => resources.devices = Devices::Auto,
                                Value::Str(s) if s == "cpu" => resources.devices = Devices::Cpu,
                                Value::Seq(items) if !items.is_empty() => {
                                    let mut gpus = Vec::new();
                                    for item in items {
                                        match item.value {
                                        Value::Int(g) if g >= 0 && !gpus.contains(&(g as usize)) => gpus.push(g as usize),
                                        Value::Int(g) if g >= 0 => errs.push(
                                            at(&e.src, item.mark, &path, format!("GPU {g} is listed twice"))
                                                .hint("list each GPU index once"),
                                        ),
                                        ref other => errs.push(
                                            at(&e.src, item.mark, &path, format!("a GPU index must be an integer >= 0, got {}", schema::describe(other)))
                                                .hint("e.g. `devices: [0, 1]`"),
                                        ),
                                    }
                                    }
                                    resources.devices = Devices::Gpus(gpus);
                                }
                                other => {
                                    let hint = match other {
                                    Value::Int(g) => format!("a list of GPU indices: `devices: [{g}]`"),
                                    Value::Str(s) => match did_you_mean(s, ["auto", "cpu"]) {
                                        Some(c) => format!("did you mean `{c}`? use `auto`, `cpu` or a list of GPU indices"),
                                        None => "use `auto`, `cpu` or a list of GPU indices like `[0, 1]`".into(),
                                    },
                                    _ => "use `auto`, `cpu` or a list of GPU indices like `[0, 1]`".into(),
                                };
                                    errs.push(
                                        at(
                                            &e.src,
                                            v.mark,
                                            &path,
                                            format!("invalid devices {}", schema::describe(other)),
                                        )
                                        .hint(hint),
                                    );
                                }
                            }
                        }
                        "runs_per_device" | "threads_per_run" => match positive_int(v) {
                            Some(n) => {
                                if k.name == "runs_per_device" {
                                    resources.runs_per_device = n as usize;
                                } else {
                                    resources.threads_per_run = n as usize;
                                }
                            }
                            None => errs.push(
                                at(
                                    &e.src,
                                    v.mark,
                                    &path,
                                    format!(
                                        "must be a positive integer, got {}",
                                        schema::describe(&v.value)
                                    ),
                                )
                                .hint(format!("e.g. `{}: 1`", k.name)),
                            ),
                        },
                        _ => errs.push(unknown(&e.src, k, &path, RESOURCE_KEYS)),
                    }
                }
            }
            other => errs.push(
                at(
                    &e.src,
                    e.node.mark,
                    "resources",
                    format!("must be a mapping, got {}", schema::describe(other)),
                )
                .hint(
                    "e.g. `resources: { devices: auto, runs_per_device: 2, threads_per_run: 1 }`",
                ),
            ),
        }
    }

    // timeout
    let mut timeout = None;
    if let Some(e) = get("timeout") {
        let hint = "a number with a unit: `90s`, `30m`, `1h30m`";
        match &e.node.value {
            Value::Str(s) => match parse_duration(s) {
                Ok(d) => timeout = Some(d),
                Err(why) => errs.push(
                    at(
                        &e.src,
                        e.node.mark,
                        "timeout",
                        format!("invalid duration \"{s}\": {why}"),
                    )
                    .hint(hint),
                ),
            },
            Value::Int(n) => {
                let hint = if *n > 0 && n % 60 == 0 {
                    format!("write `{n}s` (or `{}m`)", n / 60)
                } else {
                    format!("write `{n}s` for seconds or `{n}m` for minutes")
                };
                errs.push(
                    at(
                        &e.src,
                        e.node.mark,
                        "timeout",
                        format!("the duration {n} has no unit"),
                    )
                    .hint(hint),
                )
            }
            other => errs.push(
                at(
                    &e.src,
                    e.node.mark,
                    "timeout",
                    format!("must be a duration, got {}", schema::describe(other)),
                )
                .hint(hint),
            ),
        }
    }

    // criteria
    let mut criteria = CriteriaRef::Default;
    if let Some(e) = get("criteria") {
        match &e.node.value {
            Value::Str(s) => {
                let p = normalize(&dir_of(&e.src.path).join(s));
                if p.is_file() {
                    criteria = CriteriaRef::Path(p);
                } else {
                    errs.push(
                        at(
                            &e.src,
                            e.node.mark,
                            "criteria",
                            format!("criteria file `{}` {}", p.display(), not_a_file(&p)),
                        )
                        .hint(
                            "`criteria` is a path relative to the sweep file, or an inline mapping",
                        ),
                    );
                }
            }
            Value::Map(_) => {
                criteria = CriteriaRef::Inline {
                    node: e.node.clone(),
                    source: (*e.src).clone(),
                }
            }
            other => errs.push(
                at(
                    &e.src,
                    e.node.mark,
                    "criteria",
                    format!(
                        "must be a path or a mapping, got {}",
                        schema::describe(other)
                    ),
                )
                .hint("e.g. `criteria: ../criteria/default.yaml`"),
            ),
        }
    }
    // Checked here with everything else, so one round shows every problem.
    match &criteria {
        CriteriaRef::Default => {}
        CriteriaRef::Path(p) => {
            if let Err(d) = crate::verdict::load_criteria(p) {
                errs.extend(d.0);
            }
        }
        CriteriaRef::Inline { node, source } => {
            if let Err(ds) = crate::verdict::parse_criteria(source, node) {
                // Inline, the criteria's keys live under `criteria:` in the sweep file.
                errs.extend(ds.into_iter().map(|mut d| {
                    d.key = Some(match d.key.take() {
                        Some(k) => format!("criteria.{k}"),
                        None => "criteria".into(),
                    });
                    d
                }));
            }
        }
    }

    let mut stop_on_fail = None;
    if let Some(e) = get("stop_on_fail") {
        match e.node.value {
            Value::Bool(b) => stop_on_fail = Some(b),
            ref other => errs.push(
                at(
                    &e.src,
                    e.node.mark,
                    "stop_on_fail",
                    format!("must be true or false, got {}", schema::describe(other)),
                )
                .hint("write `true` or `false` (unquoted)"),
            ),
        }
    }

    let mut stages = Vec::new();
    if let Some(e) = get("stages") {
        stages = super::stages::parse_stages(&e.src, &e.node, &mut errs);
        if let Some(st) = get("steps") {
            errs.push(
                at(&st.src, st.node.mark, "steps", "`steps` and `stages` both set the run length")
                    .hint("remove `steps:`; each stage's `steps` is the run's total at the end of that stage"),
            );
        }
    }

    let mut backend = None;
    if let Some(e) = get("backend") {
        match e.node.value.clone() {
            Value::Str(b) if b == "local" || b == "slurm" => backend = Some(b),
            other => errs.push(
                at(
                    &e.src,
                    e.node.mark,
                    "backend",
                    format!("unknown backend {}", schema::describe(&other)),
                )
                .hint("`local` (child processes on this machine) or `slurm` (sbatch job arrays)"),
            ),
        }
    }
    let mut slurm = crate::schedule::slurm::SlurmOptions::default();
    if let Some(e) = get("slurm") {
        match serde_json::from_value::<crate::schedule::slurm::SlurmOptions>(e.node.to_json()) {
            Ok(o) => {
                let problems = o.problems();
                for p in &problems {
                    // "slurm.time: ..." → point at `time`'s value, with its key path.
                    let full = p.strip_prefix("slurm.").and_then(|r| r.split(':').next());
                    let key = full.map(|k| k.split('[').next().unwrap_or(k));
                    // `extra[1]` points at that item of the list.
                    let item = full
                        .and_then(|k| k.split_once('['))
                        .and_then(|(_, i)| i.trim_end_matches(']').parse::<usize>().ok());
                    let (mark, path) = match key.and_then(|k| e.node.get(k).map(|n| (k, n))) {
                        Some((k, n)) => match (item, &n.value) {
                            (Some(i), crate::config::yaml::Value::Seq(items))
                                if i < items.len() =>
                            {
                                (items[i].mark, format!("slurm.{k}[{i}]"))
                            }
                            _ => (n.mark, format!("slurm.{k}")),
                        },
                        None => (e.node.mark, "slurm".to_string()),
                    };
                    let msg = p
                        .split_once(": ")
                        .map_or(p.as_str(), |(_, m)| m)
                        .to_string();
                    errs.push(
                        at(&e.src, mark, &path, msg)
                            .hint("see docs/slurm.md for every `slurm:` key"),
                    );
                }
                if problems.is_empty() {
                    slurm = o;
                }
            }
            Err(err) => errs.push(
                at(
                    &e.src,
                    e.node.mark,
                    "slurm",
                    format!("invalid section: {err}"),
                )
                .hint(
                    "keys: partition, account, time, gres, cpus_per_task, mem, max_parallel, extra",
                ),
            ),
        }
    }

    let Some(base_doc) = base_doc.filter(|_| errs.is_empty()) else {
        return Err(Diagnostics(errs));
    };
    let base_seed = base_doc.finish().map(|c| c.seed).unwrap_or(0);
    let seed_list: Vec<u64> = if seeds.is_empty() {
        vec![base_seed]
    } else {
        seeds.iter().map(|(s, _)| *s).collect()
    };
    let size_at = grid_at.unwrap_or_else(|| at(&leaf, Mark { line: 1, col: 1 }, "", ""));
    let plain = |os: &[Override]| {
        os.iter()
            .map(|o| (o.key.clone(), o.value.value.clone()))
            .collect::<Vec<_>>()
    };
    let spec = SweepSpec {
        stages,
        name,
        description,
        base,
        steps,
        seeds: seed_list,
        set: plain(&set),
        grid: grid
            .iter()
            .map(|a| {
                (
                    a.key.clone(),
                    a.values.iter().map(|o| o.value.value.clone()).collect(),
                )
            })
            .collect(),
        variants: variants
            .iter()
            .map(|v| VariantSpec {
                name: v.name.clone(),
                description: v.description.clone(),
                set: plain(&v.set),
            })
            .collect(),
        resources,
        timeout,
        criteria,
        stop_on_fail,
        backend,
        slurm,
        source: path.to_path_buf(),
        extends,
        size_at: Some(size_at.clone()),
    };
    Ok(Parsed {
        spec,
        base: base_doc,
        set,
        grid,
        variants,
        steps: steps_override,
        seeds,
        size_at,
    })
}

/// The sweep-only top-level keys the YAML file at `p` has ("`name:`, `grid:`"), when it has at
/// least two of them (one could be a typo in an agent config).
fn sweep_keys_in(p: &Path) -> Option<String> {
    let src = Source::read(p).ok()?;
    let root = yaml::parse(&src).ok()?;
    let Value::Map(entries) = &root.value else {
        return None;
    };
    let found: Vec<String> = entries
        .iter()
        .map(|(k, _)| k.name.as_str())
        .filter(|k| {
            matches!(
                *k,
                "name"
                    | "base"
                    | "extends"
                    | "grid"
                    | "variants"
                    | "seeds"
                    | "steps"
                    | "stages"
                    | "set"
            )
        })
        .map(|k| format!("`{k}:`"))
        .collect();
    (found.len() >= 2).then(|| found.join(", "))
}

/// "does not exist" or, for a folder, "is a folder, not a file": why `p` can't be read as a file.
fn not_a_file(p: &Path) -> &'static str {
    if p.is_dir() {
        "is a folder, not a file"
    } else {
        "does not exist"
    }
}
