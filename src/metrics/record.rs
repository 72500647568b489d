//! `run.json`: what one run did, written by the run itself and completed by the scheduler.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::ResolvedLrs;

/// How a run ended. A run that did not complete is data, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// All planned steps ran.
    Completed,
    /// A non-finite loss, gradient or parameter appeared; the run stopped before applying it.
    Diverged,
    /// The process died (panic, abort, signal, OOM kill) or could not start.
    Crashed,
    /// The per-run time limit killed it.
    Timeout,
    /// Ctrl-C (or the parent going away) ended it early; its metrics are kept.
    Interrupted,
    /// Fail-fast: a FAIL was already certain, so the run stopped early.
    Stopped,
}

impl Outcome {
    /// The lowercase name used in CSVs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Diverged => "diverged",
            Outcome::Crashed => "crashed",
            Outcome::Timeout => "timeout",
            Outcome::Interrupted => "interrupted",
            Outcome::Stopped => "stopped",
        }
    }

    /// Whether `--rerun failed` retries a run with this outcome.
    pub fn is_failure(self) -> bool {
        !matches!(self, Outcome::Completed | Outcome::Stopped)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The contents of `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run id inside a sweep; empty for a stand-alone `train`.
    #[serde(default)]
    pub run_id: String,
    /// Variant name inside a sweep ("baseline" for a stand-alone run).
    #[serde(default)]
    pub variant: String,
    /// The swept keys and their values for this run, as written in the sweep (dotted key -> value).
    #[serde(default)]
    pub swept: BTreeMap<String, String>,
    /// Every `--set` override the run was trained with (the sweep's `set`, its variant's `set`,
    /// its grid values), on top of the base config; display form.
    /// `None` in records written before overrides were recorded (none at all is `Some({})`).
    #[serde(default)]
    pub overrides: Option<BTreeMap<String, String>>,
    /// The exact command that reproduces this run.
    #[serde(default)]
    pub command: String,
    pub outcome: Outcome,
    /// Environment steps planned and done.
    pub steps_planned: u64,
    pub steps_done: u64,
    /// Gradient updates done.
    #[serde(default)]
    pub train_steps_done: u64,
    pub seed: u64,
    /// Where it ran, what with (informational: a record without them still reads).
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub libtorch_version: String,
    /// The commit of the td3-sweep source folder the binary was built in, read when the run
    /// started (`-dirty`: with uncommitted changes). `just` rebuilds before every command, so it
    /// is the code that trained; a binary run after a checkout without a rebuild is not.
    #[serde(default)]
    pub git_commit: String,
    #[serde(default)]
    pub wall_s: f64,
    /// RFC 3339 start time.
    #[serde(default)]
    pub started_at: String,
    /// Each optimizer's learning rate and the key it came from.
    pub learning_rates: Option<ResolvedLrs>,
    /// sha256 of the resolved config (hex, first 16 chars); resume compares it.
    #[serde(default)]
    pub config_hash: String,
    /// First training step at which a non-finite value appeared.
    #[serde(default)]
    pub first_nonfinite_step: Option<u64>,
    /// Why the run stopped early (fail-fast rule, signal, timeout ...).
    #[serde(default)]
    pub reason: Option<String>,
    /// Process exit code or signal description, filled in by the scheduler.
    #[serde(default)]
    pub exit: Option<String>,
    /// Last lines of stderr for crashed runs.
    #[serde(default)]
    pub stderr_tail: Option<String>,
    /// Free-form extra facts (threads, env, ...).
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

impl RunRecord {
    /// The start-up record nobody replaced: the run's process ended (or its sweep was killed)
    /// without anyone recording how, so its "crashed" says nothing about the run. A sweep trains
    /// it again; a report calls it INTERRUPTED, not FAIL.
    pub fn ended_unobserved(&self) -> bool {
        self.outcome == Outcome::Crashed && self.exit.is_none()
    }
}
