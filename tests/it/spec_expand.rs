//! Expansion of sweep specs into runs: counts, order, ids, overrides, seeds, duplicates, and
//! every shipped sweep under `sweeps/`.

use std::path::{Path, PathBuf};

use td3_sweep::config::{config_hash, load_agent_config};
use td3_sweep::spec::{
    load_sweep, run_id, short_keys, Devices, SweepPlan, CONFIRM_ABOVE, RUN_ID_HASH_LEN,
};

const BASE: &str = "\
env:
  image_size: 24
  frame_stack: 2
networks:
  cnn:
    channels: [8, 8]
    kernels: [3, 3]
    strides: [2, 1]
    feature_dim: 16
training:
  batch_size: 16
";

/// Writes `base.yaml` and `sweep.yaml` (plus any extra files) into a fresh directory.
fn write(sweep: &str, extra: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("base.yaml"), BASE).unwrap();
    for (name, text) in extra {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let path = dir.path().join("sweep.yaml");
    std::fs::write(&path, sweep).unwrap();
    (dir, path)
}

fn load(sweep: &str) -> SweepPlan {
    let (_dir, path) = write(sweep, &[]);
    load_sweep(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn run_counts() {
    let cases = [
        ("base: base.yaml\n", 1),
        ("base: base.yaml\nseeds: 3\n", 3),
        ("base: base.yaml\nseeds: [5, 7]\n", 2),
        ("base: base.yaml\ngrid: {networks.cnn.actor_cnn_lr: [1.0e-4, 1.0e-5]}\nseeds: 2\n", 4),
        (
            "base: base.yaml\ngrid:\n  networks.cnn.actor_cnn_lr: [1.0e-4, 1.0e-5, 1.0e-6]\n  training.tau: [0.005, 0.01]\n",
            6,
        ),
        (
            "base: base.yaml\nseeds: 2\ngrid: {training.tau: [0.005, 0.01]}\nvariants:\n  - name: a\n  - name: b\n    set: {training.q_normalization: true}\n  - name: c\n    set: {training.actor_cnn_grad_clip.max_norm: 1.0}\n",
            12,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(load(text).runs.len(), want, "{text}");
    }
}

#[test]
fn order_is_variants_then_sorted_grid_then_seeds() {
    let plan = load(
        "name: order
base: base.yaml
seeds: [1, 0]
grid:
  training.tau: [0.01, 0.005]
  networks.cnn.actor_cnn_lr: [1.0e-4, 1.0e-5]
variants:
  - name: plain
  - name: clip
    set: { training.actor_cnn_grad_clip.max_norm: 1.0 }
",
    );
    let got: Vec<String> = plan
        .runs
        .iter()
        .map(|r| {
            let swept: Vec<String> = r.swept.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{} {} s{}", r.variant, swept.join(" "), r.seed)
        })
        .collect();
    let mut want = Vec::new();
    for v in ["plain", "clip"] {
        for lr in ["1e-4", "1e-5"] {
            for tau in ["0.01", "5e-3"] {
                for s in [0, 1] {
                    want.push(format!(
                        "{v} networks.cnn.actor_cnn_lr={lr} training.tau={tau} s{s}"
                    ));
                }
            }
        }
    }
    assert_eq!(got, want);
    let indices: Vec<usize> = plan.runs.iter().map(|r| r.index).collect();
    assert_eq!(indices, (0..16).collect::<Vec<_>>());
    assert_eq!(
        plan.spec.grid[0].0, "networks.cnn.actor_cnn_lr",
        "grid keys are sorted"
    );
}

#[test]
fn run_ids_are_readable_stable_and_unique() {
    let text = "base: base.yaml\nseeds: 2\ngrid: {networks.cnn.actor_cnn_lr: [1.0e-4, 1.0e-5]}\n";
    let a = load(text);
    let b = load(text);
    let ids: Vec<&str> = a.runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(
        ids,
        b.runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>()
    );
    let prefixes: Vec<&str> = ids
        .iter()
        .map(|id| &id[..id.len() - RUN_ID_HASH_LEN - 2])
        .collect();
    assert_eq!(
        prefixes,
        [
            "baseline__actor_cnn_lr=1e-4__s0",
            "baseline__actor_cnn_lr=1e-4__s1",
            "baseline__actor_cnn_lr=1e-5__s0",
            "baseline__actor_cnn_lr=1e-5__s1"
        ]
    );
    for r in &a.runs {
        assert_eq!(r.config_hash, config_hash(r.config.agent().unwrap()));
        assert!(
            r.run_id
                .ends_with(&format!("__{}", &r.config_hash[..RUN_ID_HASH_LEN])),
            "{}",
            r.run_id
        );
        assert!(
            r.run_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+=-".contains(c)),
            "{}",
            r.run_id
        );
        assert_eq!(
            r.run_id,
            run_id(
                &r.variant,
                &[("actor_cnn_lr", &r.swept["networks.cnn.actor_cnn_lr"])],
                r.seed,
                &r.config_hash
            )
        );
    }
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
}

#[test]
fn short_keys_disambiguate() {
    assert_eq!(
        short_keys(&[
            "networks.actor.learning_rate",
            "networks.critic.learning_rate",
            "training.tau"
        ]),
        ["actor.learning_rate", "critic.learning_rate", "tau"]
    );
}

#[test]
fn overrides_apply_in_order_and_are_listed() {
    let plan = load(
        "base: base.yaml
set: { networks.cnn.actor_cnn_lr: 1.0e-4, training.q_normalization: true }
steps: 50
seeds: [3]
grid: { training.tau: [0.01] }
variants:
  - name: low
    set: { networks.cnn.actor_cnn_lr: 1.0e-5 }
",
    );
    let r = &plan.runs[0];
    let listed: Vec<String> = r
        .overrides
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(
        listed,
        [
            "networks.cnn.actor_cnn_lr=1e-4",
            "training.q_normalization=true",
            "networks.cnn.actor_cnn_lr=1e-5",
            "training.tau=0.01",
            "training.steps=50",
            "seed=3"
        ]
    );
    assert_eq!(
        r.config.agent().unwrap().networks.cnn.actor_cnn_lr,
        Some(1e-5),
        "the variant overrides the sweep's set"
    );
    assert!(r.config.agent().unwrap().training.q_normalization);
    assert_eq!(
        (
            r.config.agent().unwrap().training.steps,
            r.config.agent().unwrap().seed,
            r.config.agent().unwrap().training.tau
        ),
        (50, 3, 0.01)
    );
    assert_eq!(
        r.config.agent().unwrap().env.image_size,
        24,
        "untouched keys come from the base"
    );
}

#[test]
fn seeds_as_count_or_list() {
    let count = load("base: base.yaml\nseeds: 3\n");
    let list = load("base: base.yaml\nseeds: [2, 0, 1]\n");
    let none = load("base: base.yaml\n");
    let seeds = |p: &SweepPlan| {
        p.runs
            .iter()
            .map(|r| (r.seed, r.config.agent().unwrap().seed))
            .collect::<Vec<_>>()
    };
    assert_eq!(seeds(&count), [(0, 0), (1, 1), (2, 2)]);
    assert_eq!(seeds(&list), seeds(&count), "a list is sorted ascending");
    assert_eq!(seeds(&none), [(0, 0)], "no seeds: the base config's seed");
    assert_eq!(list.runs[0].run_id, count.runs[0].run_id);
}

#[test]
fn defaults_when_keys_are_absent() {
    let plan = load("base: base.yaml\n");
    let spec = &plan.spec;
    assert_eq!(spec.name, "sweep", "the name defaults to the file stem");
    assert_eq!(spec.variants.len(), 1);
    assert_eq!(spec.variants[0].name, "baseline");
    assert_eq!(spec.resources.devices, Devices::Auto);
    assert_eq!(
        (
            spec.resources.runs_per_device,
            spec.resources.threads_per_run
        ),
        (1, 1)
    );
    assert_eq!(spec.timeout, None);
    assert_eq!(spec.stop_on_fail, None, "unset: the criteria decide");
    assert_eq!(
        plan.runs[0].config.agent().unwrap().training.steps,
        1000,
        "steps from the base config"
    );
}

#[test]
fn duplicate_configs_name_both_runs() {
    let (_dir, path) = write(
        "base: base.yaml\nvariants:\n  - name: a\n  - name: b\n    set: {training.q_normalization: false}\n",
        &[],
    );
    let err = load_sweep(&path).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    let d = &err.0[0];
    assert!(
        d.message.starts_with("runs `a__s0__") && d.message.contains("` and `b__s0__"),
        "{}",
        d.message
    );
    assert_eq!(
        (d.mark.line, d.mark.col),
        (4, 11),
        "points at the second variant's name"
    );

    let (_dir, path) = write(
        "base: base.yaml\ngrid:\n  training.tau: [0.01, 0.005, 1.0e-2]\n",
        &[],
    );
    let err = load_sweep(&path).unwrap_err();
    assert_eq!((err.0[0].mark.line, err.0[0].mark.col), (3, 31), "{err}");
}

#[test]
fn extends_merges_keys_and_resolves_paths_per_file() {
    let parent = "name: parent\nbase: base.yaml\nsteps: 100\nseeds: 2\ntimeout: 5m\n";
    let (dir, _) = write("unused: true\n", &[("parent.yaml", parent)]);
    std::fs::create_dir(dir.path().join("child")).unwrap();
    let child = dir.path().join("child/low.yaml");
    std::fs::write(&child, "extends: ../parent.yaml\nseeds: [7]\n").unwrap();
    let plan = load_sweep(&child).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.spec.name, "low", "name is not inherited");
    assert_eq!(plan.spec.seeds, [7], "the child's keys win");
    assert_eq!(plan.spec.steps, Some(100));
    assert_eq!(plan.spec.timeout, Some(std::time::Duration::from_secs(300)));
    assert!(
        plan.spec.base.ends_with("base.yaml") && plan.spec.base.is_file(),
        "base is relative to parent.yaml"
    );
    assert_eq!(plan.spec.extends.len(), 1);
}

#[test]
fn normalised_spec_round_trips() {
    let (dir, path) = write(
        "name: rt\nbase: base.yaml\nseeds: 2\nsteps: 40\ntimeout: 1h30m\ngrid: {networks.cnn.actor_cnn_lr: [1.0e-4, 1.0e-5]}\nvariants:\n  - name: a\n  - name: b\n    set: {training.q_normalization: true}\ncriteria: {stop_on_fail: false}\nresources: {devices: [0, 1], runs_per_device: 2}\n",
        &[],
    );
    let plan = load_sweep(&path).unwrap();
    let again = dir.path().join("again.yaml");
    std::fs::write(&again, plan.spec.to_yaml()).unwrap();
    let plan2 = load_sweep(&again).unwrap_or_else(|e| panic!("{e}\n{}", plan.spec.to_yaml()));
    let ids = |p: &SweepPlan| p.runs.iter().map(|r| r.run_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&plan), ids(&plan2));
    assert_eq!(plan2.spec.resources.devices, Devices::Gpus(vec![0, 1]));
    assert_eq!(plan2.spec.timeout, plan.spec.timeout);
}

#[test]
fn huge_sweeps_need_confirmation() {
    let plan = load("base: base.yaml\nseeds: 1001\n");
    assert!(plan.runs.len() > CONFIRM_ABOVE && plan.needs_confirmation());
    assert!(plan.confirm(false).is_err());
    assert!(plan.confirm(true).is_ok());
    assert!(load("base: base.yaml\nseeds: 1000\n")
        .confirm(false)
        .is_ok());
}

#[test]
fn every_shipped_sweep_loads() {
    let want = [
        ("actor_lr", 9),
        ("clipping", 6),
        ("encoder", 4),
        ("q_norm", 4),
        ("smoke", 2),
        ("ladder", 4),
    ];
    let mut found = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(root().join("sweeps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        let rel = path.strip_prefix(root()).unwrap();
        let plan = load_sweep(rel).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
        assert_eq!(
            plan.spec.name,
            path.file_stem().unwrap().to_str().unwrap(),
            "name matches the file"
        );
        found.push((plan.spec.name.clone(), plan.runs.len()));
    }
    for (name, runs) in want {
        assert!(
            found.contains(&(name.to_string(), runs)),
            "{name} should have {runs} runs: {found:?}"
        );
    }
}

#[test]
fn actor_lr_is_the_seeds_solution_a() {
    let plan = load_sweep(&root().join("sweeps/actor_lr.yaml")).unwrap();
    let lrs: Vec<f64> = plan
        .runs
        .iter()
        .map(|r| r.config.agent().unwrap().resolved_lrs().actor_cnn.lr)
        .collect();
    assert_eq!(lrs, [1e-4, 1e-4, 1e-4, 1e-5, 1e-5, 1e-5, 1e-6, 1e-6, 1e-6]);
    assert!(plan
        .runs
        .iter()
        .all(|r| r.config.agent().unwrap().resolved_lrs().critic_cnn.lr == 1e-4));
    assert!(plan
        .runs
        .iter()
        .all(|r| r.config.agent().unwrap().training.steps == 5000));
    // Long enough to learn, and evaluated from the untrained policy on (the learning rule).
    assert!(plan
        .runs
        .iter()
        .all(|r| r.config.agent().unwrap().evaluation.every > 0));
    assert_eq!(
        plan.spec.timeout,
        Some(std::time::Duration::from_secs(1200))
    );
}

#[test]
fn smoke_is_tiny() {
    let plan = load_sweep(&root().join("sweeps/smoke.yaml")).unwrap();
    assert_eq!(plan.runs.len(), 2);
    let c = plan.runs[0].config.agent().unwrap();
    assert_eq!(
        (
            c.env.image_size,
            c.env.frame_stack,
            c.training.steps,
            c.training.batch_size
        ),
        (24, 2, 60, 16)
    );
    assert_eq!(plan.spec.resources.devices, Devices::Cpu);
}

#[test]
fn default_config_file_matches_the_seeds_before_state() {
    let cfg = load_agent_config(&root().join("configs/td3.yaml"), &[]).unwrap();
    let lrs = cfg.resolved_lrs();
    assert_eq!((lrs.actor_cnn.lr, lrs.critic_cnn.lr), (1e-4, 1e-4));
    assert_eq!(cfg.training.actor_cnn_grad_clip.max_norm, None);
    assert!(!cfg.training.q_normalization);
}
