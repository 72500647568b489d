//! `td3-sweep external` (hidden): one run of an external trainer, under the harness
//! ([`crate::harness`]). The exit code encodes the outcome as `train`'s does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::cli::ExternalArgs;
use crate::harness::{run as run_harness, HarnessOptions};
use crate::results::trainer::Invocation;
use crate::results::{exit, Outcome, RunDir, RunRecord};

/// Runs the trainer `RUN_DIR/trainer.json` describes and records its outcome.
pub fn run(args: ExternalArgs) -> anyhow::Result<i32> {
    let dir = RunDir::new(&args.run_dir);
    let inv = Invocation::read(&dir.trainer_json())
        .with_context(|| format!("reading {}", dir.trainer_json().display()))?;
    let criteria = match &args.criteria {
        Some(p) => Some(crate::verdict::load_criteria(p)?),
        None => None,
    };
    let stop_on_fail = args
        .stop_on_fail
        .unwrap_or_else(|| criteria.as_ref().is_some_and(|c| c.stop_on_fail));
    let interrupt = Arc::new(AtomicBool::new(false));
    let i = interrupt.clone();
    // SIGINT, SIGTERM and SIGHUP end the trainer gracefully (its group gets SIGTERM).
    let _ = ctrlc::set_handler(move || i.store(true, Ordering::SeqCst));
    let orphaned = Arc::new(AtomicBool::new(false));
    if args.child.watch_stdin {
        // The sweep is gone (possibly SIGKILLed): its trainer must not stay.
        let o = orphaned.clone();
        crate::schedule::process::on_parent_gone(move || o.store(true, Ordering::SeqCst));
    }
    let mut identity = RunRecord::placeholder(
        &crate::results::PlannedRun {
            index: 0,
            run_id: args.child.run_id.clone(),
            variant: args.child.variant.clone(),
            seed: args.seed,
            swept: args
                .child
                .swept
                .iter()
                .filter_map(|s| s.split_once('='))
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            steps: inv.steps,
            config_hash: args.config_hash.clone(),
            run_dir: args.run_dir.clone(),
            args: Vec::new(),
            command: String::new(),
            timeout: None,
            stall_timeout: None,
        },
        Outcome::Crashed,
        None,
        0.0,
    );
    identity.overrides = Some(
        args.child
            .overrides
            .iter()
            .filter_map(|s| s.split_once('='))
            .map(|(k, v)| (k.trim().into(), v.trim().into()))
            .collect(),
    );
    identity.git_commit = crate::train::run::git_commit();
    identity.q_bound = inv.q_bound;
    if let Some(t) = args.threads {
        identity.extra.insert("threads".into(), t.to_string());
    }
    identity.extra.insert("trainer".into(), "external".into());
    let opts = HarnessOptions {
        dir,
        identity,
        criteria,
        stop_on_fail,
        progress: args.child.progress,
        interrupt,
        orphaned: orphaned.clone(),
        grace: harness_grace(),
    };
    let rec = run_harness(&inv, &opts)?;
    crate::say!(
        "{}: {} after {}/{} steps in {:.1} s{}",
        args.run_dir.display(),
        rec.outcome,
        rec.steps_done,
        rec.steps_planned,
        rec.wall_s,
        rec.reason
            .as_deref()
            .map(|r| format!(" - {r}"))
            .unwrap_or_default()
    );
    if orphaned.load(Ordering::SeqCst) {
        return Ok(exit::ORPHANED);
    }
    Ok(exit::of_outcome(rec.outcome))
}

/// SIGTERM to SIGKILL for the trainer: a little under the grace the sweep gives this process
/// (`TD3_SWEEP_KILL_GRACE_S`, default 10 s), so the trainer's group is ended before the sweep
/// would have to kill the harness itself.
fn harness_grace() -> Duration {
    crate::schedule::process::kill_grace().mul_f64(0.8)
}
