//! The schema of the agent configuration: every dotted key, its type, its range and a doc line.
//!
//! Config files, sweep overrides (`set:`, `grid:`, variants) and `--set` arguments are all checked
//! against this one table before serde sees them, so every problem is reported at once with its
//! position. A unit test keeps the table and [`AgentConfig`] from drifting apart.

use crate::config::yaml::{Node, Value};
use crate::config::AgentConfig;
use crate::diag::did_you_mean;

/// What values a key accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A mapping of further keys (`training.actor_cnn_grad_clip`); may be set as a whole.
    Group,
    /// A finite number strictly greater than `min`.
    FloatAbove {
        /// Exclusive lower bound.
        min: f64,
    },
    /// A finite number `x` with `min <= x`.
    FloatAtLeast {
        /// Inclusive lower bound.
        min: f64,
    },
    /// A finite number in `(0, 1]`.
    UnitInterval,
    /// `null`, or a finite number strictly greater than `min`.
    OptFloatAbove {
        /// Exclusive lower bound.
        min: f64,
    },
    /// An integer `>= min`.
    Int {
        /// Inclusive lower bound.
        min: i64,
    },
    /// `null`, or an integer `>= min`.
    OptInt {
        /// Inclusive lower bound.
        min: i64,
    },
    /// `true` or `false`.
    Bool,
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    Device,
    /// A non-empty list of integers, each `>= min`.
    IntList {
        /// Inclusive lower bound of every element.
        min: i64,
    },
    /// `null`, or a non-empty string.
    OptStr,
    /// A free-form mapping passed through as it is (`env.kwargs`): a leaf, its entries unchecked.
    Mapping,
}

/// One dotted key of the agent configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeySpec {
    /// Dotted path, e.g. `networks.cnn.actor_cnn_lr` (`""` is the root).
    pub key: &'static str,
    /// Accepted values.
    pub kind: Kind,
    /// One line for docs and `--help`-style listings.
    pub doc: &'static str,
    /// A valid value, shown in hints.
    pub example: &'static str,
}

const fn k(key: &'static str, kind: Kind, doc: &'static str, example: &'static str) -> KeySpec {
    KeySpec {
        key,
        kind,
        doc,
        example,
    }
}

const POS: Kind = Kind::FloatAbove { min: 0.0 };
const OPT_POS: Kind = Kind::OptFloatAbove { min: 0.0 };
const NONNEG: Kind = Kind::FloatAtLeast { min: 0.0 };

/// Every key that holds further keys, root first.
static GROUPS: &[KeySpec] = &[
    k("", Kind::Group, "the whole agent configuration", "{}"),
    k(
        "env",
        Kind::Group,
        "the environment the agent acts in",
        "{kind: lane-keep}",
    ),
    k(
        "networks",
        Kind::Group,
        "encoders and heads, with their learning rates",
        "{cnn: {actor_cnn_lr: 1.0e-5}}",
    ),
    k(
        "networks.cnn",
        Kind::Group,
        "the CNN encoders (actor and critic share the topology)",
        "{actor_cnn_lr: 1.0e-5}",
    ),
    k(
        "networks.actor",
        Kind::Group,
        "the actor's MLP head",
        "{hidden: [256, 256]}",
    ),
    k(
        "networks.critic",
        Kind::Group,
        "the critics' MLP heads",
        "{hidden: [256, 256]}",
    ),
    k(
        "training",
        Kind::Group,
        "TD3 hyper-parameters and the seed's stability knobs",
        "{batch_size: 32}",
    ),
    k(
        "training.actor_cnn_grad_clip",
        Kind::Group,
        "gradient-norm clipping of the actor CNN (Solution B)",
        "{max_norm: 1.0}",
    ),
    k(
        "training.critic_cnn_grad_clip",
        Kind::Group,
        "gradient-norm clipping of the critic CNN",
        "{max_norm: 10.0}",
    ),
    k(
        "evaluation",
        Kind::Group,
        "periodic deterministic evaluation",
        "{every: 500}",
    ),
    k(
        "logging",
        Kind::Group,
        "what goes into metrics.csv, and how often",
        "{log_every: 100}",
    ),
    k(
        "debug",
        Kind::Group,
        "fault injection for tests",
        "{nan_at_step: 50}",
    ),
];

/// Every leaf key, in the order of [`AgentConfig`]'s fields.
static LEAVES: &[KeySpec] = &[
    k(
        "seed",
        Kind::Int { min: 0 },
        "seed for the environment, network initialisation and all noise",
        "0",
    ),
    k(
        "device",
        Kind::Device,
        "`auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`",
        "auto",
    ),
    k(
        "deterministic",
        Kind::Bool,
        "ask libtorch for deterministic kernels (matters on CUDA)",
        "false",
    ),
    k(
        "env.kind",
        Kind::Enum(&["lane-keep", "pendulum", "gymnasium"]),
        "which environment",
        "lane-keep",
    ),
    k(
        "env.obs",
        Kind::Enum(&["pixels", "state"]),
        "pixel frames through CNNs, or a state vector",
        "pixels",
    ),
    k(
        "env.image_size",
        Kind::Int { min: 16 },
        "square image side in pixels (pixel observations)",
        "48",
    ),
    k(
        "env.frame_stack",
        Kind::Int { min: 1 },
        "most recent frames stacked as channels",
        "3",
    ),
    k(
        "env.max_episode_steps",
        Kind::OptInt { min: 1 },
        "time limit of an episode (truncation); null: the env's own (Gymnasium's registered one)",
        "200",
    ),
    k("env.reward_scale", POS, "multiplies every reward", "1.0"),
    k(
        "env.id",
        Kind::OptStr,
        "Gymnasium env id (required for kind `gymnasium`)",
        "CarRacing-v3",
    ),
    k(
        "env.kwargs",
        Kind::Mapping,
        "keyword arguments for gymnasium.make (kind `gymnasium`)",
        "{continuous: true}",
    ),
    k(
        "env.reward_bound",
        OPT_POS,
        "largest |reward| of one step before reward_scale (kind `gymnasium`; null: unknown)",
        "16.2736",
    ),
    k(
        "networks.cnn.channels",
        Kind::IntList { min: 1 },
        "output channels of each conv layer",
        "[16, 32, 32]",
    ),
    k(
        "networks.cnn.kernels",
        Kind::IntList { min: 1 },
        "kernel size of each conv layer",
        "[5, 3, 3]",
    ),
    k(
        "networks.cnn.strides",
        Kind::IntList { min: 1 },
        "stride of each conv layer",
        "[2, 2, 1]",
    ),
    k(
        "networks.cnn.feature_dim",
        Kind::Int { min: 1 },
        "width of the linear layer after the convs",
        "64",
    ),
    k(
        "networks.cnn.actor_cnn_lr",
        OPT_POS,
        "actor CNN learning rate; null falls back to networks.cnn.learning_rate, then 1e-4",
        "1.0e-5",
    ),
    k(
        "networks.cnn.critic_cnn_lr",
        OPT_POS,
        "critic CNN learning rate; null falls back to networks.cnn.learning_rate, then 1e-4",
        "1.0e-4",
    ),
    k(
        "networks.cnn.learning_rate",
        OPT_POS,
        "legacy shared CNN learning rate, used when a per-CNN rate is null",
        "1.0e-4",
    ),
    k(
        "networks.cnn.actor_encoder",
        Kind::Enum(&["own", "shared_detached"]),
        "`own` CNN for the actor, or the critic's features detached (DrQ-v2)",
        "own",
    ),
    k(
        "networks.actor.hidden",
        Kind::IntList { min: 1 },
        "hidden layer widths of the actor head",
        "[256, 256]",
    ),
    k(
        "networks.actor.learning_rate",
        POS,
        "Adam learning rate of the actor head",
        "3.0e-4",
    ),
    k(
        "networks.critic.hidden",
        Kind::IntList { min: 1 },
        "hidden layer widths of each critic head",
        "[256, 256]",
    ),
    k(
        "networks.critic.learning_rate",
        POS,
        "Adam learning rate of the critic heads",
        "3.0e-4",
    ),
    k(
        "training.steps",
        Kind::Int { min: 1 },
        "environment steps to run",
        "1000",
    ),
    k(
        "training.gradient_steps",
        Kind::Int { min: 1 },
        "gradient updates per env step after learning_starts (the update-to-data ratio)",
        "1",
    ),
    k(
        "training.batch_size",
        Kind::Int { min: 1 },
        "minibatch size of each update",
        "32",
    ),
    k(
        "training.buffer_size",
        Kind::Int { min: 1 },
        "replay capacity in transitions (>= batch_size)",
        "100000",
    ),
    k(
        "training.learning_starts",
        Kind::Int { min: 0 },
        "random-action steps before training starts",
        "100",
    ),
    k(
        "training.discount",
        Kind::UnitInterval,
        "discount factor gamma, in (0, 1]",
        "0.99",
    ),
    k(
        "training.tau",
        Kind::UnitInterval,
        "Polyak factor of the target networks, in (0, 1]",
        "0.005",
    ),
    k(
        "training.policy_noise",
        NONNEG,
        "target smoothing noise std (fraction of the action bound)",
        "0.2",
    ),
    k(
        "training.noise_clip",
        NONNEG,
        "clip of the smoothing noise (fraction of the action bound)",
        "0.5",
    ),
    k(
        "training.policy_delay",
        Kind::Int { min: 1 },
        "critic updates per actor and target update",
        "2",
    ),
    k(
        "training.exploration_noise",
        NONNEG,
        "Gaussian exploration noise std (fraction of the bound)",
        "0.1",
    ),
    k(
        "training.actor_cnn_grad_clip.max_norm",
        OPT_POS,
        "clip the actor CNN's gradient norm to this (null: off)",
        "1.0",
    ),
    k(
        "training.critic_cnn_grad_clip.max_norm",
        OPT_POS,
        "clip the critic CNN's gradient norm to this (null: off)",
        "10.0",
    ),
    k(
        "training.q_normalization",
        Kind::Bool,
        "normalise Q in the actor loss (Solution C)",
        "true",
    ),
    k(
        "training.checkpoint_every",
        Kind::Int { min: 0 },
        "write a resumable checkpoint every this many env steps (0: off)",
        "10000",
    ),
    k(
        "evaluation.every",
        Kind::Int { min: 0 },
        "evaluate every this many env steps after learning_starts, and the untrained policy first (0: off)",
        "500",
    ),
    k(
        "evaluation.episodes",
        Kind::Int { min: 1 },
        "episodes per evaluation",
        "5",
    ),
    k(
        "evaluation.seed_offset",
        Kind::Int { min: 0 },
        "the eval env is seeded with seed + seed_offset",
        "100",
    ),
    k(
        "logging.log_every",
        Kind::Int { min: 1 },
        "one metrics.csv row per this many training steps",
        "100",
    ),
    k(
        "debug.abort_at_step",
        Kind::OptInt { min: 0 },
        "abort the process at this training step",
        "null",
    ),
    k(
        "debug.nan_at_step",
        Kind::OptInt { min: 0 },
        "put a NaN into the critic loss at this step",
        "null",
    ),
    k(
        "debug.hang_at_step",
        Kind::OptInt { min: 0 },
        "sleep forever at this training step",
        "null",
    ),
];

/// The spec of a dotted key (a leaf, or a group such as `training.actor_cnn_grad_clip`).
pub fn lookup(key: &str) -> Option<&'static KeySpec> {
    LEAVES.iter().chain(GROUPS).find(|s| s.key == key)
}

/// Every leaf key, in [`AgentConfig`]'s field order.
pub fn keys() -> impl Iterator<Item = &'static KeySpec> {
    LEAVES.iter()
}

/// Every group key (mappings of further keys), root (`""`) first.
pub fn groups() -> impl Iterator<Item = &'static KeySpec> {
    GROUPS.iter()
}

/// The direct children of group `parent` (`""` for the top level), as their last segment.
pub fn children(parent: &str) -> Vec<&'static str> {
    LEAVES
        .iter()
        .chain(GROUPS)
        .filter(|s| !s.key.is_empty() && parent_of(s.key) == parent)
        .map(|s| last_segment(s.key))
        .collect()
}

/// `a.b.c` → `a.b`; `a` → `""`.
pub fn parent_of(key: &str) -> &str {
    key.rsplit_once('.').map_or("", |(p, _)| p)
}

/// `a.b.c` → `c`.
pub fn last_segment(key: &str) -> &str {
    key.rsplit_once('.').map_or(key, |(_, l)| l)
}

/// `prefix` + `.` + `name`, without a leading dot at the root.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A suggestion for an unknown key `key` (full dotted path): a close sibling, a key elsewhere
/// with the same last segment, or a close full key.
pub fn suggest(key: &str) -> Option<String> {
    let parent = parent_of(key);
    let name = last_segment(key);
    let all = || {
        LEAVES
            .iter()
            .chain(GROUPS)
            .filter(|s| !s.key.is_empty())
            .map(|s| s.key)
    };
    // The exact name at another level (`cnn:` at the top means `networks.cnn`) beats a
    // near-miss sibling (`env`).
    if let Some(s) = all().find(|k| last_segment(k) == name) {
        return Some(s.to_string());
    }
    if lookup(parent).is_some() {
        if let Some(s) = did_you_mean(name, children(parent)) {
            return Some(join(parent, s));
        }
    }
    // Never the unknown key's own parent (`networks.cnn.foo` is not a typo of `networks.cnn`).
    if let Some(s) = did_you_mean(key, all().filter(|k| !key.starts_with(&format!("{k}.")))) {
        return Some(s.to_string());
    }
    // A typo in a middle segment (`networks.cnnn.actor_cnn_lr`): match the last segment loosely.
    let candidates: Vec<&str> = all()
        .filter(|k| did_you_mean(name, [last_segment(k)]).is_some())
        .collect();
    match candidates.as_slice() {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

/// Why a value was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// "must be a positive number, got -1e-4".
    pub message: String,
    /// "learning rates are > 0, e.g. 1e-5".
    pub hint: String,
}

impl Problem {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Problem {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// How a value reads in a message: `-1e-4`, `"abc"`, `a list`.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("\"{s}\""),
        Value::Seq(_) | Value::Map(_) => v.type_name().to_string(),
        // `32.0` rather than `32`, so "must be an integer, got 32.0" makes sense.
        Value::Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e6 => format!("{x:.1}"),
        other => fmt_scalar(other),
    }
}

/// Compact display of a value for run ids, plans and messages: floats in `1e-4` style when small
/// or large, plain otherwise (`0.5`, `10`).
pub fn fmt_scalar(v: &Value) -> String {
    match v {
        Value::Float(x) => fmt_float(*x),
        Value::Seq(items) => {
            let parts: Vec<String> = items.iter().map(|n| fmt_scalar(&n.value)).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Map(entries) => {
            let parts: Vec<String> = entries
                .iter()
                .map(|(k, n)| format!("{}: {}", k.name, fmt_scalar(&n.value)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        other => other.to_string(),
    }
}

/// `1e-4`, `5e-5`, `0.99`, `1`, `10`, `1e6`.
pub fn fmt_float(x: f64) -> String {
    let a = x.abs();
    if x != 0.0 && x.is_finite() && !(0.01..1e6).contains(&a) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

fn is_lr(key: &str) -> bool {
    key.ends_with("_lr") || key.ends_with("learning_rate")
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// Checks a value against `spec`. Groups only check that the value is a mapping; their entries are
/// checked one by one by the caller (see [`crate::config::load`]), so each gets its own position.
pub fn check_value(spec: &KeySpec, node: &Node) -> Result<(), Problem> {
    let v = &node.value;
    let got = describe(v);
    let example = spec.example;
    match spec.kind {
        Kind::Group => match v {
            Value::Map(_) => Ok(()),
            _ => Err(Problem::new(
                format!("must be a mapping of keys, got {got}"),
                format!("write it as a mapping, e.g. {example}, or set a key below it"),
            )),
        },
        Kind::FloatAbove { min } => check_float(spec, v, false, min, None),
        Kind::FloatAtLeast { min } => check_float(spec, v, true, min, None),
        Kind::UnitInterval => check_float(spec, v, false, 0.0, Some(1.0)),
        Kind::OptFloatAbove { min } => match v {
            Value::Null => Ok(()),
            _ => check_float(spec, v, false, min, None),
        },
        Kind::Int { min } => check_int(spec, v, min),
        Kind::OptInt { min } => match v {
            Value::Null => Ok(()),
            _ => check_int(spec, v, min),
        },
        Kind::Bool => match v {
            Value::Bool(_) => Ok(()),
            _ => Err(Problem::new(
                format!("must be true or false, got {got}"),
                "write `true` or `false` (unquoted)",
            )),
        },
        Kind::Enum(options) => {
            let list = options
                .iter()
                .map(|o| format!("`{o}`"))
                .collect::<Vec<_>>()
                .join(", ");
            match v {
                Value::Str(s) if options.contains(&s.as_str()) => Ok(()),
                Value::Str(s) => {
                    let hint = match did_you_mean(s, options.iter().copied()) {
                        Some(close) => format!("did you mean `{close}`? valid values: {list}"),
                        None => format!("valid values: {list}"),
                    };
                    Err(Problem::new(format!("unknown value `{s}`"), hint))
                }
                _ => Err(Problem::new(
                    format!("must be one of {list}, got {got}"),
                    format!("e.g. {example}"),
                )),
            }
        }
        Kind::Device => match v {
            Value::Str(s) if is_device(s) => Ok(()),
            _ => Err(Problem::new(
                format!("must be a device name, got {got}"),
                "use `auto`, `cpu`, `cuda` or `cuda:N` (N a GPU index)",
            )),
        },
        Kind::OptStr => match v {
            Value::Null => Ok(()),
            Value::Str(s) if !s.trim().is_empty() => Ok(()),
            _ => Err(Problem::new(
                format!("must be a non-empty string or null, got {got}"),
                format!("e.g. {example}"),
            )),
        },
        Kind::Mapping => match v {
            Value::Map(_) => Ok(()),
            _ => Err(Problem::new(
                format!("must be a mapping, got {got}"),
                format!("e.g. {example}, or {{}} for none"),
            )),
        },
        Kind::IntList { min } => {
            let Value::Seq(items) = v else {
                return Err(Problem::new(
                    format!("must be a list of integers, got {got}"),
                    format!("e.g. {example}"),
                ));
            };
            if items.is_empty() {
                return Err(Problem::new("must not be empty", format!("e.g. {example}")));
            }
            for (i, item) in items.iter().enumerate() {
                match item.value {
                    Value::Int(x) if x >= min => {}
                    _ => {
                        return Err(Problem::new(
                            format!(
                                "entry {i} must be an integer >= {min}, got {}",
                                describe(&item.value)
                            ),
                            format!("e.g. {example}"),
                        ))
                    }
                }
            }
            Ok(())
        }
    }
}

fn is_device(s: &str) -> bool {
    matches!(s, "auto" | "cpu" | "cuda")
        || s.strip_prefix("cuda:")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn check_float(
    spec: &KeySpec,
    v: &Value,
    inclusive: bool,
    min: f64,
    max: Option<f64>,
) -> Result<(), Problem> {
    let got = describe(v);
    let what = match (inclusive, max) {
        (_, Some(hi)) => format!("a number in (0, {}]", fmt_float(hi)),
        (false, None) if min == 0.0 => "a positive number".to_string(),
        (true, None) if min == 0.0 => "a number >= 0".to_string(),
        (false, None) => format!("a number > {}", fmt_float(min)),
        (true, None) => format!("a number >= {}", fmt_float(min)),
    };
    let hint = if is_lr(spec.key) {
        format!("learning rates are > 0, e.g. {}", spec.example)
    } else {
        format!("e.g. {}", spec.example)
    };
    let nullable = matches!(spec.kind, Kind::OptFloatAbove { .. });
    let Some(x) = number(v) else {
        let hint = if nullable {
            format!("{hint}, or null to leave it unset")
        } else {
            hint
        };
        let quoted = matches!(v, Value::Str(s) if s.trim().parse::<f64>().is_ok());
        let hint = if quoted {
            format!("{hint} (numbers are written without quotes)")
        } else {
            hint
        };
        return Err(Problem::new(format!("must be {what}, got {got}"), hint));
    };
    let below = if inclusive { x < min } else { x <= min };
    let above = max.is_some_and(|hi| x > hi);
    if !x.is_finite() || below || above {
        return Err(Problem::new(format!("must be {what}, got {got}"), hint));
    }
    Ok(())
}

fn check_int(spec: &KeySpec, v: &Value, min: i64) -> Result<(), Problem> {
    let got = describe(v);
    let what = match min {
        0 => "an integer >= 0".to_string(),
        1 => "a positive integer".to_string(),
        m => format!("an integer >= {m}"),
    };
    match v {
        Value::Int(x) if *x >= min => Ok(()),
        Value::Float(x) if x.fract() == 0.0 && *x >= min as f64 => Err(Problem::new(
            format!("must be {what}, got {got}"),
            format!("write it without a decimal point, e.g. {}", spec.example),
        )),
        Value::Str(s) if s.trim().parse::<i64>().is_ok() => Err(Problem::new(
            format!("must be {what}, got {got}"),
            format!("e.g. {} (numbers are written without quotes)", spec.example),
        )),
        _ => Err(Problem::new(
            format!("must be {what}, got {got}"),
            format!("e.g. {}", spec.example),
        )),
    }
}

/// A rule that spans several keys, broken by a resolved config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossProblem {
    /// The key the problem is reported at.
    pub key: &'static str,
    /// Keys whose position to use instead when `key` was never written (it has its default).
    pub related: &'static [&'static str],
    /// What is wrong.
    pub problem: Problem,
}

/// Rules between keys: conv list lengths agree, the image survives the conv stack, the replay
/// buffer holds at least one batch.
pub fn check_cross(cfg: &AgentConfig) -> Vec<CrossProblem> {
    let mut out = Vec::new();
    let cnn = &cfg.networks.cnn;
    let n = cnn.channels.len();
    for (key, len) in [
        ("networks.cnn.kernels", cnn.kernels.len()),
        ("networks.cnn.strides", cnn.strides.len()),
    ] {
        if len != n {
            out.push(CrossProblem {
                key,
                related: &["networks.cnn.channels"],
                problem: Problem::new(
                    format!("{key} has {len} entries but networks.cnn.channels has {n}"),
                    "channels, kernels and strides describe the same conv layers: give them equal lengths",
                ),
            });
        }
    }
    if out.is_empty() && cfg.uses_pixels() {
        let mut side = cfg.env.image_size as i64;
        for (i, (&k, &s)) in cnn.kernels.iter().zip(&cnn.strides).enumerate() {
            if side < k {
                out.push(CrossProblem {
                    key: "env.image_size",
                    related: &["networks.cnn.kernels", "networks.cnn.strides", "env.obs"],
                    problem: Problem::new(
                        format!(
                            "env.image_size {} is too small for the CNN: conv layer {i} (kernel {k}) sees a {side} px map",
                            cfg.env.image_size
                        ),
                        "raise env.image_size, or use smaller kernels / strides in networks.cnn",
                    ),
                });
                break;
            }
            side = (side - k) / s + 1;
        }
    }
    let gym = cfg.env.kind == crate::config::EnvKind::Gymnasium;
    if gym && cfg.env.id.is_none() {
        out.push(CrossProblem {
            key: "env.id",
            related: &["env.kind"],
            problem: Problem::new(
                "env.kind `gymnasium` needs env.id",
                "name the Gymnasium env, e.g. `env.id: CarRacing-v3`",
            ),
        });
    }
    if !gym && (cfg.env.id.is_some() || !cfg.env.kwargs.is_empty()) {
        out.push(CrossProblem {
            key: "env.id",
            related: &["env.kwargs", "env.kind"],
            problem: Problem::new(
                "env.id and env.kwargs only apply to env.kind `gymnasium`",
                "set `env.kind: gymnasium`, or remove env.id / env.kwargs",
            ),
        });
    }
    if !gym && cfg.env.reward_bound.is_some() {
        out.push(CrossProblem {
            key: "env.reward_bound",
            related: &["env.kind"],
            problem: Problem::new(
                "env.reward_bound only applies to env.kind `gymnasium`",
                "the built-in envs declare their own reward bound: remove env.reward_bound",
            ),
        });
    }
    if cfg.training.buffer_size < cfg.training.batch_size {
        out.push(CrossProblem {
            key: "training.buffer_size",
            related: &["training.batch_size"],
            problem: Problem::new(
                format!(
                    "training.buffer_size ({}) is smaller than training.batch_size ({})",
                    cfg.training.buffer_size, cfg.training.batch_size
                ),
                "the replay buffer must hold at least one batch",
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Mark;
    use std::collections::BTreeSet;

    fn leaves(
        prefix: &str,
        v: &serde_json::Value,
        out: &mut BTreeSet<String>,
        groups: &mut BTreeSet<String>,
    ) {
        // A free-form mapping (`env.kwargs`) is one leaf, not a group.
        let free = lookup(prefix).is_some_and(|s| s.kind == Kind::Mapping);
        match v {
            serde_json::Value::Object(m) if !free => {
                groups.insert(prefix.to_string());
                for (k, x) in m {
                    leaves(&join(prefix, k), x, out, groups);
                }
            }
            _ => {
                out.insert(prefix.to_string());
            }
        }
    }

    #[test]
    fn schema_matches_agent_config() {
        let json = serde_json::to_value(AgentConfig::default()).unwrap();
        let (mut want, mut want_groups) = (BTreeSet::new(), BTreeSet::new());
        leaves("", &json, &mut want, &mut want_groups);
        let have: BTreeSet<String> = keys().map(|s| s.key.to_string()).collect();
        assert_eq!(have, want, "schema leaves differ from AgentConfig's");
        let have_groups: BTreeSet<String> = groups().map(|s| s.key.to_string()).collect();
        assert_eq!(
            have_groups, want_groups,
            "schema groups differ from AgentConfig's"
        );
    }

    #[test]
    fn every_example_passes_its_own_check() {
        for spec in keys().chain(groups()) {
            let value = crate::config::yaml::parse_scalar(spec.example);
            let node = Node {
                value,
                mark: Mark::default(),
            };
            assert_eq!(check_value(spec, &node), Ok(()), "example of {}", spec.key);
        }
    }

    fn check(key: &str, text: &str) -> Result<(), Problem> {
        let node = Node {
            value: crate::config::yaml::parse_scalar(text),
            mark: Mark::default(),
        };
        check_value(lookup(key).unwrap(), &node)
    }

    #[test]
    fn value_checks_table() {
        let ok = [
            ("networks.cnn.actor_cnn_lr", "1e-5"),
            ("networks.cnn.actor_cnn_lr", "null"),
            ("networks.actor.learning_rate", "1"),
            ("training.discount", "1.0"),
            ("training.tau", "0.005"),
            ("training.policy_noise", "0"),
            ("env.kind", "pendulum"),
            ("env.image_size", "16"),
            ("device", "cuda:1"),
            ("networks.cnn.channels", "[8, 8]"),
            ("debug.nan_at_step", "null"),
            ("training.actor_cnn_grad_clip", "{max_norm: 1.0}"),
        ];
        for (key, text) in ok {
            assert_eq!(check(key, text), Ok(()), "{key}: {text}");
        }
        let bad = [
            (
                "networks.cnn.actor_cnn_lr",
                "-1e-4",
                "must be a positive number, got -1e-4",
            ),
            (
                "networks.cnn.actor_cnn_lr",
                "0",
                "must be a positive number, got 0",
            ),
            (
                "networks.actor.learning_rate",
                "null",
                "must be a positive number, got null",
            ),
            (
                "training.discount",
                "1.5",
                "must be a number in (0, 1], got 1.5",
            ),
            ("training.tau", "0", "must be a number in (0, 1], got 0"),
            ("env.kind", "lanekeep", "unknown value `lanekeep`"),
            ("env.image_size", "8", "must be an integer >= 16, got 8"),
            (
                "training.batch_size",
                "32.0",
                "must be a positive integer, got 32.0",
            ),
            (
                "training.batch_size",
                "\"32\"",
                "must be a positive integer, got \"32\"",
            ),
            ("device", "gpu", "must be a device name, got \"gpu\""),
            ("networks.cnn.channels", "[]", "must not be empty"),
            (
                "networks.cnn.channels",
                "[8, 0]",
                "entry 1 must be an integer >= 1, got 0",
            ),
            (
                "training.q_normalization",
                "1",
                "must be true or false, got 1",
            ),
            (
                "training.actor_cnn_grad_clip",
                "1.0",
                "must be a mapping of keys, got 1.0",
            ),
        ];
        for (key, text, want) in bad {
            let p = check(key, text).unwrap_err();
            assert_eq!(p.message, want, "{key}: {text}");
        }
        assert_eq!(
            check("networks.cnn.actor_cnn_lr", "-1e-4")
                .unwrap_err()
                .hint,
            "learning rates are > 0, e.g. 1.0e-5"
        );
        assert!(check("env.kind", "lanekeep")
            .unwrap_err()
            .hint
            .starts_with("did you mean `lane-keep`?"));
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("networks.cnn.actor_cnn_rl").as_deref(),
            Some("networks.cnn.actor_cnn_lr")
        );
        assert_eq!(
            suggest("training.actor_cnn_lr").as_deref(),
            Some("networks.cnn.actor_cnn_lr")
        );
        assert_eq!(
            suggest("networks.cnnn.actor_cnn_lr").as_deref(),
            Some("networks.cnn.actor_cnn_lr")
        );
        assert_eq!(
            suggest("trainig.batch_size").as_deref(),
            Some("training.batch_size")
        );
        assert_eq!(suggest("zzz.qqq"), None);
    }

    #[test]
    fn cross_checks() {
        let mut cfg = AgentConfig::default();
        assert!(check_cross(&cfg).is_empty());
        cfg.networks.cnn.kernels = vec![3, 3];
        assert_eq!(check_cross(&cfg)[0].key, "networks.cnn.kernels");
        let mut cfg = AgentConfig::default();
        cfg.env.image_size = 16;
        cfg.networks.cnn.kernels = vec![8, 8, 8];
        assert_eq!(check_cross(&cfg)[0].key, "env.image_size");
        let mut cfg = AgentConfig::default();
        cfg.training.buffer_size = 8;
        assert_eq!(check_cross(&cfg)[0].key, "training.buffer_size");
        let mut cfg = AgentConfig::default();
        cfg.env.reward_bound = Some(10.0);
        assert_eq!(check_cross(&cfg)[0].key, "env.reward_bound");
        cfg.env.kind = crate::config::EnvKind::Gymnasium;
        cfg.env.id = Some("Pendulum-v1".into());
        assert!(check_cross(&cfg).is_empty());
    }

    #[test]
    fn float_display() {
        assert_eq!(fmt_float(1e-4), "1e-4");
        assert_eq!(fmt_float(5e-5), "5e-5");
        assert_eq!(fmt_float(0.99), "0.99");
        assert_eq!(fmt_float(1.0), "1");
        assert_eq!(fmt_float(10.0), "10");
        assert_eq!(fmt_float(1e-3), "1e-3");
    }
}
