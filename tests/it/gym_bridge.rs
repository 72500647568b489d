//! The Gymnasium bridge end to end: semantics against Gymnasium itself, errors before training,
//! crashes as `crashed` runs with the Python traceback, and a short CarRacing-v3 sweep through the
//! real binary. Needs gymnasium[box2d] in the bridge's Python (`just setup`); without it these
//! tests fail with that instruction rather than skip.

use crate::common::{bin, repo, text};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use td3_sweep::config::{EnvConfig, EnvKind, ObsKind};
use td3_sweep::train::env::gym::python_path;
use td3_sweep::train::env::{make_env, EnvError, ObsSpec, Observation};

fn require_gymnasium() {
    let ok = Command::new(python_path())
        .args(["-c", "import gymnasium, Box2D"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "gymnasium[box2d] is not importable by `{}`: run `just setup`, or set TD3_SWEEP_PYTHON",
        python_path().display()
    );
}

fn gym_cfg(id: &str, obs: ObsKind) -> EnvConfig {
    EnvConfig {
        kind: EnvKind::Gymnasium,
        id: Some(id.into()),
        obs,
        ..EnvConfig::default()
    }
}

/// Runs a Python snippet in the bridge's interpreter and parses its stdout as JSON.
fn python_json(code: &str) -> serde_json::Value {
    let out = Command::new(python_path())
        .args(["-c", code])
        .env("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn state(o: &Observation) -> &[f32] {
    match o {
        Observation::State(s) => s,
        Observation::Pixels(_) => panic!("state observation expected"),
    }
}

#[test]
fn pendulum_through_the_bridge_is_gymnasium_exactly() {
    require_gymnasium();
    let mut cfg = gym_cfg("Pendulum-v1", ObsKind::State);
    cfg.max_episode_steps = Some(7);
    let mut env = make_env(&cfg).unwrap();
    assert_eq!(env.obs_spec(), ObsSpec::State { dim: 3 });
    assert_eq!(env.action_dim(), 1);
    // Unit actions: -1 and 1 map onto the Box bounds (torque ±2), 0.25 onto 0.5.
    let actions = [0.25f32, -1.0, 1.0, 0.0, 0.5, -0.5, 0.75];
    let mut ours = vec![state(&env.reset(Some(3))).to_vec()];
    let mut rewards = Vec::new();
    let mut flags = Vec::new();
    for a in actions {
        let s = env.step(&[a]);
        ours.push(state(&s.obs).to_vec());
        rewards.push(s.reward);
        flags.push((s.terminated, s.truncated));
    }
    // The same episode in Gymnasium directly, with the torques written out.
    let gym = python_json(
        r#"
import json, numpy as np, gymnasium as gym
env = gym.make("Pendulum-v1", max_episode_steps=7)
obs, _ = env.reset(seed=3)
out = {"obs": [obs.tolist()], "rewards": [], "flags": []}
for u in [0.5, -2.0, 2.0, 0.0, 1.0, -1.0, 1.5]:
    obs, r, te, tr, _ = env.step(np.array([u], dtype=np.float32))
    out["obs"].append(obs.tolist()); out["rewards"].append(float(r)); out["flags"].append([te, tr])
print(json.dumps(out))
"#,
    );
    for (t, (a, b)) in ours.iter().zip(gym["obs"].as_array().unwrap()).enumerate() {
        let b: Vec<f32> = b
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        // Raw float32 bytes over the pipe: bit-identical, not approximately equal.
        assert_eq!(a, &b, "observation {t}");
    }
    for (t, (a, b)) in rewards
        .iter()
        .zip(gym["rewards"].as_array().unwrap())
        .enumerate()
    {
        // The reward travels as a raw f64; only the JSON of the Python side rounds (last ulp).
        let b = b.as_f64().unwrap();
        assert!(
            (a - b).abs() <= 1e-12 * b.abs().max(1.0),
            "reward {t}: {a} vs {b}"
        );
    }
    // Truncated (not terminated) at the time limit, exactly where Gymnasium truncates.
    let want: Vec<(bool, bool)> = gym["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f[0].as_bool().unwrap(), f[1].as_bool().unwrap()))
        .collect();
    assert_eq!(flags, want);
    assert_eq!(flags.last(), Some(&(false, true)));
    // reset(None) continues; reset(Some(3)) reproduces the first episode.
    env.reset(None);
    assert_eq!(state(&env.reset(Some(3))), &ours[0][..]);
    assert!(env.failure().is_none());
}

#[test]
fn carracing_frames_are_gray_resized_and_stacked() {
    require_gymnasium();
    let mut cfg = gym_cfg("CarRacing-v3", ObsKind::Pixels);
    cfg.image_size = 32;
    cfg.frame_stack = 3;
    let mut env = make_env(&cfg).unwrap();
    assert_eq!(
        env.obs_spec(),
        ObsSpec::Pixels {
            channels: 3,
            height: 32,
            width: 32
        }
    );
    // Steer in [-1, 1], gas and brake in [0, 1]: three unit actions.
    assert_eq!(env.action_dim(), 3);
    let Observation::Pixels(first) = env.reset(Some(0)) else {
        panic!("pixels expected")
    };
    assert_eq!(first.len(), 3 * 32 * 32);
    let n = 32 * 32;
    // A new episode fills the stack with copies of the first frame.
    assert_eq!(first[..n], first[n..2 * n]);
    assert_eq!(first[..n], first[2 * n..]);
    let mut last = first.clone();
    for _ in 0..60 {
        let s = env.step(&[0.0, 1.0, -1.0]); // straight, full gas, no brake
        assert!(!s.terminated && !s.truncated);
        let Observation::Pixels(p) = s.obs else {
            panic!("pixels expected")
        };
        // The stack shifts by one frame per step.
        assert_eq!(p[..2 * n], last[n..]);
        last = p;
    }
    // Driving forward changed the picture (the zoom-in intro and the moving track).
    assert_ne!(last[2 * n..], first[..n]);
    assert!(env.failure().is_none());
}

fn start_error(cfg: &EnvConfig) -> String {
    match make_env(cfg) {
        Err(e @ EnvError::Gym { .. }) => e.to_string(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("{:?} started", cfg.id),
    }
}

#[test]
fn unsupported_envs_are_clear_errors_before_training() {
    require_gymnasium();
    let discrete = start_error(&gym_cfg("CartPole-v1", ObsKind::State));
    assert!(discrete.contains("not continuous"), "{discrete}");
    assert!(discrete.contains("CartPole-v1"), "{discrete}");
    let unknown = start_error(&gym_cfg("NoSuchEnv-v0", ObsKind::State));
    assert!(
        unknown.contains("NoSuchEnv-v0") && unknown.contains("doesn't exist"),
        "{unknown}"
    );
    // Images need `obs: pixels`, vectors `obs: state`.
    let e = start_error(&gym_cfg("CarRacing-v3", ObsKind::State));
    assert!(e.contains("env.obs: pixels"), "{e}");
    let e = start_error(&gym_cfg("Pendulum-v1", ObsKind::Pixels));
    assert!(e.contains("env.obs: state"), "{e}");
}

/// A small state config for `td3-sweep train` runs.
fn write_config(dir: &Path, env: &str) -> PathBuf {
    let path = dir.join("cfg.yaml");
    let text = format!(
        "device: cpu\nenv: {env}\n\
         networks: {{ actor: {{ hidden: [16], learning_rate: 1.0e-3 }}, critic: {{ hidden: [16], learning_rate: 1.0e-3 }} }}\n\
         training: {{ steps: 40, batch_size: 8, learning_starts: 10 }}\n\
         logging: {{ log_every: 5 }}\n\
         evaluation: {{ every: 0 }}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn train(dir: &Path, config: &Path, python: Option<&Path>) -> (Output, serde_json::Value) {
    let mut cmd = Command::new(bin());
    cmd.arg("train")
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(dir.join("run"))
        .current_dir(repo());
    if let Some(p) = python {
        cmd.env("TD3_SWEEP_PYTHON", p);
    }
    let out = cmd.output().unwrap();
    let rec = std::fs::read_to_string(dir.join("run/run.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    (out, rec)
}

#[test]
fn an_env_that_raises_is_a_crashed_run_with_the_traceback() {
    require_gymnasium();
    let dir = tempfile::tempdir().unwrap();
    // `g` is only used inside step(): making and resetting work, the first step raises TypeError
    // deep inside Gymnasium's pendulum.py.
    let cfg = write_config(
        dir.path(),
        "{ kind: gymnasium, id: Pendulum-v1, obs: state, kwargs: { g: oops } }",
    );
    let (out, rec) = train(dir.path(), &cfg, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(rec["outcome"], "crashed", "{rec}");
    let reason = rec["reason"].as_str().unwrap();
    for want in ["at env step 1", "TypeError", "Traceback", "pendulum.py"] {
        assert!(reason.contains(want), "{want:?} missing from {reason}");
    }
    assert!(rec["stderr_tail"].as_str().unwrap().contains("TypeError"));
    // The traceback is also the last thing on stderr: the sweep scheduler's stderr tail.
    assert!(String::from_utf8_lossy(&out.stderr).contains("TypeError"));
}

#[test]
fn a_bridge_that_dies_is_a_crashed_run_with_its_stderr() {
    require_gymnasium();
    let dir = tempfile::tempdir().unwrap();
    // A stand-in interpreter: a real bridge handshake and reset, then it dies on the first step.
    let fake = dir.path().join("python");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nexec {} -c '\nimport json, struct, sys\n\
             out = sys.stdout.buffer\n\
             def send(p): out.write(struct.pack(\"<I\", len(p)) + p); out.flush()\n\
             send(b\"H\" + json.dumps({{\"obs\": {{\"shape\": [3], \"dtype\": \"float32\", \"encoding\": \"f32\", \"image\": False}}, \"action\": {{\"shape\": [1], \"low\": [-2.0], \"high\": [2.0]}}}}).encode())\n\
             while True:\n\
             \x20   n, = struct.unpack(\"<I\", sys.stdin.buffer.read(4)); m = sys.stdin.buffer.read(n)\n\
             \x20   if m[:1] == b\"S\":\n\
             \x20       sys.stderr.write(\"segfault-like death in the simulator\\n\"); sys.stderr.flush(); sys.exit(3)\n\
             \x20   send(b\"O\" + struct.pack(\"<3f\", 1.0, 0.0, 0.0))\n'\n",
            python_path().display()
        ),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    let cfg = write_config(
        dir.path(),
        "{ kind: gymnasium, id: Pendulum-v1, obs: state }",
    );
    let (out, rec) = train(dir.path(), &cfg, Some(&fake));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(rec["outcome"], "crashed", "{rec}");
    let reason = rec["reason"].as_str().unwrap();
    assert!(reason.contains("exit status: 3"), "{reason}");
    assert!(reason.contains("segfault-like death"), "{reason}");
}

#[test]
fn missing_gymnasium_or_python_is_a_clear_error_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "{ kind: gymnasium, id: Pendulum-v1, obs: state }",
    );
    // The project's Python without site-packages: gymnasium is not importable.
    let bare = dir.path().join("bare-python");
    std::fs::write(
        &bare,
        format!("#!/bin/sh\nexec {} -S \"$@\"\n", python_path().display()),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&bare).status().unwrap();
    let (out, rec) = train(dir.path(), &cfg, Some(&bare));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("No module named 'gymnasium'") && msg.contains("just setup"),
        "{msg}"
    );
    // Nothing trained: no run record was started.
    assert!(rec.is_null() || rec["steps_done"] == 0, "{rec}");
    let (out, _) = train(dir.path(), &cfg, Some(Path::new("/nonexistent/python")));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("cannot start the bridge"),
        "{}",
        text(&out)
    );
}

#[test]
fn id_is_required_for_gymnasium_and_only_there() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "{ kind: gymnasium, obs: state }");
    let (out, _) = train(dir.path(), &cfg, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("needs env.id"), "{}", text(&out));
    let cfg = write_config(
        dir.path(),
        "{ kind: pendulum, obs: state, id: Pendulum-v1 }",
    );
    let (out, _) = train(dir.path(), &cfg, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("only apply to env.kind `gymnasium`"),
        "{}",
        text(&out)
    );
}

/// A few hundred steps of `sweeps/carracing.yaml` through the binary, the bridge and tch:
/// metrics.csv, a verdict and the report.
#[test]
fn carracing_sweep_runs_end_to_end() {
    require_gymnasium();
    let dir = tempfile::tempdir().unwrap();
    let text_in = std::fs::read_to_string(repo().join("sweeps/carracing.yaml")).unwrap();
    let mut spec: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text_in).unwrap();
    let sweeps = repo().join("sweeps");
    let abs = |rel: &serde_yaml_ng::Value| {
        serde_yaml_ng::Value::String(
            sweeps
                .join(rel.as_str().unwrap())
                .to_string_lossy()
                .into_owned(),
        )
    };
    spec["base"] = abs(&spec["base"]);
    spec["criteria"] = abs(&spec["criteria"]);
    spec["name"] = "carracing_ci".into();
    spec["steps"] = 300.into();
    spec["seeds"] = serde_yaml_ng::from_str("[0]").unwrap();
    spec["timeout"] = "10m".into();
    spec["grid"] = serde_yaml_ng::from_str("{networks.cnn.actor_cnn_lr: [1.0e-4]}").unwrap();
    spec["resources"] = serde_yaml_ng::from_str("{devices: cpu, runs_per_device: 1}").unwrap();
    let small: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(
        "{env.image_size: 32, env.frame_stack: 2, networks.cnn.channels: [8, 8], \
          networks.cnn.kernels: [5, 3], networks.cnn.strides: [2, 2], networks.cnn.feature_dim: 32, \
          networks.actor.hidden: [32], networks.critic.hidden: [32], training.batch_size: 8, \
          training.buffer_size: 1000, training.learning_starts: 100, evaluation.every: 0, \
          logging.log_every: 20}",
    )
    .unwrap();
    for (k, v) in small {
        spec["set"][k.as_str().unwrap()] = v;
    }
    let file = dir.path().join("carracing_ci.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(&spec).unwrap()).unwrap();
    let results = dir.path().join("results");
    let t0 = Instant::now();
    let out = Command::new(bin())
        .arg("sweep")
        .arg(&file)
        .arg("--results")
        .arg(&results)
        .current_dir(repo())
        .output()
        .unwrap();
    let log = text(&out);
    let root = results.join("carracing_ci");
    let runs: Vec<PathBuf> = std::fs::read_dir(root.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{log}");
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs[0].join("run.json")).unwrap()).unwrap();
    assert_eq!(rec["outcome"], "completed", "{rec}\n{log}");
    assert_eq!(rec["steps_done"], 300);
    assert_eq!(rec["extra"]["env"], "gymnasium");
    let metrics = std::fs::read_to_string(runs[0].join("metrics.csv")).unwrap();
    // 200 updates, a row every 20: ten rows with CNN gradient norms.
    assert_eq!(metrics.lines().count(), 11, "{metrics}");
    let summary = std::fs::read_to_string(root.join("summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 2, "{summary}");
    let report = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("VALIDATION"))
        })
        .expect("a VALIDATION report");
    let report = std::fs::read_to_string(report).unwrap();
    assert!(report.contains("carracing_ci"), "{report}");
    let verdict = ["PASS", "INVESTIGATE", "FAIL"]
        .into_iter()
        .find(|v| report.contains(&format!("**Status: {v}**")))
        .unwrap_or_else(|| panic!("no verdict in the report:\n{report}"));
    eprintln!(
        "carracing_ci: {verdict} in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

/// Bridge overhead per step: Gymnasium envs stepped through the bridge vs the same loop in Python.
/// A measurement, not a check:
/// `cargo test --release --test it -- --ignored --nocapture gym_bridge::bridge_overhead`.
#[test]
#[ignore = "benchmark; run with --ignored --nocapture"]
fn bridge_overhead() {
    require_gymnasium();
    for (id, obs, n) in [
        ("Pendulum-v1", ObsKind::State, 20_000usize),
        ("CarRacing-v3", ObsKind::Pixels, 1_000),
    ] {
        let mut cfg = gym_cfg(id, obs);
        cfg.max_episode_steps = Some(1_000_000);
        let mut env = make_env(&cfg).unwrap();
        let a = vec![0.1f32; env.action_dim()];
        env.reset(Some(0));
        for _ in 0..50 {
            env.step(&a);
        }
        let t = Instant::now();
        for _ in 0..n {
            env.step(&a);
        }
        let bridge = t.elapsed().as_secs_f64() / n as f64 * 1e6;
        let py = python_json(&format!(
            r#"
import json, time, numpy as np, gymnasium as gym
env = gym.make("{id}", max_episode_steps=1_000_000)
env.reset(seed=0)
lo, hi = env.action_space.low, env.action_space.high
a = (lo + (0.1 + 1) / 2 * (hi - lo)).astype(np.float32)
for _ in range(50): env.step(a)
t = time.perf_counter()
for _ in range({n}): env.step(a)
print(json.dumps((time.perf_counter() - t) / {n} * 1e6))
"#
        ));
        let direct = py.as_f64().unwrap();
        eprintln!(
            "{id}: bridge {bridge:.1} us/step, direct Python {direct:.1} us/step, overhead {:.1} us/step",
            bridge - direct
        );
    }
}

/// A bridge whose env hangs inside `step()` never reads its pipe again; when its trainer is
/// SIGKILLed (what a sweep's timeout does after its grace), it must still go away.
#[test]
fn a_hung_env_does_not_outlive_its_killed_trainer() {
    require_gymnasium();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hangenv.py"),
        "import sys, time\nimport numpy as np\nimport gymnasium as gym\nfrom gymnasium import spaces\n\n\
         class Hang(gym.Env):\n    def __init__(self):\n        self.observation_space = spaces.Box(-1, 1, (3,), np.float32)\n        \
         self.action_space = spaces.Box(-1, 1, (1,), np.float32)\n        self.n = 0\n    \
         def reset(self, seed=None, options=None):\n        super().reset(seed=seed)\n        return np.zeros(3, np.float32), {}\n    \
         def step(self, a):\n        self.n += 1\n        if self.n == 15:\n            print('hanging', file=sys.stderr, flush=True)\n            time.sleep(600)\n        \
         return np.zeros(3, np.float32), 0.0, False, False, {}\n\n\
         gym.register(id='Hang-v0', entry_point='hangenv:Hang')\n",
    )
    .unwrap();
    let cfg = write_config(
        dir.path(),
        "{ kind: gymnasium, id: 'hangenv:Hang-v0', obs: state }",
    );
    let stderr_path = dir.path().join("stderr.txt");
    let mut child = Command::new(bin())
        .arg("train")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("run"))
        .env("PYTHONPATH", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let bridges = |parent: Option<u32>| -> Vec<u32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
            .filter(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                String::from_utf8_lossy(&cmd).contains("Runs one Gymnasium environment")
                    && String::from_utf8_lossy(&cmd).contains("hangenv")
                    && parent.is_none_or(|p| status.contains(&format!("PPid:\t{p}\n")))
            })
            .collect()
    };
    let t = std::time::Instant::now();
    while !std::fs::read_to_string(&stderr_path)
        .unwrap_or_default()
        .contains("hanging")
    {
        assert!(t.elapsed().as_secs() < 60, "the env never hung");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mine = bridges(Some(child.id()));
    assert_eq!(mine.len(), 1, "one bridge for the run");
    child.kill().unwrap();
    let _ = child.wait();
    let t = std::time::Instant::now();
    while std::path::Path::new(&format!("/proc/{}", mine[0])).exists()
        && !std::fs::read_to_string(format!("/proc/{}/status", mine[0]))
            .unwrap_or_default()
            .contains("State:\tZ")
    {
        assert!(
            t.elapsed().as_secs() < 15,
            "the bridge outlived its trainer by 15 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
