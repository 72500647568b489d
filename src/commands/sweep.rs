//! `td3-sweep sweep`: validate, plan, schedule child runs, summarise, report.

use std::path::Path;

use anyhow::Context;

mod external;
mod ladder;

use super::report::{generate, ReportOptions};
use super::BadInput;
use crate::cli::{Backend, Rerun, SweepArgs};
use crate::diag::{Diagnostics, Source};
use crate::results::lock::Lock;
use crate::results::plan::file_sha256;
use crate::results::summary::Summary;
use crate::results::trainer::shell_quote;
use crate::results::{
    exit, write_atomic, Outcome, Plan, PlannedRun, ResultsDir, RunDir, RunRecord,
};
use crate::schedule::process::{kill_grace, ProcessExecutor};
use crate::schedule::progress::Display;
use crate::schedule::reconcile::{reconcile, By};
use crate::schedule::slurm::{self, default_time, SlurmEnd, SlurmSweep};
use crate::schedule::{plan_slots, run_jobs, Control, DeviceRequest, Event, Slot};
use crate::spec::{
    CriteriaRef, Devices, RunConfig, RunPlan, SlurmOptions, SweepPlan, SweepSpec, CONFIRM_ABOVE,
};
use crate::verdict::Criteria;

/// Parses the sweep's criteria (default, inline or a file) with located errors.
pub fn load_criteria(spec: &SweepSpec) -> Result<Criteria, Diagnostics> {
    match &spec.criteria {
        CriteriaRef::Default => Ok(Criteria::default_set()),
        CriteriaRef::Inline { node, source } => {
            crate::verdict::parse_criteria(source, node).map_err(Diagnostics)
        }
        CriteriaRef::Path(p) => crate::verdict::load_criteria(p),
    }
}

/// The criteria as YAML text, stored with the results so `report` re-classifies with the same rules.
fn criteria_text(spec: &SweepSpec) -> anyhow::Result<String> {
    Ok(match &spec.criteria {
        CriteriaRef::Default => crate::verdict::DEFAULT_CRITERIA_YAML.to_string(),
        CriteriaRef::Inline { node, .. } => serde_yaml_ng::to_string(&node.to_json())?,
        CriteriaRef::Path(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
    })
}

fn slots_for(spec: &SweepSpec, jobs: Option<usize>) -> Vec<Slot> {
    let req = match &spec.resources.devices {
        Devices::Auto => DeviceRequest::Auto,
        Devices::Cpu => DeviceRequest::Cpu,
        Devices::Gpus(g) => DeviceRequest::Gpus(g.clone()),
    };
    let gpus = tch::Cuda::device_count().max(0) as usize;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    plan_slots(
        &req,
        spec.resources.runs_per_device,
        spec.resources.threads_per_run,
        jobs,
        gpus,
        cores,
    )
}

/// The command that reproduces one run outside the sweep.
fn reproduce_command(spec: &SweepSpec, run: &RunPlan, out: &Path) -> String {
    let mut parts = vec![
        "td3-sweep".to_string(),
        "train".into(),
        "--config".into(),
        spec.base.display().to_string(),
    ];
    for (k, v) in &run.overrides {
        if k == "seed" || k == "training.steps" {
            continue;
        }
        parts.push("--set".into());
        parts.push(format!("{k}={v}"));
    }
    parts.extend(["--seed".into(), run.seed.to_string()]);
    parts.extend(["--steps".into(), run.config.steps().to_string()]);
    // Same intra-op thread count as the sweep gave the run: on CPU that makes the reproduction
    // identical value for value (docs/determinism.md).
    parts.extend([
        "--threads".into(),
        spec.resources.threads_per_run.to_string(),
    ]);
    parts.extend(["--out".into(), out.display().to_string()]);
    parts
        .iter()
        .map(|p| shell_quote(p))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a run with this stored record must be trained (again).
fn needs_run(dir: &RunDir, hash: &str, rerun: Option<Rerun>) -> bool {
    let Some(rec) = dir.read_record() else {
        return true;
    };
    if rec.config_hash != hash || rerun == Some(Rerun::All) {
        return true;
    }
    match rec.outcome {
        // A finished run whose metrics are gone has no evidence left: train it again.
        Outcome::Completed | Outcome::Stopped if metrics_lost(dir, &rec) => {
            eprintln!(
                "note: {}: run.json says {} training steps were done but metrics.csv is missing or has no rows; training it again",
                dir.path().display(),
                rec.train_steps_done
            );
            true
        }
        Outcome::Completed | Outcome::Stopped => false,
        // Never seen to end by a scheduler (the sweep itself was killed): partial, train again.
        Outcome::Interrupted => true,
        Outcome::Crashed if rec.ended_unobserved() => true,
        Outcome::Crashed | Outcome::Timeout | Outcome::Diverged => rerun == Some(Rerun::Failed),
    }
}

/// Says when some of the runs a resume skips ended crashed, timed out or diverged: a plain rerun
/// keeps those outcomes (the timeout and criteria are not part of a run's identity), which is
/// right after a fix elsewhere only if the user asks for it.
fn note_failed_but_done(plan: &SweepPlan, results: &ResultsDir, to_run: &[usize]) {
    let failed: Vec<String> = plan
        .runs
        .iter()
        .filter(|r| !to_run.contains(&r.index))
        .filter_map(|r| {
            let rec = results.run(&r.run_id).read_record()?;
            matches!(
                rec.outcome,
                Outcome::Crashed | Outcome::Timeout | Outcome::Diverged
            )
            .then(|| format!("{} ({})", r.run_id, rec.outcome))
        })
        .collect();
    if !failed.is_empty() {
        eprintln!(
            "note: {} of the runs already done ended badly and are kept as they are: {}; `--rerun failed` trains them again (e.g. after raising `timeout:`)",
            failed.len(),
            failed.join(", ")
        );
    }
}

/// True when a run that trained (`train_steps_done > 0`) has no metric rows on disk: the training
/// loop always writes a row on its last step, so the file was deleted or truncated since.
fn metrics_lost(dir: &RunDir, rec: &RunRecord) -> bool {
    if rec.train_steps_done == 0 {
        return false;
    }
    match std::fs::read_to_string(dir.metrics_csv()) {
        Ok(text) => text.lines().skip(1).all(|l| l.trim().is_empty()),
        Err(_) => true,
    }
}

fn print_plan(plan: &SweepPlan, criteria: &Criteria, slots: &[Slot], results: &Path) {
    let spec = &plan.spec;
    crate::say!(
        "sweep {} ({}): {} runs on {} slot(s)",
        spec.name,
        spec.source.display(),
        plan.runs.len(),
        slots.len()
    );
    crate::say!("base config: {}", spec.base.display());
    crate::say!("results:     {}", results.display());
    if let Some(t) = spec.timeout {
        crate::say!("timeout:     {} per run", crate::spec::format_duration(t));
    }
    crate::say!(
        "stop_on_fail: {}",
        spec.stop_on_fail
            .map_or("from the criteria (default true)".to_string(), |b| b
                .to_string())
    );
    if !spec.stages.is_empty() {
        crate::say!(
            "stages ({}):",
            match &spec.trainer {
                None => "each run continues from its checkpoint at the previous stage's end",
                Some(t) if t.resume => "each run continues from the trainer's own checkpoint: TD3SWEEP_RESUME_FROM names its run folder",
                Some(_) => "each stage trains every promoted run from scratch to its step count (trainer.resume is off)",
            }
        );
        for (i, st) in spec.stages.iter().enumerate() {
            crate::say!(
                "  {}. {:<10} to {} env steps; entry: {}{}",
                i + 1,
                st.name,
                st.steps,
                st.promote,
                if st.approve {
                    "; approves for deployment"
                } else {
                    ""
                }
            );
        }
    }
    print_rule_reach(plan, criteria);
    crate::say!();
    for (i, run) in plan.runs.iter().enumerate() {
        let slot = &slots[i % slots.len()];
        crate::say!("[{:>3}] {}", run.index, run.run_id);
        // A ladder run trains to each stage's end in turn, as far as it is promoted.
        let steps = if plan.spec.stages.is_empty() {
            run.config.steps().to_string()
        } else {
            plan.spec
                .stages
                .iter()
                .map(|s| s.steps.to_string())
                .collect::<Vec<_>>()
                .join(" → ")
        };
        crate::say!(
            "      variant {}  seed {}  steps {}  {}",
            run.variant,
            run.seed,
            steps,
            slot
        );
        for (k, v) in &run.overrides {
            crate::say!("      set {k} = {v}");
        }
        let cfg = match (&run.config, &spec.trainer) {
            (RunConfig::Agent(cfg), _) => cfg,
            (RunConfig::External(_), Some(t)) => {
                external::print_run(spec, t, run, &ResultsDir::new(results), slot);
                continue;
            }
            (RunConfig::External(_), None) => continue,
        };
        let l = cfg.resolved_lrs();
        let py = crate::train::run::py_float;
        if cfg.uses_pixels() {
            if cfg.networks.cnn.actor_encoder == crate::config::ActorEncoder::Own {
                crate::say!(
                    "      Actor CNN optimizer:   lr={} ({})",
                    py(l.actor_cnn.lr),
                    l.actor_cnn.source.key()
                );
            } else {
                crate::say!("      Actor CNN:             none (shared_detached: reads the critic CNN's features)");
            }
            crate::say!(
                "      Critic CNN optimizer:  lr={} ({})",
                py(l.critic_cnn.lr),
                l.critic_cnn.source.key()
            );
        }
        crate::say!(
            "      Actor head optimizer:  lr={} ({})",
            py(l.actor_head.lr),
            l.actor_head.source.key()
        );
        crate::say!(
            "      Critic head optimizer: lr={} ({})",
            py(l.critic_head.lr),
            l.critic_head.source.key()
        );
    }
}

/// Which criteria rules judge which stage (or, without stages, the runs): a rule with a step
/// window judges only runs that reach it, so a ladder's 1K gate can judge stability while a later
/// stage judges learning.
fn print_rule_reach(plan: &SweepPlan, criteria: &Criteria) {
    let Some(first) = plan.runs.first() else {
        return;
    };
    // The last training step a run reaches by env step `e` (one update per env step after
    // `learning_starts`); an external trainer's steps are taken as its training steps.
    let learning_starts = first
        .config
        .agent()
        .map_or(0, |c| c.training.learning_starts);
    let last_train_step = |e: u64| e.saturating_sub(learning_starts);
    let ends: Vec<(String, u64)> = if plan.spec.stages.is_empty() {
        vec![(
            "these runs".to_string(),
            last_train_step(first.config.steps()),
        )]
    } else {
        plan.spec
            .stages
            .iter()
            .map(|s| (format!("`{}`", s.name), last_train_step(s.steps)))
            .collect()
    };
    let windowed: Vec<&crate::verdict::Rule> = criteria
        .rules
        .iter()
        .filter(|r| r.from_step.is_some() || r.to_step.is_some())
        .collect();
    crate::say!(
        "criteria: {} rule(s); every rule judges {}{}",
        criteria.rules.len(),
        if plan.spec.stages.is_empty() {
            "these runs"
        } else {
            "every stage"
        },
        if windowed.is_empty() { "" } else { ", except:" }
    );
    for r in windowed {
        let judged: Vec<&str> = ends
            .iter()
            .filter(|(_, last)| r.from_step.is_none_or(|f| f <= *last))
            .map(|(name, _)| name.as_str())
            .collect();
        let window = match (r.from_step, r.to_step) {
            (Some(f), Some(to)) => format!("training steps {f}–{to}"),
            (Some(f), None) => format!("from training step {f}"),
            (None, Some(to)) => format!("up to training step {to}"),
            (None, None) => unreachable!("filtered to windowed rules"),
        };
        crate::say!(
            "  {:<40} {window}: {}",
            r.name,
            if judged.is_empty() {
                "judges nothing here (the runs end before its window): it will read \"not measured\"".to_string()
            } else {
                format!("judges {}", judged.join(", "))
            }
        );
    }
}

/// A run's job: the `train` child's arguments and bookkeeping, or the `external` harness's for a
/// sweep with a `trainer:` (no files written).
fn job_for(spec: &SweepSpec, run: &RunPlan, results: &ResultsDir) -> PlannedRun {
    if let Some(t) = &spec.trainer {
        return external::job(spec, t, run, results, None);
    }
    let dir = results.run(&run.run_id);
    let command = reproduce_command(spec, run, &results.repro(&run.run_id));
    let head = vec![
        "train".into(),
        "--config".into(),
        dir.config_yaml().display().to_string(),
        "--out".into(),
        dir.path().display().to_string(),
    ];
    planned(spec, run, results, head, command)
}

/// A run's job: the child's own arguments (`head`) followed by what every child of a run takes
/// (its identity, `command` that reproduces it, its overrides, the criteria for fail-fast).
fn planned(
    spec: &SweepSpec,
    run: &RunPlan,
    results: &ResultsDir,
    head: Vec<String>,
    command: String,
) -> PlannedRun {
    let mut args = head;
    args.extend([
        "--run-id".into(),
        run.run_id.clone(),
        "--variant".into(),
        run.variant.clone(),
        "--command-line".into(),
        command.clone(),
    ]);
    for (k, v) in &run.swept {
        args.push("--swept".into());
        args.push(format!("{k}={v}"));
    }
    // The settings side of the overrides; the built-in agent's steps and seed have their own
    // fields in run.json (an external trainer's config keys of those names are its own).
    let own_field = |k: &str| spec.trainer.is_none() && (k == "training.steps" || k == "seed");
    for (k, v) in run.overrides.iter().filter(|(k, _)| !own_field(k)) {
        args.push("--override".into());
        args.push(format!("{k}={v}"));
    }
    // Criteria always travel with the run, so a certain FAIL writes evidence.csv; whether it also
    // stops the run is the spec's `stop_on_fail`, else the criteria's own (default true).
    args.push("--criteria".into());
    args.push(results.criteria_yaml().display().to_string());
    if let Some(stop) = spec.stop_on_fail {
        args.push("--stop-on-fail".into());
        args.push(stop.to_string());
    }
    PlannedRun {
        index: run.index,
        run_id: run.run_id.clone(),
        variant: run.variant.clone(),
        seed: run.seed,
        swept: run.swept.clone(),
        steps: run.config.steps(),
        config_hash: run.config_hash.clone(),
        run_dir: results.run(&run.run_id).path().to_path_buf(),
        args,
        command,
        timeout: spec.timeout,
        stall_timeout: spec.stall_timeout,
    }
}

/// What both backends share once the results folder is locked and set up.
struct Prepared {
    plan: SweepPlan,
    slots: Vec<Slot>,
    results: ResultsDir,
    /// Every run's job, in plan order (`plan.json`).
    all: Vec<PlannedRun>,
    /// Plan indices to train (resume applied); their folders hold a fresh `config.yaml`.
    to_run: Vec<usize>,
    lock: Lock,
}

/// Takes the lock for a checked plan, reconciles the folder, stores `sweep.yaml`,
/// `criteria.yaml`, the plan manifest and each pending run's `config.yaml`. `None` after
/// `--dry-run` printed the plan.
fn prepare(
    args: &SweepArgs,
    plan: SweepPlan,
    criteria: &Criteria,
) -> anyhow::Result<Option<Prepared>> {
    let spec = &plan.spec;
    if plan.runs.len() > CONFIRM_ABOVE && !args.yes && !args.dry_run {
        return Err(BadInput(format!(
            "{}: the sweep expands to {} runs (more than {CONFIRM_ABOVE}); check the grid, then pass --yes to run it",
            args.file.display(),
            plan.runs.len()
        ))
        .into());
    }
    let slots = slots_for(spec, args.jobs);
    let results = ResultsDir::new(args.results.join(&spec.name));
    if args.dry_run {
        print_plan(&plan, criteria, &slots, results.path());
        return Ok(None);
    }
    let runs_dir = results.runs();
    std::fs::create_dir_all(&runs_dir)
        .with_context(|| format!("creating {}", runs_dir.display()))?;
    let invocation = std::env::args().collect::<Vec<_>>().join(" ");
    let lock = Lock::acquire(&results.lock(), &invocation)?;
    match &lock.took_over {
        Some(h) if h.pid == 0 => eprintln!(
            "note: took over a stale lock ({}), left by a sweep that died while taking it",
            h.command
        ),
        Some(h) => eprintln!(
            "note: took over a stale lock of pid {} (started {}), which is no longer running",
            h.pid, h.started_at
        ),
        None => {}
    }
    // Slurm tasks of an earlier attempt that nobody watched end (the sweep was stopped or
    // killed, or they were submitted by hand): their output says how Slurm ended them, which
    // decides whether a resume trains them again (a timeout is not resubmitted on its own).
    reconcile(&results, By::Sweep(&lock));
    let spec_text = Source::read(&spec.source).map_err(Diagnostics::from)?.text;
    write_atomic(&results.sweep_yaml(), spec_text.as_bytes())?;
    write_atomic(&results.criteria_yaml(), criteria_text(spec)?.as_bytes())?;

    let all: Vec<PlannedRun> = plan
        .runs
        .iter()
        .map(|r| job_for(spec, r, &results))
        .collect();
    Plan {
        sweep: spec.name.clone(),
        sweep_sha256: file_sha256(&results.sweep_yaml())?,
        threads: spec.resources.threads_per_run,
        cpu_only: spec.resources.devices == Devices::Cpu,
        runs: all.clone(),
    }
    .write(&results.plan_json())?;
    let mut to_run = Vec::new();
    for (run, job) in plan.runs.iter().zip(&all) {
        let dir = job.dir();
        if !needs_run(&dir, &run.config_hash, args.rerun) {
            continue;
        }
        std::fs::create_dir_all(dir.path())
            .with_context(|| format!("creating {}", dir.path().display()))?;
        write_atomic(&dir.config_yaml(), run.config.to_yaml().as_bytes())?;
        if let Some(t) = &spec.trainer {
            external::invocation(t, run, &dir, run.config.steps(), None)
                .write(&dir.trainer_json())?;
        }
        to_run.push(run.index);
    }
    Ok(Some(Prepared {
        plan,
        slots,
        results,
        all,
        to_run,
        lock,
    }))
}

/// The sweep's interrupt level, raised by each Ctrl-C (or SIGTERM), which also says on stderr
/// what happens next: locally, the first ends running runs gracefully and the second kills them;
/// on Slurm, the sweep stops waiting and the tasks go on.
fn interrupt_control(on_slurm: bool) -> Control {
    let ctl = Control::default();
    let c = ctl.clone();
    let _ = ctrlc::set_handler(move || {
        let level = c.escalate();
        if on_slurm {
            eprintln!("\ninterrupt: no longer waiting; queued and running tasks stay in Slurm");
        } else if level == 1 {
            eprintln!("\ninterrupt: no new runs; ending running ones gracefully (Ctrl-C again to kill them)");
        } else {
            eprintln!("\ninterrupt: killing running runs");
        }
    });
    ctl
}

/// The sweep's `summary.csv` (a ladder's has a `stage` column), written once now and again as
/// each run ends.
fn start_summary(p: &Prepared) -> anyhow::Result<Summary> {
    let stages = p
        .plan
        .spec
        .stages
        .iter()
        .map(|s| (s.name.clone(), s.steps))
        .collect();
    let summary = Summary::new(&p.results, &p.all, stages);
    summary
        .write()
        .with_context(|| summary_context(&p.results))?;
    Ok(summary)
}

fn summary_context(results: &ResultsDir) -> String {
    format!("writing {}", results.summary_csv().display())
}

/// Classifies, renders the report and prints where things are; the exit code is the report's
/// (or 130 when interrupted).
fn finish(
    args: &SweepArgs,
    results: &ResultsDir,
    lock: Lock,
    interrupted: bool,
) -> anyhow::Result<i32> {
    let opts = ReportOptions {
        template: args.template.clone(),
        junit: args.junit.clone(),
        stable: args.stable,
        ..Default::default()
    };
    let out = generate(results.path(), &opts)?;
    drop(lock);
    crate::say!("{}", out.report.overview);
    crate::say!("report:  {}", out.report_path.display());
    crate::say!("summary: {}", results.summary_csv().display());
    if interrupted {
        if args.rerun == Some(Rerun::All) {
            // With --rerun all, the same command would start every run over.
            crate::say!("interrupted: run it again without `--rerun all` to resume");
        } else {
            crate::say!("interrupted: run the same command again to resume");
        }
        return Ok(exit::INTERRUPTED);
    }
    Ok(out.report.exit_code())
}

/// Runs a sweep end to end; the exit code is the report's (or 130 when interrupted).
pub fn run(args: SweepArgs) -> anyhow::Result<i32> {
    // Spec and criteria are checked before anything is created; the spec decides the backend
    // unless `--backend` does.
    let (plan, criteria) = super::load_checked(&args.file)?;
    super::check_report_outputs(args.template.as_deref(), args.junit.as_deref())?;
    let backend = args.backend.unwrap_or(match plan.spec.backend.as_deref() {
        Some("slurm") => Backend::Slurm,
        _ => Backend::Local,
    });
    let slurm_opts = slurm_options(&args, backend, &plan.spec.slurm)?;
    // Refused before anything is written.
    if !plan.spec.stages.is_empty() && backend == Backend::Slurm && args.no_submit {
        return Err(BadInput(
            "--no-submit cannot write a ladder's scripts up front: each stage's runs depend on the last stage's verdicts; run without --no-submit, or without `stages:`".into(),
        )
        .into());
    }
    if backend == Backend::Local {
        if let Devices::Gpus(asked) = &plan.spec.resources.devices {
            let have = tch::Cuda::device_count().max(0) as usize;
            let missing: Vec<String> = asked
                .iter()
                .filter(|&&g| g >= have)
                .map(|g| g.to_string())
                .collect();
            if !missing.is_empty() {
                let msg = format!(
                    "{}: `resources.devices` asks for GPU {}, but libtorch sees {have} CUDA device(s) here; runs would silently train on the CPU. Use `devices: auto` or `cpu`, or run it where those GPUs exist (`--backend slurm --slurm-gres gpu:1` on a cluster)",
                    args.file.display(),
                    missing.join(", ")
                );
                if args.dry_run {
                    eprintln!("warning: {msg}");
                } else {
                    return Err(BadInput(msg).into());
                }
            }
        }
    }
    let Some(p) = prepare(&args, plan, &criteria)? else {
        return Ok(0);
    };
    if !p.plan.spec.stages.is_empty() {
        let slurm = match backend {
            Backend::Slurm if args.no_submit => unreachable!("refused above"),
            Backend::Slurm => Some(slurm_effective(&p.plan.spec, slurm_opts)),
            Backend::Local => None,
        };
        return ladder::run(&args, p, criteria, slurm);
    }
    if backend == Backend::Slurm {
        return run_slurm(&args, p, slurm_opts);
    }
    let mut summary = start_summary(&p)?;
    let Prepared {
        plan,
        slots,
        results,
        all,
        to_run,
        lock,
    } = p;
    let spec = &plan.spec;
    let exe = std::env::current_exe().context("locating the td3-sweep binary")?;
    let jobs: Vec<PlannedRun> = all
        .into_iter()
        .filter(|j| to_run.contains(&j.index))
        .collect();
    let skipped = plan.runs.len() - jobs.len();
    crate::say!(
        "sweep {}: {} run{}, {} to train, {} already done; {} slot(s); results in {}",
        spec.name,
        plan.runs.len(),
        if plan.runs.len() == 1 { "" } else { "s" },
        jobs.len(),
        skipped,
        slots.len(),
        results.path().display()
    );
    note_failed_but_done(&plan, &results, &to_run);

    let ctl = interrupt_control(false);
    let exec = ProcessExecutor {
        program: exe,
        grace: kill_grace(),
    };
    let mut display = Display::new(&jobs);
    let t0 = std::time::Instant::now();
    let cpu0 = crate::sys::children_cpu_seconds();
    let mut summary_err = None;
    let done = run_jobs(jobs, &slots, &exec, &ctl, |ev| {
        display.on_event(ev);
        if let Event::Finished { index, record } = ev {
            summary.ended(*index, record);
            if let Err(e) = summary.write() {
                summary_err = Some(e);
            }
        }
    });
    display.finish();
    if let Some(e) = summary_err {
        return Err(anyhow::Error::new(e).context(summary_context(&results)));
    }
    let wall = t0.elapsed().as_secs_f64();
    if done.is_empty() {
        crate::say!("nothing to train: every run is already done (--rerun all trains them again)");
    } else {
        crate::say!(
            "{}",
            trained_line(done.len(), wall, crate::sys::children_cpu_seconds() - cpu0)
        );
    }
    finish(&args, &results, lock, ctl.level() > 0)
}

/// "trained 12 run(s) in 92.0 s wall, 181.0 s of CPU: 1.97 of 2 cores busy". Summed run
/// durations over the wall time would overstate the parallelism whenever runs outnumber cores
/// (each run's own wall time stretches while it waits for a core); CPU time cannot.
fn trained_line(runs: usize, wall: f64, cpu: f64) -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let busy = if wall > 0.0 { cpu / wall } else { 0.0 };
    format!("trained {runs} run(s) in {wall:.1} s wall, {cpu:.1} s of CPU: {busy:.2} of {cores} cores busy")
}

/// The effective Slurm options: the `--slurm-*` flags (the spec's `slurm:` section goes underneath
/// once the spec parses one). Flags without `--backend slurm` are bad input.
fn slurm_options(
    args: &SweepArgs,
    backend: Backend,
    from_spec: &SlurmOptions,
) -> anyhow::Result<SlurmOptions> {
    let a = &args.slurm;
    let cli = SlurmOptions {
        partition: a.slurm_partition.clone(),
        account: a.slurm_account.clone(),
        time: a.slurm_time.clone(),
        gres: a.slurm_gres.clone(),
        cpus_per_task: a.slurm_cpus_per_task,
        mem: a.slurm_mem.clone(),
        max_parallel: a.slurm_max_parallel,
        extra: a.slurm_extra.clone(),
    };
    if backend != Backend::Slurm && (cli != SlurmOptions::default() || args.no_submit) {
        return Err(
            BadInput("--no-submit and the --slurm-* flags need --backend slurm".into()).into(),
        );
    }
    let opts = from_spec.clone().overridden_by(&cli);
    // The spec's own `slurm:` values were checked with the spec (file:line:col); what is wrong
    // now came from a flag, and is named as the flag the user typed.
    let problems: Vec<String> = opts
        .problems()
        .into_iter()
        .map(|p| {
            let Some(rest) = p.strip_prefix("slurm.") else {
                return p;
            };
            let key = rest.split([':', '[']).next().unwrap_or("");
            let (flag_set, after) = match key {
                "extra" => (
                    !cli.extra.is_empty(),
                    rest.split_once(':').map_or("", |(_, m)| m),
                ),
                _ => (
                    cli.problems()
                        .iter()
                        .any(|c| c.starts_with(&format!("slurm.{key}"))),
                    &rest[key.len()..],
                ),
            };
            if !flag_set {
                return p;
            }
            let after = after.trim_start_matches(':');
            format!("--slurm-{}:{after}", key.replace('_', "-"))
        })
        .collect();
    if !problems.is_empty() {
        return Err(BadInput(format!(
            "invalid Slurm options:\n  {}",
            problems.join("\n  ")
        ))
        .into());
    }
    Ok(opts)
}

/// Slurm options with the spec's defaults filled in: one CPU per intra-op thread, and a time
/// limit from the per-run timeout.
fn slurm_effective(spec: &SweepSpec, opts: SlurmOptions) -> SlurmOptions {
    let mut options = opts;
    options.cpus_per_task = options
        .cpus_per_task
        .or(Some(spec.resources.threads_per_run as u32));
    options.time = options.time.or_else(|| default_time(spec.timeout));
    options
}

/// `--backend slurm`: the same prepared runs as sbatch arrays, then the same summary and report.
fn run_slurm(args: &SweepArgs, p: Prepared, opts: SlurmOptions) -> anyhow::Result<i32> {
    let mut summary = start_summary(&p)?;
    let Prepared {
        plan,
        results,
        all,
        to_run,
        lock,
        ..
    } = p;
    let spec = &plan.spec;
    crate::say!(
        "sweep {}: {} run{}, {} to train, {} already done; backend slurm; results in {}",
        spec.name,
        plan.runs.len(),
        if plan.runs.len() == 1 { "" } else { "s" },
        to_run.len(),
        plan.runs.len() - to_run.len(),
        results.path().display()
    );
    note_failed_but_done(&plan, &results, &to_run);
    let threads = spec.resources.threads_per_run;
    let options = slurm_effective(spec, opts);
    let ctl = interrupt_control(true);
    let sweep = SlurmSweep {
        name: &spec.name,
        results: &results,
        all: &all,
        to_run: to_run.iter().copied().collect(),
        program: std::env::current_exe().context("locating the td3-sweep binary")?,
        options,
        threads,
        cpu_only: spec.resources.devices == Devices::Cpu,
        submit: !args.no_submit,
        stage: None,
    };
    let t0 = std::time::Instant::now();
    let mut summary_err = None;
    let end = slurm::run_sweep(sweep, &ctl, |job, record| {
        summary.ended(job.index, record);
        if let Err(e) = summary.write() {
            summary_err = Some(e);
        }
    })?;
    if let Some(e) = summary_err {
        return Err(anyhow::Error::new(e).context(summary_context(&results)));
    }
    match end {
        SlurmEnd::Written(scripts) => {
            drop(lock);
            crate::say!(
                "--no-submit: wrote {} script(s); submit them with:",
                scripts.len()
            );
            for s in &scripts {
                crate::say!("  sbatch {}", s.display());
            }
            crate::say!(
                "then, once the tasks ended: td3-sweep report {}",
                results.path().display()
            );
            Ok(0)
        }
        SlurmEnd::Finished { submitted } => {
            crate::say!(
                "slurm: {submitted} task(s) submitted, all ended after {:.1} s",
                t0.elapsed().as_secs_f64()
            );
            finish(args, &results, lock, false)
        }
        SlurmEnd::Interrupted { jobs } => {
            crate::say!(
                "slurm jobs {} keep running; run the same command again to wait for them (nothing is submitted twice), or `scancel {}`",
                jobs.join(","),
                jobs.join(" ")
            );
            finish(args, &results, lock, true)
        }
    }
}
