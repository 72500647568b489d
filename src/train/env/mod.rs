//! Environments: pure-Rust, deterministic stand-ins the TD3 trainer acts in.
//!
//! Two envs are built in:
//! - [`Pendulum`]: Gymnasium's Pendulum-v1, same equations and constants, with a state or a
//!   rendered-pixels observation.
//! - [`LaneKeep`]: a top-down lane-keeping task with a kinematic bicycle model on a procedurally
//!   curving road, the small stand-in for a driving simulator.
//!
//! A third kind, [`GymEnv`], runs any Gymnasium env with a Box action space in a Python child
//! process (`python/gym_bridge.py`); see `docs/gymnasium.md`.
//!
//! Both built-in envs take actions in `[-1, 1]^action_dim`, multiply rewards by `reward_scale`, truncate (never
//! terminate) at `max_episode_steps`, and stack the `frame_stack` most recent grayscale frames
//! (one shared `stack::PixelObs`) when observing pixels. All randomness comes from the env's own
//! seeded RNG, so an env is fully reproducible from its reset seed.

pub mod gym;
pub mod lane_keep;
pub mod pendulum;
mod raster;
mod stack;

pub use gym::GymEnv;
pub use lane_keep::LaneKeep;
pub use pendulum::Pendulum;

use crate::config::{EnvConfig, EnvKind, ObsKind};

/// Smallest accepted square image side (pixels): below this the car or rod is a pixel or two.
pub const MIN_IMAGE_SIZE: usize = 16;
/// Largest accepted square image side (pixels).
pub const MAX_IMAGE_SIZE: usize = 512;
/// Largest accepted frame stack.
pub const MAX_FRAME_STACK: usize = 16;

/// The shape of an env's observations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObsSpec {
    /// `channels` stacked grayscale frames of `height` x `width` u8 pixels.
    Pixels {
        channels: usize,
        height: usize,
        width: usize,
    },
    /// A state vector of `dim` f32 values.
    State { dim: usize },
}

impl ObsSpec {
    /// Number of scalars in one observation (`channels * height * width` or `dim`).
    pub fn len(&self) -> usize {
        match *self {
            ObsSpec::Pixels {
                channels,
                height,
                width,
            } => channels * height * width,
            ObsSpec::State { dim } => dim,
        }
    }

    /// Whether an observation holds no values (never true for the built-in envs).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// `channels * height * width` bytes, channel-major (frame by frame, each row-major):
    /// frame 0 is the oldest, the last frame the newest.
    Pixels(Vec<u8>),
    /// The state vector.
    State(Vec<f32>),
}

impl Observation {
    /// Number of scalars in the observation.
    pub fn len(&self) -> usize {
        match self {
            Observation::Pixels(p) => p.len(),
            Observation::State(s) => s.len(),
        }
    }

    /// Whether the observation holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The result of one [`Env::step`].
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The observation after the step.
    pub obs: Observation,
    /// The step's reward, already multiplied by `reward_scale`.
    pub reward: f64,
    /// The episode ended in a terminal state (e.g. the car left the road): no bootstrapping.
    pub terminated: bool,
    /// The time limit `max_episode_steps` was reached: the episode ends but TD3 still bootstraps.
    pub truncated: bool,
}

/// A reinforcement-learning environment with a continuous action space `[-1, 1]^action_dim`.
pub trait Env: Send {
    /// The shape of the observations.
    fn obs_spec(&self) -> ObsSpec;
    /// Number of action components.
    fn action_dim(&self) -> usize;
    /// Starts an episode. `Some(seed)` reseeds the env's RNG (Gymnasium's `reset(seed=...)`);
    /// `None` continues it.
    fn reset(&mut self, seed: Option<u64>) -> Observation;
    /// `action` is in `[-1, 1]^action_dim`; the env maps it to its own bounds (pendulum: x2 torque)
    /// and clips. Panics if `action.len() != action_dim()`.
    fn step(&mut self, action: &[f32]) -> Step;
    /// Short name for logs ("lane-keep", "pendulum").
    fn name(&self) -> &'static str;
    /// The largest |reward| of one step before `reward_scale`, `r_max`; `None` when unknown. The
    /// built-in envs derive theirs from their reward; a Gymnasium env takes `env.reward_bound`.
    fn reward_bound(&self) -> Option<f64>;
    /// Why the env can no longer be stepped (a bridged env whose process died or whose env
    /// raised), with the Python traceback; `None` while it works. The built-in envs never fail.
    fn failure(&self) -> Option<&str> {
        None
    }
}

/// Invalid environment settings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvError {
    /// `image_size` outside `MIN_IMAGE_SIZE..=MAX_IMAGE_SIZE` (pixel observations).
    #[error("env.image_size must be in {min}..={max} pixels, got {size}")]
    ImageSize { size: usize, min: usize, max: usize },
    /// `frame_stack` outside `1..=MAX_FRAME_STACK` (pixel observations).
    #[error("env.frame_stack must be in 1..={max}, got {k}")]
    FrameStack { k: usize, max: usize },
    /// `max_episode_steps` of 0.
    #[error("env.max_episode_steps must be at least 1")]
    MaxEpisodeSteps,
    /// `reward_scale` NaN or infinite.
    #[error("env.reward_scale must be finite, got {0}")]
    RewardScale(f64),
    /// A Gymnasium env could not be started: gymnasium missing, unknown id, unsupported spaces.
    #[error("gymnasium env `{id}`: {message}")]
    Gym { id: String, message: String },
}

/// Checks the settings both envs share; pixel settings only matter for pixel observations.
pub(crate) fn validate(cfg: &EnvConfig) -> Result<(), EnvError> {
    if cfg.obs == ObsKind::Pixels {
        if !(MIN_IMAGE_SIZE..=MAX_IMAGE_SIZE).contains(&cfg.image_size) {
            return Err(EnvError::ImageSize {
                size: cfg.image_size,
                min: MIN_IMAGE_SIZE,
                max: MAX_IMAGE_SIZE,
            });
        }
        if !(1..=MAX_FRAME_STACK).contains(&cfg.frame_stack) {
            return Err(EnvError::FrameStack {
                k: cfg.frame_stack,
                max: MAX_FRAME_STACK,
            });
        }
    }
    if cfg.max_episode_steps == Some(0) {
        return Err(EnvError::MaxEpisodeSteps);
    }
    if !cfg.reward_scale.is_finite() {
        return Err(EnvError::RewardScale(cfg.reward_scale));
    }
    Ok(())
}

/// A finite action component clipped to `[-1, 1]`; NaN becomes 0 so that one bad actor output
/// cannot poison the env state for the rest of the episode.
pub(crate) fn unit_action(a: f32) -> f64 {
    if a.is_nan() {
        0.0
    } else {
        f64::from(a.clamp(-1.0, 1.0))
    }
}

/// The largest |Q| any policy can have (van Hasselt et al. 2018, "Deep RL and the deadly
/// triad"): `r_max * |reward_scale| / (1 - discount)`, the discounted sum of the largest reward
/// forever. `None` when `r_max` is unknown, or when `discount` is 1: TD3 bootstraps through time
/// limits, so no episode length bounds its targets and an undiscounted Q has no bound.
pub fn q_abs_bound(reward_bound: Option<f64>, reward_scale: f64, discount: f64) -> Option<f64> {
    let r_max = reward_bound?;
    (discount < 1.0).then(|| r_max * reward_scale.abs() / (1.0 - discount))
}

/// Builds the env `cfg` describes. It starts seeded with 0; call [`Env::reset`] with the run's
/// seed before the first step.
pub fn make_env(cfg: &EnvConfig) -> Result<Box<dyn Env>, EnvError> {
    Ok(match cfg.kind {
        EnvKind::Pendulum => Box::new(Pendulum::new(cfg)?),
        EnvKind::LaneKeep => Box::new(LaneKeep::new(cfg)?),
        EnvKind::Gymnasium => Box::new(GymEnv::new(cfg)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn cfg(kind: EnvKind, obs: ObsKind) -> EnvConfig {
        EnvConfig {
            kind,
            obs,
            image_size: 32,
            frame_stack: 3,
            max_episode_steps: Some(60),
            reward_scale: 1.0,
            ..EnvConfig::default()
        }
    }

    fn all_cfgs() -> Vec<EnvConfig> {
        let mut v = Vec::new();
        for kind in [EnvKind::Pendulum, EnvKind::LaneKeep] {
            for obs in [ObsKind::State, ObsKind::Pixels] {
                v.push(cfg(kind, obs));
            }
        }
        v
    }

    /// Runs `n` steps of uniformly random actions (from a fixed action RNG), resetting with `None`
    /// when an episode ends; returns every observation and reward.
    fn rollout(env: &mut dyn Env, seed: u64, n: usize) -> (Vec<Observation>, Vec<f64>) {
        let mut act_rng = ChaCha8Rng::seed_from_u64(1234);
        let mut obs = vec![env.reset(Some(seed))];
        let mut rewards = Vec::new();
        for _ in 0..n {
            let a: Vec<f32> = (0..env.action_dim())
                .map(|_| act_rng.gen_range(-1.0..=1.0))
                .collect();
            let s = env.step(&a);
            obs.push(s.obs);
            rewards.push(s.reward);
            if s.terminated || s.truncated {
                obs.push(env.reset(None));
            }
        }
        (obs, rewards)
    }

    #[test]
    fn same_seed_same_trajectory_different_seed_differs() {
        for c in all_cfgs() {
            let mut a = make_env(&c).unwrap();
            let mut b = make_env(&c).unwrap();
            let (oa, ra) = rollout(a.as_mut(), 7, 300);
            let (ob, rb) = rollout(b.as_mut(), 7, 300);
            assert_eq!(oa, ob, "{c:?}: observations differ for the same seed");
            // Bit-identical rewards, not approximately equal.
            let bits = |r: &[f64]| r.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&ra),
                bits(&rb),
                "{c:?}: rewards differ for the same seed"
            );
            // More than one episode ran, so `reset(None)` continuing the RNG is covered too.
            assert!(oa.len() > 302, "{c:?}: no episode ended in 300 steps");

            let mut d = make_env(&c).unwrap();
            let (od, rd) = rollout(d.as_mut(), 8, 300);
            // (Lane-keep's first frames can coincide: every road starts straight.)
            assert_ne!(oa, od, "{c:?}: seeds 7 and 8 give the same observations");
            assert_ne!(ra, rd, "{c:?}: seeds 7 and 8 give the same rewards");
        }
    }

    #[test]
    fn obs_match_spec() {
        for c in all_cfgs() {
            let mut env = make_env(&c).unwrap();
            let spec = env.obs_spec();
            let o = env.reset(Some(0));
            assert_eq!(o.len(), spec.len(), "{c:?}");
            match (spec, &o) {
                (
                    ObsSpec::Pixels {
                        channels,
                        height,
                        width,
                    },
                    Observation::Pixels(_),
                ) => {
                    assert_eq!((channels, height, width), (3, 32, 32), "{c:?}");
                }
                (ObsSpec::State { .. }, Observation::State(_)) => {}
                _ => panic!("{c:?}: observation kind does not match the spec"),
            }
            let s = env.step(&vec![0.3; env.action_dim()]);
            assert_eq!(s.obs.len(), spec.len(), "{c:?}");
        }
    }

    #[test]
    fn names_and_action_dims() {
        let p = make_env(&cfg(EnvKind::Pendulum, ObsKind::State)).unwrap();
        assert_eq!((p.name(), p.action_dim()), ("pendulum", 1));
        let l = make_env(&cfg(EnvKind::LaneKeep, ObsKind::State)).unwrap();
        assert_eq!((l.name(), l.action_dim()), ("lane-keep", 2));
    }

    #[test]
    fn truncation_at_time_limit_for_both_envs() {
        for kind in [EnvKind::Pendulum, EnvKind::LaneKeep] {
            let mut c = cfg(kind, ObsKind::State);
            c.max_episode_steps = Some(25);
            let mut env = make_env(&c).unwrap();
            env.reset(Some(3));
            // Zero action: the lane-keep car drives straight at its start speed; 25 steps of
            // 0.8 m stay on the road, which is straight for its first 20 m past the start and
            // curves gently after.
            for t in 1..=25 {
                let s = env.step(&vec![0.0; env.action_dim()]);
                assert!(!s.terminated, "{kind:?} terminated at step {t}");
                assert_eq!(s.truncated, t == 25, "{kind:?} step {t}");
            }
            // A new episode counts from zero again.
            env.reset(None);
            assert!(!env.step(&vec![0.0; env.action_dim()]).truncated);
        }
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let err = |f: fn(&mut EnvConfig)| -> Vec<Option<EnvError>> {
            [EnvKind::Pendulum, EnvKind::LaneKeep]
                .into_iter()
                .map(|kind| {
                    let mut c = cfg(kind, ObsKind::Pixels);
                    f(&mut c);
                    make_env(&c).err()
                })
                .collect()
        };
        let image = EnvError::ImageSize {
            size: 8,
            min: MIN_IMAGE_SIZE,
            max: MAX_IMAGE_SIZE,
        };
        assert_eq!(
            err(|c| c.image_size = 8),
            vec![Some(image.clone()), Some(image)]
        );
        let big = err(|c| c.image_size = MAX_IMAGE_SIZE + 1);
        assert!(big
            .iter()
            .all(|e| matches!(e, Some(EnvError::ImageSize { .. }))));
        let stack = EnvError::FrameStack {
            k: 0,
            max: MAX_FRAME_STACK,
        };
        assert_eq!(
            err(|c| c.frame_stack = 0),
            vec![Some(stack.clone()), Some(stack)]
        );
        let deep = err(|c| c.frame_stack = MAX_FRAME_STACK + 1);
        assert!(deep
            .iter()
            .all(|e| matches!(e, Some(EnvError::FrameStack { .. }))));
        let steps = Some(EnvError::MaxEpisodeSteps);
        assert_eq!(
            err(|c| c.max_episode_steps = Some(0)),
            vec![steps.clone(), steps]
        );
        let nan = err(|c| c.reward_scale = f64::NAN);
        assert!(nan
            .iter()
            .all(|e| matches!(e, Some(EnvError::RewardScale(_)))));
        let inf = err(|c| c.reward_scale = f64::INFINITY);
        assert!(inf
            .iter()
            .all(|e| matches!(e, Some(EnvError::RewardScale(_)))));
        // The boundaries themselves are fine.
        assert_eq!(err(|c| c.image_size = MIN_IMAGE_SIZE), vec![None, None]);
        assert_eq!(err(|c| c.frame_stack = MAX_FRAME_STACK), vec![None, None]);
        // Pixel settings are irrelevant (and not checked) for state observations.
        for kind in [EnvKind::Pendulum, EnvKind::LaneKeep] {
            let mut c = cfg(kind, ObsKind::State);
            c.image_size = 0;
            c.frame_stack = 0;
            assert!(make_env(&c).is_ok());
        }
    }

    #[test]
    fn reward_scale_multiplies_rewards() {
        for kind in [EnvKind::Pendulum, EnvKind::LaneKeep] {
            let c1 = cfg(kind, ObsKind::State);
            let mut c2 = c1.clone();
            c2.reward_scale = 1000.0;
            let (_, r1) = rollout(make_env(&c1).unwrap().as_mut(), 5, 80);
            let (_, r2) = rollout(make_env(&c2).unwrap().as_mut(), 5, 80);
            assert!(r1.iter().any(|r| *r != 0.0));
            for (a, b) in r1.iter().zip(&r2) {
                assert!(
                    (a * 1000.0 - b).abs() <= 1e-9 * b.abs().max(1.0),
                    "{kind:?}: {a} {b}"
                );
            }
        }
    }

    #[test]
    fn rewards_stay_within_the_declared_bound() {
        let lane = make_env(&cfg(EnvKind::LaneKeep, ObsKind::State)).unwrap();
        assert_eq!(lane.reward_bound(), Some(10.0));
        let pend = make_env(&cfg(EnvKind::Pendulum, ObsKind::State)).unwrap();
        let want = std::f64::consts::PI.powi(2) + 0.1 * 64.0 + 0.001 * 4.0;
        assert!((pend.reward_bound().unwrap() - want).abs() < 1e-12);
        assert!((want - 16.2736).abs() < 1e-4);
        // Random driving, and the extremes (full throttle or brake, full steer), both scaled.
        let mut act_rng = ChaCha8Rng::seed_from_u64(99);
        for kind in [EnvKind::Pendulum, EnvKind::LaneKeep] {
            for scale in [1.0, 3.0] {
                let mut c = cfg(kind, ObsKind::State);
                c.reward_scale = scale;
                let mut env = make_env(&c).unwrap();
                let bound = env.reward_bound().unwrap() * scale;
                let mut worst = 0.0f64;
                for (ep, fixed) in [None, Some(1.0f32), Some(-1.0)].into_iter().enumerate() {
                    env.reset(Some(ep as u64));
                    for _ in 0..3000 {
                        let a: Vec<f32> = (0..env.action_dim())
                            .map(|_| fixed.unwrap_or_else(|| act_rng.gen_range(-1.0..=1.0)))
                            .collect();
                        let s = env.step(&a);
                        worst = worst.max(s.reward.abs());
                        if s.terminated || s.truncated {
                            env.reset(None);
                        }
                    }
                }
                assert!(worst <= bound, "{kind:?} x{scale}: |r| {worst} > {bound}");
                // The bound is not loose by orders of magnitude: some step comes near it.
                assert!(worst > 0.5 * bound, "{kind:?} x{scale}: |r| only {worst}");
            }
        }
    }

    #[test]
    fn the_q_bound_is_the_discounted_sum_of_the_largest_reward() {
        let cases = [
            (Some(10.0), 1.0, 0.99, Some(1000.0)),
            (Some(10.0), 1000.0, 0.99, Some(1_000_000.0)),
            (Some(16.0), 1.0, 0.5, Some(32.0)),
            (None, 1.0, 0.99, None),
            // Undiscounted: TD3 bootstraps through time limits, so nothing bounds Q.
            (Some(10.0), 1.0, 1.0, None),
        ];
        for (r, scale, gamma, want) in cases {
            let got = q_abs_bound(r, scale, gamma);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() <= 1e-9 * w, "{r:?} {scale} {gamma}"),
                _ => assert_eq!(got, want, "{r:?} {scale} {gamma}"),
            }
        }
    }

    #[test]
    fn nan_action_is_treated_as_zero() {
        assert_eq!(unit_action(f32::NAN), 0.0);
        assert_eq!(unit_action(f32::INFINITY), 1.0);
        assert_eq!(unit_action(-3.0), -1.0);
        assert_eq!(unit_action(0.25), 0.25);
    }
}
