//! The typed paths of a results folder: every file name under `results/<name>/` is spelled here.

use std::path::{Path, PathBuf};

use super::record::RunRecord;

/// `results/<name>/`: one sweep's results folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultsDir(PathBuf);

impl ResultsDir {
    /// The results folder at `path` (nothing is created).
    pub fn new(path: impl Into<PathBuf>) -> ResultsDir {
        ResultsDir(path.into())
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Whether the folder is a results folder: it has a `runs/` folder.
    pub fn exists(&self) -> bool {
        self.runs().is_dir()
    }

    /// `runs/`: one folder per run, named by run id.
    pub fn runs(&self) -> PathBuf {
        self.0.join("runs")
    }

    /// `runs/<id>/`.
    pub fn run(&self, run_id: &str) -> RunDir {
        RunDir(self.runs().join(run_id))
    }

    /// `repro/<id>/`: where a run's reproduction command writes, beside the sweep's runs and never
    /// over them.
    pub fn repro(&self, run_id: &str) -> PathBuf {
        self.0.join("repro").join(run_id)
    }

    /// `summary.csv`: one row per planned run, for people.
    pub fn summary_csv(&self) -> PathBuf {
        self.0.join("summary.csv")
    }

    /// `plan.json`: the plan manifest (see [`super::plan`]).
    pub fn plan_json(&self) -> PathBuf {
        self.0.join(super::plan::PLAN_FILE)
    }

    /// `ladder.json`: a ladder's state (see [`super::ladder`]).
    pub fn ladder_json(&self) -> PathBuf {
        self.0.join("ladder.json")
    }

    /// `.lock`: held by the sweep writing the folder (see [`super::lock`]).
    pub fn lock(&self) -> PathBuf {
        self.0.join(".lock")
    }

    /// `sweep.yaml`: the sweep file as it was when the sweep last ran.
    pub fn sweep_yaml(&self) -> PathBuf {
        self.0.join("sweep.yaml")
    }

    /// `criteria.yaml`: the criteria the sweep ran with, which `report` classifies with again.
    pub fn criteria_yaml(&self) -> PathBuf {
        self.0.join("criteria.yaml")
    }

    /// `VALIDATION_<sweep>.md`: the report.
    pub fn report_md(&self, sweep: &str) -> PathBuf {
        self.0.join(format!("VALIDATION_{sweep}.md"))
    }

    /// `plots/`: the report's SVG plots.
    pub fn plots(&self) -> PathBuf {
        self.0.join("plots")
    }

    /// `plots/<name>.svg`.
    pub fn plot(&self, name: &str) -> PathBuf {
        self.plots().join(format!("{name}.svg"))
    }

    /// `slurm/` (the sweep's own Slurm files) or `slurm/<stage>/` (a ladder stage's).
    pub fn slurm(&self, stage: Option<&str>) -> SlurmDir {
        let root = self.0.join("slurm");
        SlurmDir(match stage {
            Some(s) => root.join(s),
            None => root,
        })
    }
}

/// `runs/<id>/`: one run's folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunDir(PathBuf);

impl RunDir {
    /// The run folder at `path` (a stand-alone `train --out` folder, or one under `runs/`).
    pub fn new(path: impl Into<PathBuf>) -> RunDir {
        RunDir(path.into())
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `run.json`: the run record.
    pub fn run_json(&self) -> PathBuf {
        self.0.join("run.json")
    }

    /// `metrics.csv`: one row per logging window.
    pub fn metrics_csv(&self) -> PathBuf {
        self.0.join("metrics.csv")
    }

    /// `evidence.csv`: the last training steps before a divergence or a certain FAIL.
    pub fn evidence_csv(&self) -> PathBuf {
        self.0.join("evidence.csv")
    }

    /// `events.out.tfevents.td3-sweep`: the run's metrics for TensorBoard (see
    /// [`super::tensorboard`]).
    pub fn events_file(&self) -> PathBuf {
        self.0.join(super::tensorboard::EVENTS_FILE)
    }

    /// `config.yaml`: the resolved config the run trains with.
    pub fn config_yaml(&self) -> PathBuf {
        self.0.join("config.yaml")
    }

    /// `stdout.log`: the child's stdout, progress lines included.
    pub fn stdout_log(&self) -> PathBuf {
        self.0.join("stdout.log")
    }

    /// `stderr.log`: the child's stderr.
    pub fn stderr_log(&self) -> PathBuf {
        self.0.join("stderr.log")
    }

    /// `trainer.json`: an external run's invocation ([`super::trainer::Invocation`]).
    pub fn trainer_json(&self) -> PathBuf {
        self.0.join("trainer.json")
    }

    /// `trainer_metrics.csv`: the CSV an external trainer appends to (`TD3SWEEP_METRICS`), in
    /// its own columns; the harness maps it into `metrics.csv`.
    pub fn trainer_metrics(&self) -> PathBuf {
        self.0.join("trainer_metrics.csv")
    }

    /// `checkpoint/`: the run's resumable checkpoint (its files are `train::checkpoint`'s).
    pub fn checkpoint(&self) -> PathBuf {
        self.0.join("checkpoint")
    }

    /// The run's record, or `None` when `run.json` is missing or unreadable.
    pub fn read_record(&self) -> Option<RunRecord> {
        std::fs::read_to_string(self.run_json())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
    }

    /// Writes the run's record to `run.json`, atomically: the one writer of that file (the run
    /// itself, the scheduler that watched it end, and Slurm settling all go through it).
    pub fn write_record(&self, rec: &RunRecord) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(rec).map_err(std::io::Error::other)?;
        super::write_atomic(&self.run_json(), text.as_bytes())
    }
}

/// `slurm/` or `slurm/<stage>/`: the Slurm backend's scripts, plans, jobs and task outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmDir(PathBuf);

impl SlurmDir {
    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `plan.json`: a ladder stage's plan (the sweep's own plan is the results folder's).
    pub fn plan_json(&self) -> PathBuf {
        self.0.join(super::plan::PLAN_FILE)
    }

    /// `plan-<n>.json`: the copy of the plan submission `n` reads, so its queued tasks keep their
    /// numbering when a later version of the sweep rewrites `plan.json`.
    pub fn submission_plan(&self, submission: usize) -> PathBuf {
        self.0.join(format!("plan-{submission:03}.json"))
    }

    /// `jobs.json`: every submission.
    pub fn jobs_json(&self) -> PathBuf {
        self.0.join("jobs.json")
    }

    /// `array-<submission>-<chunk>.sbatch`.
    pub fn script(&self, submission: usize, chunk: usize) -> PathBuf {
        self.0
            .join(format!("array-{submission:03}-{chunk:03}.sbatch"))
    }

    /// `slurm-<job>_<task>.out`: one task's Slurm output.
    pub fn task_out(&self, task: &str) -> PathBuf {
        self.0.join(format!("slurm-{task}.out"))
    }

    /// The task (`<job>_<task>`) a file name names, when it is a task output.
    pub fn task_of(file_name: &str) -> Option<&str> {
        file_name.strip_prefix("slurm-")?.strip_suffix(".out")
    }

    /// The `--output` pattern of an array script: [`SlurmDir::task_out`] with Slurm's
    /// placeholders.
    pub fn task_out_pattern(&self) -> PathBuf {
        self.task_out("%A_%a")
    }
}
