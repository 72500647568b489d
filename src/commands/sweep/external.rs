//! The sweep side of external trainers: each run's invocation (placeholders filled, `TD3SWEEP_*`
//! environment), its `external` child job, and its lines in `--dry-run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::results::trainer::{
    shell_quote, Invocation, ENV_CONFIG, ENV_METRICS, ENV_RESUME_FROM, ENV_RUN_DIR, ENV_RUN_ID,
    ENV_SEED, ENV_STEPS,
};
use crate::results::{PlannedRun, ResultsDir, RunDir};
use crate::schedule::{Slot, SlotDevice};
use crate::spec::trainer::fill;
use crate::spec::{RunPlan, SweepSpec, TrainerSpec};

/// `p` as an absolute path (the trainer runs in its own folder, so relative paths would break).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// How the harness runs `run`'s trainer for `steps` steps in `dir`; `resume_from`: the folder it
/// continues from (a ladder stage with `trainer.resume`).
pub(super) fn invocation(
    trainer: &TrainerSpec,
    run: &RunPlan,
    dir: &RunDir,
    steps: u64,
    resume_from: Option<&Path>,
) -> Invocation {
    let config = absolute(&dir.config_yaml()).display().to_string();
    let run_dir = absolute(dir.path()).display().to_string();
    let metrics = absolute(&dir.trainer_metrics()).display().to_string();
    let values: BTreeMap<&str, String> = [
        ("config", config.clone()),
        ("run_dir", run_dir.clone()),
        ("seed", run.seed.to_string()),
        ("steps", steps.to_string()),
        ("run_id", run.run_id.clone()),
    ]
    .into_iter()
    .collect();
    // Placeholders were checked when the sweep was loaded.
    let filled = |s: &String| fill(s, &values).unwrap_or_else(|_| s.clone());
    let mut env: BTreeMap<String, String> = trainer
        .env
        .iter()
        .map(|(k, v)| (k.clone(), filled(v)))
        .collect();
    env.extend([
        (ENV_CONFIG.to_string(), config),
        (ENV_RUN_DIR.to_string(), run_dir),
        (ENV_SEED.to_string(), run.seed.to_string()),
        (ENV_STEPS.to_string(), steps.to_string()),
        (ENV_RUN_ID.to_string(), run.run_id.clone()),
        (ENV_METRICS.to_string(), metrics),
    ]);
    if let Some(p) = resume_from {
        env.insert(
            ENV_RESUME_FROM.to_string(),
            absolute(p).display().to_string(),
        );
    }
    Invocation {
        argv: trainer.command.iter().map(filled).collect(),
        workdir: absolute(&trainer.workdir),
        env,
        metrics: trainer.metrics.clone(),
        steps,
        q_bound: trainer.q_bound,
    }
}

/// The `external` child's job for `run`: the harness runs the trainer `trainer.json` describes.
pub(super) fn job(
    spec: &SweepSpec,
    trainer: &TrainerSpec,
    run: &RunPlan,
    results: &ResultsDir,
    resume_from: Option<&Path>,
) -> PlannedRun {
    let dir = results.run(&run.run_id);
    let steps = run.config.steps();
    let inv = invocation(trainer, run, &dir, steps, resume_from);
    let command = inv.shell_line();
    let head = vec![
        "external".into(),
        "--run-dir".into(),
        dir.path().display().to_string(),
        "--config-hash".into(),
        run.config_hash.clone(),
        "--seed".into(),
        run.seed.to_string(),
    ];
    super::planned(spec, run, results, head, command)
}

/// `--dry-run`'s lines for one external run: the command line and the environment it gets.
pub(super) fn print_run(
    spec: &SweepSpec,
    trainer: &TrainerSpec,
    run: &RunPlan,
    results: &ResultsDir,
    slot: &Slot,
) {
    let dir = results.run(&run.run_id);
    // A ladder's first stage: later stages differ in {steps} (and TD3SWEEP_RESUME_FROM).
    let steps = spec.stages.first().map_or(run.config.steps(), |s| s.steps);
    let inv = invocation(trainer, run, &dir, steps, None);
    if !spec.stages.is_empty() {
        crate::say!(
            "      (stage `{}`; each later stage runs it again with its own steps)",
            spec.stages[0].name
        );
    }
    crate::say!("      workdir {}", inv.workdir.display());
    crate::say!(
        "      command {}",
        inv.argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (k, v) in &inv.env {
        crate::say!("      env     {k}={}", shell_quote(v));
    }
    let gpu = match slot.device {
        SlotDevice::Gpu(g) => g.to_string(),
        SlotDevice::Cpu => String::new(),
    };
    crate::say!(
        "      env     CUDA_VISIBLE_DEVICES={} OMP_NUM_THREADS={} (from the slot that runs it)",
        shell_quote(&gpu),
        slot.threads
    );
}
