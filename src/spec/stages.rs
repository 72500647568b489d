//! The `stages:` key: a validation ladder (1K → 5K → 1M) where only promoted variants climb.
//!
//! ```yaml
//! stages:
//!   - { name: 1k, steps: 1000 }
//!   - { name: 5k, steps: 5000, promote: pass }
//!   - { name: 1m, steps: 1000000, promote: pass, approve: true }
//! ```
//! See docs/sweep-spec.md § Stages.

use std::collections::BTreeSet;
use std::fmt;

/// How a metric column of one run's stage becomes one number (seeds are then averaged): one of
/// the criteria's row aggregates (`max`, `min`, `last`, `mean`; see [`Aggregate::reduce`]).
pub use crate::verdict::Aggregate;

use crate::config::schema;
use crate::config::yaml::{Key, Node, Value};
use crate::diag::{did_you_mean, Diagnostic, Source};

use super::located::{at, unknown, valid_name};

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

/// Ranking direction of [`Promote::Best`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Smaller is better.
    Asc,
    /// Larger is better.
    Desc,
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

/// Parses and checks a `stages:` list, pushing every problem (located) to `errs`.
pub fn parse_stages(src: &Source, node: &Node, errs: &mut Vec<Diagnostic>) -> Vec<Stage> {
    let items = match &node.value {
        Value::Seq(items) if !items.is_empty() => items,
        other => {
            errs.push(
                at(
                    src,
                    node.mark,
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
    let mut ladder = Ladder {
        src,
        len: items.len(),
        names: BTreeSet::new(),
        prev_steps: None,
        errs,
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| ladder.stage(i, item))
        .collect()
}

/// The stages read so far, for the checks between stages.
struct Ladder<'a> {
    src: &'a Source,
    /// How many stages the list has.
    len: usize,
    /// The names seen so far.
    names: BTreeSet<String>,
    /// The largest `steps` so far.
    prev_steps: Option<u64>,
    errs: &'a mut Vec<Diagnostic>,
}

impl Ladder<'_> {
    /// The `i`th stage; `None` when it has any problem (every one is reported).
    fn stage(&mut self, i: usize, item: &Node) -> Option<Stage> {
        let here = format!("stages[{i}]");
        let Value::Map(fields) = &item.value else {
            self.errs.push(
                at(
                    self.src,
                    item.mark,
                    &here,
                    format!(
                        "a stage must be a mapping, got {}",
                        schema::describe(&item.value)
                    ),
                )
                .hint("write `- { name: 1k, steps: 1000 }`"),
            );
            return None;
        };
        let mut ok = true;
        for (k, _) in fields {
            if !STAGE_KEYS.contains(&k.name.as_str()) {
                self.errs.push(unknown(
                    self.src,
                    k,
                    &format!("{here}.{}", k.name),
                    STAGE_KEYS,
                ));
                ok = false;
            }
        }
        // Each part is read even after a problem, so every problem is reported.
        let name = self.name(item, &here);
        let steps = self.steps(item, &here);
        let promote = self.promote(i, item, &here);
        let approve = self.approve(i, item, &here);
        Some(Stage {
            name: name?,
            steps: steps?,
            promote: promote?,
            approve: approve?,
        })
        .filter(|_| ok)
    }

    /// `name:`, unique among the stages.
    fn name(&mut self, item: &Node, here: &str) -> Option<String> {
        match item.get("name") {
            Some(n) => match &n.value {
                Value::Str(s) if valid_name(s) => {
                    if self.names.insert(s.clone()) {
                        return Some(s.clone());
                    }
                    self.errs.push(
                        at(
                            self.src,
                            n.mark,
                            &format!("{here}.name"),
                            format!("duplicate stage name `{s}`"),
                        )
                        .hint("stage names label results and the report; make each unique"),
                    );
                }
                other => self.errs.push(
                    at(
                        self.src,
                        n.mark,
                        &format!("{here}.name"),
                        format!("invalid stage name {}", schema::describe(other)),
                    )
                    .hint("use letters, digits, `_` and `-` only, e.g. `1k`"),
                ),
            },
            None => self.errs.push(
                at(self.src, item.mark, here, "stage without a `name`")
                    .hint("every stage needs a name, e.g. `name: 1k`"),
            ),
        }
        None
    }

    /// `steps:`, the run's total at the end of the stage: more than the stage before's.
    fn steps(&mut self, item: &Node, here: &str) -> Option<u64> {
        let Some(n) = item.get("steps") else {
            self.errs.push(
                at(self.src, item.mark, here, "stage without `steps`").hint(
                    "add the run's total env steps at the end of the stage, e.g. `steps: 1000`",
                ),
            );
            return None;
        };
        match n.value {
            Value::Int(s) if s >= 1 => {
                let s = s as u64;
                let prev = self.prev_steps;
                self.prev_steps = Some(s.max(prev.unwrap_or(0)));
                match prev.filter(|p| s <= *p) {
                    None => Some(s),
                    Some(p) => {
                        self.errs.push(
                            at(self.src, n.mark, &format!("{here}.steps"), format!("steps must grow from stage to stage: {s} is not more than the previous stage's {p}"))
                                .hint("`steps` is the run's total at the end of the stage (a 5k stage after 1k trains 4k more)"),
                        );
                        None
                    }
                }
            }
            ref other => {
                self.errs.push(
                    at(
                        self.src,
                        n.mark,
                        &format!("{here}.steps"),
                        format!(
                            "must be a positive integer, got {}",
                            schema::describe(other)
                        ),
                    )
                    .hint("total environment steps at the end of the stage, e.g. `steps: 5000`"),
                );
                None
            }
        }
    }

    /// `promote:`: who enters the `i`th stage from the one before (the first takes everyone).
    fn promote(&mut self, i: usize, item: &Node, here: &str) -> Option<Promote> {
        match (i, item.get("promote")) {
            (0, None) => Some(Promote::All),
            (0, Some(n)) => {
                self.errs.push(
                    at(self.src, n.mark, &format!("{here}.promote"), "the first stage runs every variant; it cannot have `promote`")
                        .hint("move `promote` to the second stage: it says who advances from the stage before it"),
                );
                None
            }
            (_, None) => Some(Promote::Pass),
            (_, Some(n)) => parse_promote(self.src, n, &format!("{here}.promote"), self.errs),
        }
    }

    /// `approve:`, only on the last stage.
    fn approve(&mut self, i: usize, item: &Node, here: &str) -> Option<bool> {
        let Some(n) = item.get("approve") else {
            return Some(false);
        };
        match n.value {
            Value::Bool(b) => {
                if b && i + 1 != self.len {
                    self.errs.push(
                        at(self.src, n.mark, &format!("{here}.approve"), "only the last stage can approve variants")
                            .hint("put `approve: true` on the last stage, or remove the stages after this one"),
                    );
                    return None;
                }
                Some(b)
            }
            ref other => {
                self.errs.push(
                    at(
                        self.src,
                        n.mark,
                        &format!("{here}.approve"),
                        format!("must be true or false, got {}", schema::describe(other)),
                    )
                    .hint("write `true` or `false` (unquoted)"),
                );
                None
            }
        }
    }
}

/// A later stage's `promote:` rule: `pass`, `pass_or_investigate` or a ranking rule.
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
        Value::Map(fields) => best_rule(src, n, fields, path, errs),
        other => {
            errs.push(
                at(
                    src,
                    n.mark,
                    path,
                    format!("unknown promotion rule {}", schema::describe(other)),
                )
                .hint(rule_hint),
            );
            None
        }
    }
}

/// A `promote: { best: N, metric: ..., aggregate: ..., order: ... }` ranking rule.
fn best_rule(
    src: &Source,
    n: &Node,
    fields: &[(Key, Node)],
    path: &str,
    errs: &mut Vec<Diagnostic>,
) -> Option<Promote> {
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
                        b.mark,
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
            errs.push(
                at(src, n.mark, path, "a ranking rule needs `best: N`")
                    .hint("e.g. `{ best: 2, metric: eval_return, aggregate: max, order: desc }`"),
            );
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
                m.mark,
                &format!("{path}.metric"),
                format!("unknown metric {}", schema::describe(&m.value)),
            );
            let name = m.as_str().unwrap_or_default();
            errs.push(
                match did_you_mean(name, crate::results::COLUMNS.iter().copied()) {
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
                at(src, n.mark, path, "a ranking rule needs `metric:`")
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
                    a.mark,
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
                    o.mark,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_skip_non_finite_values() {
        let xs = [1.0, f64::NAN, 3.0, 2.0];
        assert_eq!(Aggregate::Max.reduce(&xs), Some(3.0));
        assert_eq!(Aggregate::Min.reduce(&xs), Some(1.0));
        assert_eq!(Aggregate::Last.reduce(&xs), Some(2.0));
        assert_eq!(Aggregate::Mean.reduce(&xs), Some(2.0));
        assert_eq!(Aggregate::Mean.reduce(&[f64::NAN]), None);
    }
}
