//! `td3-sweep train`: one run, in this process.

use std::io::{BufRead, Write};
use std::sync::atomic::Ordering;

use crate::cli::TrainArgs;
use crate::config::load::{
    config_hash, config_to_yaml, load_agent_config, parse_set_arg, Override,
};
use crate::config::yaml::Value;
use crate::diag::{Diagnostics, Mark, Source};
use crate::results::protocol::Progress;
use crate::results::{exit, write_atomic, Outcome, RunDir};
use crate::train::run::{train, TrainOptions};

fn arg_override(key: &str, value: u64, flag: &str) -> Override {
    let text = format!("{key}={value}");
    Override {
        key: key.to_string(),
        key_mark: Mark { line: 1, col: 1 },
        value: crate::config::yaml::Node {
            value: Value::Int(value as i64),
            mark: Mark {
                line: 1,
                col: key.len() + 2,
            },
        },
        origin: Source::inline(flag, text),
    }
}

/// Loads the config with `--set`, `--steps` and `--seed` applied; every problem is reported at once.
pub fn load_with_overrides(args: &TrainArgs) -> Result<crate::config::AgentConfig, Diagnostics> {
    let mut overrides = Vec::new();
    let mut diags = Diagnostics::default();
    for s in &args.set {
        match parse_set_arg(s) {
            Ok(o) => overrides.push(o),
            Err(d) => diags.push(d),
        }
    }
    if let Some(steps) = args.steps {
        overrides.push(arg_override("training.steps", steps, "--steps"));
    }
    if let Some(seed) = args.seed {
        overrides.push(arg_override("seed", seed, "--seed"));
    }
    match load_agent_config(&args.config, &overrides) {
        Ok(cfg) => diags.into_result(cfg),
        Err(mut e) => {
            e.0.splice(0..0, diags.0);
            Err(e)
        }
    }
}

/// The checkpoint to continue from: `--resume`, or else `OUT/checkpoint` when it was written by
/// this config (steps aside) and stopped short of `training.steps` (not with `--fresh`).
fn resume_from(args: &TrainArgs, cfg: &crate::config::AgentConfig) -> Option<std::path::PathBuf> {
    use crate::train::checkpoint;
    if let Some(p) = &args.resume {
        return Some(p.clone());
    }
    let dir = checkpoint::dir_of(&args.out);
    if args.fresh || checkpoint::locate(&dir).is_none() {
        return None;
    }
    match checkpoint::read_state(&dir) {
        Ok(st)
            if st.config_hash == checkpoint::resume_hash(cfg)
                && st.env_step < cfg.training.steps =>
        {
            crate::say!(
                "resuming from {} at env step {} (pass --fresh to start from zero)",
                dir.display(),
                st.env_step
            );
            Some(dir)
        }
        Ok(_) => {
            crate::say!(
                "note: {} belongs to another config or is already at training.steps; starting from zero",
                dir.display()
            );
            None
        }
        Err(e) => {
            crate::say!("note: ignoring {}: {e}; starting from zero", dir.display());
            None
        }
    }
}

/// A fresh start in a folder that held another attempt: its checkpoint (of another config, or of
/// a finished run) would be picked up by a later resume, which trims metrics.csv to the
/// checkpoint's length, so this run's rows would be cut or mixed with the old config's; its
/// evidence.csv would be shown as this run's. Both go before anything is written. metrics.csv
/// and run.json are rewritten by the run itself.
fn clear_earlier_attempt(out: &RunDir) -> anyhow::Result<()> {
    let ckpt = out.checkpoint();
    if ckpt.is_dir() {
        std::fs::remove_dir_all(&ckpt).map_err(|e| {
            anyhow::anyhow!("removing the earlier attempt's {}: {e}", ckpt.display())
        })?;
        eprintln!(
            "note: removed {}: an earlier attempt's checkpoint, which a fresh start must not leave for a later resume",
            ckpt.display()
        );
    }
    let evidence = out.evidence_csv();
    if evidence.is_file() {
        std::fs::remove_file(&evidence).map_err(|e| {
            anyhow::anyhow!("removing the earlier attempt's {}: {e}", evidence.display())
        })?;
    }
    Ok(())
}

/// Trains one agent; the exit code encodes the outcome ([`exit::of_outcome`]; [`exit::ORPHANED`]
/// when the parent sweep died and a hung run was ended).
pub fn run(args: TrainArgs) -> anyhow::Result<i32> {
    let cfg = load_with_overrides(&args)?;
    let criteria = match &args.criteria {
        Some(p) => Some(crate::verdict::load_criteria(p)?),
        None => None,
    };
    if cfg.deterministic && std::env::var_os("CUBLAS_WORKSPACE_CONFIG").is_none() {
        // cuBLAS picks reduction strategies per stream unless given a fixed workspace; this is
        // what torch.use_deterministic_algorithms asks for. Must be set before CUDA starts.
        std::env::set_var("CUBLAS_WORKSPACE_CONFIG", ":4096:8");
    }
    if let Some(t) = args.threads {
        tch::set_num_threads(t.max(1));
    }
    std::fs::create_dir_all(&args.out)?;
    let out = RunDir::new(&args.out);
    write_atomic(&out.config_yaml(), config_to_yaml(&cfg).as_bytes())?;

    let mut opts = TrainOptions::new(args.out.clone());
    opts.run_id = args.child.run_id.clone();
    opts.variant = args.child.variant.clone();
    opts.swept = args
        .child
        .swept
        .iter()
        .filter_map(|s| s.split_once('='))
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    opts.overrides = args
        .child
        .overrides
        .iter()
        .chain(&args.set)
        .filter_map(|s| s.split_once('='))
        .map(|(k, v)| (k.trim().into(), v.trim().into()))
        .collect();
    opts.command = if args.child.command_line.is_empty() {
        std::env::args().collect::<Vec<_>>().join(" ")
    } else {
        args.child.command_line.clone()
    };
    opts.config_hash = config_hash(&cfg);
    let stop = opts.stop.clone();
    // SIGINT and SIGTERM end the run gracefully: the current step finishes, metrics are kept.
    let s = stop.clone();
    let _ = ctrlc::set_handler(move || s.store(true, Ordering::SeqCst));
    if args.child.watch_stdin {
        let s = stop.clone();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            let mut line = String::new();
            // Returns 0 bytes at EOF: the parent sweep is gone (possibly SIGKILLed). End the run.
            while stdin
                .lock()
                .read_line(&mut line)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                line.clear();
            }
            s.store(true, Ordering::SeqCst);
            // A run that is stuck inside a step never sees the flag, and with the sweep gone
            // nobody enforces its timeout any more: don't outlive the parent by more than the
            // grace a sweep gives its children (TD3_SWEEP_KILL_GRACE_S, default 10 s). run.json
            // keeps its start-up record (crashed, ended before its final record), which the next
            // sweep retrains.
            let grace = std::env::var("TD3_SWEEP_KILL_GRACE_S")
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(10.0)
                .max(0.0);
            std::thread::sleep(std::time::Duration::from_secs_f64(grace));
            eprintln!(
                "the parent sweep is gone and the run did not stop within {grace} s: exiting"
            );
            std::process::exit(exit::ORPHANED);
        });
    }
    if let Some(c) = criteria {
        opts.stop_on_fail = args.stop_on_fail.unwrap_or(c.stop_on_fail);
        opts.fail_fast = Some(Box::new(move |rows, q_bound| {
            crate::verdict::certain_fail(&c, rows, q_bound)
        }));
    }
    opts.checkpoint_at_end = args.checkpoint_at_end;
    if cfg.training.steps <= cfg.training.learning_starts {
        eprintln!(
            "warning: training.steps ({}) is not above training.learning_starts ({}): this run takes random actions only and never trains",
            cfg.training.steps, cfg.training.learning_starts
        );
    }
    opts.resume = resume_from(&args, &cfg);
    if opts.resume.is_none() {
        clear_earlier_attempt(&out)?;
    }
    let steps = cfg.training.steps;
    let machine = args.child.progress;
    opts.on_row = Some(Box::new(move |r| {
        if machine {
            let p = Progress {
                steps,
                row: r.clone(),
            };
            crate::say!("{}", p.line());
        } else {
            let f = |v: Option<f64>| v.map(|x| format!("{x:.4e}")).unwrap_or_else(|| "-".into());
            crate::say!(
                "step {:>6}/{steps} train {:>6}  actor_cnn_gn {}  critic_cnn_gn {}  |Q|max {}  critic_loss {}",
                r.env_step,
                r.train_step,
                f(r.actor_cnn_grad_norm),
                f(r.critic_cnn_grad_norm),
                f(r.q_abs_max),
                f(r.critic_loss)
            );
        }
        let _ = std::io::stdout().flush();
    }));
    let rec = train(&cfg, opts)?;
    crate::results::tensorboard::refresh_or_warn(&out);
    crate::say!(
        "{}: {} after {}/{} env steps ({} updates) in {:.1} s{}",
        args.out.display(),
        rec.outcome,
        rec.steps_done,
        rec.steps_planned,
        rec.train_steps_done,
        rec.wall_s,
        rec.reason
            .as_deref()
            .map(|r| format!(" - {r}"))
            .unwrap_or_default()
    );
    if rec.outcome == Outcome::Crashed {
        // Last on stderr, so the scheduler's stderr tail (run.json `stderr_tail`) holds the cause,
        // e.g. a Gymnasium env's Python traceback.
        eprintln!("{}", rec.reason.as_deref().unwrap_or("crashed"));
    }
    // A run that crashed without dying (a Gymnasium env raised) exits as a runtime error.
    Ok(exit::of_outcome(rec.outcome))
}
