//! The criteria schema: which metrics to watch, how to aggregate them and where the thresholds lie.
//!
//! Criteria are parsed from the located YAML tree so that every problem (an unknown metric, a typo'd
//! key, a threshold of the wrong type) is reported at once with `file:line:col` and a hint.

use std::fmt;
use std::path::Path;

use crate::config::yaml::{self, Node, Value};
use crate::diag::{did_you_mean, Diagnostic, Diagnostics, Source};
use crate::results::COLUMNS;

/// The default criteria (the seed's monitoring plan), embedded so the binary works from any directory.
pub const DEFAULT_CRITERIA_YAML: &str = include_str!("../../criteria/default.yaml");

/// How a rule reduces a metric's rows (inside its step window) to one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// The largest value.
    Max,
    /// The smallest value.
    Min,
    /// The value of the last row.
    Last,
    /// The arithmetic mean.
    Mean,
    /// Factor from the first row's value to the peak (`peak / first`; needs a positive first value).
    Growth,
    /// Slope of the least-squares fit of ln(value) against the training step, per training step.
    LogSlope,
    /// The largest *sustained exponential* growth factor within any `window` training steps
    /// (default 500; see [`super::window_growth`]): scale-free, 1 when nothing grew that way.
    WindowGrowth,
    /// How far the final evaluations (mean of the last 3) rose above the run's untrained
    /// baseline (its first evaluation), in units of the learning margin (see
    /// [`super::learning`]): above 1 the run learns. The baseline is always the run's first
    /// evaluation, whatever the rule's step window.
    Learning,
}

impl Aggregate {
    /// Every aggregate name, as written in YAML.
    pub const NAMES: [&'static str; 8] = [
        "max",
        "min",
        "last",
        "mean",
        "growth",
        "log_slope",
        "window_growth",
        "learning",
    ];

    /// The YAML name.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Max => "max",
            Aggregate::Min => "min",
            Aggregate::Last => "last",
            Aggregate::Mean => "mean",
            Aggregate::Growth => "growth",
            Aggregate::LogSlope => "log_slope",
            Aggregate::WindowGrowth => "window_growth",
            Aggregate::Learning => "learning",
        }
    }

    fn parse(s: &str) -> Option<Aggregate> {
        Some(match s {
            "max" => Aggregate::Max,
            "min" => Aggregate::Min,
            "last" => Aggregate::Last,
            "mean" => Aggregate::Mean,
            "growth" => Aggregate::Growth,
            "log_slope" => Aggregate::LogSlope,
            "window_growth" => Aggregate::WindowGrowth,
            "learning" => Aggregate::Learning,
            _ => return None,
        })
    }
}

impl Aggregate {
    /// Reduces the finite values of `xs` with a row aggregate (`max`, `min`, `last`, `mean`);
    /// `None` when there are none, and for the aggregates that need steps or windows (growth,
    /// slopes, learning), which [`super::classify_run`] computes from whole rows.
    pub fn reduce(self, xs: &[f64]) -> Option<f64> {
        let v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        let last = *v.last()?;
        match self {
            Aggregate::Max => Some(v.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            Aggregate::Min => Some(v.iter().copied().fold(f64::INFINITY, f64::min)),
            Aggregate::Last => Some(last),
            Aggregate::Mean => Some(v.iter().sum::<f64>() / v.len() as f64),
            _ => None,
        }
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One declarative rule on one metric.
///
/// `investigate_*` thresholds are crossed at the value (`>=` / `<=`), `fail_*` thresholds strictly
/// beyond it (`>` / `<`): the seed's PASS target is "< 10,000" and its FAIL is "> 50,000".
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Display name; defaults to the metric (plus the aggregate when it is not `max`).
    pub name: String,
    /// A `metrics.csv` column.
    pub metric: String,
    pub aggregate: Aggregate,
    pub investigate_above: Option<f64>,
    pub fail_above: Option<f64>,
    /// For metrics where higher is better (`eval_return`).
    pub investigate_below: Option<f64>,
    pub fail_below: Option<f64>,
    /// The band healthy runs stay in; shown as a note, it never changes the verdict.
    pub expected: Option<(f64, f64)>,
    /// Inclusive window on `train_step`.
    pub from_step: Option<u64>,
    pub to_step: Option<u64>,
    /// `window_growth` only: the longest span of training steps a growth window covers.
    pub window: Option<u64>,
    /// `relative_to: q_bound`: the thresholds are fractions of each run's |Q| bound,
    /// `r_max/(1−γ)` from its own environment and config (run.json's `q_bound`); a run without
    /// a known bound reads "not applicable".
    pub relative_to_q_bound: bool,
    pub description: Option<String>,
}

impl Rule {
    /// A rule on `metric` with no thresholds (add them with struct update syntax in tests).
    pub fn new(metric: &str, aggregate: Aggregate) -> Rule {
        Rule {
            name: default_name(metric, aggregate),
            metric: metric.to_string(),
            aggregate,
            investigate_above: None,
            fail_above: None,
            investigate_below: None,
            fail_below: None,
            expected: None,
            from_step: None,
            to_step: None,
            window: None,
            relative_to_q_bound: false,
            description: None,
        }
    }

    /// Whether a training step lies inside the rule's window.
    pub fn in_window(&self, step: u64) -> bool {
        self.from_step.is_none_or(|f| step >= f) && self.to_step.is_none_or(|t| step <= t)
    }

    /// Whether lower values are the bad direction (only `_below` thresholds are set).
    pub fn lower_is_worse(&self) -> bool {
        (self.investigate_below.is_some() || self.fail_below.is_some())
            && self.investigate_above.is_none()
            && self.fail_above.is_none()
    }
}

fn default_name(metric: &str, aggregate: Aggregate) -> String {
    if aggregate == Aggregate::Max {
        metric.to_string()
    } else {
        format!("{metric} ({aggregate})")
    }
}

/// The actor-loss spike rule: row `i` is a spike when `|v_i| > factor × median(|v_{i-window}|..|v_{i-1}|)`.
///
/// Only rows with a full window of `window` finite previous values are tested, so the first rows of a
/// run (where the loss legitimately moves fast) are never spikes.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeRule {
    pub metric: String,
    pub factor: f64,
    pub window: usize,
    /// The verdict a spike gives (INVESTIGATE by default).
    pub verdict: super::Verdict,
}

impl Default for SpikeRule {
    fn default() -> Self {
        SpikeRule {
            metric: "actor_loss".into(),
            factor: 10.0,
            window: 5,
            verdict: super::Verdict::Investigate,
        }
    }
}

/// How a seeds rule combines the per-run values of a variant group's seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Across {
    Mean,
    Median,
    Min,
    Max,
}

impl Across {
    /// Every name, as written in YAML.
    pub const NAMES: [&'static str; 4] = ["mean", "median", "min", "max"];

    /// The YAML name.
    pub fn as_str(self) -> &'static str {
        match self {
            Across::Mean => "mean",
            Across::Median => "median",
            Across::Min => "min",
            Across::Max => "max",
        }
    }

    fn parse(s: &str) -> Option<Across> {
        Some(match s {
            "mean" => Across::Mean,
            "median" => Across::Median,
            "min" => Across::Min,
            "max" => Across::Max,
            _ => return None,
        })
    }

    /// Combines the seeds' values (`None` for none).
    pub fn apply(self, xs: &[f64]) -> Option<f64> {
        if xs.is_empty() {
            return None;
        }
        Some(match self {
            Across::Mean => xs.iter().sum::<f64>() / xs.len() as f64,
            Across::Min => xs.iter().copied().fold(f64::INFINITY, f64::min),
            Across::Max => xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Across::Median => super::classify::median(&mut xs.to_vec()),
        })
    }
}

impl fmt::Display for Across {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule on a variant group as a whole: each seed's run reduces the metric with the rule's
/// `aggregate` (inside its window), `across` combines the seeds' values, and the thresholds judge
/// the result ("the mean over seeds of the final eval_return must be -250 or better").
#[derive(Debug, Clone, PartialEq)]
pub struct SeedRule {
    pub rule: Rule,
    pub across: Across,
}

/// How many seeds of a variant group must PASS for the group to PASS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quorum {
    /// Every seed.
    All,
    /// At least this fraction of the seeds (rounded up), in (0, 1].
    Fraction(f64),
    /// At least this many seeds (capped at the number of seeds).
    Count(usize),
}

impl Quorum {
    /// The number of passing seeds required out of `total`.
    pub fn required(self, total: usize) -> usize {
        match self {
            Quorum::All => total,
            Quorum::Fraction(f) => ((f * total as f64) - 1e-9).ceil().max(1.0) as usize,
            Quorum::Count(n) => n.min(total),
        }
        .max(1)
    }
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quorum::All => f.write_str("all seeds"),
            Quorum::Fraction(x) => write!(f, "{}% of seeds", (x * 100.0).round()),
            Quorum::Count(n) => write!(f, "{n} seed{}", if *n == 1 { "" } else { "s" }),
        }
    }
}

/// A validated set of criteria. The non-finite and incomplete-run rules are built in and always apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Criteria {
    pub rules: Vec<Rule>,
    /// `None` when disabled with `spike: false`.
    pub spike: Option<SpikeRule>,
    pub quorum: Quorum,
    /// Rules on each variant group's seeds together (`seeds.rules`).
    pub seed_rules: Vec<SeedRule>,
    /// End a run early once its FAIL is certain (see [`super::certain_fail`]).
    pub stop_on_fail: bool,
}

impl Criteria {
    /// The embedded `criteria/default.yaml`: the seed's monitoring plan.
    pub fn default_set() -> Criteria {
        let src = Source::inline("criteria/default.yaml", DEFAULT_CRITERIA_YAML);
        let node = yaml::parse(&src).expect("embedded default criteria are valid YAML");
        parse_criteria(&src, &node).expect("embedded default criteria are valid")
    }

    /// The rules on one metric.
    pub fn rules_for<'a>(&'a self, metric: &'a str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules.iter().filter(move |r| r.metric == metric)
    }
}

impl Default for Criteria {
    fn default() -> Self {
        Criteria::default_set()
    }
}

/// Reads and validates a criteria file; every problem is reported at once.
pub fn load_criteria(path: &Path) -> Result<Criteria, Diagnostics> {
    let src = Source::read(path)?;
    let node = yaml::parse(&src).map_err(Diagnostics)?;
    parse_criteria(&src, &node).map_err(Diagnostics)
}

const TOP_KEYS: [&str; 4] = ["stop_on_fail", "seeds", "spike", "rules"];
const RULE_KEYS: [&str; 13] = [
    "name",
    "metric",
    "aggregate",
    "investigate_above",
    "fail_above",
    "investigate_below",
    "fail_below",
    "expected",
    "from_step",
    "to_step",
    "window",
    "relative_to",
    "description",
];
const SPIKE_KEYS: [&str; 4] = ["metric", "factor", "window", "verdict"];
const SEEDS_KEYS: [&str; 2] = ["quorum", "rules"];

/// Validates a criteria mapping (a whole file, or a sweep's inline `criteria:`). Missing keys take the
/// defaults of `criteria/default.yaml`'s top level; `rules` absent means the default rules.
pub fn parse_criteria(src: &Source, node: &Node) -> Result<Criteria, Vec<Diagnostic>> {
    let mut p = Parser {
        src,
        errors: Vec::new(),
    };
    let criteria = p.criteria(node);
    if p.errors.is_empty() {
        Ok(criteria)
    } else {
        Err(p.errors)
    }
}

struct Parser<'s> {
    src: &'s Source,
    errors: Vec<Diagnostic>,
}

impl Parser<'_> {
    fn err(
        &mut self,
        node_mark: crate::diag::Mark,
        key: &str,
        msg: impl Into<String>,
        hint: Option<String>,
    ) {
        let mut d = Diagnostic::new(self.src, node_mark, msg).key(key);
        if let Some(h) = hint {
            d = d.hint(h);
        }
        self.errors.push(d);
    }

    fn check_keys(&mut self, node: &Node, path: &str, allowed: &[&str]) {
        for (k, _) in node.entries() {
            if !allowed.contains(&k.name.as_str()) {
                let hint = match did_you_mean(&k.name, allowed.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("allowed keys: {}", allowed.join(", ")),
                };
                let key = join(path, &k.name);
                self.err(
                    k.mark,
                    &key,
                    format!("unknown key `{}`", k.name),
                    Some(hint),
                );
            }
        }
    }

    fn mapping(&mut self, node: &Node, path: &str) -> bool {
        if matches!(node.value, Value::Map(_)) {
            true
        } else {
            let msg = format!("expected a mapping, found {}", node.value.type_name());
            self.err(node.mark, path, msg, None);
            false
        }
    }

    fn criteria(&mut self, node: &Node) -> Criteria {
        let defaults = Criteria {
            rules: Vec::new(),
            spike: Some(SpikeRule::default()),
            quorum: Quorum::All,
            seed_rules: Vec::new(),
            stop_on_fail: true,
        };
        if !self.mapping(node, "criteria") {
            return defaults;
        }
        self.check_keys(node, "", &TOP_KEYS);
        let stop_on_fail = match node.get("stop_on_fail") {
            None => true,
            Some(n) => match n.value {
                Value::Bool(b) => b,
                _ => {
                    let msg = format!("expected true or false, found {}", n.value.type_name());
                    self.err(n.mark, "stop_on_fail", msg, None);
                    true
                }
            },
        };
        let (quorum, seed_rules) = node
            .get("seeds")
            .map(|s| self.seeds(s))
            .unwrap_or((Quorum::All, Vec::new()));
        let spike = match node.get("spike") {
            None => Some(SpikeRule::default()),
            Some(n) => self.spike(n),
        };
        let rules = match node.get("rules") {
            None => Criteria::default_set().rules,
            Some(n) => match &n.value {
                Value::Seq(items) => items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| self.rule(r, i))
                    .collect(),
                Value::Null => Vec::new(),
                other => {
                    let msg = format!("expected a list of rules, found {}", other.type_name());
                    self.err(n.mark, "rules", msg, None);
                    Vec::new()
                }
            },
        };
        Criteria {
            rules,
            spike,
            quorum,
            seed_rules,
            stop_on_fail,
        }
    }

    fn seeds(&mut self, node: &Node) -> (Quorum, Vec<SeedRule>) {
        if !self.mapping(node, "seeds") {
            return (Quorum::All, Vec::new());
        }
        self.check_keys(node, "seeds", &SEEDS_KEYS);
        let rules = match node.get("rules") {
            None => Vec::new(),
            Some(n) => match &n.value {
                Value::Seq(items) => items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| self.seed_rule(r, i))
                    .collect(),
                Value::Null => Vec::new(),
                other => {
                    let msg = format!("expected a list of rules, found {}", other.type_name());
                    self.err(n.mark, "seeds.rules", msg, None);
                    Vec::new()
                }
            },
        };
        (self.quorum(node), rules)
    }

    fn seed_rule(&mut self, node: &Node, i: usize) -> Option<SeedRule> {
        let path = format!("seeds.rules[{i}]");
        let mut keys = RULE_KEYS.to_vec();
        keys.push("across");
        let across = match node.get("across") {
            None => Some(Across::Mean),
            Some(a) => match a.as_str().and_then(Across::parse) {
                Some(x) => Some(x),
                None => {
                    let word = a.value.to_string();
                    let hint = match did_you_mean(&word, Across::NAMES) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("write one of: {}", Across::NAMES.join(", ")),
                    };
                    self.err(
                        a.mark,
                        &format!("{path}.across"),
                        format!("unknown `across` `{word}`"),
                        Some(hint),
                    );
                    None
                }
            },
        };
        // Both parts are checked before either gives up, so every mistake is reported at once.
        let rule = self.rule_at(node, &path, &keys);
        let (mut rule, across) = (rule?, across?);
        if node.get("name").is_none() {
            rule.name = format!("{} ({}, {across} over seeds)", rule.metric, rule.aggregate);
        }
        Some(SeedRule { rule, across })
    }

    fn quorum(&mut self, node: &Node) -> Quorum {
        let Some(q) = node.get("quorum") else {
            return Quorum::All;
        };
        let hint = Some(
            "write `all`, a fraction in (0, 1] such as 0.5, or a whole number of seeds".to_string(),
        );
        match &q.value {
            Value::Str(s) if s == "all" => Quorum::All,
            Value::Int(n) if *n >= 1 => Quorum::Count(*n as usize),
            Value::Float(f) if *f > 0.0 && *f <= 1.0 => Quorum::Fraction(*f),
            other => {
                self.err(
                    q.mark,
                    "seeds.quorum",
                    format!("invalid quorum `{other}`"),
                    hint,
                );
                Quorum::All
            }
        }
    }

    fn spike(&mut self, node: &Node) -> Option<SpikeRule> {
        match node.value {
            Value::Bool(false) | Value::Null => return None,
            Value::Bool(true) => return Some(SpikeRule::default()),
            _ => {}
        }
        if !self.mapping(node, "spike") {
            return None;
        }
        self.check_keys(node, "spike", &SPIKE_KEYS);
        let mut s = SpikeRule::default();
        if let Some(m) = node.get("metric") {
            if let Some(name) = self.metric(m, "spike.metric") {
                s.metric = name;
            }
        }
        if let Some(f) = node.get("factor") {
            match f.as_f64() {
                Some(x) if x > 1.0 => s.factor = x,
                _ => self.err(f.mark, "spike.factor", "expected a number above 1", None),
            }
        }
        if let Some(w) = node.get("window") {
            match w.value {
                Value::Int(n) if n >= 1 => s.window = n as usize,
                _ => self.err(
                    w.mark,
                    "spike.window",
                    "expected a whole number of rows, at least 1",
                    None,
                ),
            }
        }
        if let Some(v) = node.get("verdict") {
            match v.as_str() {
                Some("investigate") => s.verdict = super::Verdict::Investigate,
                Some("fail") => s.verdict = super::Verdict::Fail,
                _ => self.err(
                    v.mark,
                    "spike.verdict",
                    "expected `investigate` or `fail`",
                    None,
                ),
            }
        }
        Some(s)
    }

    fn metric(&mut self, node: &Node, key: &str) -> Option<String> {
        let Some(name) = node.as_str() else {
            let msg = format!("expected a metric name, found {}", node.value.type_name());
            self.err(node.mark, key, msg, None);
            return None;
        };
        if COLUMNS.contains(&name) && name != "train_step" {
            return Some(name.to_string());
        }
        let hint = match did_you_mean(name, COLUMNS.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!(
                "metrics are the columns of metrics.csv: {}",
                COLUMNS[1..].join(", ")
            ),
        };
        self.err(
            node.mark,
            key,
            format!("unknown metric `{name}`"),
            Some(hint),
        );
        None
    }

    fn number(&mut self, node: &Node, key: &str) -> Option<f64> {
        match node.as_f64() {
            Some(x) if x.is_finite() => Some(x),
            Some(x) => {
                let msg = format!(
                    "expected a finite number, found {}",
                    crate::verdict::fmt_num(x)
                );
                self.err(node.mark, key, msg, None);
                None
            }
            _ => {
                let msg = format!("expected a number, found {}", node.value.type_name());
                self.err(node.mark, key, msg, None);
                None
            }
        }
    }

    fn step(&mut self, node: &Node, key: &str) -> Option<u64> {
        match node.value {
            Value::Int(n) if n >= 0 => Some(n as u64),
            _ => {
                self.err(
                    node.mark,
                    key,
                    "expected a training step (a whole number, 0 or more)",
                    None,
                );
                None
            }
        }
    }

    fn rule(&mut self, node: &Node, i: usize) -> Option<Rule> {
        self.rule_at(node, &format!("rules[{i}]"), &RULE_KEYS)
    }

    fn rule_at(&mut self, node: &Node, path: &str, keys: &[&str]) -> Option<Rule> {
        if !self.mapping(node, path) {
            return None;
        }
        self.check_keys(node, path, keys);
        let errors_before = self.errors.len();
        let metric = self.rule_metric(node, path);
        let aggregate = self.aggregate(node, path);
        let t = self.thresholds(node, path);
        let expected = self.expected(node, path);
        let (from_step, to_step) = self.step_window(node, path);
        let window = self.growth_window(node, path, aggregate);
        let relative_to_q_bound = self.relative_to(node, path);
        let name = self.text(node, path, "name");
        let description = self.text(node, path, "description");
        if t.is_empty() && expected.is_none() && self.errors.len() == errors_before {
            self.err(
                node.mark,
                path,
                "this rule has no threshold, so it can never flag anything",
                Some("add `investigate_above`, `fail_above`, `investigate_below` or `fail_below` (or an `expected: [low, high]` band to report)".into()),
            );
        }
        if self.errors.len() > errors_before {
            return None;
        }
        let metric = metric?;
        Some(Rule {
            name: name.unwrap_or_else(|| default_name(&metric, aggregate)),
            metric,
            aggregate,
            investigate_above: t.investigate_above,
            fail_above: t.fail_above,
            investigate_below: t.investigate_below,
            fail_below: t.fail_below,
            expected,
            from_step,
            to_step,
            window,
            relative_to_q_bound,
            description,
        })
    }

    /// `relative_to: q_bound` (the only bound there is): whether the rule's thresholds are
    /// fractions of each run's |Q| bound.
    fn relative_to(&mut self, node: &Node, path: &str) -> bool {
        match node.get("relative_to") {
            None => false,
            Some(n) if n.as_str() == Some("q_bound") => true,
            Some(n) => {
                self.err(
                    n.mark,
                    &format!("{path}.relative_to"),
                    format!("unknown bound `{}`", n.value),
                    Some("write `relative_to: q_bound` (thresholds as fractions of the run's |Q| bound r_max/(1-γ))".into()),
                );
                false
            }
        }
    }

    /// A rule's `metric`, which it must have.
    fn rule_metric(&mut self, node: &Node, path: &str) -> Option<String> {
        match node.get("metric") {
            Some(m) => self.metric(m, &format!("{path}.metric")),
            None => {
                self.err(
                    node.mark,
                    path,
                    "a rule needs a `metric`",
                    Some("add `metric: actor_cnn_grad_norm`".into()),
                );
                None
            }
        }
    }

    /// A rule's `aggregate`, `max` when absent (and after an error).
    fn aggregate(&mut self, node: &Node, path: &str) -> Aggregate {
        let Some(a) = node.get("aggregate") else {
            return Aggregate::Max;
        };
        if let Some(agg) = a.as_str().and_then(Aggregate::parse) {
            return agg;
        }
        let word = a.value.to_string();
        let hint = match did_you_mean(&word, Aggregate::NAMES) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("aggregates: {}", Aggregate::NAMES.join(", ")),
        };
        self.err(
            a.mark,
            &format!("{path}.aggregate"),
            format!("unknown aggregate `{word}`"),
            Some(hint),
        );
        Aggregate::Max
    }

    /// A rule's four thresholds, checked against each other: each FAIL threshold lies beyond its
    /// INVESTIGATE one, and the "above" ones above the "below" ones.
    fn thresholds(&mut self, node: &Node, path: &str) -> Thresholds {
        let mut num = |k: &str| {
            node.get(k)
                .and_then(|n| self.number(n, &format!("{path}.{k}")))
        };
        let t = Thresholds {
            investigate_above: num("investigate_above"),
            fail_above: num("fail_above"),
            investigate_below: num("investigate_below"),
            fail_below: num("fail_below"),
        };
        if let (Some(inv), Some(fail), Some(n)) =
            (t.investigate_above, t.fail_above, node.get("fail_above"))
        {
            if fail < inv {
                let msg = format!("fail_above ({fail}) is below investigate_above ({inv})");
                self.err(n.mark, &format!("{path}.fail_above"), msg, None);
            }
        }
        if let (Some(inv), Some(fail), Some(n)) =
            (t.investigate_below, t.fail_below, node.get("fail_below"))
        {
            if fail > inv {
                let msg = format!("fail_below ({fail}) is above investigate_below ({inv})");
                self.err(n.mark, &format!("{path}.fail_below"), msg, None);
            }
        }
        // Every value at or below the lowest "above" threshold and at or above the highest
        // "below" one would cross one of them: the rule would flag everything.
        let lowest_above = [t.investigate_above, t.fail_above]
            .into_iter()
            .flatten()
            .reduce(f64::min);
        let highest_below = [t.investigate_below, t.fail_below]
            .into_iter()
            .flatten()
            .reduce(f64::max);
        if let (Some(a), Some(b)) = (lowest_above, highest_below) {
            if a <= b {
                let msg = format!(
                    "the \"above\" thresholds start at {a}, not above the \"below\" thresholds' {b}: every value would cross one of them"
                );
                self.err(
                    node.mark,
                    path,
                    msg,
                    Some("a band of good values lies between them: `*_below` thresholds must be lower than `*_above` ones".into()),
                );
            }
        }
        t
    }

    /// A rule's `expected` band, `[low, high]`.
    fn expected(&mut self, node: &Node, path: &str) -> Option<(f64, f64)> {
        let e = node.get("expected")?;
        let pair = match &e.value {
            Value::Seq(v) if v.len() == 2 => v[0].as_f64().zip(v[1].as_f64()),
            _ => None,
        };
        match pair {
            Some((lo, hi)) if lo <= hi => Some((lo, hi)),
            _ => {
                let key = format!("{path}.expected");
                self.err(
                    e.mark,
                    &key,
                    "expected a band `[low, high]` with low <= high",
                    None,
                );
                None
            }
        }
    }

    /// A rule's `from_step` and `to_step`, in that order.
    fn step_window(&mut self, node: &Node, path: &str) -> (Option<u64>, Option<u64>) {
        let from_step = node
            .get("from_step")
            .and_then(|n| self.step(n, &format!("{path}.from_step")));
        let to_step = node
            .get("to_step")
            .and_then(|n| self.step(n, &format!("{path}.to_step")));
        if let (Some(f), Some(t), Some(n)) = (from_step, to_step, node.get("to_step")) {
            if t < f {
                self.err(
                    n.mark,
                    &format!("{path}.to_step"),
                    format!("to_step ({t}) is before from_step ({f})"),
                    None,
                );
            }
        }
        (from_step, to_step)
    }

    /// A rule's `window`, which only `window_growth` takes.
    fn growth_window(&mut self, node: &Node, path: &str, aggregate: Aggregate) -> Option<u64> {
        let n = node.get("window")?;
        let key = format!("{path}.window");
        match n.value {
            _ if aggregate != Aggregate::WindowGrowth => {
                self.err(
                    n.mark,
                    &key,
                    "`window` only applies to `aggregate: window_growth`",
                    Some("remove it, or set `aggregate: window_growth`".into()),
                );
                None
            }
            Value::Int(w) if w >= 1 => Some(w as u64),
            _ => {
                self.err(
                    n.mark,
                    &key,
                    "expected a number of training steps, at least 1",
                    Some("the seed's explosion grew 1,440x within `window: 500`".into()),
                );
                None
            }
        }
    }

    /// A rule's string-valued key `k` (`name`, `description`).
    fn text(&mut self, node: &Node, path: &str, k: &str) -> Option<String> {
        let n = node.get(k)?;
        match n.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.err(
                    n.mark,
                    &format!("{path}.{k}"),
                    format!("expected a string, found {}", n.value.type_name()),
                    None,
                );
                None
            }
        }
    }
}

/// A rule's thresholds, as parsed (see [`Rule`]).
struct Thresholds {
    investigate_above: Option<f64>,
    fail_above: Option<f64>,
    investigate_below: Option<f64>,
    fail_below: Option<f64>,
}

impl Thresholds {
    fn is_empty(&self) -> bool {
        [
            self.investigate_above,
            self.fail_above,
            self.investigate_below,
            self.fail_below,
        ]
        .iter()
        .all(Option::is_none)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Criteria, Vec<Diagnostic>> {
        let src = Source::inline("c.yaml", text);
        parse_criteria(&src, &yaml::parse(&src).unwrap())
    }

    #[test]
    fn a_rule_that_can_never_flag_or_always_flags_is_an_error() {
        let e = parse_str("rules:\n  - metric: q_abs_max\n    aggregate: max\n").unwrap_err();
        assert!(e[0].message.contains("no threshold"), "{e:?}");
        let e = parse_str(
            "rules:\n  - metric: q_abs_max\n    investigate_below: 100\n    investigate_above: 10\n",
        )
        .unwrap_err();
        assert!(e[0].message.contains("every value would cross"), "{e:?}");
        // A band with good values between its thresholds is fine, and so is `expected` alone.
        parse_str("rules:\n  - metric: q_abs_max\n    investigate_below: 10\n    investigate_above: 100\n").unwrap();
        parse_str("rules:\n  - metric: q_abs_max\n    expected: [0, 10]\n").unwrap();
    }

    #[test]
    fn default_set_is_the_seed_plan() {
        let c = Criteria::default_set();
        assert!(c.stop_on_fail);
        assert_eq!(c.quorum, Quorum::All);
        let actor = c.rules_for("actor_cnn_grad_norm").next().unwrap();
        assert_eq!(
            (actor.investigate_above, actor.fail_above),
            (Some(10_000.0), Some(50_000.0))
        );
        let critic = c.rules_for("critic_cnn_grad_norm").next().unwrap();
        assert_eq!(critic.expected, Some((200.0, 2_000.0)));
        assert_eq!(critic.investigate_above, Some(5_000.0));
        let q = c.rules_for("q_abs_max").next().unwrap();
        assert_eq!((q.investigate_above, q.fail_above), (Some(1e6), Some(1e7)));
        assert_eq!(c.spike, Some(SpikeRule::default()));
    }

    #[test]
    fn unknown_metric_has_location_and_suggestion() {
        let errs =
            parse_str("rules:\n  - metric: actor_cnn_grad_nrom\n    fail_above: 5\n").unwrap_err();
        assert_eq!(errs.len(), 1);
        let text = errs[0].to_string();
        assert!(
            text.starts_with("c.yaml:2:13: error: `rules[0].metric`: unknown metric"),
            "{text}"
        );
        assert!(
            text.contains("did you mean `actor_cnn_grad_norm`?"),
            "{text}"
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let text = "stop_on_fial: true\nseeds: {quorum: 0}\nrules:\n  - metric: q_abs_max\n    aggregate: maxx\n    fail_above: big\n    from_step: 10\n    to_step: 5\n";
        let errs = parse_str(text).unwrap_err();
        let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 5, "{all:#?}");
        assert!(all[0].contains("did you mean `stop_on_fail`?"));
        assert!(all.iter().any(|e| e.contains("did you mean `max`?")));
    }

    #[test]
    fn quorum_forms() {
        assert_eq!(
            parse_str("seeds: {quorum: 2}\n").unwrap().quorum,
            Quorum::Count(2)
        );
        assert_eq!(
            parse_str("seeds: {quorum: 0.5}\n").unwrap().quorum,
            Quorum::Fraction(0.5)
        );
        assert_eq!(Quorum::Fraction(0.5).required(3), 2);
        assert_eq!(Quorum::Fraction(0.5).required(4), 2);
        assert_eq!(Quorum::All.required(3), 3);
        assert_eq!(Quorum::Count(5).required(3), 3);
    }

    #[test]
    fn windows_and_below_thresholds() {
        let c = parse_str(
            "spike: false\nrules:\n  - metric: eval_return\n    aggregate: last\n    fail_below: -100\n    from_step: 200\n",
        )
        .unwrap();
        assert_eq!(c.spike, None);
        let r = &c.rules[0];
        assert_eq!(r.name, "eval_return (last)");
        assert!(r.lower_is_worse());
        assert!(!r.in_window(100) && r.in_window(200) && r.in_window(10_000));
    }

    #[test]
    fn seeds_rules_parse_with_their_own_errors() {
        let c = parse_str(
            "seeds:\n  quorum: all\n  rules:\n    - metric: eval_return\n      aggregate: last\n      across: median\n      investigate_below: -250\n    - metric: q_abs_max\n      fail_above: 1.0e7\n",
        )
        .unwrap();
        assert_eq!(c.quorum, Quorum::All);
        assert_eq!(c.seed_rules.len(), 2);
        assert_eq!(c.seed_rules[0].across, Across::Median);
        assert_eq!(
            c.seed_rules[0].rule.name,
            "eval_return (last, median over seeds)"
        );
        assert_eq!(c.seed_rules[1].across, Across::Mean);
        assert_eq!(c.seed_rules[1].rule.aggregate, Aggregate::Max);
        // Per-run rules are untouched: the default set.
        assert_eq!(c.rules, Criteria::default_set().rules);

        let errs = parse_str(
            "seeds:\n  rules:\n    - metric: eval_retrun\n      across: meen\n      investigate_bellow: 1\n",
        )
        .unwrap_err();
        let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 3, "{all:#?}");
        assert!(
            all.iter().any(|e| e.starts_with(
                "c.yaml:3:15: error: `seeds.rules[0].metric`: unknown metric `eval_retrun`"
            ) && e.contains("did you mean `eval_return`?")),
            "{all:#?}"
        );
        assert!(
            all.iter().any(
                |e| e.contains("`seeds.rules[0].across`") && e.contains("did you mean `mean`?")
            ),
            "{all:#?}"
        );
        assert!(
            all.iter()
                .any(|e| e.contains("did you mean `investigate_below`?")),
            "{all:#?}"
        );
    }
}
