//! `grid:`: the swept keys, each with its list of values, checked against the agent config schema.

use crate::config::load::Override;
use crate::config::schema;
use crate::config::yaml::{Key, Node, Value};
use crate::diag::{Diagnostic, Source};
use crate::spec::located::at;

use super::keys::Keys;
use super::overrides::{prefixed, reserved};
use super::{Axis, Top};

/// The grid's axes sorted by key, and where to point messages about the sweep's size (the
/// `grid:` key, when there is one).
pub(super) fn grid(
    keys: &Keys,
    top: &Top,
    errs: &mut Vec<Diagnostic>,
) -> (Vec<Axis>, Option<Diagnostic>) {
    let Some(e) = top.written("grid") else {
        return (Vec::new(), None);
    };
    let grid_at = Some(at(&e.src, e.key.mark, "grid", ""));
    let empty_hint = "add a key with a list of values, e.g. `networks.cnn.actor_cnn_lr: [1.0e-4, 1.0e-5]`, or remove `grid:`";
    let mut grid: Vec<Axis> = Vec::new();
    match &e.node.value {
        Value::Map(axes) if axes.is_empty() => {
            errs.push(at(&e.src, e.node.mark, "grid", "the grid is empty").hint(empty_hint))
        }
        Value::Null => {
            errs.push(at(&e.src, e.key.mark, "grid", "the grid is empty").hint(empty_hint))
        }
        Value::Map(axes) => grid.extend(
            axes.iter()
                .filter_map(|(k, v)| axis(keys, &e.src, k, v, errs)),
        ),
        other => errs.push(
            at(
                &e.src,
                e.node.mark,
                "grid",
                format!(
                    "must be a mapping of dotted keys to lists, got {}",
                    schema::describe(other)
                ),
            )
            .hint("e.g. `grid: { networks.cnn.actor_cnn_lr: [1.0e-4, 1.0e-5] }`"),
        ),
    }
    grid.sort_by(|a, b| a.key.cmp(&b.key));
    (grid, grid_at)
}

/// One swept key with its checked values; `None` when the key itself is wrong (reserved,
/// unknown, not given a list, or a list key swept with scalars).
fn axis(keys: &Keys, src: &Source, k: &Key, v: &Node, errs: &mut Vec<Diagnostic>) -> Option<Axis> {
    let path = format!("grid.{}", k.name);
    if let Some(d) = reserved(keys, src, k, "grid") {
        errs.push(d);
        return None;
    }
    let items = match &v.value {
        Value::Seq(items) if items.is_empty() => {
            errs.push(
                at(src, v.mark, &path, "empty list of values")
                    .hint("a swept key needs at least one value, e.g. `[1.0e-4, 1.0e-5]`"),
            );
            return None;
        }
        Value::Seq(items) => items,
        other => {
            errs.push(
                at(
                    src,
                    v.mark,
                    &path,
                    format!(
                        "grid values must be a list, got {}",
                        schema::describe(other)
                    ),
                )
                .hint(format!(
                    "write `{}: [{}]`, or move a single value to `set:`",
                    k.name,
                    schema::fmt_scalar(other)
                )),
            );
            return None;
        }
    };
    let mut values = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let o = Override {
            key: k.name.clone(),
            key_mark: k.mark,
            value: item.clone(),
            origin: src.clone(),
        };
        let problems = keys.check(&o);
        if problems.iter().any(|d| d.mark == k.mark) {
            // An unknown key: reported once, not once per value.
            errs.extend(prefixed(problems, "grid"));
            return None;
        }
        if !problems.is_empty() {
            // A list-valued key swept with scalars: the grid's list is the values to try, so
            // each value is itself a list.
            if keys.is_list(&k.name) && !matches!(item.value, Value::Seq(_)) {
                errs.push(scalars_for_list_key(src, k, v, items));
                return None;
            }
            errs.extend(prefixed(problems, "grid"));
            continue;
        }
        if let Some(j) = items[..i].iter().position(|p| p.value == item.value) {
            errs.push(
                at(src, item.mark, &path, format!("value {} is listed twice", schema::fmt_scalar(&item.value)))
                    .hint(format!(
                        "first listed at line {}, column {}; each value makes its own runs, so remove the repeat",
                        items[j].mark.line, items[j].mark.col
                    )),
            );
            continue;
        }
        values.push(o);
    }
    Some(Axis {
        key: k.name.clone(),
        values,
    })
}

/// `layers: [64, 256]` for a list-valued key: each value to try must itself be a list.
fn scalars_for_list_key(src: &Source, k: &Key, v: &Node, items: &[Node]) -> Diagnostic {
    let scalars: Vec<String> = items.iter().map(|n| schema::fmt_scalar(&n.value)).collect();
    at(
        src,
        v.mark,
        &format!("grid.{}", k.name),
        format!(
            "`{}` takes a list, so each grid value must be a list",
            k.name
        ),
    )
    .hint(format!(
        "one value: `{}: [[{}]]`; several: `{}: [[64, 64], [256, 256]]`",
        k.name,
        scalars.join(", "),
        k.name
    ))
}

/// A `set:` key that the grid also sweeps: the grid's values would win in every run.
pub(super) fn set_also_swept(set: &[Override], grid: &[Axis], errs: &mut Vec<Diagnostic>) {
    for o in set {
        if grid.iter().any(|a| a.key == o.key) {
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
}
