//! `steps:` and `seeds:`: how long each run trains, and how many times each config runs.

use std::collections::BTreeMap;

use crate::config::load::Override;
use crate::config::schema;
use crate::config::yaml::{Node, Value};
use crate::diag::{Diagnostic, Mark};
use crate::spec::located::at;
use crate::spec::MAX_RUNS;

use super::chain::Entry;
use super::{positive_int, Top};

/// `steps:`, and the `training.steps` override that applies it to every run.
pub(super) fn steps(top: &Top, errs: &mut Vec<Diagnostic>) -> (Option<u64>, Option<Override>) {
    let Some(e) = top.get("steps") else {
        return (None, None);
    };
    match positive_int(&e.node) {
        Some(n) => (
            Some(n),
            Some(Override {
                key: "training.steps".into(),
                key_mark: e.key.mark,
                value: e.node.clone(),
                origin: (*e.src).clone(),
            }),
        ),
        None => {
            errs.push(
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
            );
            (None, None)
        }
    }
}

/// `seeds:` as a count (`3`: seeds 0, 1, 2) or a list, each with the override that sets it,
/// ascending. Empty when the key is absent (the base config's seed is used).
pub(super) fn seeds(top: &Top, errs: &mut Vec<Diagnostic>) -> Vec<(u64, Override)> {
    let Some(e) = top.get("seeds") else {
        return Vec::new();
    };
    let mut seeds: Vec<(u64, Override)> = Vec::new();
    match &e.node.value {
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
        Value::Seq(items) => seeds = seed_list(e, items, errs),
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
    }
    seeds.sort_by_key(|(s, _)| *s);
    seeds
}

/// The seeds of a `seeds: [...]` list, in file order; repeats and non-seeds are reported.
fn seed_list(e: &Entry, items: &[Node], errs: &mut Vec<Diagnostic>) -> Vec<(u64, Override)> {
    let mut seeds = Vec::new();
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
    seeds
}

/// The `seed` override for one seed of the `seeds:` entry `e`, at `mark`.
fn seed_override(e: &Entry, seed: u64, mark: Mark) -> Override {
    Override {
        key: "seed".into(),
        key_mark: e.key.mark,
        value: Node {
            value: Value::Int(seed as i64),
            mark,
        },
        origin: (*e.src).clone(),
    }
}
