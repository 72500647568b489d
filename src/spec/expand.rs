//! Expansion of a parsed sweep into runs, and run ids.
//!
//! Order: variants in file order × grid points (keys sorted, the last key changing fastest,
//! values in file order) × seeds ascending. The same spec always gives the same runs in the same
//! order with the same ids.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::config::load::Override;
use crate::config::schema::{fmt_float, fmt_scalar};
use crate::config::yaml::Value;
use crate::diag::{Diagnostic, Diagnostics};

use super::parse::{BaseDoc, Parsed};
use super::{ExternalConfig, RunConfig, RunPlan, MAX_RUNS};

/// Hex digits of the config hash at the end of a run id.
pub const RUN_ID_HASH_LEN: usize = 6;

/// Run ids longer than this have their swept part shortened (the hash keeps them unique).
const MAX_ID_LEN: usize = 160;

/// The shortest dotted suffix of each key that no other key shares: usually the last segment
/// (`actor_cnn_lr`), `actor.learning_rate` when `critic.learning_rate` is swept too.
pub fn short_keys(keys: &[&str]) -> Vec<String> {
    keys.iter()
        .map(|key| {
            let segs: Vec<&str> = key.split('.').collect();
            for n in 1..=segs.len() {
                let suffix = segs[segs.len() - n..].join(".");
                let clash = keys.iter().any(|other| {
                    other != key && (*other == suffix || other.ends_with(&format!(".{suffix}")))
                });
                if !clash {
                    return suffix;
                }
            }
            key.to_string()
        })
        .collect()
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A value as it appears in a run id: `1e-4`, `true`, `8x16` for lists.
fn id_value(v: &Value) -> String {
    match v {
        Value::Float(x) => fmt_float(*x),
        Value::Seq(items) => items
            .iter()
            .map(|n| id_value(&n.value))
            .collect::<Vec<_>>()
            .join("x"),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, n)| format!("{}-{}", k.name, id_value(&n.value)))
            .collect::<Vec<_>>()
            .join("_"),
        other => fmt_scalar(other),
    }
}

/// `<variant>__<key>=<value>__...__s<seed>__<hash6>`: the variant, each swept key (short form,
/// sorted by full key) with its value, the seed, and the first [`RUN_ID_HASH_LEN`] hex digits
/// of the config hash. Only `[A-Za-z0-9._+=-]` appear, so ids are safe as folder names.
pub fn run_id(variant: &str, swept: &[(&str, &str)], seed: u64, config_hash: &str) -> String {
    let mut parts = vec![sanitize(variant)];
    parts.extend(
        swept
            .iter()
            .map(|(k, v)| format!("{}={}", sanitize(k), sanitize(v))),
    );
    let tail = format!(
        "__s{seed}__{}",
        &config_hash[..RUN_ID_HASH_LEN.min(config_hash.len())]
    );
    let mut head = parts.join("__");
    if head.len() + tail.len() > MAX_ID_LEN {
        head.truncate(MAX_ID_LEN.saturating_sub(tail.len()));
    }
    head + &tail
}

/// Where a run came from, to explain duplicate configs.
struct Origin {
    variant: usize,
    combo: Vec<usize>,
}

/// The number of grid points, when the whole sweep stays within [`MAX_RUNS`].
fn grid_points(p: &Parsed) -> Result<usize, Diagnostics> {
    let combos = p
        .grid
        .iter()
        .try_fold(1usize, |acc, a| acc.checked_mul(a.values.len()));
    let n_seeds = p.spec.seeds.len();
    let total = combos
        .and_then(|c| c.checked_mul(p.variants.len()))
        .and_then(|c| c.checked_mul(n_seeds));
    match total {
        Some(n) if n <= MAX_RUNS => Ok(combos.unwrap_or(1)),
        _ => {
            let n = total.map_or("more than 2^64".to_string(), |n| n.to_string());
            Err(Diagnostic {
                message: format!(
                    "this sweep expands to {n} runs, more than the limit of {MAX_RUNS}"
                ),
                ..p.size_at.clone()
            }
            .hint("shrink the grid, the variants or the seeds, or split the sweep")
            .into())
        }
    }
}

/// Where to point a "same config" message about a run (variant `vi`, grid point `combo`) and
/// an earlier run from `first`: the variant when the variants differ, else the first grid value
/// that differs, else the sweep's size.
fn where_they_differ(p: &Parsed, first: &Origin, vi: usize, combo: &[usize]) -> Diagnostic {
    if first.variant != vi {
        return p.variants[vi].at.clone();
    }
    match first.combo.iter().zip(combo).position(|(a, b)| a != b) {
        Some(axis) => {
            let v = &p.grid[axis].values[combo[axis]];
            Diagnostic::new(&v.origin, v.value.mark, "").key(format!("grid.{}", v.key))
        }
        None => p.size_at.clone(),
    }
}

/// A run's config with its overrides applied, and its hash: the agent config's, or for an
/// external trainer one over its config, seed, steps and the trainer block.
fn resolve(p: &Parsed, doc: &BaseDoc, seed: u64) -> Result<RunConfig, Diagnostics> {
    match doc {
        BaseDoc::Agent(d) => Ok(RunConfig::Agent(d.finish()?)),
        BaseDoc::User(d) => Ok(RunConfig::External(ExternalConfig {
            yaml: d.to_yaml(),
            // A ladder's runs go to its last stage's end; each stage sets its own steps.
            steps: p
                .spec
                .steps
                .or_else(|| p.spec.stages.last().map(|s| s.steps))
                .unwrap_or(0),
            values: d.values(),
            seed,
            trainer: p
                .spec
                .trainer
                .as_ref()
                .map(|t| t.canonical())
                .unwrap_or_default(),
        })),
    }
}

/// The sweep's runs in order (variants × grid points × seeds); every run must resolve to a
/// config of its own.
pub(super) fn expand(p: &Parsed) -> Result<Vec<RunPlan>, Diagnostics> {
    let combos = grid_points(p)?;
    let keys: Vec<&str> = p.grid.iter().map(|a| a.key.as_str()).collect();
    let shorts = short_keys(&keys);
    let seeds: Vec<(u64, Option<&Override>)> = if p.seeds.is_empty() {
        p.spec.seeds.iter().map(|s| (*s, None)).collect()
    } else {
        p.seeds.iter().map(|(s, o)| (*s, Some(o))).collect()
    };

    let mut errs = Diagnostics::default();
    let mut reported: HashSet<String> = HashSet::new();
    let mut same_place: HashMap<(std::path::PathBuf, usize, usize), (usize, usize)> =
        HashMap::new();
    let mut by_hash: HashMap<String, usize> = HashMap::new();
    let mut origins: Vec<Origin> = Vec::new();
    let mut runs: Vec<RunPlan> = Vec::new();
    for (vi, variant) in p.variants.iter().enumerate() {
        for c in 0..combos {
            // Mixed-radix digits of `c`, the last key fastest.
            let mut combo = vec![0; p.grid.len()];
            let mut rest = c;
            for (i, axis) in p.grid.iter().enumerate().rev() {
                combo[i] = rest % axis.values.len();
                rest /= axis.values.len();
            }
            let mut applied: Vec<&Override> = Vec::new();
            applied.extend(&p.set);
            applied.extend(&variant.set);
            applied.extend(p.grid.iter().zip(&combo).map(|(a, &i)| &a.values[i]));
            applied.extend(&p.steps);
            let mut doc = p.base.clone();
            for o in &applied {
                doc.apply_checked(o);
            }
            let swept: Vec<(String, String)> = p
                .grid
                .iter()
                .zip(&combo)
                .map(|(a, &i)| (a.key.clone(), fmt_scalar(&a.values[i].value.value)))
                .collect();
            let id_parts: Vec<(String, String)> = p
                .grid
                .iter()
                .zip(&combo)
                .zip(&shorts)
                .map(|((a, &i), s)| (s.clone(), id_value(&a.values[i].value.value)))
                .collect();
            for (seed, seed_override) in &seeds {
                let mut doc = doc.clone();
                let mut all = applied.clone();
                if let Some(o) = seed_override.filter(|_| matches!(doc, BaseDoc::Agent(_))) {
                    doc.apply_checked(o);
                    all.push(o);
                }
                let config = match resolve(p, &doc, *seed) {
                    Ok(c) => c,
                    Err(ds) => {
                        for d in ds.0 {
                            if reported.insert(d.to_string()) {
                                errs.push(d);
                            }
                        }
                        continue;
                    }
                };
                let hash = config.hash();
                let id_refs: Vec<(&str, &str)> = id_parts
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let run_id = run_id(&variant.name, &id_refs, *seed, &hash);
                if let Some(&j) = by_hash.get(&hash) {
                    let first: &RunPlan = &runs[j];
                    let here = where_they_differ(p, &origins[j], vi, &combo);
                    let d = Diagnostic {
                        message: format!(
                            "runs `{}` and `{run_id}` resolve to the same config (hash {hash})",
                            first.run_id
                        ),
                        ..here
                    }
                    .hint("every run must differ from the others: remove the repeated value or variant, or give it a `set:` that changes something");
                    // One message per place: the same cause repeats for every seed and grid point.
                    let place = (d.file.clone(), d.mark.line, d.mark.col);
                    match same_place.get_mut(&place) {
                        Some((_, more)) => *more += 1,
                        None => {
                            same_place.insert(place, (errs.0.len(), 0));
                            errs.push(d);
                        }
                    }
                    continue;
                }
                by_hash.insert(hash.clone(), runs.len());
                origins.push(Origin {
                    variant: vi,
                    combo: combo.clone(),
                });
                runs.push(RunPlan {
                    index: runs.len(),
                    run_id,
                    variant: variant.name.clone(),
                    seed: *seed,
                    swept: swept.iter().cloned().collect::<BTreeMap<_, _>>(),
                    overrides: all.iter().map(|o| o.display()).collect(),
                    config,
                    config_hash: hash,
                });
            }
        }
    }
    for (i, more) in same_place.into_values() {
        if more > 0 {
            let s = if more == 1 { "" } else { "s" };
            errs.0[i].message += &format!(", and {more} more pair{s} of runs for the same reason");
        }
    }
    errs.into_result(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_key_table() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["networks.cnn.actor_cnn_lr"], &["actor_cnn_lr"]),
            (
                &[
                    "networks.actor.learning_rate",
                    "networks.critic.learning_rate",
                ],
                &["actor.learning_rate", "critic.learning_rate"],
            ),
            (
                &["networks.cnn.learning_rate", "training.q_normalization"],
                &["learning_rate", "q_normalization"],
            ),
            (
                &[
                    "training.actor_cnn_grad_clip",
                    "training.actor_cnn_grad_clip.max_norm",
                ],
                &["actor_cnn_grad_clip", "max_norm"],
            ),
        ];
        for (keys, want) in cases {
            assert_eq!(
                short_keys(keys),
                want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{keys:?}"
            );
        }
    }

    #[test]
    fn run_id_table() {
        assert_eq!(
            run_id("baseline", &[("actor_cnn_lr", "1e-4")], 0, "3fa2c1aaaaaa"),
            "baseline__actor_cnn_lr=1e-4__s0__3fa2c1"
        );
        assert_eq!(run_id("clip", &[], 12, "abcdef123456"), "clip__s12__abcdef");
        assert_eq!(
            run_id("v", &[("k", "a b/c")], 1, "000000"),
            "v__k=a_b_c__s1__000000"
        );
        let long = "x".repeat(300);
        let id = run_id("v", &[("k", &long)], 1, "0123456789ab");
        assert!(
            id.len() <= MAX_ID_LEN && id.ends_with("__s1__012345"),
            "{id}"
        );
    }

    #[test]
    fn id_values() {
        use crate::config::yaml::parse_scalar;
        assert_eq!(id_value(&parse_scalar("[8, 16]")), "8x16");
        assert_eq!(id_value(&parse_scalar("{max_norm: 1.0}")), "max_norm-1");
        assert_eq!(id_value(&parse_scalar("1.0e-5")), "1e-5");
        assert_eq!(
            id_value(&parse_scalar("shared_detached")),
            "shared_detached"
        );
    }
}
