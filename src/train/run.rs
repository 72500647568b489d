//! The training loop of one run: act, store, update, aggregate metrics, decide the outcome.
//!
//! Divergence, fail-fast and interruption are outcomes recorded in `run.json`, not errors. Errors are
//! reserved for things that stop a run from starting or from writing its files.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use tch::{Device, Kind, Tensor};

use super::checkpoint::{self, episode_seed, CheckpointError, HostState, RngState};
use super::env::{make_env, Env, ObsSpec, Observation};
use super::replay::Replay;
use super::td3::{StepScalars, Td3};
use crate::config::{AgentConfig, ResolvedLr};
use crate::results::metrics::{write_evidence, EvidenceStep};
use crate::results::{
    MetricRow, MetricsWriter, Outcome, RunDir, RunRecord, LIBTORCH_VERSION, PLACEHOLDER_REASON,
};

/// Why a run could not be carried out at all.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Printed as the env's own message (it names the key to fix), once.
    #[error(transparent)]
    Env(#[from] super::env::EnvError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    Metrics(#[from] crate::results::MetricsError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Checkpoint(#[from] super::checkpoint::CheckpointError),
    #[error("device `{0}`: {1}")]
    Device(String, String),
    #[error("network shape: {0}")]
    Shape(String),
    #[error("replay buffer: {0}")]
    Replay(String),
    /// A running env stopped working (a Gymnasium bridge died or its env raised); carries the
    /// traceback. [`train`] records it as a `crashed` run rather than returning it.
    #[error("environment failed: {0}")]
    EnvFailed(String),
}

/// Called at each metrics row with the rows not checked yet (the new one); returns a reason when a
/// FAIL is already certain. Certainty is per row (see [`crate::verdict::certain_fail`]), so checking
/// each row once, as it is written, is the same as checking all rows each time, without the cost
/// growing with the run's length.
pub type FailFast = Box<dyn Fn(&[MetricRow]) -> Option<String>>;

/// Called with each metrics row as it is written.
pub type OnRow = Box<dyn FnMut(&MetricRow)>;

/// Everything about a run that is not the agent config.
pub struct TrainOptions {
    /// Where `metrics.csv` and `run.json` go (created if missing).
    pub out_dir: PathBuf,
    /// Identity fields copied into `run.json`.
    pub run_id: String,
    pub variant: String,
    pub swept: BTreeMap<String, String>,
    /// The `--set` overrides, recorded in run.json (the last one of a key wins, as in loading).
    pub overrides: BTreeMap<String, String>,
    pub command: String,
    pub config_hash: String,
    /// Set from outside (Ctrl-C, parent gone) to end the run early with outcome `interrupted`.
    pub stop: Arc<AtomicBool>,
    /// The criteria's "FAIL is certain" check, run at each row. Its first hit writes `evidence.csv`.
    pub fail_fast: Option<FailFast>,
    /// End the run (outcome `stopped`) when `fail_fast` hits; otherwise only record the evidence.
    pub stop_on_fail: bool,
    /// Called with each row as it is written (progress reporting).
    pub on_row: Option<OnRow>,
    /// Print the optimizers' learning rates at start-up, as the seed does.
    pub verbose: bool,
    /// Continue from this checkpoint folder (see [`super::checkpoint`]) instead of starting afresh;
    /// `metrics.csv` is cut back to the checkpoint and appended to.
    pub resume: Option<PathBuf>,
    /// Write a checkpoint to `<out_dir>/checkpoint` when the run completes (a ladder stage end).
    /// Periodic checkpoints (`training.checkpoint_every`) also write one at the end.
    pub checkpoint_at_end: bool,
}

impl TrainOptions {
    /// Options for a stand-alone run writing into `out_dir`.
    pub fn new(out_dir: PathBuf) -> TrainOptions {
        TrainOptions {
            out_dir,
            run_id: String::new(),
            variant: "baseline".into(),
            swept: BTreeMap::new(),
            overrides: BTreeMap::new(),
            command: String::new(),
            config_hash: String::new(),
            stop: Arc::new(AtomicBool::new(false)),
            fail_fast: None,
            stop_on_fail: true,
            on_row: None,
            verbose: true,
            resume: None,
            checkpoint_at_end: false,
        }
    }
}

/// Picks the libtorch device for a config's `device` string.
pub fn resolve_device(spec: &str) -> Result<Device, TrainError> {
    let err = |m: &str| TrainError::Device(spec.to_string(), m.to_string());
    match spec {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Err(err(
                    "CUDA is not available on this machine (see `td3-sweep devices`)",
                ))
            }
        }
        s => {
            let n: usize = s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| err("expected auto, cpu, cuda or cuda:N"))?;
            let count = tch::Cuda::device_count() as usize;
            if n < count {
                Ok(Device::Cuda(n))
            } else {
                Err(err(&format!("only {count} CUDA device(s) visible")))
            }
        }
    }
}

/// Human name of a device for `run.json` and reports.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Formats a float as Python's `repr` does (`1e-05`, `0.0001`), so start-up lines match the seed's.
pub fn py_float(v: f64) -> String {
    let a = v.abs();
    if v != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{v:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
    } else if v.fract() == 0.0 && a < 1e16 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// The commit of the td3-sweep source folder this binary was built in, read now, with `-dirty`
/// when tracked files there differ from it; "unknown" where the folder is gone (a binary copied
/// elsewhere) or is not a git checkout. `just` rebuilds before every command, so this is the TD3
/// code that trains (not so for a binary left unbuilt after a checkout).
pub fn git_commit() -> String {
    let src = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(src)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) if !c.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c}-dirty")
            } else {
                c
            }
        }
        _ => "unknown".into(),
    }
}

/// Max/mean aggregation of the steps since the last row.
#[derive(Default)]
struct Window {
    n: u64,
    n_actor: u64,
    critic_cnn_gn: Option<f64>,
    critic_head_gn: Option<f64>,
    actor_cnn_gn: Option<f64>,
    actor_head_gn: Option<f64>,
    q_abs_max: Option<f64>,
    q_sum: f64,
    tq_sum: f64,
    critic_loss_sum: f64,
    actor_loss_sum: f64,
    nonfinite: u64,
}

fn fmax(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        // NaN wins, so a non-finite value is never hidden by a max.
        (Some(x), Some(y)) => Some(if x.is_nan() || y.is_nan() {
            f64::NAN
        } else {
            x.max(y)
        }),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Window {
    fn add(&mut self, s: &StepScalars) {
        self.n += 1;
        self.critic_cnn_gn = fmax(self.critic_cnn_gn, s.critic_cnn_gn);
        self.critic_head_gn = fmax(self.critic_head_gn, Some(s.critic_head_gn));
        self.q_abs_max = fmax(self.q_abs_max, Some(s.q_abs_max));
        self.q_sum += s.q_mean;
        self.tq_sum += s.target_q_mean;
        self.critic_loss_sum += s.critic_loss;
        if let Some(l) = s.actor_loss {
            self.n_actor += 1;
            self.actor_loss_sum += l;
            self.actor_cnn_gn = fmax(self.actor_cnn_gn, s.actor_cnn_gn);
            self.actor_head_gn = fmax(self.actor_head_gn, s.actor_head_gn);
        }
        self.nonfinite += s.nonfinite;
    }

    fn row(&self, train_step: u64, env_step: u64, wall_s: f64, ep: &Episodes) -> MetricRow {
        let n = self.n.max(1) as f64;
        MetricRow {
            train_step,
            env_step,
            wall_s,
            actor_cnn_grad_norm: self.actor_cnn_gn,
            critic_cnn_grad_norm: self.critic_cnn_gn,
            actor_head_grad_norm: self.actor_head_gn,
            critic_head_grad_norm: self.critic_head_gn,
            q_mean: (self.n > 0).then(|| self.q_sum / n),
            q_abs_max: self.q_abs_max,
            target_q_mean: (self.n > 0).then(|| self.tq_sum / n),
            actor_loss: (self.n_actor > 0).then(|| self.actor_loss_sum / self.n_actor as f64),
            critic_loss: (self.n > 0).then(|| self.critic_loss_sum / n),
            episode_return: ep.last_return,
            episodes: ep.count,
            nonfinite: self.nonfinite,
            eval_return: None,
        }
    }
}

#[derive(Default)]
struct Episodes {
    count: u64,
    last_return: Option<f64>,
    current: f64,
}

fn obs_tensor(obs: &Observation, spec: &ObsSpec, device: Device) -> Tensor {
    match (obs, spec) {
        (
            Observation::Pixels(p),
            ObsSpec::Pixels {
                channels,
                height,
                width,
            },
        ) => {
            Tensor::from_slice(p)
                .view([1, *channels as i64, *height as i64, *width as i64])
                .to(device)
                .to_kind(Kind::Float)
                / 255.0
        }
        (Observation::State(s), _) => Tensor::from_slice(s).view([1, -1]).to(device),
        _ => panic!("observation does not match its spec"),
    }
}

fn obs_shape(spec: &ObsSpec) -> Vec<i64> {
    match spec {
        ObsSpec::Pixels {
            channels,
            height,
            width,
        } => vec![*channels as i64, *height as i64, *width as i64],
        ObsSpec::State { dim } => vec![*dim as i64],
    }
}

/// Mean return of `episodes` deterministic episodes on a separately seeded env.
fn evaluate(agent: &Td3, cfg: &AgentConfig) -> Result<f64, TrainError> {
    let mut env = make_env(&cfg.env)?;
    let spec = env.obs_spec();
    let mut total = 0.0;
    for i in 0..cfg.evaluation.episodes {
        let mut obs = env.reset(Some(cfg.seed + cfg.evaluation.seed_offset + i as u64));
        loop {
            if let Some(why) = env.failure() {
                return Err(TrainError::EnvFailed(format!("evaluation env: {why}")));
            }
            let a = agent.act(&obs_tensor(&obs, &spec, agent.device()));
            let st = env.step(&a);
            total += st.reward;
            obs = st.obs;
            if st.terminated || st.truncated {
                break;
            }
        }
    }
    Ok(total / cfg.evaluation.episodes.max(1) as f64)
}

/// How many training steps `evidence.csv` keeps before the first bad step.
pub const EVIDENCE_STEPS: usize = 50;

/// The last [`EVIDENCE_STEPS`] training steps at full resolution (per-layer gradient norms, losses,
/// Q statistics), written to `evidence.csv` when a run diverges or its FAIL becomes certain. This is
/// what tells "exploding actor CNN" from "exploding Q".
struct Evidence {
    layer_names: Vec<String>,
    steps: std::collections::VecDeque<(u64, u64, StepScalars)>,
    written: bool,
}

impl Evidence {
    fn new(layer_names: Vec<String>) -> Evidence {
        Evidence {
            layer_names,
            steps: Default::default(),
            written: false,
        }
    }

    fn push(&mut self, train_step: u64, env_step: u64, s: StepScalars) {
        if self.steps.len() == EVIDENCE_STEPS {
            self.steps.pop_front();
        }
        self.steps.push_back((train_step, env_step, s));
    }

    /// Writes the window once; `marker` labels `bad_step` (the first non-finite step, or the step
    /// at which the FAIL was detected).
    fn write(
        &mut self,
        dir: &std::path::Path,
        bad_step: u64,
        marker: &str,
    ) -> Result<(), TrainError> {
        if self.written {
            return Ok(());
        }
        self.written = true;
        let path = RunDir::new(dir).evidence_csv();
        let first_bad = self
            .steps
            .iter()
            .find(|(_, _, s)| s.nonfinite > 0)
            .map(|(t, _, _)| *t)
            .unwrap_or(bad_step);
        let steps: Vec<EvidenceStep> = self
            .steps
            .iter()
            .map(|(t, e, s)| EvidenceStep {
                row: MetricRow {
                    train_step: *t,
                    env_step: *e,
                    actor_loss: s.actor_loss,
                    critic_loss: Some(s.critic_loss),
                    q_mean: Some(s.q_mean),
                    q_abs_max: Some(s.q_abs_max),
                    target_q_mean: Some(s.target_q_mean),
                    actor_cnn_grad_norm: s.actor_cnn_gn,
                    critic_cnn_grad_norm: s.critic_cnn_gn,
                    actor_head_grad_norm: s.actor_head_gn,
                    critic_head_grad_norm: Some(s.critic_head_gn),
                    ..Default::default()
                },
                layers: &s.layers,
            })
            .collect();
        write_evidence(&path, &self.layer_names, &steps, first_bad, marker).map_err(|source| {
            TrainError::Io {
                path: path.clone(),
                source,
            }
        })
    }
}

/// Trains one TD3 agent as `cfg` says, writing `metrics.csv` and `run.json` into `opts.out_dir`.
pub fn train(cfg: &AgentConfig, mut opts: TrainOptions) -> Result<RunRecord, TrainError> {
    let t0 = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let out = opts.out_dir.clone();
    std::fs::create_dir_all(&out).map_err(|source| TrainError::Io {
        path: out.clone(),
        source,
    })?;
    let device = resolve_device(&cfg.device)?;
    tch::manual_seed(cfg.seed as i64);
    if let Device::Cuda(_) = device {
        tch::Cuda::manual_seed_all(cfg.seed);
        // Autotuned conv algorithms differ run to run; deterministic runs must not autotune, and
        // skip cuDNN altogether: tch 0.26 cannot set `cudnn.deterministic`, and cuDNN's backward
        // convolutions may use atomics. See docs/determinism.md.
        tch::Cuda::cudnn_set_benchmark(!cfg.deterministic);
        if cfg.deterministic {
            tch::Cuda::set_user_enabled_cudnn(false);
        }
    }
    let mut env = make_env(&cfg.env)?;
    let spec = env.obs_spec();
    let act_dim = env.action_dim();
    let shape = obs_shape(&spec);
    if let ObsSpec::Pixels { height, .. } = spec {
        let side = crate::train::nets::EncoderShape {
            in_channels: shape[0],
            image_size: height as i64,
            channels: cfg.networks.cnn.channels.clone(),
            kernels: cfg.networks.cnn.kernels.clone(),
            strides: cfg.networks.cnn.strides.clone(),
            feature_dim: cfg.networks.cnn.feature_dim,
        }
        .conv_out_side();
        if side.is_none() {
            return Err(TrainError::Shape(format!(
                "a {height}x{height} image is too small for kernels {:?} with strides {:?}",
                cfg.networks.cnn.kernels, cfg.networks.cnn.strides
            )));
        }
    }
    let mut agent = Td3::new(cfg, &shape, act_dim as i64, device)?;
    let lrs = cfg.resolved_lrs();
    if opts.verbose {
        let line = |name: &str, r: ResolvedLr| {
            crate::say!(
                "  {name} optimizer initialized with lr={} ({})",
                py_float(r.lr),
                r.source.key()
            )
        };
        if cfg.uses_pixels() && cfg.networks.cnn.actor_encoder == crate::config::ActorEncoder::Own {
            line("Actor CNN", lrs.actor_cnn);
        }
        if cfg.uses_pixels() {
            line("Critic CNN", lrs.critic_cnn);
        }
        line("Actor head", lrs.actor_head);
        line("Critic head", lrs.critic_head);
    }

    let mut record = RunRecord {
        run_id: opts.run_id.clone(),
        variant: opts.variant.clone(),
        swept: opts.swept.clone(),
        overrides: Some(opts.overrides.clone()),
        command: opts.command.clone(),
        outcome: Outcome::Crashed,
        steps_planned: cfg.training.steps,
        steps_done: 0,
        train_steps_done: 0,
        seed: cfg.seed,
        device: device_name(device),
        libtorch_version: LIBTORCH_VERSION.to_string(),
        git_commit: git_commit(),
        wall_s: 0.0,
        started_at,
        learning_rates: Some(lrs),
        config_hash: opts.config_hash.clone(),
        first_nonfinite_step: None,
        reason: Some(PLACEHOLDER_REASON.into()),
        exit: None,
        stderr_tail: None,
        extra: BTreeMap::from([
            ("threads".to_string(), tch::get_num_threads().to_string()),
            ("env".to_string(), env.name().to_string()),
        ]),
        provisional: true,
    };
    let run_dir = RunDir::new(&out);
    let save = |r: &RunRecord| {
        run_dir.write_record(r).map_err(|source| TrainError::Io {
            path: run_dir.run_json(),
            source,
        })
    };
    // Before anything is written: a buffer the machine can't hold is a configuration error.
    let t = &cfg.training;
    let mut replay = Replay::try_new(t.buffer_size, shape.clone(), cfg.uses_pixels(), act_dim)
        .map_err(TrainError::Replay)?;
    // Written first as "crashed": if the process dies without a word, that is what it did.
    save(&record)?;
    let metrics_path = run_dir.metrics_csv();

    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED);
    let noise = Normal::new(0.0, t.exploration_noise.max(0.0))
        .unwrap_or_else(|_| Normal::new(0.0, 0.0).unwrap());
    let mut ep = Episodes::default();
    let mut win = Window::default();
    let mut rows: Vec<MetricRow> = Vec::new();
    let mut pending_eval: Option<f64> = None;
    let mut outcome = Outcome::Completed;
    let mut reason: Option<String> = None;
    let mut env_step = 0u64;
    let log_every = cfg.logging.log_every.max(1);
    let mut evidence = Evidence::new(agent.layer_names());
    // The current episode: its reset seed and the actions since, which rebuild the env on resume.
    let mut ep_seed = cfg.seed;
    let mut ep_actions: Vec<f32> = Vec::new();
    let mut wall_before = 0.0;
    let (mut obs, mut writer) = match opts.resume.clone() {
        None => (
            env.reset(Some(cfg.seed)),
            MetricsWriter::create(&metrics_path)?,
        ),
        Some(dir) => {
            let restored = (|| -> Result<_, TrainError> {
                let c = checkpoint::load(&dir, &checkpoint::resume_hash(cfg))?;
                let st = &c.state;
                if st.env_step > t.steps {
                    return Err(c
                        .corrupt(format!(
                            "it is at env step {}, beyond training.steps = {}",
                            st.env_step, t.steps
                        ))
                        .into());
                }
                agent
                    .load_tensors(&|n| c.get(n), st.train_step)
                    .map_err(|m| c.corrupt(m))?;
                replay.load_state(&|n| c.get(n)).map_err(|m| c.corrupt(m))?;
                rng = st.rng.restore().map_err(|m| c.corrupt(m))?;
                let obs = replay_episode(env.as_mut(), &c, act_dim, &mut ep_actions)?;
                ep = Episodes {
                    count: st.episodes,
                    last_return: st.last_return_bits.map(f64::from_bits),
                    current: f64::from_bits(st.current_return_bits),
                };
                ep_seed = st.episode_seed;
                env_step = st.env_step;
                pending_eval = st.pending_eval_bits.map(f64::from_bits);
                wall_before = st.wall_s;
                rows = cut_metrics(&metrics_path, st).map_err(|m| c.corrupt(m))?;
                Ok((obs, MetricsWriter::append(&metrics_path)?))
            })();
            match restored {
                Ok(x) => {
                    record
                        .extra
                        .insert("resumed_from_env_step".into(), env_step.to_string());
                    x
                }
                Err(e) => {
                    record.reason = Some(format!("cannot resume: {e}"));
                    record.provisional = false;
                    save(&record)?;
                    return Err(e);
                }
            }
        }
    };
    let wall = |t0: &Instant| wall_before + t0.elapsed().as_secs_f64();
    let ckpt_dir = checkpoint::dir_of(&out);
    let every = t.checkpoint_every;
    let mut next_ckpt = env_step
        .checked_div(every)
        .map_or(u64::MAX, |n| (n + 1) * every);
    let resume_hash = checkpoint::resume_hash(cfg);
    macro_rules! write_checkpoint {
        () => {
            save_checkpoint(
                &ckpt_dir,
                &Snapshot {
                    config_hash: &resume_hash,
                    agent: &agent,
                    replay: &replay,
                    rng: &rng,
                    ep: &ep,
                    ep_seed,
                    ep_actions: &ep_actions,
                    obs: &obs,
                    env_step,
                    pending_eval,
                    metrics_path: &metrics_path,
                    metrics_rows: rows.len() as u64,
                    wall_s: wall(&t0),
                },
            )
        };
    }

    'outer: while env_step < t.steps {
        // Only between windows, so a checkpoint never holds half-aggregated metrics.
        if env_step >= next_ckpt && win.n == 0 {
            write_checkpoint!()?;
            next_ckpt = (env_step / every + 1) * every;
        }
        if opts.stop.load(Ordering::Relaxed) {
            outcome = Outcome::Interrupted;
            reason = Some(format!("interrupted at env step {env_step}"));
            break;
        }
        let action: Vec<f32> = if env_step < t.learning_starts {
            (0..act_dim).map(|_| rng.gen_range(-1.0f32..=1.0)).collect()
        } else {
            let a = agent.act(&obs_tensor(&obs, &spec, device));
            a.iter()
                .map(|&x| (x + noise.sample(&mut rng) as f32).clamp(-1.0, 1.0))
                .collect()
        };
        let st = env.step(&action);
        env_step += 1;
        // A bridged env that died or raised: the run is `crashed`, with the traceback as its
        // reason. Checked before anything uses the step, which did not happen (no transition,
        // no episode end).
        if let Some(why) = env.failure() {
            let why = format!("at env step {env_step}: {why}");
            outcome = Outcome::Crashed;
            record.stderr_tail = Some(why.clone());
            reason = Some(format!("environment failed {why}"));
            break;
        }
        ep.current += st.reward;
        // Truncation (time limit) is not terminal: TD3 bootstraps through it.
        replay.push(&obs, &action, st.reward as f32, &st.obs, st.terminated);
        obs = if st.terminated || st.truncated {
            ep.count += 1;
            ep.last_return = Some(ep.current);
            ep.current = 0.0;
            // Each episode is reseeded (not continued) so its env state is a function of its
            // seed and its actions: that is what a resume replays.
            ep_seed = episode_seed(cfg.seed, ep.count);
            ep_actions.clear();
            env.reset(Some(ep_seed))
        } else {
            ep_actions.extend_from_slice(&action);
            st.obs
        };
        // A reset after an episode's end can fail too.
        let env_failure = env
            .failure()
            .map(|why| format!("at env step {env_step}: {why}"));
        // No evaluation during the random warm-up: no metrics row could carry it (rows are written
        // on training steps), and the untrained policy's return says nothing.
        let eval_failure = if env_failure.is_none()
            && cfg.evaluation.every > 0
            && env_step.is_multiple_of(cfg.evaluation.every)
            && env_step > t.learning_starts
        {
            match evaluate(&agent, cfg) {
                Ok(v) => {
                    pending_eval = Some(v);
                    None
                }
                Err(TrainError::EnvFailed(why)) => Some(format!("at env step {env_step}: {why}")),
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        if let Some(why) = env_failure.or(eval_failure) {
            outcome = Outcome::Crashed;
            record.stderr_tail = Some(why.clone());
            reason = Some(format!("environment failed {why}"));
            break;
        }
        if env_step <= t.learning_starts || replay.len() < t.batch_size.min(replay.len().max(1)) {
            continue;
        }
        let train_step = agent.total_it + 1;
        if cfg.debug.abort_at_step == Some(train_step) {
            eprintln!("debug.abort_at_step reached at training step {train_step}: aborting");
            std::process::abort();
        }
        if cfg.debug.hang_at_step == Some(train_step) {
            eprintln!("debug.hang_at_step reached at training step {train_step}: hanging");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        let batch = replay.sample(t.batch_size, &mut rng, device);
        let (stats, ok) = agent.update(&batch);
        let s = stats.to_host(cfg.uses_pixels());
        win.add(&s);
        let diverged = !ok || s.nonfinite > 0;
        evidence.push(train_step, env_step, s);
        if diverged {
            record.first_nonfinite_step = Some(train_step);
            win.nonfinite = win.nonfinite.max(1);
            evidence.write(&out, train_step, "first_nonfinite")?;
        }
        let at_row = train_step % log_every == 0 || diverged || env_step == t.steps;
        if at_row {
            let mut row = win.row(train_step, env_step, wall(&t0), &ep);
            row.eval_return = pending_eval.take();
            writer.write(&row)?;
            if let Some(cb) = opts.on_row.as_mut() {
                cb(&row);
            }
            rows.push(row);
            win = Window::default();
            if diverged {
                outcome = Outcome::Diverged;
                reason = Some(format!(
                    "non-finite loss, gradient or parameter at training step {train_step}"
                ));
                break 'outer;
            }
            if let Some(ff) = opts.fail_fast.as_ref().filter(|_| !evidence.written) {
                if let Some(why) = ff(&rows[rows.len() - 1..]) {
                    evidence.write(&out, train_step, "fail_detected")?;
                    if opts.stop_on_fail {
                        outcome = Outcome::Stopped;
                        reason = Some(format!("FAIL, stopped at step {train_step}: {why}"));
                        break 'outer;
                    }
                }
            }
        }
    }
    // Steps after the last full window still get a row, so nothing measured is dropped.
    if win.n > 0 {
        let mut row = win.row(agent.total_it, env_step, wall(&t0), &ep);
        row.eval_return = pending_eval.take();
        writer.write(&row)?;
        if let Some(cb) = opts.on_row.as_mut() {
            cb(&row);
        }
        rows.push(row);
    }
    if outcome == Outcome::Completed && (opts.checkpoint_at_end || every > 0) {
        write_checkpoint!()?;
        record.extra.insert(
            "checkpoint".into(),
            format!("{} (env step {env_step})", ckpt_dir.display()),
        );
    }
    record.outcome = outcome;
    record.reason = reason;
    record.steps_done = env_step;
    record.train_steps_done = agent.total_it;
    record.wall_s = t0.elapsed().as_secs_f64();
    record.provisional = false;
    save(&record)?;
    Ok(record)
}

/// Everything [`save_checkpoint`] needs from the loop.
struct Snapshot<'a> {
    config_hash: &'a str,
    agent: &'a Td3,
    replay: &'a Replay,
    rng: &'a ChaCha8Rng,
    ep: &'a Episodes,
    ep_seed: u64,
    ep_actions: &'a [f32],
    obs: &'a Observation,
    env_step: u64,
    pending_eval: Option<f64>,
    metrics_path: &'a std::path::Path,
    metrics_rows: u64,
    wall_s: f64,
}

fn save_checkpoint(dir: &std::path::Path, s: &Snapshot) -> Result<(), CheckpointError> {
    let metrics_bytes = std::fs::metadata(s.metrics_path)
        .map(|m| m.len())
        .map_err(|source| CheckpointError::Io {
            path: s.metrics_path.to_path_buf(),
            source,
        })?;
    let state = HostState {
        format: checkpoint::FORMAT_VERSION,
        config_hash: s.config_hash.to_string(),
        env_step: s.env_step,
        train_step: s.agent.total_it,
        rng: RngState::of(s.rng),
        episodes: s.ep.count,
        last_return_bits: s.ep.last_return.map(f64::to_bits),
        current_return_bits: s.ep.current.to_bits(),
        current_return: s.ep.current,
        episode_seed: s.ep_seed,
        pending_eval_bits: s.pending_eval.map(f64::to_bits),
        metrics_bytes,
        metrics_rows: s.metrics_rows,
        wall_s: s.wall_s,
        written_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let mut replay = s.replay.state();
    // A leading padding value keeps the tensor non-empty right after a reset.
    let mut acts = vec![0.0f32];
    acts.extend_from_slice(s.ep_actions);
    replay.push(("episode.actions".into(), Tensor::from_slice(&acts)));
    let obs = match s.obs {
        Observation::Pixels(p) => Tensor::from_slice(p),
        Observation::State(v) => Tensor::from_slice(v),
    };
    replay.push(("episode.obs".into(), obs));
    let sets = checkpoint::TensorSets {
        model: s.agent.network_tensors(),
        optimizer: s.agent.optimizer_tensors(),
        replay,
    };
    checkpoint::save(dir, &state, &sets)
}

/// Rebuilds the env's state: resets it with the checkpoint's episode seed and replays the
/// episode's actions, which must lead to the stored observation. Returns that observation and
/// fills `actions` with the replayed actions.
fn replay_episode(
    env: &mut dyn Env,
    c: &checkpoint::Checkpoint,
    act_dim: usize,
    actions: &mut Vec<f32>,
) -> Result<Observation, CheckpointError> {
    let t = c
        .get("episode.actions")
        .ok_or_else(|| c.corrupt("missing tensor `episode.actions`"))?;
    let all: Vec<f32> =
        Vec::try_from(t.view([-1])).map_err(|e| c.corrupt(format!("episode.actions: {e}")))?;
    let acts = all.get(1..).unwrap_or_default();
    if act_dim == 0 || acts.len() % act_dim != 0 {
        return Err(c.corrupt(format!(
            "episode.actions holds {} values, not a multiple of the action dimension {act_dim}",
            acts.len()
        )));
    }
    let mut obs = env.reset(Some(c.state.episode_seed));
    for (i, a) in acts.chunks(act_dim).enumerate() {
        let st = env.step(a);
        if st.terminated || st.truncated {
            return Err(c.corrupt(format!("the episode ended while replaying its action {i}")));
        }
        obs = st.obs;
    }
    let stored = c
        .get("episode.obs")
        .ok_or_else(|| c.corrupt("missing tensor `episode.obs`"))?;
    let same = match &obs {
        Observation::Pixels(p) => Vec::<u8>::try_from(stored.view([-1])).ok().as_ref() == Some(p),
        Observation::State(v) => Vec::<f32>::try_from(stored.view([-1])).ok().as_ref() == Some(v),
    };
    if !same {
        return Err(c.corrupt(
            "replaying the current episode's actions did not reproduce the stored observation (is the env deterministic given its reset seed?)",
        ));
    }
    actions.clear();
    actions.extend_from_slice(acts);
    Ok(obs)
}

/// Cuts `metrics.csv` back to its length at the checkpoint (rows written after it are
/// repeated by the resumed run) and returns its rows.
fn cut_metrics(path: &std::path::Path, st: &HostState) -> Result<Vec<MetricRow>, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len < st.metrics_bytes {
        return Err(format!(
            "{} has {len} bytes, fewer than the {} it had at the checkpoint",
            path.display(),
            st.metrics_bytes
        ));
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.set_len(st.metrics_bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let rows = crate::results::read_metrics(path).map_err(|e| e.to_string())?;
    if rows.len() as u64 != st.metrics_rows {
        return Err(format!(
            "{} has {} rows up to the checkpoint, expected {}",
            path.display(),
            rows.len(),
            st.metrics_rows
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_commit_is_the_source_folders_head_marked_dirty_or_not() {
        let head = std::process::Command::new("git")
            .args([
                "-C",
                env!("CARGO_MANIFEST_DIR"),
                "rev-parse",
                "--short=12",
                "HEAD",
            ])
            .output()
            .unwrap();
        if !head.status.success() {
            return; // built outside a git checkout: "unknown" is the honest answer
        }
        let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
        let got = super::git_commit();
        assert!(
            got == head || got == format!("{head}-dirty"),
            "{got} vs {head}"
        );
    }
}
