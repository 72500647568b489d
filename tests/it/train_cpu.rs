//! Real training through tch on the CPU: the TD3 update's invariants and a short end-to-end run.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};
use td3_sweep::config::{AgentConfig, EnvKind, ObsKind};
use td3_sweep::results::{read_metrics, Outcome, COLUMNS};
use td3_sweep::train::replay::Replay;
use td3_sweep::train::run::{train, TrainOptions};
use td3_sweep::train::td3::{normalized_q, Td3};

fn tiny_pixels() -> AgentConfig {
    let mut c = AgentConfig {
        device: "cpu".into(),
        ..Default::default()
    };
    c.env.image_size = 24;
    c.env.frame_stack = 2;
    c.networks.cnn.channels = vec![8, 8];
    c.networks.cnn.kernels = vec![3, 3];
    c.networks.cnn.strides = vec![2, 1];
    c.networks.cnn.feature_dim = 16;
    c.networks.actor.hidden = vec![32, 32];
    c.networks.critic.hidden = vec![32, 32];
    c.training.batch_size = 16;
    c.training.steps = 80;
    c.training.learning_starts = 20;
    c.logging.log_every = 10;
    // Training rows only (the baseline evaluation row has its tests in src/train/run.rs).
    c.evaluation.every = 0;
    c
}

fn filled_replay(cfg: &AgentConfig, n: usize) -> Replay {
    let mut env = td3_sweep::train::env::make_env(&cfg.env).unwrap();
    let shape: Vec<i64> = match env.obs_spec() {
        td3_sweep::train::env::ObsSpec::Pixels {
            channels,
            height,
            width,
        } => {
            vec![channels as i64, height as i64, width as i64]
        }
        td3_sweep::train::env::ObsSpec::State { dim } => vec![dim as i64],
    };
    // Room to spare: the pixel frame store evicts early when short episodes use up its frame
    // slack (each episode stores its first stack), and these tests want all `n` transitions.
    let mut r = Replay::new(
        2 * n,
        shape,
        cfg.env.obs == ObsKind::Pixels,
        env.action_dim(),
    );
    let mut obs = env.reset(Some(0));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..n {
        use rand::Rng;
        let a: Vec<f32> = (0..env.action_dim())
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let st = env.step(&a);
        r.push(&obs, &a, st.reward as f32, &st.obs, st.terminated);
        obs = if st.terminated || st.truncated {
            env.reset(None)
        } else {
            st.obs
        };
    }
    r
}

fn shape_of(cfg: &AgentConfig) -> Vec<i64> {
    let c = cfg.env.frame_stack as i64;
    let s = cfg.env.image_size as i64;
    vec![c, s, s]
}

#[test]
fn critic_loss_decreases_on_a_fixed_batch() {
    tch::manual_seed(0);
    let mut cfg = tiny_pixels();
    cfg.networks.critic.learning_rate = 1e-3;
    cfg.networks.cnn.critic_cnn_lr = Some(1e-3);
    // Freeze targets' drift out of the picture: tau 0 keeps the regression target fixed.
    cfg.training.tau = 0.0;
    cfg.training.policy_delay = 1_000_000;
    let mut replay = filled_replay(&cfg, 64);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let batch = replay.sample(32, &mut rng, Device::Cpu);
    let mut agent = Td3::new(&cfg, &shape_of(&cfg), 2, Device::Cpu).unwrap();
    let before = agent.critic_loss(&batch);
    for _ in 0..50 {
        agent.update(&batch);
    }
    let after = agent.critic_loss(&batch);
    assert!(
        after < 0.5 * before,
        "critic loss should fall on a fixed batch: {before} -> {after}"
    );
}

#[test]
fn actor_step_leaves_no_gradient_in_the_critic() {
    let mut cfg = tiny_pixels();
    cfg.training.policy_delay = 1; // the actor updates on every step
    let mut replay = filled_replay(&cfg, 64);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut agent = Td3::new(&cfg, &shape_of(&cfg), 2, Device::Cpu).unwrap();
    for _ in 0..3 {
        let batch = replay.sample(16, &mut rng, Device::Cpu);
        let (stats, ok) = agent.update(&batch);
        assert!(ok && stats.actor_updated);
        let s = stats.to_host(true);
        // The critic's gradients after the whole update must be exactly those of its own backward,
        // measured right after it: the actor backward added nothing a later step could apply.
        let own = (s.critic_head_gn.powi(2) + s.critic_cnn_gn.unwrap().powi(2)).sqrt();
        let now = agent.critic_grad_norm();
        assert!(
            (now - own).abs() <= 1e-5 * own.max(1.0),
            "critic grads changed by the actor step: {own} -> {now}"
        );
        assert!(s.actor_cnn_gn.unwrap() > 0.0 && s.actor_head_gn.unwrap() > 0.0);
    }
}

#[test]
fn q_normalised_actor_loss_has_zero_mean_unit_std() {
    let q = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 1000.0]).view([5, 1]);
    let n = normalized_q(&q);
    assert!(n.mean(Kind::Float).double_value(&[]).abs() < 1e-6);
    assert!((n.std(true).double_value(&[]) - 1.0).abs() < 1e-4);
    // The loss scale no longer depends on Q's magnitude: that is Solution C's point.
    let big = normalized_q(&(q.shallow_clone() * 1e6));
    let d = (big - n).abs().max().double_value(&[]);
    assert!(d < 1e-3, "normalised Q should be scale-free, diff {d}");
    // The actor loss still has a gradient: the batch's mean and std are constants, so
    // d(−mean(normalized_q))/dq_i = −1/(n·std), not the 0 of a centred batch's mean.
    let qg = q.shallow_clone().set_requires_grad(true);
    let loss = -normalized_q(&qg).mean(Kind::Float);
    loss.backward();
    let g = qg.grad();
    let want = -1.0 / (5.0 * q.std(true).double_value(&[]));
    for i in 0..5 {
        let gi = g.double_value(&[i, 0]);
        assert!(
            (gi - want).abs() < 1e-6 * want.abs(),
            "grad {gi}, want {want}"
        );
    }
}

#[test]
fn short_pixel_run_writes_exact_header_and_finite_values() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_pixels();
    let mut opts = TrainOptions::new(dir.path().to_path_buf());
    opts.verbose = false;
    let rec = train(&cfg, opts).unwrap();
    assert_eq!(rec.outcome, Outcome::Completed);
    assert_eq!(rec.steps_done, 80);
    assert_eq!(rec.train_steps_done, 60);
    let text = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    assert_eq!(text.lines().next().unwrap(), COLUMNS.join(","));
    let rows = read_metrics(&dir.path().join("metrics.csv")).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.train_step).collect::<Vec<_>>(),
        vec![10, 20, 30, 40, 50, 60]
    );
    for r in &rows {
        for c in [
            "actor_cnn_grad_norm",
            "critic_cnn_grad_norm",
            "q_abs_max",
            "critic_loss",
            "actor_loss",
        ] {
            let v = r
                .get(c)
                .unwrap_or_else(|| panic!("{c} empty at {}", r.train_step));
            assert!(v.is_finite(), "{c} = {v}");
        }
        assert_eq!(r.nonfinite, 0);
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run.json")).unwrap())
            .unwrap();
    assert_eq!(json["learning_rates"]["actor_cnn"]["source"], "default");
    assert_eq!(json["outcome"], "completed");
}

#[test]
fn state_run_leaves_cnn_columns_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny_pixels();
    cfg.env.kind = EnvKind::Pendulum;
    cfg.env.obs = ObsKind::State;
    let mut opts = TrainOptions::new(dir.path().to_path_buf());
    opts.verbose = false;
    train(&cfg, opts).unwrap();
    let rows = read_metrics(&dir.path().join("metrics.csv")).unwrap();
    assert!(!rows.is_empty());
    assert!(rows
        .iter()
        .all(|r| r.actor_cnn_grad_norm.is_none() && r.critic_cnn_grad_norm.is_none()));
    assert!(rows
        .iter()
        .all(|r| r.actor_head_grad_norm.unwrap().is_finite()));
}

#[test]
fn injected_nan_diverges_at_that_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny_pixels();
    cfg.debug.nan_at_step = Some(25);
    let mut opts = TrainOptions::new(dir.path().to_path_buf());
    opts.verbose = false;
    let rec = train(&cfg, opts).unwrap();
    assert_eq!(rec.outcome, Outcome::Diverged);
    assert_eq!(rec.first_nonfinite_step, Some(25));
    let rows = read_metrics(&dir.path().join("metrics.csv")).unwrap();
    let last = rows.last().unwrap();
    assert_eq!(last.train_step, 25);
    assert!(last.nonfinite > 0);
    // evidence.csv holds the steps up to the bad one, per layer, with step 25 marked.
    let mut ev = csv::Reader::from_path(dir.path().join("evidence.csv")).unwrap();
    let header = ev.headers().unwrap().clone();
    assert!(
        header
            .iter()
            .any(|h| h.starts_with("grad_norm:actor_cnn.conv0")),
        "{header:?}"
    );
    assert!(
        header.iter().any(|h| h.starts_with("grad_norm:q1.")),
        "{header:?}"
    );
    let recs: Vec<csv::StringRecord> = ev.records().map(|r| r.unwrap()).collect();
    assert_eq!(
        recs.len(),
        25,
        "all 25 training steps fit in the 50-step window"
    );
    let marked: Vec<&str> = recs
        .iter()
        .filter(|r| !r[2].is_empty())
        .map(|r| &r[0])
        .collect();
    assert_eq!(marked, vec!["25"]);
    assert_eq!(&recs.last().unwrap()[2], "first_nonfinite");
}
