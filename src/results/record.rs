//! `run.json`: what one run did, written by the run itself and completed by the scheduler.
//!
//! Every writer goes through [`super::RunDir::write_record`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::plan::PlannedRun;
use crate::config::ResolvedLrs;

/// The reason `run.json` carries until the run writes its final record: if the process dies
/// first, that is what happened. Such a record is [`RunRecord::provisional`].
pub const PLACEHOLDER_REASON: &str = "the process ended before writing its final record";

/// libtorch's version, read at build time.
pub const LIBTORCH_VERSION: &str = env!("TD3_LIBTORCH_VERSION");

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
    /// The largest |Q| the task allows, `r_max * |reward_scale| / (1 - discount)` with the env's
    /// per-step reward bound `r_max` and the run's own config (see
    /// the training loop's `q_abs_bound`): a `q_abs_max` beyond it is soft divergence (van Hasselt
    /// et al. 2018). `None` when `r_max` is unknown (a Gymnasium env without `env.reward_bound`),
    /// when the discount is 1, and in records written before it was recorded.
    #[serde(default)]
    pub q_bound: Option<f64>,
    /// Free-form extra facts (threads, env, ...).
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
    /// An external trainer's exact command, working directory and environment (with the slot's
    /// `CUDA_VISIBLE_DEVICES` and `OMP_NUM_THREADS`); `None` for the built-in TD3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation: Option<super::trainer::Invocation>,
    /// Set only in the record a run writes when it starts ([`PLACEHOLDER_REASON`]), which its
    /// final record replaces: a provisional record whose process has ended says the process died
    /// before recording how, and its reason is no cause of the run's own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provisional: bool,
}

impl RunRecord {
    /// A record for a planned run that produced none itself (it could not start, or died before
    /// writing one).
    pub fn placeholder(
        run: &PlannedRun,
        outcome: Outcome,
        reason: Option<String>,
        wall_s: f64,
    ) -> RunRecord {
        RunRecord {
            run_id: run.run_id.clone(),
            variant: run.variant.clone(),
            swept: run.swept.clone(),
            overrides: Some(run.overrides()),
            command: run.command.clone(),
            outcome,
            steps_planned: run.steps,
            steps_done: 0,
            train_steps_done: 0,
            seed: run.seed,
            device: String::new(),
            libtorch_version: LIBTORCH_VERSION.to_string(),
            git_commit: String::new(),
            wall_s,
            started_at: String::new(),
            learning_rates: None,
            config_hash: run.config_hash.clone(),
            first_nonfinite_step: None,
            reason,
            exit: None,
            stderr_tail: None,
            q_bound: None,
            extra: BTreeMap::new(),
            invocation: None,
            provisional: false,
        }
    }

    /// The reason the run recorded itself, if any: not the start-up placeholder.
    pub fn own_reason(&self) -> Option<&str> {
        self.reason.as_deref().filter(|_| !self.provisional)
    }

    /// The start-up record nobody replaced: the run's process ended (or its sweep was killed)
    /// without anyone recording how, so its "crashed" says nothing about the run. A sweep trains
    /// it again; a report calls it INTERRUPTED, not FAIL.
    pub fn ended_unobserved(&self) -> bool {
        self.outcome == Outcome::Crashed && self.exit.is_none()
    }
}

/// `s` without terminal escape sequences (ANSI colours in a child's stderr) and without other
/// control characters except newlines and tabs: what a record, report or JUnit file may quote
/// from a run's logs (XML 1.0 forbids most control characters; a terminal code in Markdown is
/// noise).
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters... final byte in @..~; other escapes: ESC + one char.
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if c == '\r' {
            // A progress bar's carriage returns: keep the line readable.
            out.push('\n');
        } else if !c.is_control() || c == '\n' || c == '\t' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_drops_terminal_codes_and_control_characters() {
        assert_eq!(
            printable("\u{1b}[31mRuntimeError\u{1b}[0m: boom\u{7}\u{0}\tx\ny"),
            "RuntimeError: boom\tx\ny"
        );
        assert_eq!(printable("10%\r50%"), "10%\n50%");
        assert_eq!(printable("plain"), "plain");
    }

    #[test]
    fn only_the_start_up_record_is_provisional_on_disk() {
        let mut rec: RunRecord = serde_json::from_str(
            r#"{"outcome":"crashed","steps_planned":1,"steps_done":0,"seed":0,"learning_rates":null,"reason":"x"}"#,
        )
        .unwrap();
        assert!(!rec.provisional, "older records are final");
        assert_eq!(rec.own_reason(), Some("x"));
        assert!(!serde_json::to_string(&rec).unwrap().contains("provisional"));
        rec.provisional = true;
        assert_eq!(rec.own_reason(), None);
        let back: RunRecord = serde_json::from_str(&serde_json::to_string(&rec).unwrap()).unwrap();
        assert!(back.provisional);
    }
}
