//! `set:` mappings (the sweep's and each variant's): overrides checked against the agent config
//! schema, one per leaf key.

use crate::config::load::Override;
use crate::config::yaml::{Key, Node, Value};
use crate::diag::{Diagnostic, Source};
use crate::spec::located::at;

use super::keys::Keys;

/// Prefixes the key path of diagnostics from [`check_override`] with where the override sits.
pub(super) fn prefixed(ds: Vec<Diagnostic>, prefix: &str) -> impl Iterator<Item = Diagnostic> + '_ {
    ds.into_iter().map(move |mut d| {
        d.key = Some(match d.key {
            Some(k) => format!("{prefix}.{k}"),
            None => prefix.to_string(),
        });
        d
    })
}

/// Overrides from a `set:` mapping, checked against `keys`. Keys that sweeps control directly
/// (`seed`, `training.steps` of the built-in agent) are refused.
pub(super) fn overrides_of(
    keys: &Keys,
    src: &Source,
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
            origin: src.clone(),
        };
        if let Some(d) = reserved(keys, src, k, path) {
            errs.push(d);
            continue;
        }
        let problems = keys.check(&o);
        if !problems.is_empty() {
            errs.extend(prefixed(problems, path));
            continue;
        }
        // A group written as a mapping (`networks.cnn: { actor_cnn_lr: ... }`) merges key by
        // key, so it is checked key by key: against the reserved keys, against the same key
        // written twice, and (by the callers) against the grid.
        for leaf in leaves(keys, o) {
            let k = Key {
                name: leaf.key.clone(),
                mark: leaf.key_mark,
            };
            if let Some(d) = reserved(keys, src, &k, path) {
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
fn leaves(keys: &Keys, o: Override) -> Vec<Override> {
    match &o.value.value {
        Value::Map(entries) if keys.is_group(&o.key) => entries
            .iter()
            .flat_map(|(k, v)| {
                leaves(
                    keys,
                    Override {
                        key: format!("{}.{}", o.key, k.name),
                        key_mark: k.mark,
                        value: v.clone(),
                        origin: o.origin.clone(),
                    },
                )
            })
            .collect(),
        _ => vec![o],
    }
}

/// `seed` and `training.steps` have their own sweep keys (for the built-in agent).
pub(super) fn reserved(keys: &Keys, src: &Source, k: &Key, path: &str) -> Option<Diagnostic> {
    if !keys.reserves_seed_and_steps() {
        return None;
    }
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
