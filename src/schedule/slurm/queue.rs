//! Talking to Slurm: `sbatch`, `squeue`, `scontrol`, `sacct`; and deciding how a task that left the
//! queue without a final `run.json` ended (a pure function).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::results::Outcome;

/// A Slurm command that failed.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` failed: {message}")]
pub struct SlurmCommandError {
    /// The command line.
    pub command: String,
    /// Its stderr, or why it could not start.
    pub message: String,
}

fn run(program: &str, args: &[&str]) -> Result<String, SlurmCommandError> {
    let err = |message: String| SlurmCommandError {
        command: format!("{program} {}", args.join(" ")),
        message,
    };
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(err(format!("{} ({})", stderr, out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Submits `script` with `sbatch --parsable`; returns the job id (without a `;cluster` suffix).
pub fn sbatch(script: &Path) -> Result<String, SlurmCommandError> {
    let path = script.display().to_string();
    let out = run("sbatch", &["--parsable", &path])?;
    let id = out
        .trim()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(SlurmCommandError {
            command: format!("sbatch --parsable {path}"),
            message: format!("unexpected output {out:?}"),
        });
    }
    Ok(id)
}

/// One array task in the queue.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Queued {
    /// `PENDING`, `RUNNING`, `COMPLETING` ...
    pub state: String,
    /// The batch script's absolute path (how a task submitted by hand is recognised).
    pub command: String,
    /// Why a pending task waits (`Priority`, `Resources`, `PartitionConfig` ...), `None` if none.
    pub reason: String,
}

/// This user's queued and running array tasks: `"<job>_<task>"` → what squeue says of it.
/// `Err` when the controller cannot be asked (the caller keeps waiting rather than guessing).
pub fn squeue() -> Result<BTreeMap<String, Queued>, SlurmCommandError> {
    // `--me` (not `-j`): `-j` fails outright once one of the ids has been purged from the controller.
    let out = run("squeue", &["--me", "-h", "-r", "-o", "%i|%T|%r|%o"])?;
    Ok(parse_squeue(&out))
}

/// Parses `squeue -h -r -o '%i|%T|%r|%o'` lines (the command last: a path may hold a `|`).
pub fn parse_squeue(text: &str) -> BTreeMap<String, Queued> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(4, '|');
            let id = f.next()?.trim();
            let state = f.next()?.trim();
            (!id.is_empty()).then(|| {
                (
                    id.to_string(),
                    Queued {
                        state: state.to_string(),
                        reason: f.next().unwrap_or("").trim().to_string(),
                        command: f.next().unwrap_or("").trim().to_string(),
                    },
                )
            })
        })
        .collect()
}

/// Pending reasons under which Slurm will never start a task as it was submitted (the request
/// exceeds what the partition, QOS or account allows, or names nodes that do not exist).
pub fn never_starts(reason: &str) -> bool {
    // squeue adds details after a comma: "ReqNodeNotAvail, UnavailableNodes:n[1-4]". Nodes
    // reserved for maintenance come back by themselves; that one is not "never".
    let head = reason.split(',').next().unwrap_or("").trim();
    if head == "ReqNodeNotAvail" {
        return !reason.contains("Reserved for maintenance");
    }
    matches!(
        head,
        "PartitionConfig"
            | "PartitionNodeLimit"
            | "PartitionTimeLimit"
            | "BadConstraints"
            | "InvalidQOS"
            | "InvalidAccount"
            | "QOSMaxCpuPerJobLimit"
            | "QOSMaxMemoryPerJob"
            | "QOSMaxWallDurationPerJobLimit"
            | "AssocMaxWallDurationPerJobLimit"
            | "AssocMaxCpuPerJobLimit"
    )
}

/// The `*** JOB ... CANCELLED ... DUE TO JOB REQUEUE ***` lines of an output file say an earlier
/// attempt was requeued, not how this task ended: they are left out when classifying.
fn without_requeues(out: &str) -> String {
    out.lines()
        .filter(|l| !l.contains("DUE TO JOB REQUEUE"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What Slurm still remembers of an ended task: `scontrol` (for `MinJobAge` seconds), then `sacct`
/// where accounting is enabled. `None` when neither knows.
pub fn ended_state(task: &str) -> Option<String> {
    if let Ok(out) = run("scontrol", &["show", "job", "-o", task]) {
        if let Some(st) = out
            .split_whitespace()
            .find_map(|w| w.strip_prefix("JobState="))
        {
            return Some(st.to_string());
        }
    }
    // With accounting_storage/none sacct fails ("accounting storage is disabled"): not an error.
    let out = run("sacct", &["-n", "-P", "-X", "-o", "State", "-j", task]).ok()?;
    out.lines()
        .next()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .filter(|s| !s.is_empty())
}

/// How a task ended that left the queue while its `run.json` still said "never seen to end": from
/// the task's `slurm-%A_%a.out` text and Slurm's remembered state (either may be missing).
pub fn classify_gone(out_text: Option<&str>, state: Option<&str>) -> (Outcome, String) {
    let out = without_requeues(out_text.unwrap_or(""));
    let out = out.as_str();
    let state = state.unwrap_or("");
    if out.contains("DUE TO TIME LIMIT") || state == "TIMEOUT" {
        (
            Outcome::Timeout,
            "Slurm time limit reached (--time); the task was killed".into(),
        )
    } else if out.contains("DUE TO PREEMPTION") || state == "PREEMPTED" {
        (Outcome::Crashed, "preempted by Slurm".into())
    } else if out.contains("oom-kill")
        || out.contains("Exceeded job memory limit")
        || state == "OUT_OF_MEMORY"
    {
        (
            Outcome::Crashed,
            "killed by Slurm: out of memory (--mem)".into(),
        )
    } else if state == "NODE_FAIL" || out.contains("NODE FAILURE") {
        (Outcome::Crashed, "killed by Slurm: node failure".into())
    } else if out.contains("CANCELLED") || state.starts_with("CANCELLED") {
        (
            Outcome::Crashed,
            "cancelled in Slurm (scancel or an administrator)".into(),
        )
    } else {
        (Outcome::Crashed, "killed by Slurm or never started".into())
    }
}

/// For a task whose run ended from outside (`interrupted`, or `crashed` by a signal) and whose
/// `slurm-%A_%a.out` shows that Slurm ended it (time limit, cancel, preemption, OOM kill): the
/// outcome and reason to record instead. `None` leaves the run's own record alone.
pub fn slurm_ended(outcome: Outcome, out_text: Option<&str>) -> Option<(Outcome, String)> {
    let out = without_requeues(out_text?);
    let out = out.as_str();
    let slurm_kill =
        (out.contains("*** JOB") && out.contains("CANCELLED")) || out.contains("oom-kill");
    (matches!(outcome, Outcome::Interrupted | Outcome::Crashed) && slurm_kill)
        .then(|| classify_gone(Some(out), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_tasks_are_classified_from_the_out_file_and_state() {
        let table: &[(Option<&str>, Option<&str>, Outcome, &str)] = &[
            (
                Some("slurmstepd: error: *** JOB 7 ON n1 CANCELLED AT 2026 DUE TO TIME LIMIT ***"),
                None,
                Outcome::Timeout,
                "time limit",
            ),
            (None, Some("TIMEOUT"), Outcome::Timeout, "time limit"),
            (
                Some("*** JOB 7 ON n1 CANCELLED AT 2026 DUE TO PREEMPTION ***"),
                None,
                Outcome::Crashed,
                "preempted",
            ),
            (
                Some("slurmstepd: error: Detected 1 oom-kill event(s)"),
                None,
                Outcome::Crashed,
                "out of memory",
            ),
            (
                Some("*** JOB 7 ON n1 CANCELLED AT 2026 ***"),
                Some("CANCELLED"),
                Outcome::Crashed,
                "cancelled",
            ),
            (None, Some("NODE_FAIL"), Outcome::Crashed, "node failure"),
            (
                None,
                None,
                Outcome::Crashed,
                "killed by Slurm or never started",
            ),
            (
                Some(""),
                Some("COMPLETED"),
                Outcome::Crashed,
                "killed by Slurm or never started",
            ),
        ];
        for (out, st, want, why) in table {
            let (o, reason) = classify_gone(*out, *st);
            assert_eq!(o, *want, "{out:?} {st:?}");
            assert!(reason.contains(why), "{reason} should mention {why}");
        }
    }

    #[test]
    fn slurm_kills_override_only_runs_ended_from_outside() {
        let t = Some("slurmstepd: error: *** JOB 1 ON x CANCELLED AT y DUE TO TIME LIMIT ***");
        assert_eq!(
            slurm_ended(Outcome::Interrupted, t).map(|x| x.0),
            Some(Outcome::Timeout)
        );
        assert_eq!(slurm_ended(Outcome::Completed, t), None);
        assert_eq!(
            slurm_ended(Outcome::Interrupted, Some("run-one: index 0")),
            None
        );
        let c = Some("slurmstepd: error: *** JOB 1 ON x CANCELLED AT y ***");
        assert_eq!(
            slurm_ended(Outcome::Interrupted, c).map(|x| x.0),
            Some(Outcome::Crashed)
        );
    }

    #[test]
    fn squeue_lines_parse() {
        let m = parse_squeue(
            "12_0|RUNNING|None|/r/slurm/array-000-000.sbatch\n12_1|PENDING|PartitionConfig|/a|b.sbatch\n\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m["12_1"].state, "PENDING");
        assert_eq!(m["12_1"].reason, "PartitionConfig");
        assert_eq!(m["12_1"].command, "/a|b.sbatch");
        assert_eq!(m["12_0"].command, "/r/slurm/array-000-000.sbatch");
        assert!(never_starts("PartitionConfig") && !never_starts("Priority"));
        assert!(never_starts("ReqNodeNotAvail, UnavailableNodes:n[1-4]"));
        assert!(!never_starts("ReqNodeNotAvail, Reserved for maintenance"));
    }

    #[test]
    fn a_requeue_line_is_not_how_the_task_ended() {
        let out = "*** JOB 5 ON n1 CANCELLED AT 2026-11-26T08:00:00 DUE TO JOB REQUEUE ***\nrun-one: index 0\n";
        assert_eq!(slurm_ended(Outcome::Completed, Some(out)), None);
        assert_eq!(slurm_ended(Outcome::Crashed, Some(out)), None);
        let (o, why) = classify_gone(Some(out), None);
        assert_eq!(o, Outcome::Crashed);
        assert!(why.contains("never started"), "{why}");
    }
}
