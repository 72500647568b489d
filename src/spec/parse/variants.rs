//! `variants:`: named override sets, each run once per grid point and seed.

use std::collections::BTreeMap;

use crate::config::schema;
use crate::config::yaml::{Node, Value};
use crate::diag::{Diagnostic, Mark, Source};
use crate::spec::located::{at, unknown, valid_name};

use super::keys::Keys;
use super::overrides::overrides_of;
use super::{Axis, Top, Variant};

const VARIANT_KEYS: &[&str] = &["name", "description", "set"];

/// The variants in file order; one `baseline` with no overrides when the key is absent.
pub(super) fn variants(
    keys: &Keys,
    top: &Top,
    grid: &[Axis],
    errs: &mut Vec<Diagnostic>,
) -> Vec<Variant> {
    let Some(e) = top.written("variants") else {
        return vec![Variant {
            name: "baseline".into(),
            at: at(&top.leaf, Mark { line: 1, col: 1 }, "variants", ""),
            description: None,
            set: Vec::new(),
        }];
    };
    let empty_hint = "remove `variants:` to get one `baseline` variant, or add `- name: baseline`";
    match &e.node.value {
        Value::Seq(items) if items.is_empty() => errs.push(
            at(&e.src, e.node.mark, "variants", "the variant list is empty").hint(empty_hint),
        ),
        Value::Null => errs.push(
            at(&e.src, e.key.mark, "variants", "the variant list is empty").hint(empty_hint),
        ),
        Value::Seq(items) => {
            let mut names: BTreeMap<String, Mark> = BTreeMap::new();
            return items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| variant(keys, &e.src, i, item, &mut names, grid, errs))
                .collect();
        }
        other => errs.push(
            at(&e.src, e.node.mark, "variants", format!("must be a list of variants, got {}", schema::describe(other)))
                .hint("e.g. `variants: [{name: baseline}, {name: clip, set: {training.actor_cnn_grad_clip.max_norm: 1.0}}]`"),
        ),
    }
    Vec::new()
}

/// The `i`th variant; `None` when it has no usable name (its other problems are still reported).
/// `names` holds the names seen so far, with where each was first written.
fn variant(
    keys: &Keys,
    src: &Source,
    i: usize,
    item: &Node,
    names: &mut BTreeMap<String, Mark>,
    grid: &[Axis],
    errs: &mut Vec<Diagnostic>,
) -> Option<Variant> {
    let here = format!("variants[{i}]");
    let Value::Map(fields) = &item.value else {
        let hint = match &item.value {
            Value::Str(s) => format!("write `- name: {s}`"),
            _ => "write `- name: clip` with an optional `set: {...}`".to_string(),
        };
        errs.push(
            at(
                src,
                item.mark,
                &here,
                format!(
                    "a variant must be a mapping, got {}",
                    schema::describe(&item.value)
                ),
            )
            .hint(hint),
        );
        return None;
    };
    for (k, _) in fields {
        if !VARIANT_KEYS.contains(&k.name.as_str()) {
            errs.push(unknown(src, k, &format!("{here}.{}", k.name), VARIANT_KEYS));
        }
    }
    let (name, name_at) = variant_name(src, item, &here, errs)?;
    if let Some(prev) = names.get(&name) {
        errs.push(
            at(
                src,
                name_at,
                &format!("{here}.name"),
                format!("duplicate variant name `{name}`"),
            )
            .hint(format!(
                "first used at line {}, column {}; give each variant its own name",
                prev.line, prev.col
            )),
        );
        return None;
    }
    names.insert(name.clone(), name_at);
    let description = match item.get("description") {
        Some(Node {
            value: Value::Str(s),
            ..
        }) => Some(s.clone()),
        None
        | Some(Node {
            value: Value::Null, ..
        }) => None,
        Some(n) => {
            errs.push(
                at(
                    src,
                    n.mark,
                    &format!("{here}.description"),
                    format!("must be text, got {}", n.value.type_name()),
                )
                .hint("quote it: `description: \"...\"`"),
            );
            None
        }
    };
    let vpath = format!("variants.{name}.set");
    let set = match item.get("set") {
        None
        | Some(Node {
            value: Value::Null, ..
        }) => Vec::new(),
        Some(n) => overrides_of(keys, src, n, &vpath, errs),
    };
    for o in &set {
        if grid.iter().any(|a| a.key == o.key) {
            errs.push(
                at(&o.origin, o.key_mark, &format!("{vpath}.{}", o.key), format!("`{}` is also swept by `grid:`", o.key))
                    .hint("the grid's values would replace the variant's in every run; sweep it in one place only"),
            );
        }
    }
    Some(Variant {
        name,
        at: at(src, name_at, &format!("{here}.name"), ""),
        description,
        set,
    })
}

/// A variant's `name:` and where it is written; `None` (reported) when missing or invalid.
fn variant_name(
    src: &Source,
    item: &Node,
    here: &str,
    errs: &mut Vec<Diagnostic>,
) -> Option<(String, Mark)> {
    match item.get("name") {
        None
        | Some(Node {
            value: Value::Null, ..
        }) => {
            errs.push(
                at(src, item.mark, here, "variant without a `name`")
                    .hint("every variant needs a name, e.g. `- name: clip`"),
            );
            None
        }
        Some(n) => match &n.value {
            Value::Str(s) if valid_name(s) => Some((s.clone(), n.mark)),
            other => {
                errs.push(
                    at(
                        src,
                        n.mark,
                        &format!("{here}.name"),
                        format!("invalid variant name {}", schema::describe(other)),
                    )
                    .hint("use letters, digits, `_` and `-` only (it starts every run id)"),
                );
                None
            }
        },
    }
}
