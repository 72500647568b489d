//! Command-line types (clap derive only; the commands live in `commands/`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Declarative TD3 stability sweeps: train variants in parallel, classify PASS / INVESTIGATE / FAIL,
/// and render a VALIDATION report.
///
/// Exit codes (declared in `src/results/exit.rs`): 0 every group PASS · 10 some group INVESTIGATE
/// or FLAKY (FLAKY: PASS mixed with INVESTIGATE seeds) · 11 some group FAIL (any FAIL seed fails its group) · 12 some group not
/// finished (seeds pending or interrupted) and none FAIL · 2 bad input · 1 other errors · 130
/// interrupted. `train` alone: 0 completed, 1 crashed, 3 diverged, 4 stopped by fail-fast, 5 ended
/// because its sweep died, 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "td3-sweep", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the libtorch version, whether CUDA is available, and every GPU.
    Devices,
    /// Train one TD3 agent and write metrics.csv, run.json and config.yaml.
    Train(TrainArgs),
    /// Expand a sweep file into runs, train them in parallel, classify them and write the report.
    Sweep(SweepArgs),
    /// Check sweep files without running anything.
    Validate(ValidateArgs),
    /// Re-classify a results folder's stored CSVs and re-render its report (no training).
    Report(ReportArgs),
    /// Run one planned run of a sweep (what each Slurm array task executes).
    #[command(hide = true)]
    RunOne(RunOneArgs),
    /// Run an external trainer as one run of a sweep (the child a sweep with `trainer:` starts).
    #[command(hide = true)]
    External(ExternalArgs),
}

impl Command {
    /// Commands that only print (no child processes, nothing to leave half-done), which may end
    /// quietly when their output pipe closes.
    pub fn only_prints(&self) -> bool {
        match self {
            Command::Devices | Command::Validate(_) | Command::Report(_) => true,
            Command::Sweep(a) => a.dry_run,
            Command::Train(_) | Command::RunOne(_) | Command::External(_) => false,
        }
    }
}

/// `td3-sweep train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Agent config (YAML).
    #[arg(long, default_value = "configs/td3.yaml")]
    pub config: PathBuf,
    /// Override a config key: `--set networks.cnn.actor_cnn_lr=1e-5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Environment steps (overrides training.steps).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
    pub steps: Option<u64>,
    /// Seed (overrides seed); 0 to 2^63-1, as in the config file.
    #[arg(long, value_parser = clap::value_parser!(u64).range(..=i64::MAX as u64))]
    pub seed: Option<u64>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub threads: Option<i32>,
    /// Criteria file: when a FAIL becomes certain, write `evidence.csv` (and stop with `--stop-on-fail`).
    #[arg(long)]
    pub criteria: Option<PathBuf>,
    /// With `--criteria`: end the run as soon as its FAIL is certain (outcome `stopped`), or only
    /// record the evidence (`false`). Default: the criteria's `stop_on_fail` (true unless set).
    #[arg(long, requires = "criteria", value_name = "BOOL")]
    pub stop_on_fail: Option<bool>,
    /// Continue from this checkpoint folder (e.g. `RUN/checkpoint`); an error if it is missing or
    /// unusable. Without it, `OUT/checkpoint` is resumed automatically when it was written by the
    /// same config (steps aside) and is short of `training.steps`.
    #[arg(long, value_name = "DIR", conflicts_with = "fresh")]
    pub resume: Option<PathBuf>,
    /// Start from zero even if `OUT/checkpoint` could be resumed.
    #[arg(long)]
    pub fresh: bool,
    /// Write `OUT/checkpoint` when the run completes (ladder stage ends do this).
    #[arg(long)]
    pub checkpoint_at_end: bool,
    /// Identity and bookkeeping set by the sweep scheduler.
    #[command(flatten)]
    pub child: ChildArgs,
}

/// `td3-sweep external` (hidden): the harness around one external trainer run.
#[derive(Debug, Args)]
pub struct ExternalArgs {
    /// The run folder; its `trainer.json` says how to run the trainer.
    #[arg(long)]
    pub run_dir: PathBuf,
    /// The run's config hash, as the plan has it.
    #[arg(long, default_value = "")]
    pub config_hash: String,
    /// The run's seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Criteria file for fail-fast and `evidence.csv`.
    #[arg(long)]
    pub criteria: Option<PathBuf>,
    /// With `--criteria`: end the trainer once its FAIL is certain (default: the criteria's own).
    #[arg(long, requires = "criteria", value_name = "BOOL")]
    pub stop_on_fail: Option<bool>,
    /// Threads the slot gives the run (reaches the trainer as `OMP_NUM_THREADS`).
    #[arg(long)]
    pub threads: Option<i32>,
    /// Identity and bookkeeping set by the sweep scheduler.
    #[command(flatten)]
    pub child: ChildArgs,
}

/// Flags the scheduler passes to its child processes. Hidden from users.
#[derive(Debug, Args, Default)]
pub struct ChildArgs {
    #[arg(long, hide = true, default_value = "")]
    pub run_id: String,
    #[arg(long, hide = true, default_value = "baseline")]
    pub variant: String,
    /// `key=value` of each swept key.
    #[arg(long = "swept", hide = true)]
    pub swept: Vec<String>,
    /// `key=value` of each override the sweep applied to the base config (sweep `set`, variant
    /// `set`, grid), recorded in run.json; the config file the child trains from already has them.
    #[arg(long = "override", hide = true)]
    pub overrides: Vec<String>,
    #[arg(long, hide = true, default_value = "")]
    pub command_line: String,
    /// Print machine-readable progress lines (`@@progress {json}`) on stdout.
    #[arg(long, hide = true)]
    pub progress: bool,
    /// End the run (outcome interrupted) when stdin closes, i.e. when the parent sweep dies.
    #[arg(long, hide = true)]
    pub watch_stdin: bool,
}

/// What `--rerun` retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rerun {
    /// Crashed, timed-out, interrupted and diverged runs.
    Failed,
    /// Every run.
    All,
}

/// `td3-sweep sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The sweep file.
    pub file: PathBuf,
    /// Print the expanded plan (run ids, overrides, learning rates, slots) and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Parallel runs (overrides the slots computed from `resources`).
    #[arg(long, value_parser = at_least_one)]
    pub jobs: Option<usize>,
    /// Retry runs that already ended.
    #[arg(long, value_enum)]
    pub rerun: Option<Rerun>,
    /// Confirm sweeps with more than 1,000 runs.
    #[arg(long)]
    pub yes: bool,
    /// Where results go (a folder per sweep name is created inside).
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Report template overriding the embedded one.
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Also write JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Render the report without the date, git commit and run durations (see `report --stable`).
    #[arg(long)]
    pub stable: bool,
    /// Where runs execute: child processes here, or Slurm job arrays (see docs/slurm.md).
    /// Default: the spec's `backend:`, else local.
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// With `--backend slurm`: write the sbatch scripts under `results/<name>/slurm/` but submit nothing.
    #[arg(long)]
    pub no_submit: bool,
    /// Slurm options (`--backend slurm` only).
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

/// Where a sweep's runs execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Backend {
    /// Child processes on this machine's device slots.
    #[default]
    Local,
    /// Slurm job arrays, one array task per run.
    Slurm,
}

/// `--slurm-*` flags; each overrides the same key of the spec's `slurm:` section.
#[derive(Debug, Args, Default, Clone)]
pub struct SlurmArgs {
    /// sbatch `--partition`.
    #[arg(long, value_name = "NAME")]
    pub slurm_partition: Option<String>,
    /// sbatch `--account`.
    #[arg(long, value_name = "NAME")]
    pub slurm_account: Option<String>,
    /// sbatch `--time` per array task, e.g. `30` (minutes), `2:00:00`, `1-00:00:00`.
    #[arg(long, value_name = "TIME")]
    pub slurm_time: Option<String>,
    /// sbatch `--gres`, e.g. `gpu:1`.
    #[arg(long, value_name = "GRES")]
    pub slurm_gres: Option<String>,
    /// sbatch `--cpus-per-task` (also the run's libtorch threads).
    #[arg(long, value_name = "N")]
    pub slurm_cpus_per_task: Option<u32>,
    /// sbatch `--mem`, e.g. `4G`.
    #[arg(long, value_name = "MEM")]
    pub slurm_mem: Option<String>,
    /// At most this many array tasks of a chunk run at once (`--array=...%N`).
    #[arg(long, value_name = "N")]
    pub slurm_max_parallel: Option<u32>,
    /// An extra `#SBATCH` line, e.g. `--qos=short` (repeatable).
    #[arg(long, value_name = "SBATCH_OPTION")]
    pub slurm_extra: Vec<String>,
}

/// `td3-sweep run-one` (hidden): the body of one Slurm array task.
#[derive(Debug, Args)]
pub struct RunOneArgs {
    /// The sweep's stored copy, `results/<name>/sweep.yaml` (`plan.json` beside it says what to run).
    #[arg(long)]
    pub sweep: PathBuf,
    /// The run's index in the plan (global; the array script maps its chunk-local task id to it).
    #[arg(long)]
    pub index: usize,
    /// The plan to read instead of `plan.json` beside `--sweep` (a ladder stage's own plan).
    #[arg(long)]
    pub plan: Option<PathBuf>,
}

/// `td3-sweep validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Sweep files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// `td3-sweep report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A sweep's results folder (`results/<name>`).
    pub dir: PathBuf,
    /// Report template overriding the embedded one.
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Criteria file overriding the ones stored with the results.
    #[arg(long)]
    pub criteria: Option<PathBuf>,
    /// Also write JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Leave out the date, git commit and run durations, so that the report of the same results
    /// renders identically later (for snapshot tests in CI).
    #[arg(long)]
    pub stable: bool,
}

/// A count that must be 1 or more (`--jobs`).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}
