//! The agent configuration: one TD3 run, as `configs/td3.yaml` describes it.
//!
//! The structure follows the seed's `config/td3_config.yaml` (`networks.cnn.actor_cnn_lr`, ...).
//! Every field has a default, so a config file only needs the keys it changes.

use serde::{Deserialize, Serialize};

/// A complete, resolved TD3 configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Seed for the environment, network initialisation and all noise.
    pub seed: u64,
    /// `auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Ask libtorch for deterministic kernels (matters on CUDA; CPU with one thread is already deterministic).
    pub deterministic: bool,
    /// The environment the agent acts in.
    pub env: EnvConfig,
    /// Encoders and heads, with their learning rates.
    pub networks: NetworksConfig,
    /// TD3 hyper-parameters and the seed's stability knobs.
    pub training: TrainingConfig,
    /// Periodic deterministic evaluation.
    pub evaluation: EvaluationConfig,
    /// What goes into `metrics.csv`, and how often.
    pub logging: LoggingConfig,
    /// Fault injection for tests. Not documented for users.
    pub debug: DebugConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            device: "auto".into(),
            deterministic: false,
            env: EnvConfig::default(),
            networks: NetworksConfig::default(),
            training: TrainingConfig::default(),
            evaluation: EvaluationConfig::default(),
            logging: LoggingConfig::default(),
            debug: DebugConfig::default(),
        }
    }
}

/// Which built-in (or bridged) environment to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvKind {
    /// Top-down lane keeping with a kinematic bicycle model: the driving stand-in.
    LaneKeep,
    /// Gymnasium's Pendulum-v1, same equations and constants.
    Pendulum,
    /// Any Gymnasium env with a Box action space, run by `python/gym_bridge.py` (`env.id`, `env.kwargs`).
    Gymnasium,
}

/// Observation type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObsKind {
    /// Grayscale u8 frames, stacked: the actor and critic read them through CNN encoders.
    Pixels,
    /// A state vector: MLP heads only, the CNN metrics stay empty.
    State,
}

/// Environment settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvConfig {
    pub kind: EnvKind,
    pub obs: ObsKind,
    /// Square image side in pixels (pixel observations only).
    pub image_size: usize,
    /// Number of most recent frames stacked as channels (pixel observations only).
    pub frame_stack: usize,
    /// Time limit; reaching it truncates the episode (non-terminal for TD3). `None`: the env's own
    /// (Gymnasium's registered limit; 200 for the built-in envs, as Pendulum-v1 registers).
    pub max_episode_steps: Option<usize>,
    /// Multiplies every reward. The seed's Q of 11M suggests large raw rewards; this reproduces that regime.
    pub reward_scale: f64,
    /// Gymnasium env id (`CarRacing-v3`); required for, and only used by, `kind: gymnasium`.
    pub id: Option<String>,
    /// Keyword arguments for `gymnasium.make(id, **kwargs)`, passed through as JSON.
    pub kwargs: std::collections::BTreeMap<String, serde_json::Value>,
    /// The largest |reward| of one step before `reward_scale`, for `kind: gymnasium` only (the
    /// built-in envs declare their own); it bounds |Q| in `run.json`'s `q_bound`. `None`: unknown.
    pub reward_bound: Option<f64>,
}

impl EnvConfig {
    /// The time limit the built-in envs use: `max_episode_steps`, else 200.
    pub fn time_limit(&self) -> usize {
        self.max_episode_steps.unwrap_or(BUILTIN_TIME_LIMIT)
    }
}

/// The built-in envs' own time limit (Pendulum-v1 registers 200; lane-keep follows it).
pub const BUILTIN_TIME_LIMIT: usize = 200;

impl Default for EnvConfig {
    fn default() -> Self {
        Self {
            kind: EnvKind::LaneKeep,
            obs: ObsKind::Pixels,
            image_size: 48,
            frame_stack: 3,
            max_episode_steps: Some(200),
            reward_scale: 1.0,
            id: None,
            kwargs: Default::default(),
            reward_bound: None,
        }
    }
}

/// Whose features the actor reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorEncoder {
    /// The actor has its own CNN and optimizer (the seed's setup, SB3's default).
    Own,
    /// The actor reads the critic CNN's features, detached (DrQ-v2): only the critic loss trains the encoder.
    SharedDetached,
}

/// Encoders and heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworksConfig {
    pub cnn: CnnConfig,
    pub actor: HeadConfig,
    pub critic: HeadConfig,
}

impl Default for NetworksConfig {
    fn default() -> Self {
        Self {
            cnn: CnnConfig::default(),
            actor: HeadConfig {
                hidden: vec![256, 256],
                learning_rate: 3e-4,
            },
            critic: HeadConfig {
                hidden: vec![256, 256],
                learning_rate: 3e-4,
            },
        }
    }
}

/// The CNN encoders (one for the actor, one for the critic, same topology).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CnnConfig {
    /// Output channels of each conv layer.
    pub channels: Vec<i64>,
    /// Kernel size of each conv layer.
    pub kernels: Vec<i64>,
    /// Stride of each conv layer.
    pub strides: Vec<i64>,
    /// Width of the linear layer after the convs (the features the heads read).
    pub feature_dim: i64,
    /// Actor CNN learning rate. Falls back to `learning_rate`, then 1e-4 (the seed's rule).
    pub actor_cnn_lr: Option<f64>,
    /// Critic CNN learning rate. Falls back to `learning_rate`, then 1e-4.
    pub critic_cnn_lr: Option<f64>,
    /// Legacy shared CNN learning rate, used when a per-CNN rate is absent.
    pub learning_rate: Option<f64>,
    pub actor_encoder: ActorEncoder,
}

impl Default for CnnConfig {
    fn default() -> Self {
        Self {
            channels: vec![16, 32, 32],
            kernels: vec![5, 3, 3],
            strides: vec![2, 2, 1],
            feature_dim: 64,
            actor_cnn_lr: None,
            critic_cnn_lr: None,
            learning_rate: None,
            actor_encoder: ActorEncoder::Own,
        }
    }
}

/// An MLP head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadConfig {
    /// Hidden layer widths.
    pub hidden: Vec<i64>,
    /// Adam learning rate for this head.
    pub learning_rate: f64,
}

impl Default for HeadConfig {
    /// The actor's and the critic's defaults are the same: 256-256, lr 3e-4 (sfujim/TD3).
    fn default() -> Self {
        Self {
            hidden: vec![256, 256],
            learning_rate: 3e-4,
        }
    }
}

/// Gradient-norm clipping for one encoder (off when `max_norm` is null).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GradClip {
    pub max_norm: Option<f64>,
}

/// TD3 hyper-parameters (Fujimoto et al. 2018) and the seed's rollback knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    /// Environment steps to run. `gradient_steps` gradient updates per environment step after
    /// `learning_starts`.
    pub steps: u64,
    /// Gradient updates per environment step after `learning_starts` (Stable-Baselines3's
    /// `gradient_steps`): the update-to-data ratio. High ratios are tied to Q overestimation and
    /// divergence (Hussing et al. 2024, "Dissecting Deep RL with High Update Ratios").
    pub gradient_steps: u64,
    pub batch_size: usize,
    pub buffer_size: usize,
    /// Environment steps of uniformly random actions before training starts.
    pub learning_starts: u64,
    pub discount: f64,
    /// Polyak factor for all target networks, target CNNs included.
    pub tau: f64,
    /// Target policy smoothing noise std, as a fraction of the action bound.
    pub policy_noise: f64,
    /// Clip on the smoothing noise, as a fraction of the action bound.
    pub noise_clip: f64,
    /// Actor and target updates happen every `policy_delay` critic updates (gradient updates, not
    /// env steps).
    pub policy_delay: u64,
    /// Gaussian exploration noise std, as a fraction of the action bound.
    pub exploration_noise: f64,
    /// Solution B: clip the actor CNN's gradient norm after the actor backward.
    pub actor_cnn_grad_clip: GradClip,
    /// The same for the critic CNN, after the critic backward.
    pub critic_cnn_grad_clip: GradClip,
    /// Solution C: `(q - mean) / (std + 1e-8)` in the actor loss.
    pub q_normalization: bool,
    /// Write a resumable checkpoint (`<run>/checkpoint/`) every this many environment steps;
    /// 0 turns periodic checkpoints off (stage ends of a ladder still write one).
    pub checkpoint_every: u64,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            gradient_steps: 1,
            batch_size: 32,
            buffer_size: 100_000,
            learning_starts: 100,
            discount: 0.99,
            tau: 0.005,
            policy_noise: 0.2,
            noise_clip: 0.5,
            policy_delay: 2,
            exploration_noise: 0.1,
            actor_cnn_grad_clip: GradClip::default(),
            critic_cnn_grad_clip: GradClip::default(),
            q_normalization: false,
            checkpoint_every: 0,
        }
    }
}

/// Periodic evaluation with the deterministic policy on a separately seeded env, after the
/// untrained baseline (see `src/train/run.rs`). On by default: it is each run's evidence of
/// learning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluationConfig {
    /// Evaluate every this many environment steps after `learning_starts`, and the untrained
    /// policy before the first; 0 turns evaluation off.
    pub every: u64,
    pub episodes: usize,
    /// The eval env is seeded with `seed + seed_offset` (sfujim/TD3 uses 100).
    pub seed_offset: u64,
}

/// The default evaluation cadence in env steps: ten evaluations (and the baseline) in a
/// 5,000-step run. With 5 episodes each they cost 3.4% of a 5,000-step lane-keep pixel run's CPU
/// time as measured (actor CNN lr 1e-5, a run that learns, so most episodes last their 200
/// steps), at most about 5% when every episode does.
pub const DEFAULT_EVAL_EVERY: u64 = 500;

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            every: DEFAULT_EVAL_EVERY,
            episodes: 5,
            seed_offset: 100,
        }
    }
}

/// Logging cadence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// One `metrics.csv` row per this many training steps (the seed logs every 100).
    pub log_every: u64,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self { log_every: 100 }
    }
}

/// Fault injection, used by the tests to make real crashes, NaNs and hangs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    /// Abort the process (SIGABRT) at this training step.
    pub abort_at_step: Option<u64>,
    /// Put a NaN into the critic loss at this training step.
    pub nan_at_step: Option<u64>,
    /// Sleep forever at this training step.
    pub hang_at_step: Option<u64>,
}

/// Where a resolved learning rate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSource {
    ActorCnnLr,
    CriticCnnLr,
    LearningRate,
    Default,
    /// Written as the key it came from, like the others (older run.json files say `actor_head`).
    #[serde(rename = "networks.actor.learning_rate", alias = "actor_head")]
    ActorHead,
    #[serde(rename = "networks.critic.learning_rate", alias = "critic_head")]
    CriticHead,
}

impl LrSource {
    /// The name the seed prints in parentheses ("lr=1e-05 (actor_cnn_lr)").
    pub fn key(self) -> &'static str {
        match self {
            LrSource::ActorCnnLr => "actor_cnn_lr",
            LrSource::CriticCnnLr => "critic_cnn_lr",
            LrSource::LearningRate => "learning_rate",
            LrSource::Default => "default",
            LrSource::ActorHead => "networks.actor.learning_rate",
            LrSource::CriticHead => "networks.critic.learning_rate",
        }
    }
}

/// A learning rate with its provenance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResolvedLr {
    pub lr: f64,
    pub source: LrSource,
}

/// The four optimizers' learning rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResolvedLrs {
    pub actor_cnn: ResolvedLr,
    pub critic_cnn: ResolvedLr,
    pub actor_head: ResolvedLr,
    pub critic_head: ResolvedLr,
}

/// The seed's fallback when neither a per-CNN rate nor `learning_rate` is set.
pub const DEFAULT_CNN_LR: f64 = 1e-4;

impl AgentConfig {
    /// Resolves each optimizer's learning rate exactly as the seed's agent does:
    /// `cnn_config.get('actor_cnn_lr', cnn_config.get('learning_rate', 1e-4))`.
    pub fn resolved_lrs(&self) -> ResolvedLrs {
        let cnn = &self.networks.cnn;
        let pick = |own: Option<f64>, own_src: LrSource| match (own, cnn.learning_rate) {
            (Some(lr), _) => ResolvedLr {
                lr,
                source: own_src,
            },
            (None, Some(lr)) => ResolvedLr {
                lr,
                source: LrSource::LearningRate,
            },
            (None, None) => ResolvedLr {
                lr: DEFAULT_CNN_LR,
                source: LrSource::Default,
            },
        };
        ResolvedLrs {
            actor_cnn: pick(cnn.actor_cnn_lr, LrSource::ActorCnnLr),
            critic_cnn: pick(cnn.critic_cnn_lr, LrSource::CriticCnnLr),
            actor_head: ResolvedLr {
                lr: self.networks.actor.learning_rate,
                source: LrSource::ActorHead,
            },
            critic_head: ResolvedLr {
                lr: self.networks.critic.learning_rate,
                source: LrSource::CriticHead,
            },
        }
    }

    /// Whether the agent reads pixels through CNN encoders.
    pub fn uses_pixels(&self) -> bool {
        self.env.obs == ObsKind::Pixels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_fallback_table() {
        // (actor_cnn_lr, critic_cnn_lr, learning_rate) -> (actor, actor source, critic, critic source)
        let cases = [
            (
                Some(1e-5),
                Some(1e-4),
                Some(3e-4),
                1e-5,
                LrSource::ActorCnnLr,
                1e-4,
                LrSource::CriticCnnLr,
            ),
            (
                None,
                None,
                Some(3e-4),
                3e-4,
                LrSource::LearningRate,
                3e-4,
                LrSource::LearningRate,
            ),
            (
                None,
                None,
                None,
                1e-4,
                LrSource::Default,
                1e-4,
                LrSource::Default,
            ),
            (
                Some(1e-5),
                None,
                None,
                1e-5,
                LrSource::ActorCnnLr,
                1e-4,
                LrSource::Default,
            ),
            (
                None,
                Some(2e-4),
                Some(7e-5),
                7e-5,
                LrSource::LearningRate,
                2e-4,
                LrSource::CriticCnnLr,
            ),
        ];
        for (a, c, l, ea, esa, ec, esc) in cases {
            let mut cfg = AgentConfig::default();
            cfg.networks.cnn.actor_cnn_lr = a;
            cfg.networks.cnn.critic_cnn_lr = c;
            cfg.networks.cnn.learning_rate = l;
            let r = cfg.resolved_lrs();
            assert_eq!(
                (r.actor_cnn.lr, r.actor_cnn.source),
                (ea, esa),
                "case {a:?} {c:?} {l:?}"
            );
            assert_eq!(
                (r.critic_cnn.lr, r.critic_cnn.source),
                (ec, esc),
                "case {a:?} {c:?} {l:?}"
            );
        }
    }
}
