//! Throwaway timing (to be deleted).
use super::*;
use crate::config::{EnvConfig, EnvKind, ObsKind};
use std::time::Instant;

#[test]
#[ignore]
fn time_lane_keep() {
    for (kind, obs, side) in [
        (EnvKind::LaneKeep, ObsKind::Pixels, 48),
        (EnvKind::LaneKeep, ObsKind::Pixels, 84),
        (EnvKind::LaneKeep, ObsKind::State, 48),
        (EnvKind::Pendulum, ObsKind::Pixels, 48),
        (EnvKind::Pendulum, ObsKind::State, 48),
    ] {
        let cfg = EnvConfig { kind, obs, image_size: side, frame_stack: 3, max_episode_steps: 200, reward_scale: 1.0 };
        let mut env = make_env(&cfg).unwrap();
        env.reset(Some(0));
        let n = 200_000;
        let mut x = 0u64;
        let mut acc = 0.0;
        let mut eps = 0;
        let t = Instant::now();
        for i in 0..n {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let a = ((x >> 40) as f32 / (1u64 << 24) as f32) * 0.6 - 0.3;
            let s = env.step(&[a, 0.1][..env.action_dim()]);
            acc += s.reward + s.obs.len() as f64;
            if s.terminated || s.truncated { env.reset(None); eps += 1; }
            let _ = i;
        }
        let dt = t.elapsed().as_secs_f64() / n as f64 * 1e6;
        println!("{kind:?} {obs:?} {side}: {dt:.2} us/step (incl. resets, {eps} episodes) [{acc}]");
    }
}
