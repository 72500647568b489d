//! Every exit code `td3-sweep` returns, declared once.
//!
//! | code | `sweep`, `report` | `train` (a sweep's child), `run-one` (a Slurm task) |
//! |---|---|---|
//! | 0 | every variant group PASS | the run completed |
//! | 1 | runtime error (I/O, libtorch, a held lock) | runtime error, or the run crashed (`run-one`: or timed out) |
//! | 2 | bad input (spec, config, criteria, arguments) | bad input |
//! | 3 | | the run diverged |
//! | 4 | | fail-fast stopped the run |
//! | 5 | | its sweep died and the run did not stop within the grace period |
//! | 10 | some group INVESTIGATE or FLAKY, none FAIL | |
//! | 11 | some group FAIL | |
//! | 12 | some group not finished (seeds pending or interrupted), none FAIL | |
//! | 130 | interrupted (Ctrl-C) | interrupted |
//!
//! Groups, not runs, decide a sweep's code, so a seeds quorum below `all` is honoured. The
//! `train` codes are the protocol between a sweep and its children: the parent reads the outcome
//! from them (see [`outcome_of`]). `cli.rs` and the README quote [`SWEEP_CODES`] and
//! [`TRAIN_CODES`], `docs/ci.md` the first, and the justfile's `sweep` recipe treats exactly the
//! verdict codes as success; a test holds them to it.

use super::Outcome;

/// Success: every group PASS (`sweep`, `report`), or a completed run (`train`).
pub const OK: i32 = 0;
/// A runtime error (I/O, libtorch, a held lock); for `train`, also a run that crashed.
pub const ERROR: i32 = 1;
/// Bad input: a spec, config, criteria file or argument that fails validation.
pub const BAD_INPUT: i32 = 2;
/// Some variant group INVESTIGATE or FLAKY, and none FAIL.
pub const INVESTIGATE: i32 = 10;
/// Some variant group FAIL.
pub const FAIL: i32 = 11;
/// Some variant group has seeds not finished (pending or interrupted), and none FAIL.
pub const INCOMPLETE: i32 = 12;
/// Interrupted: Ctrl-C (or SIGTERM) ended the command or the run early.
pub const INTERRUPTED: i32 = 130;

/// `train`: the run completed.
pub const COMPLETED: i32 = OK;
/// `train`: the run crashed (a Gymnasium env raised, say) without the process dying.
pub const CRASHED: i32 = ERROR;
/// `train`: a non-finite value appeared; the run stopped before applying it.
pub const DIVERGED: i32 = 3;
/// `train`: fail-fast stopped the run once its FAIL was certain.
pub const STOPPED: i32 = 4;
/// `train`: the parent sweep died and the run did not stop within the grace period (a hung step).
pub const ORPHANED: i32 = 5;

/// The codes of `sweep` and `report`, in words, as the docs quote them.
pub const SWEEP_CODES: &str = "0 every group PASS · 10 some group INVESTIGATE or FLAKY (FLAKY: PASS mixed with INVESTIGATE seeds) · 11 some group FAIL (any FAIL seed fails its group) · 12 some group not finished (seeds pending or interrupted) and none FAIL · 2 bad input · 1 other errors · 130 interrupted";

/// The codes of `train` alone, in words, as the docs quote them.
pub const TRAIN_CODES: &str = "0 completed, 1 crashed, 3 diverged, 4 stopped by fail-fast, 5 ended because its sweep died, 130 interrupted";

/// The exit code of a `train` or `run-one` process whose run ended with `outcome`. A timeout is
/// imposed from outside `train`; `run-one` reports it as an error so Slurm's job state says so.
pub fn of_outcome(outcome: Outcome) -> i32 {
    match outcome {
        Outcome::Completed => COMPLETED,
        Outcome::Crashed | Outcome::Timeout => CRASHED,
        Outcome::Diverged => DIVERGED,
        Outcome::Stopped => STOPPED,
        Outcome::Interrupted => INTERRUPTED,
    }
}

/// The outcome a `train` child's exit code says, when it says one (`None`: crashed, killed, or
/// an unknown code).
pub fn outcome_of(code: i32) -> Option<Outcome> {
    match code {
        DIVERGED => Some(Outcome::Diverged),
        STOPPED => Some(Outcome::Stopped),
        INTERRUPTED => Some(Outcome::Interrupted),
        _ => None,
    }
}

/// How a process ended, as records word it: "exit code 3", "killed by signal 9 (SIGKILL)".
pub fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    let name = |s: i32| match s {
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGINT => " (SIGINT)",
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGTERM => " (SIGTERM)",
        _ => "",
    };
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}{}", name(s)),
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(file: &str) -> String {
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
            .unwrap()
    }

    #[test]
    fn outcomes_round_trip_through_the_child_codes() {
        for o in [Outcome::Diverged, Outcome::Stopped, Outcome::Interrupted] {
            assert_eq!(outcome_of(of_outcome(o)), Some(o));
        }
        assert_eq!(outcome_of(of_outcome(Outcome::Crashed)), None);
        assert_eq!(of_outcome(Outcome::Completed), OK);
    }

    #[test]
    fn the_docs_quote_these_codes() {
        // Doc comments and Markdown wrap lines: compare with the whitespace folded.
        let fold = |s: &str| {
            s.split_whitespace()
                .filter(|w| *w != "///")
                .collect::<Vec<_>>()
                .join(" ")
        };
        for (file, train_too) in [
            ("README.md", true),
            ("src/cli.rs", true),
            ("docs/ci.md", false),
        ] {
            let text = fold(&read(file));
            assert!(
                text.contains(&fold(SWEEP_CODES)),
                "{file} quotes SWEEP_CODES"
            );
            assert!(
                !train_too || text.contains(&fold(TRAIN_CODES)),
                "{file} quotes TRAIN_CODES"
            );
        }
        // `just sweep` treats exactly the verdict codes as success.
        let verdicts = [OK, INVESTIGATE, FAIL, INCOMPLETE].map(|c| c.to_string());
        assert!(
            read("justfile").contains(&format!("{})", verdicts.join("|"))),
            "justfile"
        );
    }
}
