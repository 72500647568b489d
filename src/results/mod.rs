//! The results folder, `results/<name>/`: its one owner.
//!
//! Every file under a results folder is written by this module and read through it: the typed
//! paths ([`ResultsDir`], [`RunDir`]), the one atomic writer ([`write_atomic`]), each run's record
//! (`run.json`) and metrics (`metrics.csv`, `evidence.csv`, one column table), the plan manifest
//! (`plan.json`), the human summary (`summary.csv`), the ladder state (`ladder.json`), the lock
//! (`.lock`), each run's TensorBoard events (`events.out.tfevents.td3-sweep`), the protocol
//! between a sweep and its child runs (exit codes, progress lines, the Slurm task key), and an
//! external trainer's invocation and environment (`trainer.json`). It depends on nothing above
//! it: the scheduler, the judge, the report and the commands use it, never the other way round.

mod atomic;
pub mod exit;
pub mod ladder;
pub mod load;
pub mod lock;
pub mod metrics;
mod paths;
pub mod plan;
pub mod protocol;
mod record;
pub mod summary;
pub mod tensorboard;
pub mod trainer;

pub use atomic::write_atomic;
pub use ladder::{GroupId, LadderState};
pub use load::{load_run, load_runs, LoadedRun, LoadedRuns};
pub use metrics::{
    parse_metrics, parse_metrics_all, read_metrics, Metric, MetricRow, MetricsError, MetricsWriter,
    ParsedMetrics, COLUMNS,
};
pub use paths::{ResultsDir, RunDir, SlurmDir};
pub use plan::{Plan, PlanError, Planned, PlannedRun};
pub use record::{printable, Outcome, RunRecord, LIBTORCH_VERSION, PLACEHOLDER_REASON};
