//! Our native `pendulum` against Gymnasium's Pendulum-v1, step for step.
//!
//! Both start from the same states (`Pendulum::set_state` here, `env.unwrapped.state = ...` in
//! Gymnasium) and get the same actions; observations and rewards must agree within 1e-5, and
//! both must truncate at step 200. The Gymnasium side runs in the Python the bridge uses
//! (`TD3_SWEEP_PYTHON`, else `.venv/bin/python`). Where gymnasium is missing this test FAILS, with
//! the command that installs it: a conformance check that silently passes proves nothing.

use std::io::Write;
use std::process::{Command, Stdio};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use td3_sweep::config::{EnvConfig, EnvKind, ObsKind};
use td3_sweep::train::env::gym::python_path;
use td3_sweep::train::env::{Env, Observation, Pendulum};

const TOL: f64 = 1e-5;
const STEPS: usize = 200;

/// Reads cases `[{theta, thdot, actions: [torque in [-1, 1] units...]}]` on stdin and prints, per
/// case, every step's observation, reward, terminated and truncated flags.
const GYM_SCRIPT: &str = r#"
import json, sys
import numpy as np
import gymnasium as gym
cases = json.load(sys.stdin)
out = []
env = gym.make("Pendulum-v1")
for c in cases:
    env.reset(seed=0)
    env.unwrapped.state = np.array([c["theta"], c["thdot"]], dtype=np.float64)
    steps = []
    for a in c["actions"]:
        # The agent's unit action scaled to torque, as td3-sweep's envs do: x2 (Box(-2, 2)).
        obs, r, term, trunc, _ = env.step(np.array([a * 2.0], dtype=np.float32))
        steps.append({"obs": [float(x) for x in obs], "reward": float(r),
                      "terminated": bool(term), "truncated": bool(trunc)})
    out.append(steps)
print(json.dumps({"gymnasium": gym.__version__, "cases": out}))
"#;

fn require_gymnasium(python: &std::path::Path) {
    let ok = Command::new(python)
        .args(["-c", "import gymnasium"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "gymnasium is not importable by `{}`: run `just setup` (scripts/setup.sh installs \
         gymnasium[box2d] into .venv) or point TD3_SWEEP_PYTHON at a Python that has it. \
         This conformance test does not skip.",
        python.display()
    );
}

#[test]
fn native_pendulum_matches_gymnasium_step_for_step() {
    let python = python_path();
    require_gymnasium(&python);

    // Start states that reach the corners: upright, hanging, past ±pi (unwrapped angles),
    // velocities that hit the ±8 clip, and random ones. Actions overshoot [-1, 1] so that the
    // torque clip is exercised too.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut starts = vec![
        (0.0, 0.0),
        (std::f64::consts::PI, 0.0),
        (3.1, 7.9),
        (-7.0, -7.5),
        (12.5, 1.0),
    ];
    for _ in 0..5 {
        starts.push((rng.gen_range(-4.0..4.0), rng.gen_range(-8.0..8.0)));
    }
    let cases: Vec<(f64, f64, Vec<f32>)> = starts
        .into_iter()
        .map(|(th, thd)| {
            let actions = (0..STEPS).map(|_| rng.gen_range(-1.3f32..1.3)).collect();
            (th, thd, actions)
        })
        .collect();
    let input = serde_json::json!(cases
        .iter()
        .map(|(th, thd, a)| serde_json::json!({"theta": th, "thdot": thd, "actions": a}))
        .collect::<Vec<_>>());

    let mut child = Command::new(&python)
        .args(["-c", GYM_SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Gymnasium side failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gym: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let cfg = EnvConfig {
        kind: EnvKind::Pendulum,
        obs: ObsKind::State,
        max_episode_steps: STEPS,
        ..EnvConfig::default()
    };
    let mut worst = (0.0f64, 0.0f64);
    for (ci, (th, thd, actions)) in cases.iter().enumerate() {
        let mut env = Pendulum::new(&cfg).unwrap();
        env.reset(Some(0));
        env.set_state(*th, *thd);
        let steps = gym["cases"][ci].as_array().unwrap();
        assert_eq!(steps.len(), STEPS);
        for (t, (a, g)) in actions.iter().zip(steps).enumerate() {
            let s = env.step(&[*a]);
            let Observation::State(obs) = &s.obs else {
                panic!("state observation expected")
            };
            let gobs: Vec<f64> = g["obs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(obs.len(), gobs.len());
            for (k, (x, y)) in obs.iter().zip(&gobs).enumerate() {
                let d = (f64::from(*x) - y).abs();
                worst.0 = worst.0.max(d);
                assert!(
                    d <= TOL,
                    "case {ci} (theta {th}, thdot {thd}) step {t}: obs[{k}] {x} vs Gymnasium {y}"
                );
            }
            let gr = g["reward"].as_f64().unwrap();
            let d = (s.reward - gr).abs();
            worst.1 = worst.1.max(d);
            assert!(
                d <= TOL,
                "case {ci} step {t}: reward {} vs Gymnasium {gr}",
                s.reward
            );
            assert_eq!(
                s.terminated,
                g["terminated"].as_bool().unwrap(),
                "case {ci} step {t}"
            );
            assert_eq!(
                s.truncated,
                g["truncated"].as_bool().unwrap(),
                "case {ci} step {t}: truncation"
            );
        }
    }
    eprintln!(
        "pendulum vs gymnasium {}: {} cases x {STEPS} steps, max |obs diff| {:.2e}, max |reward diff| {:.2e}",
        gym["gymnasium"], cases.len(), worst.0, worst.1
    );
}
