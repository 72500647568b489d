//! `td3-bench`: throughput of our TD3 update, analytic FLOPs per update, a single-thread sgemm
//! peak, and the frame-deduplicating replay store's memory and sampling speed.
//!
//! `just bench` runs this beside `bench/torch_td3.py` and `bench/sb3_td3.py` and merges the JSON
//! files with `bench/report.py`; `bench/README.md` explains every number. Benchmarks, not tests:
//! nothing here runs under `cargo test` except the pure FLOP-counting helpers' unit tests.
//!
//! Shape: CLI args → [`Options`] (pure) → engine (`bench_updates`, `bench_replay`) → JSON.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tch::{Device, Kind, Tensor};
use td3_sweep::config::{AgentConfig, ObsKind};
use td3_sweep::train::env::Observation;
use td3_sweep::train::frame_store::{FrameBatch, FrameStore};
use td3_sweep::train::replay::Replay;
use td3_sweep::train::td3::Td3;

#[derive(Debug, Parser)]
#[command(
    name = "td3-bench",
    about = "TD3 update throughput, FLOPs, sgemm peak, replay memory"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write the benchmark configs (the one source the Python peers read) as JSON.
    Configs {
        #[arg(long)]
        out: PathBuf,
        /// Scale every config's update count (0.25 for a quick look).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
    },
    /// Time our TD3 update for every config, plus a 2048² sgemm; write JSON.
    Updates {
        #[arg(long)]
        out: PathBuf,
        /// libtorch intra-op threads.
        #[arg(long, default_value_t = 1)]
        threads: i32,
        /// Scale every config's update count.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Only these configs (comma-separated names).
        #[arg(long)]
        only: Option<String>,
        /// Skip CUDA even when it is available.
        #[arg(long)]
        cpu_only: bool,
    },
    /// Repeated 2048² sgemm for `--seconds` on one thread; prints GFLOP/s (scaling.py runs two
    /// at once to see how much of a second core is free right now).
    Sgemm {
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Each pixel config's convolutions and encoder Linear alone: forward, weight gradient and
    /// input gradient times and GFLOP/s (where the pixel update's time goes); write JSON.
    Kernels {
        #[arg(long)]
        out: PathBuf,
        /// libtorch intra-op threads.
        #[arg(long, default_value_t = 1)]
        threads: i32,
        /// Only these configs (comma-separated names).
        #[arg(long)]
        only: Option<String>,
    },
    /// Frame-store footprint (computed for 1M, RSS at `--transitions`) and µs per sampled batch.
    Replay {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        transitions: usize,
        #[arg(long, default_value_t = 84)]
        image_size: usize,
        #[arg(long, default_value_t = 3)]
        frame_stack: usize,
        /// Steps per episode (one extra stack of frames is stored per episode).
        #[arg(long, default_value_t = 200)]
        episode_len: usize,
    },
}

/// One benchmark configuration, shared with the Python peers through `configs.json`.
#[derive(Debug, Clone, Serialize)]
struct BenchConfig {
    name: String,
    /// `[C, H, W]` for pixels, `[D]` for states.
    obs_shape: Vec<i64>,
    act_dim: i64,
    pixels: bool,
    channels: Vec<i64>,
    kernels: Vec<i64>,
    strides: Vec<i64>,
    feature_dim: i64,
    actor_hidden: Vec<i64>,
    critic_hidden: Vec<i64>,
    batch: usize,
    policy_delay: u64,
    discount: f64,
    tau: f64,
    policy_noise: f64,
    noise_clip: f64,
    /// Timed updates (split into `rounds`; the best round counts) and untimed warm-up updates.
    updates: usize,
    warmup: usize,
    rounds: usize,
    /// Transitions put into the replay buffer before timing.
    fill: usize,
    /// Analytic FLOPs of one update (see [`flops_per_update`]).
    flops_per_update: f64,
    #[serde(skip)]
    agent: AgentConfig,
}

/// One config before its derived fields are filled in.
struct Row {
    name: String,
    agent: AgentConfig,
    obs_shape: Vec<i64>,
    act_dim: i64,
    /// Timed updates, untimed warm-up updates, transitions in the buffer.
    updates: usize,
    warmup: usize,
    fill: usize,
}

fn pixel_config(size: usize, batch: usize) -> AgentConfig {
    let mut c = AgentConfig::default();
    c.env.obs = ObsKind::Pixels;
    c.env.image_size = size;
    c.training.batch_size = batch;
    c
}

fn state_config(hidden: &[i64], batch: usize) -> AgentConfig {
    let mut c = AgentConfig::default();
    c.env.obs = ObsKind::State;
    c.networks.actor.hidden = hidden.to_vec();
    c.networks.critic.hidden = hidden.to_vec();
    c.training.batch_size = batch;
    c
}

/// The issue's configs: (a) default pixels, (b) 64/84 px at batch 64 (the SB3 reference setup:
/// convs 16/32/32, heads 256-256), (c) rl-zoo Pendulum 400-300 at batch 256, (d) 64-64 at batch 64.
fn configs(scale: f64) -> Vec<BenchConfig> {
    let d = AgentConfig::default();
    let row = |name: &str, agent, obs_shape: &[i64], act_dim, updates, warmup, fill| Row {
        name: name.to_string(),
        agent,
        obs_shape: obs_shape.to_vec(),
        act_dim,
        updates,
        warmup,
        fill,
    };
    // Timed updates are sized for a few seconds per config on one contended core.
    let raw = vec![
        row(
            "a_px48_b32",
            pixel_config(d.env.image_size, d.training.batch_size),
            &[3, 48, 48],
            2,
            120,
            10,
            2000,
        ),
        row(
            "b_px64_b64",
            pixel_config(64, 64),
            &[3, 64, 64],
            2,
            45,
            5,
            2000,
        ),
        row(
            "b_px84_b64",
            pixel_config(84, 64),
            &[3, 84, 84],
            2,
            24,
            3,
            2000,
        ),
        row(
            "c_pendulum_400_300_b256",
            state_config(&[400, 300], 256),
            &[3],
            1,
            240,
            20,
            10_000,
        ),
        row(
            "d_state_64_64_b64",
            state_config(&[64, 64], 64),
            &[3],
            1,
            1500,
            100,
            10_000,
        ),
    ];
    raw.into_iter()
        .map(|r| {
            let Row {
                name,
                agent,
                obs_shape,
                act_dim,
                updates,
                warmup,
                fill,
            } = r;
            let cnn = &agent.networks.cnn;
            let t = &agent.training;
            let pixels = obs_shape.len() == 3;
            let mut c = BenchConfig {
                name,
                obs_shape,
                act_dim,
                pixels,
                channels: cnn.channels.clone(),
                kernels: cnn.kernels.clone(),
                strides: cnn.strides.clone(),
                feature_dim: cnn.feature_dim,
                actor_hidden: agent.networks.actor.hidden.clone(),
                critic_hidden: agent.networks.critic.hidden.clone(),
                batch: t.batch_size,
                policy_delay: t.policy_delay,
                discount: t.discount,
                tau: t.tau,
                policy_noise: t.policy_noise,
                noise_clip: t.noise_clip,
                updates: ((updates as f64 * scale).round() as usize).max(3),
                warmup,
                rounds: 3,
                fill,
                flops_per_update: 0.0,
                agent: agent.clone(),
            };
            c.flops_per_update = flops_per_update(&c);
            c
        })
        .collect()
}

// ---- FLOP accounting --------------------------------------------------------------------------

/// Forward FLOPs (2 per multiply-add; biases, activations and element-wise ops not counted) of
/// each layer of one encoder, for a batch of one.
fn encoder_layer_flops(c: &BenchConfig) -> Vec<f64> {
    let mut out = Vec::new();
    let (mut ch, mut side) = (c.obs_shape[0], c.obs_shape[2]);
    for ((&o, &k), &s) in c.channels.iter().zip(&c.kernels).zip(&c.strides) {
        side = (side - k) / s + 1;
        out.push(2.0 * (ch * k * k * o * side * side) as f64);
        ch = o;
    }
    out.push(2.0 * (ch * side * side * c.feature_dim) as f64);
    out
}

/// Forward FLOPs of each linear layer of an MLP `inp → hidden… → out`, batch of one.
fn mlp_layer_flops(inp: i64, hidden: &[i64], out: i64) -> Vec<f64> {
    let mut dims = vec![inp];
    dims.extend_from_slice(hidden);
    dims.push(out);
    dims.windows(2)
        .map(|w| 2.0 * (w[0] * w[1]) as f64)
        .collect()
}

/// FLOPs of a trained chain: forward F, weight gradient F per layer, input gradient F per layer
/// except the first when its input needs no gradient (`input_grad` false).
fn trained(layers: &[f64], input_grad: bool) -> f64 {
    let f: f64 = layers.iter().sum();
    let first = layers.first().copied().unwrap_or(0.0);
    3.0 * f - if input_grad { 0.0 } else { first }
}

/// Analytic FLOPs of one `Td3::update`, averaged over the policy delay:
///
/// ```text
/// target  (no_grad)        = F(actor_cnn) + F(actor_head) + F(critic_cnn) + 2 F(q)
/// critic  (trained)        = T(critic_cnn) + 2 T(q, input grad iff pixels)
/// actor   (every d-th)     = T(actor_cnn) + T(actor_head, input grad iff pixels)
///                            + F(critic_cnn) [no_grad] + 2 F(q1) [frozen: forward + input grad]
/// update                   = target + critic + actor / d
/// ```
/// where `F` is the forward FLOPs at the batch size and `T = 3F − F(first layer)` when the
/// chain's input needs no gradient (obs never does). Adam, Polyak averaging, norms and the
/// finiteness checks are element-wise, O(parameters), and are not counted.
fn flops_per_update(c: &BenchConfig) -> f64 {
    let b = c.batch as f64;
    let (cnn, feat) = if c.pixels {
        (encoder_layer_flops(c), c.feature_dim)
    } else {
        (Vec::new(), c.obs_shape[0])
    };
    let f_cnn: f64 = cnn.iter().sum();
    let actor = mlp_layer_flops(feat, &c.actor_hidden, c.act_dim);
    let q = mlp_layer_flops(feat + c.act_dim, &c.critic_hidden, 1);
    let f_actor: f64 = actor.iter().sum();
    let f_q: f64 = q.iter().sum();
    let target = f_cnn + f_actor + f_cnn + 2.0 * f_q;
    let critic = trained(&cnn, false) + 2.0 * trained(&q, c.pixels);
    let actor_step = trained(&cnn, false) + trained(&actor, c.pixels) + f_cnn + 2.0 * f_q;
    b * (target + critic + actor_step / c.policy_delay as f64)
}

// ---- engine -----------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct UpdateResult {
    config: String,
    device: String,
    threads: i32,
    updates: usize,
    /// Best round's updates per second (sampling a batch included, as SB3's `train` does).
    updates_per_s: f64,
    /// Every round's updates per second.
    rounds_per_s: Vec<f64>,
    ms_per_update: f64,
    flops_per_update: f64,
    gflops: f64,
}

#[derive(Debug, Serialize)]
struct UpdatesOut {
    implementation: &'static str,
    threads: i32,
    sgemm_gflops: f64,
    results: Vec<UpdateResult>,
}

/// Best-of-3 single-thread-or-`threads` 2048² sgemm, GFLOP/s.
fn sgemm_gflops(device: Device) -> f64 {
    let n = 2048i64;
    let a = Tensor::randn([n, n], (Kind::Float, device));
    let b = Tensor::randn([n, n], (Kind::Float, device));
    let _ = a.mm(&b);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        let c = a.mm(&b);
        if device.is_cuda() {
            tch::Cuda::synchronize(0);
        }
        let _ = c.size();
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}

/// Mean single-thread 2048² sgemm GFLOP/s over about `seconds`.
fn sgemm_for(seconds: f64) -> f64 {
    let n = 2048i64;
    let a = Tensor::randn([n, n], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([n, n], (Kind::Float, Device::Cpu));
    let _ = a.mm(&b);
    let t = Instant::now();
    let mut reps = 0u32;
    while t.elapsed().as_secs_f64() < seconds {
        let _ = a.mm(&b);
        reps += 1;
    }
    2.0 * (n * n * n) as f64 * f64::from(reps) / t.elapsed().as_secs_f64() / 1e9
}

fn fill_replay(c: &BenchConfig, rng: &mut ChaCha8Rng) -> Replay {
    let obs_len: usize = c.obs_shape.iter().product::<i64>() as usize;
    let mut r = Replay::new(c.fill, c.obs_shape.clone(), c.pixels, c.act_dim as usize);
    let act = vec![0.1f32; c.act_dim as usize];
    // Pixels: `next` is `obs` shifted by one random frame (a frame stack, as the envs make and
    // the frame store requires); a new random stack starts every 200 steps.
    let frame = if c.pixels {
        obs_len / c.obs_shape[0] as usize
    } else {
        0
    };
    let mut stack = vec![0u8; obs_len];
    for i in 0..c.fill {
        let (o, n) = if c.pixels {
            if i % 200 == 0 {
                rng.fill_bytes(&mut stack);
            }
            let mut b = vec![0u8; obs_len];
            b[..obs_len - frame].copy_from_slice(&stack[frame..]);
            rng.fill_bytes(&mut b[obs_len - frame..]);
            let a = std::mem::replace(&mut stack, b.clone());
            (Observation::Pixels(a), Observation::Pixels(b))
        } else {
            let v: Vec<f32> = (0..obs_len)
                .map(|j| ((i * 7 + j) % 13) as f32 / 13.0)
                .collect();
            (Observation::State(v.clone()), Observation::State(v))
        };
        r.push(&o, &act, -1.0, &n, i % 200 == 199);
    }
    r
}

fn bench_one(c: &BenchConfig, device: Device, threads: i32) -> Result<UpdateResult> {
    tch::manual_seed(0);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut replay = fill_replay(c, &mut rng);
    let mut agent = Td3::new(&c.agent, &c.obs_shape, c.act_dim, device)
        .with_context(|| format!("building Td3 for {}", c.name))?;
    let sync = || {
        if device.is_cuda() {
            tch::Cuda::synchronize(0);
        }
    };
    for _ in 0..c.warmup {
        let b = replay.sample(c.batch, &mut rng, device);
        let _ = agent.update(&b);
    }
    sync();
    let per_round = (c.updates / c.rounds).max(1);
    let mut rounds = Vec::new();
    for _ in 0..c.rounds {
        let t = Instant::now();
        for _ in 0..per_round {
            let b = replay.sample(c.batch, &mut rng, device);
            let _ = agent.update(&b);
        }
        sync();
        rounds.push(per_round as f64 / t.elapsed().as_secs_f64());
    }
    let best = rounds.iter().copied().fold(0.0, f64::max);
    Ok(UpdateResult {
        config: c.name.clone(),
        device: format!("{device:?}").to_lowercase(),
        threads,
        updates: per_round * c.rounds,
        updates_per_s: best,
        rounds_per_s: rounds,
        ms_per_update: 1e3 / best,
        flops_per_update: c.flops_per_update,
        gflops: c.flops_per_update * best / 1e9,
    })
}

fn bench_updates(
    threads: i32,
    scale: f64,
    only: Option<&str>,
    cpu_only: bool,
) -> Result<UpdatesOut> {
    tch::set_num_threads(threads);
    tch::set_num_interop_threads(1);
    let wanted = |n: &str| only.is_none_or(|o| o.split(',').any(|x| x == n));
    let mut devices = vec![Device::Cpu];
    if !cpu_only && tch::Cuda::is_available() {
        devices.push(Device::Cuda(0));
    }
    let sgemm = sgemm_gflops(Device::Cpu);
    eprintln!("td3-bench: sgemm 2048² on {threads} thread(s): {sgemm:.1} GFLOP/s");
    let mut results = Vec::new();
    for c in configs(scale).iter().filter(|c| wanted(&c.name)) {
        for &d in &devices {
            let r = bench_one(c, d, threads)?;
            eprintln!(
                "td3-bench: {:<26} {:>5} {:>9.2} updates/s  {:>8.2} ms  {:>6.2} GFLOP/s  rounds {:?}",
                r.config,
                r.device,
                r.updates_per_s,
                r.ms_per_update,
                r.gflops,
                r.rounds_per_s
                    .iter()
                    .map(|x| format!("{x:.1}"))
                    .collect::<Vec<_>>()
            );
            results.push(r);
        }
    }
    Ok(UpdatesOut {
        implementation: "ours",
        threads,
        sgemm_gflops: sgemm,
        results,
    })
}

#[derive(Debug, Serialize)]
struct KernelRow {
    config: String,
    layer: String,
    /// `[B, C, H, W]` of the layer's input (`[B, D]` for the Linear).
    input: Vec<i64>,
    /// Forward FLOPs at the batch size (weight and input gradients cost the same each).
    mflop: f64,
    fwd_ms: f64,
    wgrad_ms: f64,
    /// Input gradient: (forward + both gradients) − (forward + weight gradient).
    igrad_ms: f64,
}

#[derive(Debug, Serialize)]
struct KernelsOut {
    threads: i32,
    sgemm_gflops: f64,
    rows: Vec<KernelRow>,
}

/// Best-of-5 mean milliseconds of `f` over `reps` calls, after 3 warm-up calls.
fn time_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() * 1e3 / reps as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// Times one layer: forward under no_grad, forward + weight gradient, forward + weight and input
/// gradients (the backward pass seeds the output gradient with a fixed random tensor; the seeding
/// ops' own time is subtracted).
fn time_layer(x: &Tensor, forward: &dyn Fn(&Tensor) -> Tensor, reps: usize) -> (f64, f64, f64) {
    let y = tch::no_grad(|| forward(x));
    let g = Tensor::randn(y.size(), (Kind::Float, Device::Cpu));
    let fwd = time_ms(reps, || {
        let _ = tch::no_grad(|| forward(x));
    });
    let xg = x.detach().set_requires_grad(true);
    let back = |input: &Tensor| {
        let y = forward(input);
        (y * &g).sum(Kind::Float).backward();
    };
    // The seeding `(y * g).sum()` and its backward, timed alone on a leaf of y's shape.
    let leaf = y.detach().set_requires_grad(true);
    let seed = time_ms(reps, || (&leaf * &g).sum(Kind::Float).backward());
    let with_w = time_ms(reps, || back(x));
    let with_wx = time_ms(reps, || back(&xg));
    (fwd, (with_w - fwd - seed).max(0.0), with_wx - with_w)
}

fn bench_kernels(threads: i32, only: Option<&str>) -> KernelsOut {
    tch::set_num_threads(threads);
    tch::set_num_interop_threads(1);
    tch::manual_seed(0);
    let wanted = |n: &str| only.is_none_or(|o| o.split(',').any(|x| x == n));
    let sgemm = sgemm_gflops(Device::Cpu);
    let opts = (Kind::Float, Device::Cpu);
    let mut rows = Vec::new();
    for c in configs(1.0).iter().filter(|c| c.pixels && wanted(&c.name)) {
        let b = c.batch as i64;
        let flops = encoder_layer_flops(c);
        let (mut ch, mut side) = (c.obs_shape[0], c.obs_shape[2]);
        let reps = if side > 64 { 10 } else { 30 };
        for (i, ((&o, &k), &s)) in c
            .channels
            .iter()
            .zip(&c.kernels)
            .zip(&c.strides)
            .enumerate()
        {
            let x = Tensor::rand([b, ch, side, side], opts);
            let w = (Tensor::randn([o, ch, k, k], opts) * 0.1).set_requires_grad(true);
            let bias = Tensor::zeros([o], opts).set_requires_grad(true);
            let f = |x: &Tensor| x.conv2d(&w, Some(&bias), [s, s], [0, 0], [1, 1], 1);
            let (fwd, wg, ig) = time_layer(&x, &f, reps);
            rows.push(KernelRow {
                config: c.name.clone(),
                layer: format!("conv{i} {ch}→{o} k{k} s{s}"),
                input: vec![b, ch, side, side],
                mflop: flops[i] * c.batch as f64 / 1e6,
                fwd_ms: fwd,
                wgrad_ms: wg,
                igrad_ms: ig,
            });
            side = (side - k) / s + 1;
            ch = o;
        }
        let d = ch * side * side;
        let x = Tensor::rand([b, d], opts);
        let w = (Tensor::randn([c.feature_dim, d], opts) * 0.01).set_requires_grad(true);
        let bias = Tensor::zeros([c.feature_dim], opts).set_requires_grad(true);
        let f = |x: &Tensor| x.linear(&w, Some(&bias));
        let (fwd, wg, ig) = time_layer(&x, &f, reps);
        rows.push(KernelRow {
            config: c.name.clone(),
            layer: format!("fc {d}→{}", c.feature_dim),
            input: vec![b, d],
            mflop: flops[flops.len() - 1] * c.batch as f64 / 1e6,
            fwd_ms: fwd,
            wgrad_ms: wg,
            igrad_ms: ig,
        });
    }
    for r in &rows {
        let gf = |ms: f64| r.mflop / ms;
        eprintln!(
            "td3-bench: {:<12} {:<22} {:>7.1} MFLOP  fwd {:>6.2} ms {:>5.1} GFLOP/s  wgrad {:>6.2} ms {:>5.1}  igrad {:>6.2} ms {:>5.1}",
            r.config, r.layer, r.mflop, r.fwd_ms, gf(r.fwd_ms), r.wgrad_ms, gf(r.wgrad_ms), r.igrad_ms, gf(r.igrad_ms)
        );
    }
    KernelsOut {
        threads,
        sgemm_gflops: sgemm,
        rows,
    }
}

#[derive(Debug, Serialize)]
struct ReplayOut {
    image_size: usize,
    frame_stack: usize,
    episode_len: usize,
    transitions: usize,
    /// Bytes the store reserves per transition at full capacity (frames + fixed part).
    bytes_per_transition: f64,
    frame_bytes: usize,
    /// Computed footprint of a 1M-transition store, GB (1e9 bytes).
    computed_1m_gb: f64,
    /// What the existing `Replay` (obs and next_obs stacks copied) would need for 1M, GB.
    naive_1m_gb: f64,
    rss_before_mb: f64,
    rss_after_mb: f64,
    /// (RSS after − before) / transitions, bytes.
    rss_bytes_per_transition: f64,
    rss_extrapolated_1m_gb: f64,
    push_us: f64,
    sample_us_b32: f64,
    sample_us_b256: f64,
}

/// Resident set size from `/proc/self/status` (`VmRSS`), bytes; 0 where unavailable.
fn rss_bytes() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb * 1024.0)
        .unwrap_or(0.0)
}

fn bench_replay(n: usize, size: usize, k: usize, episode_len: usize) -> ReplayOut {
    let frame = size * size;
    let act_dim = 2;
    let rss_before = rss_bytes();
    let mut store = FrameStore::new(n, [size, size], k, act_dim);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    // Each step makes one new frame; a stack is the `k` newest (oldest first), and a reset
    // stack repeats its first frame, as the env's PixelObs does.
    let mut stack = vec![0u8; k * frame];
    let mut next = vec![0u8; k * frame];
    let act = vec![0.5f32; act_dim];
    let t = Instant::now();
    let mut step = 0;
    for _ in 0..n {
        if step == 0 {
            rng.fill_bytes(&mut stack[..frame]);
            for j in 1..k {
                stack.copy_within(..frame, j * frame);
            }
        }
        next[..(k - 1) * frame].copy_from_slice(&stack[frame..]);
        rng.fill_bytes(&mut next[(k - 1) * frame..]);
        step += 1;
        let terminated = false;
        store.push(&stack, &act, -1.0, &next, terminated);
        if step == episode_len {
            step = 0;
        }
        std::mem::swap(&mut stack, &mut next);
    }
    let push_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let rss_after = rss_bytes();
    let sample_us = |b: usize, rng: &mut ChaCha8Rng, store: &FrameStore| {
        let mut batch = FrameBatch::new(b, store);
        for _ in 0..20 {
            store.sample_into(rng, &mut batch);
        }
        let reps = 400;
        let t = Instant::now();
        for _ in 0..reps {
            store.sample_into(rng, &mut batch);
        }
        t.elapsed().as_secs_f64() * 1e6 / reps as f64
    };
    let s32 = sample_us(32, &mut rng, &store);
    let s256 = sample_us(256, &mut rng, &store);
    let per = FrameStore::bytes_per_transition(1_000_000, [size, size], k, act_dim);
    let rss_per = (rss_after - rss_before) / n as f64;
    ReplayOut {
        image_size: size,
        frame_stack: k,
        episode_len,
        transitions: store.len(),
        bytes_per_transition: per,
        frame_bytes: frame,
        computed_1m_gb: per * 1e6 / 1e9,
        naive_1m_gb: (2 * k * frame + 4 * act_dim + 8) as f64 * 1e6 / 1e9,
        rss_before_mb: rss_before / 1e6,
        rss_after_mb: rss_after / 1e6,
        rss_bytes_per_transition: rss_per,
        rss_extrapolated_1m_gb: rss_per * 1e6 / 1e9,
        push_us,
        sample_us_b32: s32,
        sample_us_b256: s256,
    }
}

fn write_json<T: Serialize>(path: &PathBuf, v: &T) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(v)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn main() -> Result<()> {
    td3_sweep::sys::tune_allocator();
    match Cli::parse().cmd {
        Cmd::Configs { out, scale } => write_json(&out, &configs(scale)),
        Cmd::Updates {
            out,
            threads,
            scale,
            only,
            cpu_only,
        } => {
            let r = bench_updates(threads, scale, only.as_deref(), cpu_only)?;
            write_json(&out, &r)
        }
        Cmd::Kernels { out, threads, only } => {
            let r = bench_kernels(threads, only.as_deref());
            write_json(&out, &r)
        }
        Cmd::Sgemm { seconds } => {
            tch::set_num_threads(1);
            println!("{:.2}", sgemm_for(seconds));
            Ok(())
        }
        Cmd::Replay {
            out,
            transitions,
            image_size,
            frame_stack,
            episode_len,
        } => {
            let r = bench_replay(transitions, image_size, frame_stack, episode_len);
            eprintln!(
                "td3-bench: replay {}x{} k={}: {:.0} B/transition, 1M = {:.2} GB computed, RSS {:.0} B/transition → {:.2} GB; sample {:.0} µs (B=32), {:.0} µs (B=256)",
                r.image_size,
                r.image_size,
                r.frame_stack,
                r.bytes_per_transition,
                r.computed_1m_gb,
                r.rss_bytes_per_transition,
                r.rss_extrapolated_1m_gb,
                r.sample_us_b32,
                r.sample_us_b256
            );
            write_json(&out, &r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_flops_match_hand_count() {
        // 3 → 64 → 64 → 1 actor, 4 → 64 → 64 → 1 critic heads, batch 64, delay 2.
        let c = configs(1.0)
            .into_iter()
            .find(|c| c.name == "d_state_64_64_b64")
            .unwrap();
        let fa = 2.0 * (3.0 * 64.0 + 64.0 * 64.0 + 64.0);
        let fq = 2.0 * (4.0 * 64.0 + 64.0 * 64.0 + 64.0);
        let target = fa + 2.0 * fq;
        let critic = 2.0 * (3.0 * fq - 2.0 * 4.0 * 64.0);
        let actor = (3.0 * fa - 2.0 * 3.0 * 64.0) + 2.0 * fq;
        let want = 64.0 * (target + critic + actor / 2.0);
        assert!((c.flops_per_update - want).abs() < 1.0);
    }

    #[test]
    fn encoder_flops_of_default_config() {
        let c = configs(1.0).remove(0);
        let l = encoder_layer_flops(&c);
        // 48 → 22 → 10 → 8 with k 5/3/3, s 2/2/1.
        assert_eq!(l[0], 2.0 * (3 * 25 * 16 * 22 * 22) as f64);
        assert_eq!(l[2], 2.0 * (32 * 9 * 32 * 8 * 8) as f64);
        assert_eq!(l[3], 2.0 * (32 * 8 * 8 * 64) as f64);
    }
}
