//! Gymnasium's Pendulum-v1 (`gymnasium/envs/classic_control/pendulum.py`), same equations and
//! constants, with a state or a rendered-pixels observation.
//!
//! Differences from Gymnasium, all deliberate:
//! - The RNG is ChaCha8 seeded from the reset seed, not numpy's PCG64, so `reset(Some(s))` draws
//!   a different start state than `gym.make("Pendulum-v1").reset(seed=s)`. Dynamics, reward and
//!   truncation are the same; compare trajectories through [`Pendulum::set_state`].
//! - Physics runs in f64 throughout. Gymnasium's state is float64 too, but the torque `u` is the
//!   agent's float32 action, and under numpy 2 (NEP 50) `3.0 * u` and `0.001 * u**2` are rounded
//!   to float32; expect agreement to ~1e-7 relative on those terms, not bit-exactness.
//! - The agent's action in `[-1, 1]` is multiplied by `MAX_TORQUE` (2) to give the torque.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::PI;

use super::raster::fill_capsule;
use super::stack::PixelObs;
use super::{unit_action, validate, Env, EnvError, ObsSpec, Observation, Step};
use crate::config::{EnvConfig, ObsKind};

/// Angular velocity bound (rad/s); the new velocity is clipped to `±MAX_SPEED`.
pub const MAX_SPEED: f64 = 8.0;
/// Torque bound (N·m); an action of ±1 maps to `±MAX_TORQUE`.
pub const MAX_TORQUE: f64 = 2.0;
/// Integration step (s).
pub const DT: f64 = 0.05;
/// Gravity (m/s²).
pub const G: f64 = 10.0;
/// Mass (kg).
pub const M: f64 = 1.0;
/// Rod length (m).
pub const L: f64 = 1.0;
/// The worst per-step cost: `pi^2 + 0.1 * 8^2 + 0.001 * 2^2` (Gymnasium's docstring).
pub const MAX_COST: f64 = PI * PI + 0.1 * MAX_SPEED * MAX_SPEED + 0.001 * MAX_TORQUE * MAX_TORQUE;

/// Rendered rod length as a fraction of the image side (pivot at the centre).
const ROD_FRACTION: f64 = 0.42;
/// Rendered rod half-thickness as a fraction of the image side (at least one pixel).
const ROD_HALF_WIDTH_FRACTION: f64 = 0.04;
/// Rod brightness on a black background.
const ROD_VALUE: u8 = 255;

/// Gymnasium's `angle_normalize`: `((x + pi) % (2 pi)) - pi`, with Python's floored modulo
/// (result in `[0, 2 pi)` for a positive divisor), i.e. `rem_euclid`, not Rust's `%`.
pub fn angle_normalize(x: f64) -> f64 {
    (x + PI).rem_euclid(2.0 * PI) - PI
}

/// Pendulum-v1: swing a rod up and balance it. `theta = 0` is upright, positive
/// counter-clockwise (as seen in the rendered image).
#[derive(Debug, Clone)]
pub struct Pendulum {
    /// Angle (rad), never wrapped (Gymnasium only wraps it inside the cost).
    theta: f64,
    /// Angular velocity (rad/s).
    thdot: f64,
    rng: ChaCha8Rng,
    /// Steps taken in the current episode.
    steps: usize,
    max_episode_steps: usize,
    reward_scale: f64,
    /// `Some` for pixel observations.
    pixels: Option<PixelObs>,
}

impl Pendulum {
    /// A pendulum per `cfg` (its `kind` is ignored), seeded with 0 until the first
    /// `reset(Some(seed))`. The state is `(0, 0)` until the first reset.
    pub fn new(cfg: &EnvConfig) -> Result<Self, EnvError> {
        validate(cfg)?;
        Ok(Self {
            theta: 0.0,
            thdot: 0.0,
            rng: ChaCha8Rng::seed_from_u64(0),
            steps: 0,
            max_episode_steps: cfg.time_limit(),
            reward_scale: cfg.reward_scale,
            pixels: match cfg.obs {
                ObsKind::Pixels => Some(PixelObs::new(cfg.image_size, cfg.frame_stack)),
                ObsKind::State => None,
            },
        })
    }

    /// Sets the exact state `(theta rad, thdot rad/s)`, as assigning Gymnasium's `env.state`
    /// does. Leaves the step counter and (pixel mode) the already stacked frames alone: the next
    /// step's frame shows the new state.
    pub fn set_state(&mut self, theta: f64, thdot: f64) {
        self.theta = theta;
        self.thdot = thdot;
    }

    /// The state `(theta rad, thdot rad/s)`.
    pub fn state(&self) -> (f64, f64) {
        (self.theta, self.thdot)
    }

    /// Gymnasium's observation `[cos theta, sin theta, thdot]` as f32 (the state observation),
    /// whatever the configured observation kind.
    pub fn state_obs(&self) -> [f32; 3] {
        [
            self.theta.cos() as f32,
            self.theta.sin() as f32,
            self.thdot as f32,
        ]
    }

    /// Draws the rod into `img` (`side x side`): black background, pivot at the image centre,
    /// tip at `centre + ROD_FRACTION * side * (-sin theta, cos theta)` in y-up coordinates, the
    /// orientation of Gymnasium's renderer.
    fn render(theta: f64, img: &mut [u8], side: usize) {
        img.fill(0);
        let s = side as f64;
        let c = s / 2.0;
        let len = ROD_FRACTION * s;
        // Image rows grow downwards, so y-up `cos theta` becomes `-cos theta`.
        let tip = (c - len * theta.sin(), c - len * theta.cos());
        let r = (ROD_HALF_WIDTH_FRACTION * s).max(1.0);
        fill_capsule(img, side, (c, c), tip, r, ROD_VALUE);
    }

    fn observe(&mut self, new_episode: bool) -> Observation {
        match &mut self.pixels {
            None => Observation::State(self.state_obs().to_vec()),
            Some(p) => {
                let side = p.side();
                Self::render(self.theta, p.frame_mut(), side);
                if new_episode {
                    p.reset()
                } else {
                    p.push()
                }
            }
        }
    }
}

impl Env for Pendulum {
    fn obs_spec(&self) -> ObsSpec {
        match &self.pixels {
            None => ObsSpec::State { dim: 3 },
            Some(p) => p.spec(),
        }
    }

    fn action_dim(&self) -> usize {
        1
    }

    /// `theta ~ U[-pi, pi)`, `thdot ~ U[-1, 1)` (Gymnasium's `uniform(low=-high, high=high)`).
    fn reset(&mut self, seed: Option<u64>) -> Observation {
        if let Some(s) = seed {
            self.rng = ChaCha8Rng::seed_from_u64(s);
        }
        self.theta = self.rng.gen_range(-PI..PI);
        self.thdot = self.rng.gen_range(-1.0..1.0);
        self.steps = 0;
        self.observe(true)
    }

    fn step(&mut self, action: &[f32]) -> Step {
        assert_eq!(action.len(), 1, "pendulum takes a 1-d action");
        let (th, thdot) = (self.theta, self.thdot);
        // np.clip(u, -max_torque, max_torque): clipping the unit action then scaling by 2 is the
        // same (the scaling is exact in binary floating point).
        let u = unit_action(action[0]) * MAX_TORQUE;
        // Same expression order as Gymnasium so that f64 results agree bit for bit.
        let an = angle_normalize(th);
        let costs = an * an + 0.1 * (thdot * thdot) + 0.001 * (u * u);
        let newthdot = thdot + (3.0 * G / (2.0 * L) * th.sin() + 3.0 / (M * (L * L)) * u) * DT;
        let newthdot = newthdot.clamp(-MAX_SPEED, MAX_SPEED);
        // Semi-implicit Euler: the angle moves with the new velocity.
        let newth = th + newthdot * DT;
        self.theta = newth;
        self.thdot = newthdot;
        self.steps += 1;
        Step {
            obs: self.observe(false),
            reward: -costs * self.reward_scale,
            terminated: false,
            truncated: self.steps >= self.max_episode_steps,
        }
    }

    fn name(&self) -> &'static str {
        "pendulum"
    }

    /// `MAX_COST`: the angle is normalised to `[-pi, pi]`, the velocity the cost reads is clipped
    /// to `±MAX_SPEED` (or drawn in `[-1, 1]` at reset) and the torque to `±MAX_TORQUE`.
    fn reward_bound(&self) -> Option<f64> {
        Some(MAX_COST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnvKind;

    fn cfg(obs: ObsKind) -> EnvConfig {
        EnvConfig {
            kind: EnvKind::Pendulum,
            obs,
            image_size: 48,
            frame_stack: 3,
            max_episode_steps: Some(200),
            reward_scale: 1.0,
            ..EnvConfig::default()
        }
    }

    fn state_env() -> Pendulum {
        let mut p = Pendulum::new(&cfg(ObsKind::State)).unwrap();
        p.reset(Some(0));
        p
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[track_caller]
    fn check(p: &mut Pendulum, (th, thdot): (f64, f64), a: f32, want: (f64, f64, f64)) {
        p.set_state(th, thdot);
        let s = p.step(&[a]);
        let (nth, nthdot) = p.state();
        assert!(close(nth, want.0), "theta {nth} != {}", want.0);
        assert!(close(nthdot, want.1), "thdot {nthdot} != {}", want.1);
        assert!(close(s.reward, want.2), "reward {} != {}", s.reward, want.2);
        assert!(!s.terminated);
    }

    #[test]
    fn hand_computed_steps() {
        let mut p = state_env();
        // th = 1, thdot = 0.5, action 0.25 -> u = 0.5 (sin 1 = 0.8414709848078965):
        //   cost    = 1^2 + 0.1 * 0.25 + 0.001 * 0.25                = 1.02525
        //   newthdot = 0.5 + (15 * 0.8414709848078965 + 3 * 0.5) * 0.05 = 1.2061032386059223
        //   newth   = 1 + 1.2061032386059223 * 0.05                 = 1.0603051619302961
        check(
            &mut p,
            (1.0, 0.5),
            0.25,
            (1.0603051619302961, 1.2061032386059223, -1.02525),
        );
        // Continuing from there with action -1 -> u = -2 (sin 1.0603051619302961 = 0.87238...):
        //   cost    = 1.0603051619302961^2 + 0.1 * 1.2061032386059223^2 + 0.001 * 4
        //           = 1.124247036 + 0.145468498 + 0.004             = 1.2737155386336014
        //   newthdot = 1.2061032386059223 + (15 * 0.872385... - 6) * 0.05 = 1.5604817087601541
        //   newth   = 1.0603051619302961 + 1.5604817087601541 * 0.05 = 1.1383292473683038
        p.set_state(1.0, 0.5);
        p.step(&[0.25]);
        let s = p.step(&[-1.0]);
        let (nth, nthdot) = p.state();
        assert!(close(nth, 1.1383292473683038), "{nth}");
        assert!(close(nthdot, 1.5604817087601541), "{nthdot}");
        assert!(close(s.reward, -1.2737155386336014), "{}", s.reward);
        // The observation is [cos, sin, thdot] of the new state, as f32.
        let Observation::State(o) = s.obs else {
            panic!("state obs expected")
        };
        assert_eq!(
            o,
            vec![
                1.1383292473683038f64.cos() as f32,
                1.1383292473683038f64.sin() as f32,
                1.5604817087601541f64 as f32
            ]
        );
    }

    #[test]
    fn velocity_is_clipped_before_the_angle_update() {
        let mut p = state_env();
        // th = pi/2, thdot = 7.9, u = 2: 7.9 + (15 * 1 + 6) * 0.05 = 8.95 -> clipped to 8;
        //   newth = pi/2 + 8 * 0.05 = 1.9707963267948965 (uses the clipped velocity);
        //   cost  = (pi/2)^2 + 0.1 * 7.9^2 + 0.001 * 4 = 2.4674011 + 6.241 + 0.004 = 8.71240110027234
        check(
            &mut p,
            (std::f64::consts::FRAC_PI_2, 7.9),
            1.0,
            (1.9707963267948965, 8.0, -8.71240110027234),
        );
        // th = -1, thdot = -7.5, u = -2: -7.5 + (15 * -0.84147 - 6) * 0.05 = -8.431 -> -8;
        //   newth = -1 - 0.4 = -1.4; cost = 1 + 0.1 * 56.25 + 0.004 = 6.629
        check(&mut p, (-1.0, -7.5), -1.0, (-1.4, -8.0, -6.629));
    }

    #[test]
    fn torque_is_clipped() {
        let mut p = state_env();
        // An action of 3 would be a torque of 6; it is clipped to 2, exactly like an action of 1:
        // th = 0, thdot = 0: newthdot = (0 + 3 * 2) * 0.05 = 0.3, newth = 0.015,
        // cost = 0.001 * 2^2 = 0.004 (not 0.001 * 6^2 = 0.036).
        check(&mut p, (0.0, 0.0), 3.0, (0.015, 0.3, -0.004));
        check(&mut p, (0.0, 0.0), 1.0, (0.015, 0.3, -0.004));
        check(&mut p, (0.0, 0.0), -50.0, (-0.015, -0.3, -0.004));
    }

    #[test]
    fn cost_wraps_the_angle_but_the_state_does_not() {
        assert!(close(angle_normalize(-4.0), 2.2831853071795862)); // 2 pi - 4
        assert!(close(angle_normalize(2.0 * PI + 0.5), 0.5));
        assert!(close(angle_normalize(0.3), 0.3));
        assert!(close(angle_normalize(-0.3), -0.3));
        let mut p = state_env();
        // th = -4 (wraps to 2 pi - 4 = 2.2831853071795862 in the cost), thdot = 0, u = 0:
        //   cost    = 2.2831853071795862^2                    = 5.212935146920741
        //   newthdot = 15 * sin(-4) * 0.05 = 0.75 * 0.7568024953 = 0.5676018714809462
        //   newth   = -4 + 0.5676018714809462 * 0.05           = -3.9716199064259525 (not wrapped)
        check(
            &mut p,
            (-4.0, 0.0),
            0.0,
            (-3.9716199064259525, 0.5676018714809462, -5.212935146920741),
        );
        // 2 pi + 0.5 costs like 0.5: 0.25 (plus nothing for thdot = u = 0).
        p.set_state(2.0 * PI + 0.5, 0.0);
        assert!(close(p.step(&[0.0]).reward, -0.25));
        assert!(
            p.state().0 > 2.0 * PI,
            "the state angle must not be wrapped"
        );
    }

    #[test]
    fn truncates_at_200_never_terminates_and_rewards_are_bounded() {
        assert!(close(MAX_COST, 16.27360440108936));
        let mut p = state_env();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for episode in 0..5 {
            p.reset(None);
            for t in 1..=200 {
                let s = p.step(&[rng.gen_range(-1.5..1.5)]);
                assert!(!s.terminated);
                assert_eq!(s.truncated, t == 200, "episode {episode} step {t}");
                assert!(
                    (-MAX_COST..=0.0).contains(&s.reward),
                    "reward {} out of bounds",
                    s.reward
                );
                assert!(p.state().1.abs() <= MAX_SPEED);
            }
        }
        // The worst case is reached: upside down, full speed, full torque.
        p.set_state(PI, -8.0);
        assert!(close(p.step(&[-1.0]).reward, -MAX_COST));
    }

    #[test]
    fn reset_draws_from_the_documented_ranges() {
        let mut p = Pendulum::new(&cfg(ObsKind::State)).unwrap();
        let mut starts = Vec::new();
        for i in 0..500 {
            p.reset(if i == 0 { Some(1) } else { None });
            let (th, thdot) = p.state();
            assert!((-PI..PI).contains(&th) && (-1.0..1.0).contains(&thdot));
            starts.push((th, thdot));
        }
        // Spread over the whole range, not a constant.
        let max_th = starts.iter().map(|s| s.0).fold(f64::MIN, f64::max);
        let min_th = starts.iter().map(|s| s.0).fold(f64::MAX, f64::min);
        assert!(max_th > 3.0 && min_th < -3.0, "{min_th} {max_th}");
        let obs = p.reset(Some(1));
        assert_eq!(
            p.state(),
            starts[0],
            "reseeding with 1 repeats the first start"
        );
        let (th, thdot) = starts[0];
        assert_eq!(
            obs,
            Observation::State(vec![th.cos() as f32, th.sin() as f32, thdot as f32])
        );
    }

    fn pixels(o: Observation) -> Vec<u8> {
        match o {
            Observation::Pixels(p) => p,
            Observation::State(_) => panic!("pixel obs expected"),
        }
    }

    /// Centre of mass (col, row) of the bright pixels of one frame.
    fn centroid(f: &[u8], side: usize) -> (f64, f64) {
        let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
        for (i, &v) in f.iter().enumerate() {
            if v == ROD_VALUE {
                sx += (i % side) as f64 + 0.5;
                sy += (i / side) as f64 + 0.5;
                n += 1.0;
            }
        }
        (sx / n, sy / n)
    }

    #[test]
    fn rendered_rod_points_the_right_way() {
        let side = 48;
        let mut img = vec![0u8; side * side];
        let c = 24.0;
        let half = ROD_FRACTION * 48.0 / 2.0; // the centroid sits mid-rod (caps are symmetric)
        for (theta, dx, dy) in [
            (0.0, 0.0, -half),      // upright: rod above the pivot
            (PI, 0.0, half),        // hanging down
            (PI / 2.0, -half, 0.0), // counter-clockwise quarter turn: pointing left
            (-PI / 2.0, half, 0.0),
        ] {
            Pendulum::render(theta, &mut img, side);
            let (x, y) = centroid(&img, side);
            assert!(
                (x - (c + dx)).abs() < 0.75 && (y - (c + dy)).abs() < 0.75,
                "theta {theta}: centroid ({x}, {y}), expected ({}, {})",
                c + dx,
                c + dy
            );
            assert!(img.iter().all(|&v| v == 0 || v == ROD_VALUE));
            // Thickness "a few pixels": the area is about length * 2 * half-width.
            let n = img.iter().filter(|&&v| v == ROD_VALUE).count() as f64;
            let expect = ROD_FRACTION * 48.0 * 2.0 * ROD_HALF_WIDTH_FRACTION * 48.0;
            assert!((n - expect).abs() < 0.3 * expect, "{n} vs {expect}");
        }
    }

    #[test]
    fn pixel_frames_stack_in_order() {
        let mut p = Pendulum::new(&cfg(ObsKind::Pixels)).unwrap();
        let n = 48 * 48;
        let o0 = pixels(p.reset(Some(4)));
        assert_eq!(
            p.obs_spec(),
            ObsSpec::Pixels {
                channels: 3,
                height: 48,
                width: 48
            }
        );
        assert_eq!(o0.len(), 3 * n);
        assert!(o0.contains(&ROD_VALUE));
        assert_eq!(&o0[..n], &o0[n..2 * n]);
        assert_eq!(&o0[..n], &o0[2 * n..]);

        // Spin it so consecutive frames differ.
        p.set_state(0.3, 6.0);
        let o1 = pixels(p.step(&[1.0]).obs);
        let mut expect = vec![0u8; n];
        Pendulum::render(p.state().0, &mut expect, 48);
        assert_eq!(&o1[2 * n..], &expect[..], "the last frame is the new state");
        assert_ne!(&o1[2 * n..], &o0[2 * n..]);
        assert_eq!(&o1[..2 * n], &o0[n..], "the older frames shift by one");
        let o2 = pixels(p.step(&[1.0]).obs);
        assert_eq!(&o2[..2 * n], &o1[n..]);
        assert_ne!(&o2[2 * n..], &o1[2 * n..]);
    }
}
