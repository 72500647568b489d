//! Numerical cross-check of the TD3 update against plain PyTorch.
//!
//! The same initial weights, batches and target-smoothing noise draws go through `Td3::update`
//! and through `bench/torch_td3.py`'s graph (`--parity`, run by the repo's `.venv/bin/python`).
//! Losses, Q statistics, gradient norms (per group and per parameter) and the updated weights,
//! online and target, must agree within [`REL_TOL`]. Three updates with `policy_delay` 2 cover
//! a critic-only step, a step with the actor and Polyak averaging, and Adam past its first step.
//!
//! Without `.venv/bin/python` the test is skipped with a note, except under CI (env `CI` set),
//! where it fails: CI's `.venv` has torch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};
use td3_sweep::config::AgentConfig;
use td3_sweep::train::replay::Batch;
use td3_sweep::train::td3::Td3;

/// Largest relative difference allowed between the two implementations.
const REL_TOL: f64 = 1e-5;
const UPDATES: usize = 3;
const BATCH: i64 = 16;

fn python() -> Option<PathBuf> {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if py.exists() {
        return Some(py);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: under CI the PyTorch cross-check must run (scripts/setup.sh installs torch)",
        py.display()
    );
    eprintln!(
        "note: PyTorch cross-check skipped: {} is missing (`just setup` installs it)",
        py.display()
    );
    None
}

/// A small agent, with learning rates that differ per group and a tau large enough for the
/// Polyak step to show in the target weights.
fn agent_config() -> AgentConfig {
    let mut c = AgentConfig {
        device: "cpu".into(),
        ..Default::default()
    };
    let n = &mut c.networks;
    n.cnn.channels = vec![8, 8];
    n.cnn.kernels = vec![3, 3];
    n.cnn.strides = vec![2, 1];
    n.cnn.feature_dim = 16;
    n.cnn.actor_cnn_lr = Some(1e-3);
    n.cnn.critic_cnn_lr = Some(2e-3);
    n.actor.hidden = vec![32, 32];
    n.actor.learning_rate = 3e-3;
    n.critic.hidden = vec![32, 32];
    n.critic.learning_rate = 4e-3;
    c.training.tau = 0.1;
    c.training.policy_delay = 2;
    c
}

/// `cfg` in `bench/torch_td3.py`'s config keys.
fn torch_config(cfg: &AgentConfig, obs_shape: &[i64], act_dim: i64) -> serde_json::Value {
    let (n, t, lrs) = (&cfg.networks, &cfg.training, cfg.resolved_lrs());
    serde_json::json!({
        "pixels": obs_shape.len() == 3,
        "obs_shape": obs_shape,
        "act_dim": act_dim,
        "channels": n.cnn.channels,
        "kernels": n.cnn.kernels,
        "strides": n.cnn.strides,
        "feature_dim": n.cnn.feature_dim,
        "actor_hidden": n.actor.hidden,
        "critic_hidden": n.critic.hidden,
        "discount": t.discount,
        "tau": t.tau,
        "policy_noise": t.policy_noise,
        "noise_clip": t.noise_clip,
        "policy_delay": t.policy_delay,
        "lrs": {
            "actor_cnn": lrs.actor_cnn.lr,
            "critic_cnn": lrs.critic_cnn.lr,
            "actor_head": lrs.actor_head.lr,
            "critic_head": lrs.critic_head.lr,
        },
        "updates": UPDATES,
    })
}

/// A batch as `Replay::sample` gives one: pixels in [0, 1] on the 1/255 grid, some terminal
/// transitions, and smoothing-noise draws of std 2 so that some exceed `noise_clip`.
fn batch(obs_shape: &[i64], act_dim: i64) -> Batch {
    let f = (Kind::Float, Device::Cpu);
    let shape: Vec<i64> = [BATCH].iter().chain(obs_shape).copied().collect();
    let obs = || {
        if obs_shape.len() == 3 {
            Tensor::randint(256, shape.as_slice(), f) / 255.0
        } else {
            Tensor::randn(shape.as_slice(), f)
        }
    };
    Batch {
        obs: obs(),
        act: Tensor::rand([BATCH, act_dim], f) * 2.0 - 1.0,
        rew: Tensor::randn([BATCH, 1], f),
        next_obs: obs(),
        not_done: Tensor::rand([BATCH, 1], f).gt(0.2).to_kind(Kind::Float),
        noise: Tensor::randn([BATCH, act_dim], f) * 2.0,
    }
}

fn batch_tensors(k: usize, b: &Batch) -> Vec<(String, Tensor)> {
    [
        ("obs", &b.obs),
        ("act", &b.act),
        ("rew", &b.rew),
        ("next_obs", &b.next_obs),
        ("not_done", &b.not_done),
        ("noise", &b.noise),
    ]
    .into_iter()
    .map(|(n, t)| (format!("batch{k}.{n}"), t.contiguous()))
    .collect()
}

/// Compares everything, keeping the largest relative difference.
struct Compare {
    torch: HashMap<String, Tensor>,
    max_rel: f64,
    worst: String,
    failures: Vec<String>,
}

impl Compare {
    /// `ours` against torch's tensor `key`: max |a − b| over max |b|.
    fn tensor(&mut self, key: &str, ours: &Tensor) {
        let Some(theirs) = self.torch.get(key) else {
            self.failures
                .push(format!("{key}: missing from torch's output"));
            return;
        };
        let ours = ours.to_kind(Kind::Double);
        let theirs = theirs.to_kind(Kind::Double);
        if ours.size() != theirs.size() {
            self.failures.push(format!(
                "{key}: shape {:?} vs torch's {:?}",
                ours.size(),
                theirs.size()
            ));
            return;
        }
        let diff = (&ours - &theirs).abs().max().double_value(&[]);
        let scale = theirs.abs().max().double_value(&[]).max(1e-30);
        let rel = diff / scale;
        if rel > self.max_rel || rel.is_nan() {
            self.max_rel = rel;
            self.worst = key.to_string();
        }
        if rel.is_nan() || rel > REL_TOL {
            self.failures.push(format!(
                "{key}: relative difference {rel:.3e} (max |ours - torch| {diff:.3e}, max |torch| {scale:.3e})"
            ));
        }
    }

    fn scalar(&mut self, key: &str, ours: f64) {
        self.tensor(key, &Tensor::from(ours));
    }
}

/// Runs the same updates here and in PyTorch and compares them.
fn cross_check(pixels: bool) {
    // One at a time: libtorch's generator and thread count are global, and each check seeds its
    // weights and batches, so its numbers are the same on every run.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(py) = python() else { return };
    tch::set_num_threads(1);
    tch::manual_seed(if pixels { 11 } else { 12 });
    let cfg = agent_config();
    let (obs_shape, act_dim): (Vec<i64>, i64) = if pixels {
        (vec![2, 24, 24], 2)
    } else {
        (vec![3], 1)
    };
    let mut agent = Td3::new(&cfg, &obs_shape, act_dim, Device::Cpu).unwrap();
    let batches: Vec<Batch> = (0..UPDATES).map(|_| batch(&obs_shape, act_dim)).collect();

    let dir = tempfile::tempdir().unwrap();
    let mut input: Vec<(String, Tensor)> = agent
        .network_tensors()
        .into_iter()
        .map(|(n, t)| (format!("weights.{n}"), t.contiguous()))
        .collect();
    for (k, b) in batches.iter().enumerate() {
        input.extend(batch_tensors(k, b));
    }
    Tensor::write_npz(&input, dir.path().join("in.npz")).unwrap();
    let config = torch_config(&cfg, &obs_shape, act_dim);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let out = std::process::Command::new(&py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/torch_td3.py"))
        .arg("--parity")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench/torch_td3.py --parity failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let torch = Tensor::read_npz(dir.path().join("out.npz")).unwrap();
    let mut cmp = Compare {
        torch: torch.into_iter().collect(),
        max_rel: 0.0,
        worst: "all equal".into(),
        failures: Vec::new(),
    };

    let names = agent.layer_names();
    for (k, b) in batches.iter().enumerate() {
        let (stats, ok) = agent.update(b);
        assert!(ok, "update {k} was not finite");
        let s = stats.to_host(pixels);
        let key = |n: &str| format!("update{k}.{n}");
        assert_eq!(
            s.actor_loss.is_some(),
            cmp.torch.contains_key(&key("actor_loss")),
            "update {k}: the actor stepped on one side only"
        );
        let mut scalars = vec![
            ("critic_loss", Some(s.critic_loss)),
            ("q_mean", Some(s.q_mean)),
            ("q_abs_max", Some(s.q_abs_max)),
            ("target_q_mean", Some(s.target_q_mean)),
            ("critic_head_gn", Some(s.critic_head_gn)),
            ("critic_cnn_gn", s.critic_cnn_gn),
            ("actor_loss", s.actor_loss),
            ("actor_head_gn", s.actor_head_gn),
            ("actor_cnn_gn", s.actor_cnn_gn),
        ];
        scalars.retain(|(_, v)| v.is_some());
        for (n, v) in scalars {
            cmp.scalar(&key(n), v.unwrap());
        }
        // Per-parameter norms: the critic's always, the actor's when it stepped (else zeros).
        for (name, &v) in names.iter().zip(&s.layers) {
            let is_actor = name.starts_with("actor");
            if !is_actor || s.actor_loss.is_some() {
                cmp.scalar(&key(&format!("grad.{name}")), v);
            }
        }
    }
    for (name, t) in agent.network_tensors() {
        cmp.tensor(&format!("weights.{name}"), &t);
    }
    let kind = if pixels { "pixels" } else { "state" };
    println!(
        "torch parity ({kind}): max relative difference {:.3e} ({})",
        cmp.max_rel, cmp.worst
    );
    assert!(
        cmp.failures.is_empty(),
        "{kind}: Td3::update differs from bench/torch_td3.py beyond {REL_TOL:e}:\n{}",
        cmp.failures.join("\n")
    );
}

#[test]
fn pixel_update_matches_pytorch() {
    cross_check(true);
}

#[test]
fn state_update_matches_pytorch() {
    cross_check(false);
}
