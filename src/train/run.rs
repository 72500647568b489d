//! The training loop of one run: act, store, update, aggregate metrics, decide the outcome.
//!
//! Divergence, fail-fast and interruption are outcomes recorded in `run.json`, not errors. Errors are
//! reserved for things that stop a run from starting or from writing its files.
//!
//! # Rows and evaluations
//! A training row aggregates the updates since the previous row, so its `train_step` is never 0.
//! With evaluation on (`evaluation.every > 0`), a fresh run first evaluates its untrained policy
//! and writes it as the **baseline row**: `train_step` 0, `env_step` 0, `episodes` 0, its
//! `eval_return` the untrained policy's return and every other measurement empty. It is the only
//! row with `train_step` 0 and always the file's first; a resumed run keeps the row its first
//! attempt wrote. Later evaluations run every `evaluation.every` env steps after
//! `learning_starts`, under the same protocol (the same eval env seeds, the same number of
//! episodes, the deterministic actor), and their return goes into the next training row.

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
use super::env::{make_env, q_abs_bound, Env, ObsSpec, Observation};
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
    /// Quoted in the message, so not also a source (see the `From` impl below): printed once.
    #[error("libtorch: {0}")]
    Torch(tch::TchError),
    #[error(transparent)]
    Metrics(#[from] crate::results::MetricsError),
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        /// Quoted in the message (run records embed it), so not also a `#[source]`: printed once.
        cause: std::io::Error,
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

impl From<tch::TchError> for TrainError {
    fn from(e: tch::TchError) -> Self {
        TrainError::Torch(e)
    }
}

/// Called at each metrics row with the rows not checked yet (the new one); returns a reason when a
/// FAIL is already certain. Certainty is per row (see [`crate::verdict::certain_fail`]), so checking
/// each row once, as it is written, is the same as checking all rows each time, without the cost
/// growing with the run's length. The second argument is the run's |Q| bound (run.json's
/// `q_bound`), for rules whose thresholds are fractions of it.
pub type FailFast = Box<dyn Fn(&[MetricRow], Option<f64>) -> Option<String>>;

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
    git_commit_of(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// The commit checked out in the git repository holding `src` (12 hex digits, `-dirty` with
/// uncommitted changes to tracked files), or "unknown" where there is none: also how an external
/// trainer's own code is recorded.
pub fn git_commit_of(src: &std::path::Path) -> String {
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
    /// Updates in which each CNN's clip engaged; `None` while that clip is off (or has no CNN).
    critic_cnn_clips: Option<u64>,
    actor_cnn_clips: Option<u64>,
    nonfinite: u64,
}

/// Adds one update's "the clip engaged" to a window's count; `None` (clip off) leaves it.
fn count_clip(count: Option<u64>, engaged: Option<bool>) -> Option<u64> {
    match engaged {
        Some(e) => Some(count.unwrap_or(0) + u64::from(e)),
        None => count,
    }
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
        self.critic_cnn_clips = count_clip(self.critic_cnn_clips, s.critic_cnn_clipped);
        if let Some(l) = s.actor_loss {
            self.n_actor += 1;
            self.actor_loss_sum += l;
            self.actor_cnn_gn = fmax(self.actor_cnn_gn, s.actor_cnn_gn);
            self.actor_head_gn = fmax(self.actor_head_gn, s.actor_head_gn);
            self.actor_cnn_clips = count_clip(self.actor_cnn_clips, s.actor_cnn_clipped);
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
            // Fractions of the updates that could clip: the critic's, the actor's delayed ones.
            critic_cnn_clip_frac: self.critic_cnn_clips.map(|c| c as f64 / n),
            actor_cnn_clip_frac: self
                .actor_cnn_clips
                .map(|c| c as f64 / self.n_actor.max(1) as f64),
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
                cause: source,
            }
        })
    }
}

/// Trains one TD3 agent as `cfg` says, writing `metrics.csv` and `run.json` into `opts.out_dir`.
///
/// In steps: seed libtorch; build the env, the agent and the replay buffer; write a start-up
/// `run.json` that says "crashed" until the run says otherwise; start afresh or from
/// `opts.resume`'s checkpoint; evaluate the untrained baseline (a fresh run with evaluation on);
/// step the env until `training.steps`, with `training.gradient_steps` updates per step after the
/// warm-up, unless an outcome (interruption, a failed env, divergence, a certain FAIL) ends the
/// run early; then write the last row, the end-of-run checkpoint and the final `run.json`.
pub fn train(cfg: &AgentConfig, opts: TrainOptions) -> Result<RunRecord, TrainError> {
    let t0 = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    std::fs::create_dir_all(&opts.out_dir).map_err(|source| TrainError::Io {
        path: opts.out_dir.clone(),
        cause: source,
    })?;
    let device = resolve_device(&cfg.device)?;
    seed_libtorch(cfg, device);
    let mut env = make_env(&cfg.env)?;
    let spec = env.obs_spec();
    let act_dim = env.action_dim();
    let shape = obs_shape(&spec);
    check_image_fits(cfg, &spec, &shape)?;
    let mut agent = Td3::new(cfg, &shape, act_dim as i64, device)?;
    if opts.verbose {
        print_learning_rates(cfg);
    }
    let mut record = start_record(cfg, &opts, device, started_at, env.as_ref());
    let run_dir = RunDir::new(&opts.out_dir);
    // Before anything is written: a buffer the machine can't hold is a configuration error.
    let t = &cfg.training;
    let mut replay = Replay::try_new(t.buffer_size, shape, cfg.uses_pixels(), act_dim)
        .map_err(TrainError::Replay)?;
    // Written first as "crashed": if the process dies without a word, that is what it did.
    save_record(&run_dir, &record)?;
    let metrics_path = run_dir.metrics_csv();
    let (state, writer) = match &opts.resume {
        None => {
            let p = LoopState::fresh(cfg, env.as_mut());
            (p, MetricsWriter::create(&metrics_path)?)
        }
        Some(dir) => {
            let restored = resume(
                dir,
                cfg,
                &mut agent,
                &mut replay,
                env.as_mut(),
                &metrics_path,
            );
            match restored {
                Ok(x) => {
                    record
                        .extra
                        .insert("resumed_from_env_step".into(), x.0.env_step.to_string());
                    x
                }
                Err(e) => {
                    record.reason = Some(format!("cannot resume: {e}"));
                    record.provisional = false;
                    save_record(&run_dir, &record)?;
                    return Err(e);
                }
            }
        }
    };
    // A resumed run already has its baseline row, from the attempt that started it.
    let fresh = opts.resume.is_none();
    let every = t.checkpoint_every;
    let mut run = Run {
        cfg,
        resume_hash: checkpoint::resume_hash(cfg),
        device,
        env,
        spec,
        act_dim,
        evidence: Evidence::new(agent.layer_names()),
        agent,
        replay,
        noise: Normal::new(0.0, t.exploration_noise.max(0.0))
            .unwrap_or_else(|_| Normal::new(0.0, 0.0).unwrap()),
        next_ckpt: state
            .env_step
            .checked_div(every)
            .map_or(u64::MAX, |n| (n + 1) * every),
        p: state,
        win: Window::default(),
        writer,
        record,
        run_dir,
        metrics_path,
        opts,
        t0,
    };
    let ending = match run.evaluate_baseline(fresh)? {
        Some(why) => run.crashed(why),
        None => run.run_loop()?,
    };
    run.finish(ending)
}

/// Seeds libtorch's generators with the run's seed. On CUDA, a deterministic run also gives up
/// autotuned and cuDNN convolutions.
fn seed_libtorch(cfg: &AgentConfig, device: Device) {
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
}

/// A pixel env's images must be large enough for the conv stack, or no network can read them.
fn check_image_fits(cfg: &AgentConfig, spec: &ObsSpec, shape: &[i64]) -> Result<(), TrainError> {
    let ObsSpec::Pixels { height, .. } = *spec else {
        return Ok(());
    };
    let cnn = &cfg.networks.cnn;
    let side = crate::train::nets::EncoderShape {
        in_channels: shape[0],
        image_size: height as i64,
        channels: cnn.channels.clone(),
        kernels: cnn.kernels.clone(),
        strides: cnn.strides.clone(),
        feature_dim: cnn.feature_dim,
    }
    .conv_out_side();
    match side {
        Some(_) => Ok(()),
        None => Err(TrainError::Shape(format!(
            "a {height}x{height} image is too small for kernels {:?} with strides {:?}",
            cnn.kernels, cnn.strides
        ))),
    }
}

/// Prints each optimizer's learning rate and the key it came from, as the seed does at start-up.
fn print_learning_rates(cfg: &AgentConfig) {
    let lrs = cfg.resolved_lrs();
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

/// The record `run.json` holds from start-up: the run's identity and set-up, with outcome
/// `crashed` and [`PLACEHOLDER_REASON`] until the run writes its final record.
fn start_record(
    cfg: &AgentConfig,
    opts: &TrainOptions,
    device: Device,
    started_at: String,
    env: &dyn Env,
) -> RunRecord {
    RunRecord {
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
        learning_rates: Some(cfg.resolved_lrs()),
        config_hash: opts.config_hash.clone(),
        first_nonfinite_step: None,
        reason: Some(PLACEHOLDER_REASON.into()),
        exit: None,
        stderr_tail: None,
        q_bound: q_abs_bound(
            env.reward_bound(),
            cfg.env.reward_scale,
            cfg.training.discount,
        ),
        extra: BTreeMap::from([
            ("threads".to_string(), tch::get_num_threads().to_string()),
            ("env".to_string(), env.name().to_string()),
        ]),
        invocation: None,
        provisional: true,
    }
}

fn save_record(dir: &RunDir, r: &RunRecord) -> Result<(), TrainError> {
    dir.write_record(r).map_err(|source| TrainError::Io {
        path: dir.run_json(),
        cause: source,
    })
}

/// Where the loop stands, besides the agent and the replay buffer: what a checkpoint saves and a
/// resume restores.
struct LoopState {
    /// The run's host RNG: warm-up actions, exploration noise, batch indices, smoothing noise.
    rng: ChaCha8Rng,
    obs: Observation,
    ep: Episodes,
    /// The current episode's reset seed; with `ep_actions`, the actions since, it rebuilds the
    /// env on resume.
    ep_seed: u64,
    ep_actions: Vec<f32>,
    env_step: u64,
    /// An evaluation return waiting for the next metrics row.
    pending_eval: Option<f64>,
    /// Wall time of the attempts this one resumes.
    wall_before: f64,
    /// The rows of `metrics.csv` so far.
    rows: Vec<MetricRow>,
}

impl LoopState {
    /// A fresh start: the env reset with the run's seed.
    fn fresh(cfg: &AgentConfig, env: &mut dyn Env) -> LoopState {
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED);
        LoopState {
            rng,
            obs: env.reset(Some(cfg.seed)),
            ep: Episodes::default(),
            ep_seed: cfg.seed,
            ep_actions: Vec::new(),
            env_step: 0,
            pending_eval: None,
            wall_before: 0.0,
            rows: Vec::new(),
        }
    }
}

/// Restores the agent, the replay buffer, the env and the loop's progress from the checkpoint in
/// `dir`, cuts `metrics.csv` back to its length then, and opens it for appending.
fn resume(
    dir: &std::path::Path,
    cfg: &AgentConfig,
    agent: &mut Td3,
    replay: &mut Replay,
    env: &mut dyn Env,
    metrics_path: &std::path::Path,
) -> Result<(LoopState, MetricsWriter), TrainError> {
    let c = checkpoint::load(dir, &checkpoint::resume_hash(cfg))?;
    let st = &c.state;
    if st.env_step > cfg.training.steps {
        return Err(c
            .corrupt(format!(
                "it is at env step {}, beyond training.steps = {}",
                st.env_step, cfg.training.steps
            ))
            .into());
    }
    agent
        .load_tensors(&|n| c.get(n), st.train_step)
        .map_err(|m| c.corrupt(m))?;
    replay.load_state(&|n| c.get(n)).map_err(|m| c.corrupt(m))?;
    let rng = st.rng.restore().map_err(|m| c.corrupt(m))?;
    let mut ep_actions = Vec::new();
    let act_dim = env.action_dim();
    let obs = replay_episode(env, &c, act_dim, &mut ep_actions)?;
    let state = LoopState {
        rng,
        obs,
        ep: Episodes {
            count: st.episodes,
            last_return: st.last_return_bits.map(f64::from_bits),
            current: f64::from_bits(st.current_return_bits),
        },
        ep_seed: st.episode_seed,
        ep_actions,
        env_step: st.env_step,
        pending_eval: st.pending_eval_bits.map(f64::from_bits),
        wall_before: st.wall_s,
        rows: cut_metrics(metrics_path, st).map_err(|m| c.corrupt(m))?,
    };
    Ok((state, MetricsWriter::append(metrics_path)?))
}

/// How a run ended, for its final record.
struct Ending {
    outcome: Outcome,
    reason: Option<String>,
}

impl Ending {
    fn early(outcome: Outcome, reason: String) -> Ending {
        Ending {
            outcome,
            reason: Some(reason),
        }
    }
}

/// One run in progress: what the loop reads and changes.
struct Run<'a> {
    cfg: &'a AgentConfig,
    opts: TrainOptions,
    /// [`checkpoint::resume_hash`] of `cfg`, written into each checkpoint.
    resume_hash: String,
    device: Device,
    env: Box<dyn Env>,
    spec: ObsSpec,
    act_dim: usize,
    agent: Td3,
    replay: Replay,
    /// Gaussian exploration noise (`training.exploration_noise`).
    noise: Normal<f64>,
    p: LoopState,
    win: Window,
    evidence: Evidence,
    writer: MetricsWriter,
    /// What `run.json` will say; saved at the end.
    record: RunRecord,
    run_dir: RunDir,
    metrics_path: PathBuf,
    t0: Instant,
    /// The env step of the next periodic checkpoint (`u64::MAX` when they are off).
    next_ckpt: u64,
}

impl Run<'_> {
    /// Steps the env until `training.steps`, with `training.gradient_steps` updates per step after
    /// the warm-up, unless an outcome ends the run early.
    fn run_loop(&mut self) -> Result<Ending, TrainError> {
        let updates = self.cfg.training.gradient_steps.max(1);
        while self.p.env_step < self.cfg.training.steps {
            // Only between windows, so a checkpoint never holds half-aggregated metrics.
            if self.p.env_step >= self.next_ckpt && self.win.n == 0 {
                self.write_checkpoint()?;
                let every = self.cfg.training.checkpoint_every;
                self.next_ckpt = (self.p.env_step / every + 1) * every;
            }
            if self.opts.stop.load(Ordering::Relaxed) {
                let why = format!("interrupted at env step {}", self.p.env_step);
                return Ok(Ending::early(Outcome::Interrupted, why));
            }
            if let Some(why) = self.env_step()? {
                return Ok(self.crashed(why));
            }
            if self.training_due() {
                for i in 1..=updates {
                    if let Some(ending) = self.train_step(i == updates)? {
                        return Ok(ending);
                    }
                }
            }
        }
        Ok(Ending {
            outcome: Outcome::Completed,
            reason: None,
        })
    }

    /// One env step: the action, the transition into the replay buffer, an episode's end, and an
    /// evaluation when one is due. Returns why the env failed, if it did.
    fn env_step(&mut self) -> Result<Option<String>, TrainError> {
        let action = self.action();
        let st = self.env.step(&action);
        self.p.env_step += 1;
        let env_step = self.p.env_step;
        // A bridged env that died or raised: the run is `crashed`, with the traceback as its
        // reason. Checked before anything uses the step, which did not happen (no transition,
        // no episode end).
        if let Some(why) = self.env.failure() {
            return Ok(Some(format!("at env step {env_step}: {why}")));
        }
        let p = &mut self.p;
        p.ep.current += st.reward;
        // Truncation (time limit) is not terminal: TD3 bootstraps through it.
        self.replay
            .push(&p.obs, &action, st.reward as f32, &st.obs, st.terminated);
        p.obs = if st.terminated || st.truncated {
            p.ep.count += 1;
            p.ep.last_return = Some(p.ep.current);
            p.ep.current = 0.0;
            // Each episode is reseeded (not continued) so its env state is a function of its
            // seed and its actions: that is what a resume replays.
            p.ep_seed = episode_seed(self.cfg.seed, p.ep.count);
            p.ep_actions.clear();
            self.env.reset(Some(p.ep_seed))
        } else {
            p.ep_actions.extend_from_slice(&action);
            st.obs
        };
        // A reset after an episode's end can fail too.
        if let Some(why) = self.env.failure() {
            return Ok(Some(format!("at env step {env_step}: {why}")));
        }
        self.evaluate_if_due()
    }

    /// Uniformly random during the warm-up (`learning_starts`), then the policy's action plus
    /// exploration noise, clamped to [-1, 1].
    fn action(&mut self) -> Vec<f32> {
        let p = &mut self.p;
        if p.env_step < self.cfg.training.learning_starts {
            (0..self.act_dim)
                .map(|_| p.rng.gen_range(-1.0f32..=1.0))
                .collect()
        } else {
            let a = self.agent.act(&obs_tensor(&p.obs, &self.spec, self.device));
            a.iter()
                .map(|&x| (x + self.noise.sample(&mut p.rng) as f32).clamp(-1.0, 1.0))
                .collect()
        }
    }

    /// The untrained baseline: with evaluation on, a fresh run (`fresh`) evaluates its policy
    /// before its first env step, under the same protocol as every later evaluation, and writes it
    /// as the baseline row (train step 0, env step 0, see the module docs). Returns why the
    /// evaluation env failed, if it did.
    fn evaluate_baseline(&mut self, fresh: bool) -> Result<Option<String>, TrainError> {
        if !fresh || self.cfg.evaluation.every == 0 {
            return Ok(None);
        }
        match evaluate(&self.agent, self.cfg) {
            Ok(v) => {
                self.p.pending_eval = Some(v);
                self.write_row(0)?;
                Ok(None)
            }
            Err(TrainError::EnvFailed(why)) => Ok(Some(format!("at env step 0: {why}"))),
            Err(e) => Err(e),
        }
    }

    /// Evaluates the policy every `evaluation.every` env steps, keeping the return for the next
    /// row. Returns why the evaluation env failed, if it did.
    fn evaluate_if_due(&mut self) -> Result<Option<String>, TrainError> {
        let (cfg, env_step) = (self.cfg, self.p.env_step);
        // No evaluation during the random warm-up: no metrics row could carry it (rows are written
        // on training steps), and the policy is still the untrained one of the baseline row.
        let due = cfg.evaluation.every > 0
            && env_step.is_multiple_of(cfg.evaluation.every)
            && env_step > cfg.training.learning_starts;
        if !due {
            return Ok(None);
        }
        match evaluate(&self.agent, cfg) {
            Ok(v) => {
                self.p.pending_eval = Some(v);
                Ok(None)
            }
            Err(TrainError::EnvFailed(why)) => Ok(Some(format!("at env step {env_step}: {why}"))),
            Err(e) => Err(e),
        }
    }

    /// Whether this env step trains: past `learning_starts`, with transitions to sample.
    fn training_due(&self) -> bool {
        let t = &self.cfg.training;
        let len = self.replay.len();
        self.p.env_step > t.learning_starts && len >= t.batch_size.min(len.max(1))
    }

    /// One gradient update and its bookkeeping: the window, the evidence, and a metrics row every
    /// `log_every` updates, at divergence and after the last env step's last update
    /// (`last_of_env_step`). Returns the outcome that ends the run here, if any: divergence, or a
    /// FAIL already certain (with `stop_on_fail`).
    fn train_step(&mut self, last_of_env_step: bool) -> Result<Option<Ending>, TrainError> {
        let cfg = self.cfg;
        let train_step = self.agent.total_it + 1;
        debug_hooks(cfg, train_step);
        let batch = self
            .replay
            .sample(cfg.training.batch_size, &mut self.p.rng, self.device);
        let (stats, ok) = self.agent.update(&batch);
        let s = stats.to_host(cfg.uses_pixels());
        self.win.add(&s);
        let diverged = !ok || s.nonfinite > 0;
        let env_step = self.p.env_step;
        self.evidence.push(train_step, env_step, s);
        if diverged {
            self.record.first_nonfinite_step = Some(train_step);
            self.win.nonfinite = self.win.nonfinite.max(1);
            self.evidence
                .write(&self.opts.out_dir, train_step, "first_nonfinite")?;
        }
        let at_row = train_step.is_multiple_of(cfg.logging.log_every.max(1))
            || diverged
            || (last_of_env_step && env_step == cfg.training.steps);
        if !at_row {
            return Ok(None);
        }
        self.write_row(train_step)?;
        if diverged {
            let why =
                format!("non-finite loss, gradient or parameter at training step {train_step}");
            return Ok(Some(Ending::early(Outcome::Diverged, why)));
        }
        self.check_fail_fast(train_step)
    }

    /// Runs the criteria's "FAIL is certain" check on the newest row. Its first hit writes
    /// `evidence.csv`, and ends the run when `stop_on_fail` says so.
    fn check_fail_fast(&mut self, train_step: u64) -> Result<Option<Ending>, TrainError> {
        let Some(ff) = self.opts.fail_fast.as_ref() else {
            return Ok(None);
        };
        if self.evidence.written {
            return Ok(None);
        }
        let Some(why) = ff(&self.p.rows[self.p.rows.len() - 1..], self.record.q_bound) else {
            return Ok(None);
        };
        self.evidence
            .write(&self.opts.out_dir, train_step, "fail_detected")?;
        Ok(self.opts.stop_on_fail.then(|| {
            let why = format!("FAIL, stopped at step {train_step}: {why}");
            Ending::early(Outcome::Stopped, why)
        }))
    }

    /// Writes the window as a metrics row, with any pending evaluation, and starts a new window.
    fn write_row(&mut self, train_step: u64) -> Result<(), TrainError> {
        let p = &mut self.p;
        let wall = p.wall_before + self.t0.elapsed().as_secs_f64();
        let mut row = self.win.row(train_step, p.env_step, wall, &p.ep);
        row.eval_return = p.pending_eval.take();
        self.writer.write(&row)?;
        if let Some(cb) = self.opts.on_row.as_mut() {
            cb(&row);
        }
        p.rows.push(row);
        self.win = Window::default();
        Ok(())
    }

    /// The env failed: the run is `crashed`, with the failure as its stderr tail and its reason.
    fn crashed(&mut self, why: String) -> Ending {
        let reason = format!("environment failed {why}");
        self.record.stderr_tail = Some(why);
        Ending::early(Outcome::Crashed, reason)
    }

    /// Writes the last partial window's row, the end-of-run checkpoint when one is asked for,
    /// and the final `run.json`.
    fn finish(mut self, ending: Ending) -> Result<RunRecord, TrainError> {
        // Steps after the last full window still get a row, so nothing measured is dropped.
        if self.win.n > 0 {
            self.write_row(self.agent.total_it)?;
        }
        let wants_checkpoint =
            self.opts.checkpoint_at_end || self.cfg.training.checkpoint_every > 0;
        if ending.outcome == Outcome::Completed && wants_checkpoint {
            self.write_checkpoint()?;
            let dir = checkpoint::dir_of(&self.opts.out_dir);
            self.record.extra.insert(
                "checkpoint".into(),
                format!("{} (env step {})", dir.display(), self.p.env_step),
            );
        }
        let mut record = self.record;
        record.outcome = ending.outcome;
        record.reason = ending.reason;
        record.steps_done = self.p.env_step;
        record.train_steps_done = self.agent.total_it;
        record.wall_s = self.t0.elapsed().as_secs_f64();
        record.provisional = false;
        save_record(&self.run_dir, &record)?;
        Ok(record)
    }

    /// Writes `<out_dir>/checkpoint`: the networks, the optimizers, the replay buffer, the
    /// current episode and [`LoopState`].
    fn write_checkpoint(&self) -> Result<(), CheckpointError> {
        let p = &self.p;
        let metrics_bytes = std::fs::metadata(&self.metrics_path)
            .map(|m| m.len())
            .map_err(|source| CheckpointError::Io {
                path: self.metrics_path.clone(),
                cause: source,
            })?;
        let state = HostState {
            format: checkpoint::FORMAT_VERSION,
            config_hash: self.resume_hash.clone(),
            env_step: p.env_step,
            train_step: self.agent.total_it,
            rng: RngState::of(&p.rng),
            episodes: p.ep.count,
            last_return_bits: p.ep.last_return.map(f64::to_bits),
            current_return_bits: p.ep.current.to_bits(),
            current_return: p.ep.current,
            episode_seed: p.ep_seed,
            pending_eval_bits: p.pending_eval.map(f64::to_bits),
            metrics_bytes,
            metrics_rows: p.rows.len() as u64,
            wall_s: p.wall_before + self.t0.elapsed().as_secs_f64(),
            written_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let mut replay = self.replay.state();
        // A leading padding value keeps the tensor non-empty right after a reset.
        let mut acts = vec![0.0f32];
        acts.extend_from_slice(&p.ep_actions);
        replay.push(("episode.actions".into(), Tensor::from_slice(&acts)));
        let obs = match &p.obs {
            Observation::Pixels(px) => Tensor::from_slice(px),
            Observation::State(v) => Tensor::from_slice(v),
        };
        replay.push(("episode.obs".into(), obs));
        let sets = checkpoint::TensorSets {
            model: self.agent.network_tensors(),
            optimizer: self.agent.optimizer_tensors(),
            replay,
        };
        checkpoint::save(&checkpoint::dir_of(&self.opts.out_dir), &state, &sets)
    }
}

/// `debug.abort_at_step` and `debug.hang_at_step`: a child that dies or hangs, for the scheduler's
/// tests.
fn debug_hooks(cfg: &AgentConfig, train_step: u64) {
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
    use super::*;
    use crate::config::{EnvKind, ObsKind};

    /// A tiny pendulum agent on state observations: trains in well under a second.
    fn tiny_state() -> AgentConfig {
        let mut c = AgentConfig {
            device: "cpu".into(),
            ..Default::default()
        };
        c.env.kind = EnvKind::Pendulum;
        c.env.obs = ObsKind::State;
        c.env.max_episode_steps = Some(20);
        c.networks.actor.hidden = vec![16];
        c.networks.critic.hidden = vec![16];
        c.training.batch_size = 8;
        c.training.steps = 40;
        c.training.learning_starts = 10;
        c.evaluation.every = 0;
        c.evaluation.episodes = 2;
        c.logging.log_every = 10;
        c
    }

    fn run(cfg: &AgentConfig, dir: &std::path::Path, resume: bool) -> (RunRecord, Vec<MetricRow>) {
        let mut opts = TrainOptions::new(dir.to_path_buf());
        opts.verbose = false;
        opts.checkpoint_at_end = true;
        opts.resume = resume.then(|| checkpoint::dir_of(dir));
        let rec = train(cfg, opts).unwrap();
        let rows = crate::results::read_metrics(&RunDir::new(dir).metrics_csv()).unwrap();
        (rec, rows)
    }

    #[test]
    fn gradient_steps_multiply_the_updates_and_rows_stay_per_update() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = tiny_state();
        cfg.training.gradient_steps = 3;
        cfg.logging.log_every = 7;
        let (rec, rows) = run(&cfg, d.path(), false);
        assert_eq!(rec.outcome, Outcome::Completed);
        // 30 env steps train (after the 10 of warm-up), 3 updates each.
        assert_eq!((rec.steps_done, rec.train_steps_done), (40, 90));
        let steps: Vec<(u64, u64)> = rows.iter().map(|r| (r.train_step, r.env_step)).collect();
        // A row every 7 updates, and one (not three) after the last env step's last update.
        let mut want: Vec<(u64, u64)> = (1..=12u64)
            .map(|k| (7 * k, 10 + (7 * k).div_ceil(3)))
            .collect();
        want.push((90, 40));
        assert_eq!(steps, want);
        // The actor updates on every policy_delay-th update, not every env step.
        let first = &rows[0];
        assert!(first.actor_loss.is_some() && first.critic_loss.is_some());
    }

    #[test]
    fn the_baseline_row_comes_first_and_once_across_a_resume() {
        let a = tempfile::tempdir().unwrap();
        let mut cfg = tiny_state();
        cfg.evaluation.every = 10;
        let (_, rows) = run(&cfg, a.path(), false);
        let base = &rows[0];
        assert_eq!((base.train_step, base.env_step, base.episodes), (0, 0, 0));
        assert!(base.eval_return.is_some_and(f64::is_finite));
        let empty = MetricRow {
            eval_return: base.eval_return,
            wall_s: base.wall_s,
            ..Default::default()
        };
        assert_eq!(base, &empty, "the baseline row measures nothing else");
        // Evaluations after learning_starts, at env steps 20, 30 and 40, each in the row there.
        let evals: Vec<u64> = rows[1..]
            .iter()
            .filter(|r| r.eval_return.is_some())
            .map(|r| r.env_step)
            .collect();
        assert_eq!(evals, vec![20, 30, 40]);
        assert!(rows[1..].iter().all(|r| r.train_step > 0));
        // (Same config and seed, same file: tests/train_cpu.rs checks it in a process of its
        // own, as libtorch's generator is shared by this binary's test threads.)
        let no_wall = |r: &[MetricRow]| -> Vec<MetricRow> {
            r.iter()
                .map(|x| MetricRow {
                    wall_s: 0.0,
                    ..x.clone()
                })
                .collect()
        };
        // A resumed run continues from the checkpoint without a second baseline.
        cfg.training.steps = 60;
        let (rec, resumed) = run(&cfg, a.path(), true);
        assert_eq!(rec.steps_done, 60);
        assert_eq!(resumed.iter().filter(|r| r.train_step == 0).count(), 1);
        assert_eq!(no_wall(&resumed[..rows.len()]), no_wall(&rows));
        assert_eq!(resumed.last().unwrap().env_step, 60);
    }

    #[test]
    fn the_window_counts_clips_over_the_updates_that_could_clip() {
        let step = |actor: bool, critic_clip: Option<bool>, actor_clip: Option<bool>| StepScalars {
            actor_loss: actor.then_some(0.0),
            critic_cnn_clipped: critic_clip,
            actor_cnn_clipped: actor_clip.filter(|_| actor),
            ..Default::default()
        };
        let mut w = Window::default();
        // Four critic updates (3 clipped), two of them with an actor update (1 clipped).
        w.add(&step(false, Some(true), None));
        w.add(&step(true, Some(true), Some(true)));
        w.add(&step(false, Some(false), None));
        w.add(&step(true, Some(true), Some(false)));
        let r = w.row(4, 4, 0.0, &Episodes::default());
        assert_eq!(r.critic_cnn_clip_frac, Some(0.75));
        assert_eq!(r.actor_cnn_clip_frac, Some(0.5));
        // A clip that is off leaves its column empty.
        let mut off = Window::default();
        off.add(&step(true, None, None));
        let r = off.row(1, 1, 0.0, &Episodes::default());
        assert_eq!(
            (r.critic_cnn_clip_frac, r.actor_cnn_clip_frac),
            (None, None)
        );
    }

    #[test]
    fn clip_fractions_follow_the_clip_and_the_cnn() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = tiny_state();
        cfg.env.kind = EnvKind::LaneKeep;
        cfg.env.obs = ObsKind::Pixels;
        cfg.env.image_size = 16;
        cfg.env.frame_stack = 1;
        cfg.networks.cnn.channels = vec![4];
        cfg.networks.cnn.kernels = vec![3];
        cfg.networks.cnn.strides = vec![2];
        cfg.networks.cnn.feature_dim = 8;
        cfg.training.steps = 30;
        // Below any real norm: the actor's clip engages on every actor update.
        cfg.training.actor_cnn_grad_clip.max_norm = Some(1e-12);
        // Above any real norm: the critic's never does.
        cfg.training.critic_cnn_grad_clip.max_norm = Some(1e12);
        let (_, rows) = run(&cfg, d.path(), false);
        assert!(!rows.is_empty());
        for r in &rows {
            assert_eq!(r.actor_cnn_clip_frac, Some(1.0), "{r:?}");
            assert_eq!(r.critic_cnn_clip_frac, Some(0.0), "{r:?}");
        }
        // State observations have no CNN to clip: empty, whatever max_norm says.
        let d = tempfile::tempdir().unwrap();
        let mut cfg = tiny_state();
        cfg.training.actor_cnn_grad_clip.max_norm = Some(1e-12);
        let (_, rows) = run(&cfg, d.path(), false);
        assert!(rows
            .iter()
            .all(|r| r.actor_cnn_clip_frac.is_none() && r.critic_cnn_clip_frac.is_none()));
    }

    #[test]
    fn run_json_records_the_q_bound() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = tiny_state();
        cfg.training.steps = 12;
        cfg.env.reward_scale = 2.0;
        cfg.training.discount = 0.9;
        let (rec, _) = run(&cfg, d.path(), false);
        let want = super::super::env::pendulum::MAX_COST * 2.0 / (1.0 - 0.9);
        assert!((rec.q_bound.unwrap() - want).abs() < 1e-9 * want);
        let on_disk = RunDir::new(d.path()).read_record().unwrap();
        assert_eq!(on_disk.q_bound, rec.q_bound);
    }

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
