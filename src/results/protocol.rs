//! The protocol between a sweep and its child runs, besides the exit codes ([`super::exit`]):
//! the progress lines a `train` child prints, the `run.json` key naming the Slurm task that
//! wrote a record, and the first line of a Slurm task's output.

use serde::{Deserialize, Serialize};

use super::MetricRow;

/// Prefix of the machine-readable progress lines a child prints on stdout.
pub const PROGRESS_PREFIX: &str = "@@progress ";

/// Prefix of the line an external run's harness prints once it started the trainer, with the
/// trainer's process group id: the sweep ends that group too if it has to kill the harness.
pub const TRAINER_PGID_PREFIX: &str = "@@trainer-pgid ";

/// The process group an `@@trainer-pgid` line names.
pub fn trainer_pgid(line: &str) -> Option<u32> {
    line.strip_prefix(TRAINER_PGID_PREFIX)?.trim().parse().ok()
}

/// The `run.json` `extra` key naming the Slurm array task (`<job>_<task>`) that wrote the record.
pub const SLURM_TASK_KEY: &str = "slurm_task";

/// A child's progress line (`@@progress {json}`): its latest metrics row and the steps planned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Environment steps planned for the run.
    pub steps: u64,
    /// The row just written to `metrics.csv`.
    #[serde(flatten)]
    pub row: MetricRow,
}

impl Progress {
    /// The line a child prints (without a newline).
    pub fn line(&self) -> String {
        format!(
            "{PROGRESS_PREFIX}{}",
            serde_json::to_string(self).unwrap_or_default()
        )
    }

    /// The progress a line of a child's stdout carries; `None` for any other line.
    pub fn parse(line: &str) -> Option<Progress> {
        serde_json::from_str(line.strip_prefix(PROGRESS_PREFIX)?).ok()
    }
}

/// The first line `run-one` prints into its Slurm task's output: it names the run, which is how
/// a task nobody watched (one submitted by hand, say) is matched to its run afterwards.
pub fn task_banner(index: usize, run_id: &str, slot: &dyn std::fmt::Display) -> String {
    format!("run-one: index {index} = {run_id} on {slot}")
}

/// The run id a Slurm task's output names in its [`task_banner`], if it has one.
pub fn run_of_task_output(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix("run-one: index ")?;
        let (_, rest) = rest.split_once(" = ")?;
        Some(rest.split(" on ").next()?.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_round_trip_and_other_lines_are_not_progress() {
        let p = Progress {
            steps: 100,
            row: MetricRow {
                env_step: 40,
                train_step: 20,
                q_abs_max: Some(f64::NAN),
                actor_cnn_grad_norm: Some(3.5),
                ..Default::default()
            },
        };
        let back = Progress::parse(&p.line()).unwrap();
        assert_eq!(back.steps, 100);
        assert_eq!(back.row.env_step, 40);
        assert_eq!(back.row.actor_cnn_grad_norm, Some(3.5));
        assert_eq!(back.row.q_abs_max, None, "JSON has no NaN: not measured");
        assert_eq!(Progress::parse("step 40/100"), None);
    }

    #[test]
    fn a_task_output_names_its_run() {
        let banner = task_banner(3, "a__s0__abc", &"slot 0 (cpu, 1 thread)");
        let out = format!("{banner}\nrun-one: a__s0__abc completed\n");
        assert_eq!(run_of_task_output(&out).as_deref(), Some("a__s0__abc"));
        assert_eq!(run_of_task_output("slurmstepd: error"), None);
    }
}
