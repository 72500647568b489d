//! `td3-sweep run-one` (hidden): the body of one Slurm array task.
//!
//! It looks the run up in `plan.json` beside the stored `sweep.yaml` (or the stage plan `--plan`
//! names, for a ladder) and runs exactly the `train`
//! child the local backend would, through the same [`ProcessExecutor`], so the run folder gets the
//! same files: `stdout.log`, `stderr.log`, `metrics.csv` and a final `run.json` (crashed, with the
//! stderr tail, when the child dies).

use std::sync::mpsc::channel;
use std::time::Duration;

use anyhow::Context;

use super::BadInput;
use crate::cli::RunOneArgs;
use crate::results::plan::{file_sha256, PLAN_FILE};
use crate::results::protocol::task_banner;
use crate::results::{exit, Plan};
use crate::schedule::process::ProcessExecutor;
use crate::schedule::{Control, Executor, Slot, SlotDevice};

/// Where the run goes: the first GPU Slurm granted (`CUDA_VISIBLE_DEVICES`), else the CPU.
fn device(cpu_only: bool) -> SlotDevice {
    if cpu_only {
        return SlotDevice::Cpu;
    }
    std::env::var("CUDA_VISIBLE_DEVICES")
        .ok()
        .and_then(|v| v.split(',').next().and_then(|g| g.trim().parse().ok()))
        .map(SlotDevice::Gpu)
        .unwrap_or(SlotDevice::Cpu)
}

/// Runs plan entry `--index`; the exit code is the `train` child's ([`exit::of_outcome`]: a
/// timeout is an error too) so Slurm's job state is telling.
pub fn run(args: RunOneArgs) -> anyhow::Result<i32> {
    let dir = args
        .sweep
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let results = crate::results::ResultsDir::new(dir);
    let plan_path = args.plan.clone().unwrap_or_else(|| results.plan_json());
    let mut plan = Plan::read(&plan_path)?;
    let Some(task) = plan.runs.iter().find(|r| r.index == args.index) else {
        return Err(BadInput(format!(
            "{}: no run with index {}",
            plan_path.display(),
            args.index
        ))
        .into());
    };
    let mut job = task.clone();
    let sweep_sha = file_sha256(&args.sweep)?;
    if sweep_sha != plan.sweep_sha256 {
        // The sweep was edited and run again since this task was submitted. Its run is still
        // wanted if the current plan (rewritten by that run) has the same run id: the same
        // config, so the same run; it then runs as the current plan says (timeout, criteria).
        // A run the edit dropped is not trained.
        let current_path = [plan_path.with_file_name(PLAN_FILE), results.plan_json()]
            .into_iter()
            .find(|p| p.is_file() && *p != plan_path);
        // By run id alone: the id holds the config's hash, so any plan that has it trains the
        // same run (the new sweep.yaml lands a moment before the new plan.json).
        let current = current_path.as_deref().and_then(|p| Plan::read(p).ok());
        match current.and_then(|c| {
            let j = c.runs.iter().find(|r| r.run_id == job.run_id).cloned()?;
            Some((c, j))
        }) {
            Some((c, j)) => {
                crate::say!(
                    "run-one: {} changed since this task was submitted; {} is still in its plan",
                    args.sweep.display(),
                    j.run_id
                );
                plan = c;
                job = j;
            }
            None => {
                return Err(BadInput(format!(
                    "{} changed since {} was written, and its current plan has no run {}; nothing to train (run `td3-sweep sweep ... --backend slurm` again)",
                    args.sweep.display(),
                    plan_path.display(),
                    job.run_id
                ))
                .into());
            }
        }
    }
    std::fs::create_dir_all(&job.run_dir)
        .with_context(|| format!("creating {}", job.run_dir.display()))?;
    let threads = std::env::var("SLURM_CPUS_PER_TASK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(plan.threads)
        .max(1);
    let slot = Slot {
        index: 0,
        device: device(plan.cpu_only),
        threads,
    };
    let ctl = Control::default();
    let c = ctl.clone();
    // Slurm ends a task with SIGTERM (scancel, time limit, preemption): end the run gracefully.
    let _ = ctrlc::set_handler(move || {
        c.escalate();
    });
    let exe = std::env::current_exe().context("locating the td3-sweep binary")?;
    let exec = ProcessExecutor {
        program: exe,
        grace: Duration::from_secs(10),
    };
    // Progress lines still go to stdout.log; nobody here displays them live.
    let (tx, rx) = channel();
    drop(rx);
    crate::say!("{}", task_banner(job.index, &job.run_id, &slot));
    let rec = exec.execute(&job, &slot, &ctl, &tx);
    crate::say!(
        "run-one: {} {}{}",
        rec.run_id,
        rec.outcome,
        rec.reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    Ok(exit::of_outcome(rec.outcome))
}
