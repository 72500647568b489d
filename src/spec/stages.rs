//! The `stages:` key: a validation ladder (1K → 5K → 1M) where only promoted variants climb.
//!
//! ```yaml
//! stages:
//!   - { name: 1k, steps: 1000 }
//!   - { name: 5k, steps: 5000, promote: pass }
//!   - { name: 1m, steps: 1000000, promote: pass, approve: true }
//! ```
//! See docs/sweep-spec.md § Stages.

use std::collections::BTreeMap;
use std::fmt;

use crate::config::schema;
use crate::config::yaml::{Node, Value};
use crate::diag::{Diagnostic, Source};

/// Keys of one stage.
pub const STAGE_KEYS: &[&str] = &["name", "steps", "promote", "approve"];
/// Keys of a `promote: { best: ... }` mapping.
pub const BEST_KEYS: &[&str] = &["best", "metric", "aggregate", "order"];

/// One rung of the ladder.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// `[A-Za-z0-9_-]+`, unique.
    pub name: String,
    /// Total environment steps at the end of this stage (cumulative, strictly increasing).
    pub steps: u64,
    /// Who enters this stage from the previous one ([`Promote::All`] for the first stage).
    pub promote: Promote,
    /// The last stage: variants that pass it are approved for deployment.
    pub approve: bool,
}

/// Which variant groups advance into a stage, judged on the previous stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Promote {
    /// Every variant (the first stage).
    All,
    /// Variants whose seeds all PASS.
    Pass,
    /// Variants whose aggregate verdict is PASS or INVESTIGATE (no FAIL).
    PassOrInvestigate,
    /// The `n` best non-FAIL variants by a metric of `metrics.csv`.
    Best {
        /// How many advance.
        n: usize,
        /// A `metrics.csv` column.
        metric: String,
        /// How one run's column becomes one number.
        aggregate: Aggregate,
        /// `desc`: larger is better; `asc`: smaller is better.
        order: Order,
    },
}

/// How a metric column of one run's stage becomes one number (seeds are then averaged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Largest value.
    Max,
    /// Smallest value.
    Min,
    /// Last value.
    Last,
    /// Mean of all values.
    Mean,
}

/// Ranking direction of [`Promote::Best`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Smaller is better.
    Asc,
    /// Larger is better.
    Desc,
}

impl Aggregate {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Max => "max",
            Aggregate::Min => "min",
            Aggregate::Last => "last",
            Aggregate::Mean => "mean",
        }
    }

    /// Applies the aggregate to the finite values of `xs`; `None` when there are none.
    pub fn apply(self, xs: &[f64]) -> Option<f64> {
        let v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        Some(match self {
            Aggregate::Max => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Aggregate::Min => v.iter().copied().fold(f64::INFINITY, f64::min),
            Aggregate::Last => v[v.len() - 1],
            Aggregate::Mean => v.iter().sum::<f64>() / v.len() as f64,
        })
    }
}

impl fmt::Display for Promote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Promote::All => write!(f, "all variants"),
            Promote::Pass => write!(
                f,
                "pass (the group PASSes under the criteria's seeds quorum)"
            ),
            Promote::PassOrInvestigate => write!(f, "pass_or_investigate (no FAIL)"),
            Promote::Best {
                n,
                metric,
                aggregate,
                order,
            } => write!(
                f,
                "best {n} by {}({metric}), {} (FAIL never advances)",
                aggregate.as_str(),
                match order {
                    Order::Asc => "lowest first",
                    Order::Desc => "highest first",
                }
            ),
        }
    }
}

fn at(src: &Source, node: &Node, key: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic::new(src, node.mark, message).key(key)
}

fn unknown(src: &Source, k: &crate::config::yaml::Key, path: &str, valid: &[&str]) -> Diagnostic {
    let d = Diagnostic::new(src, k.mark, format!("unknown key `{}`", k.name)).key(path);
    match crate::diag::did_you_mean(&k.name, valid.iter().copied()) {
        Some(s) => d.hint(format!("did you mean `{s}`?")),
        None => d.hint(format!("valid keys: {}", valid.join(", "))),
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses and checks a `stages:` list, pushing every problem (located) to `errs`.
pub fn parse_stages(src: &Source, node: &Node, errs: &mut Vec<Diagnostic>) -> Vec<Stage> {
    let items = match &node.value {
        Value::Seq(items) if !items.is_empty() => items,
        other => {
            errs.push(
                at(
                    src,
                    node,
                    "stages",
                    format!(
                        "must be a non-empty list of stages, got {}",
                        schema::describe(other)
                    ),
                )
                .hint("e.g. `- { name: 1k, steps: 1000 }` then `- { name: 5k, steps: 5000, promote: pass }`"),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    let mut names: BTreeMap<String, ()> = BTreeMap::new();
    let mut prev_steps: Option<u64> = None;
    for (i, item) in items.iter().enumerate() {
        let here = format!("stages[{i}]");
        let Value::Map(fields) = &item.value else {
            errs.push(
                at(
                    src,
                    item,
                    &here,
                    format!(
                        "a stage must be a mapping, got {}",
                        schema::describe(&item.value)
                    ),
                )
                .hint("write `- { name: 1k, steps: 1000 }`"),
            );
            continue;
        };
        let mut ok = true;
        for (k, _) in fields {
            if !STAGE_KEYS.contains(&k.name.as_str()) {
                errs.push(unknown(src, k, &format!("{here}.{}", k.name), STAGE_KEYS));
                ok = false;
            }
        }
        let name = match item.get("name").map(|n| (n, &n.value)) {
            Some((_, Value::Str(s))) if valid_name(s) => {
                if names.insert(s.clone(), ()).is_some() {
                    errs.push(
                        at(
                            src,
                            item.get("name").unwrap_or(item),
                            &format!("{here}.name"),
                            format!("duplicate stage name `{s}`"),
                        )
                        .hint("stage names label results and the report; make each unique"),
                    );
                    ok = false;
                }
                s.clone()
            }
            Some((n, other)) => {
                errs.push(
                    at(
                        src,
                        n,
                        &format!("{here}.name"),
                        format!("invalid stage name {}", schema::describe(other)),
                    )
                    .hint("use letters, digits, `_` and `-` only, e.g. `1k`"),
                );
                ok = false;
                String::new()
            }
            None => {
                errs.push(
                    at(src, item, &here, "stage without a `name`")
                        .hint("every stage needs a name, e.g. `name: 1k`"),
                );
                ok = false;
                String::new()
            }
        };
        let steps = match item.get("steps") {
            Some(n) => {
                match n.value {
                    Value::Int(s) if s >= 1 => {
                        let s = s as u64;
                        if let Some(p) = prev_steps.filter(|p| s <= *p) {
                            errs.push(
                            at(src, n, &format!("{here}.steps"), format!("steps must grow from stage to stage: {s} is not more than the previous stage's {p}"))
                                .hint("`steps` is the run's total at the end of the stage (a 5k stage after 1k trains 4k more)"),
                        );
                            ok = false;
                        }
                        prev_steps = Some(s.max(prev_steps.unwrap_or(0)));
                        s
                    }
                    ref other => {
                        errs.push(
                        at(src, n, &format!("{here}.steps"), format!("must be a positive integer, got {}", schema::describe(other)))
                            .hint("total environment steps at the end of the stage, e.g. `steps: 5000`"),
                    );
                        ok = false;
                        0
                    }
                }
            }
            None => {
                errs.push(at(src, item, &here, "stage without `steps`").hint(
                    "add the run's total env steps at the end of the stage, e.g. `steps: 1000`",
                ));
                ok = false;
                0
            }
        };
        let promote = match (i, item.get("promote")) {
            (0, None) => Promote::All,
            (0, Some(n)) => {
                errs.push(
                    at(src, n, &format!("{here}.promote"), "the first stage runs every variant; it cannot have `promote`")
                        .hint("move `promote` to the second stage: it says who advances from the stage before it"),
                );
                ok = false;
                Promote::All
            }
            (_, None) => Promote::Pass,
            (_, Some(n)) => match parse_promote(src, n, &format!("{here}.promote"), errs) {
                Some(p) => p,
                None => {
                    ok = false;
                    Promote::Pass
                }
            },
        };
        let approve = match item.get("approve") {
            None => false,
            Some(n) => match n.value {
                Value::Bool(b) => {
                    if b && i + 1 != items.len() {
                        errs.push(
                            at(src, n, &format!("{here}.approve"), "only the last stage can approve variants")
                                .hint("put `approve: true` on the last stage, or remove the stages after this one"),
                        );
                        ok = false;
                    }
                    b
                }
                ref other => {
                    errs.push(
                        at(
                            src,
                            n,
                            &format!("{here}.approve"),
                            format!("must be true or false, got {}", schema::describe(other)),
                        )
                        .hint("write `true` or `false` (unquoted)"),
                    );
                    ok = false;
                    false
                }
            },
        };
        if ok {
            out.push(Stage {
                name,
                steps,
                promote,
                approve,
            });
        }
    }
    out
}

fn parse_promote(
    src: &Source,
    n: &Node,
    path: &str,
    errs: &mut Vec<Diagnostic>,
) -> Option<Promote> {
    let rule_hint = "`pass`, `pass_or_investigate`, or `{ best: 2, metric: eval_return, aggregate: max, order: desc }`";
    match &n.value {
        Value::Str(s) if s == "pass" => Some(Promote::Pass),
        Value::Str(s) if s == "pass_or_investigate" => Some(Promote::PassOrInvestigate),
        Value::Map(fields) => {
            let mut ok = true;
            for (k, _) in fields {
                if !BEST_KEYS.contains(&k.name.as_str()) {
                    errs.push(unknown(src, k, &format!("{path}.{}", k.name), BEST_KEYS));
                    ok = false;
                }
            }
            let best = match n.get("best") {
                Some(b) => match b.value {
                    Value::Int(x) if x >= 1 => x as usize,
                    ref other => {
                        errs.push(
                            at(
                                src,
                                b,
                                &format!("{path}.best"),
                                format!(
                                    "must be a positive integer, got {}",
                                    schema::describe(other)
                                ),
                            )
                            .hint("how many variants advance, e.g. `best: 2`"),
                        );
                        ok = false;
                        0
                    }
                },
                None => {
                    errs.push(at(src, n, path, "a ranking rule needs `best: N`").hint(
                        "e.g. `{ best: 2, metric: eval_return, aggregate: max, order: desc }`",
                    ));
                    ok = false;
                    0
                }
            };
            let metric = match n.get("metric") {
                Some(Node {
                    value: Value::Str(m),
                    ..
                }) if crate::results::COLUMNS.contains(&m.as_str()) => m.clone(),
                Some(m) => {
                    let d = at(
                        src,
                        m,
                        &format!("{path}.metric"),
                        format!("unknown metric {}", schema::describe(&m.value)),
                    );
                    let name = m.as_str().unwrap_or_default();
                    errs.push(
                        match crate::diag::did_you_mean(
                            name,
                            crate::results::COLUMNS.iter().copied(),
                        ) {
                            Some(s) => d.hint(format!("did you mean `{s}`?")),
                            None => d.hint(format!(
                                "a metrics.csv column: {}",
                                crate::results::COLUMNS.join(", ")
                            )),
                        },
                    );
                    ok = false;
                    String::new()
                }
                None => {
                    errs.push(
                        at(src, n, path, "a ranking rule needs `metric:`")
                            .hint("a metrics.csv column, e.g. `metric: eval_return`"),
                    );
                    ok = false;
                    String::new()
                }
            };
            let aggregate = match n.get("aggregate").map(|a| (a, a.as_str())) {
                None => Aggregate::Last,
                Some((_, Some("max"))) => Aggregate::Max,
                Some((_, Some("min"))) => Aggregate::Min,
                Some((_, Some("last"))) => Aggregate::Last,
                Some((_, Some("mean"))) => Aggregate::Mean,
                Some((a, _)) => {
                    errs.push(
                        at(
                            src,
                            a,
                            &format!("{path}.aggregate"),
                            format!("unknown aggregate {}", schema::describe(&a.value)),
                        )
                        .hint("one of max, min, last, mean"),
                    );
                    ok = false;
                    Aggregate::Last
                }
            };
            let order = match n.get("order").map(|a| (a, a.as_str())) {
                None | Some((_, Some("desc"))) => Order::Desc,
                Some((_, Some("asc"))) => Order::Asc,
                Some((o, _)) => {
                    errs.push(
                        at(
                            src,
                            o,
                            &format!("{path}.order"),
                            format!("unknown order {}", schema::describe(&o.value)),
                        )
                        .hint("`desc` (larger is better) or `asc` (smaller is better)"),
                    );
                    ok = false;
                    Order::Desc
                }
            };
            ok.then_some(Promote::Best {
                n: best,
                metric,
                aggregate,
                order,
            })
        }
        other => {
            errs.push(
                at(
                    src,
                    n,
                    path,
                    format!("unknown promotion rule {}", schema::describe(other)),
                )
                .hint(rule_hint),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_skip_non_finite_values() {
        let xs = [1.0, f64::NAN, 3.0, 2.0];
        assert_eq!(Aggregate::Max.apply(&xs), Some(3.0));
        assert_eq!(Aggregate::Min.apply(&xs), Some(1.0));
        assert_eq!(Aggregate::Last.apply(&xs), Some(2.0));
        assert_eq!(Aggregate::Mean.apply(&xs), Some(2.0));
        assert_eq!(Aggregate::Mean.apply(&[f64::NAN]), None);
    }
}
