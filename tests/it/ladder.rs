//! A real 3-stage ladder at tiny sizes on the CPU: a variant forced to FAIL at stage 1 stays
//! there, a passing one continues from its checkpoint to the end and is approved, and a run whose
//! checkpoint is corrupted crashes with the reason while the others carry on.

use crate::common::{bin, text};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn spec(dir: &Path, variants: &str) -> PathBuf {
    spec_with(dir, variants, STAGES)
}

const STAGES: &str = "  - { name: s1, steps: 60 }\n  - { name: s2, steps: 100, promote: pass }\n  - { name: s3, steps: 140, promote: pass, approve: true }\n";

fn spec_with(dir: &Path, variants: &str, stages: &str) -> PathBuf {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/td3.yaml");
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("ladder.yaml");
    std::fs::write(
        &p,
        format!(
            "name: ladder\nbase: {}\nset:\n  env.kind: lane-keep\n  env.obs: pixels\n  env.image_size: 24\n  env.frame_stack: 2\n  networks.cnn.channels: [8, 8]\n  networks.cnn.kernels: [3, 3]\n  networks.cnn.strides: [2, 1]\n  networks.cnn.feature_dim: 16\n  networks.actor.hidden: [32, 32]\n  networks.critic.hidden: [32, 32]\n  training.batch_size: 16\n  training.buffer_size: 1000\n  training.learning_starts: 20\n  logging.log_every: 10\nvariants:\n{variants}seeds: [0]\nstages:\n{stages}resources: {{ devices: cpu, runs_per_device: 1, threads_per_run: 1 }}\ntimeout: 2m\n",
            base.display()
        ),
    )
    .unwrap();
    p
}

fn sweep(spec: &Path, results: &Path) -> Output {
    Command::new(bin())
        .args(["sweep"])
        .arg(spec)
        .arg("--results")
        .arg(results)
        .output()
        .unwrap()
}

fn ladder(results: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(results.join("ladder/ladder.json")).unwrap())
        .unwrap()
}

fn run_dir(results: &Path, prefix: &str) -> PathBuf {
    std::fs::read_dir(results.join("ladder/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .unwrap()
}

#[test]
fn three_stage_ladder_promotes_only_passing_variants_and_continues_from_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let s = spec(
        tmp.path(),
        "  - name: good\n  - name: nan\n    set: { debug.nan_at_step: 5 }\n",
    );
    let dry = Command::new(bin())
        .args(["sweep"])
        .arg(&s)
        .arg("--dry-run")
        .output()
        .unwrap();
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry_out.contains("s2")
            && dry_out.contains("pass (the group PASSes under the criteria's seeds quorum)"),
        "{dry_out}"
    );
    assert!(dry_out.contains("steps 60 → 100 → 140"), "{dry_out}");
    let o = sweep(&s, &results);
    let out = text(&o);
    let l = ladder(&results);
    let stages = l["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 3, "{out}");
    assert!(stages.iter().all(|s| s["done"] == true), "{out}");
    // The FAIL variant ran stage 1 only.
    // Groups by identity: variant and swept values (none swept here).
    let group = |v: &str| serde_json::json!({ "variant": v, "swept": {} });
    assert_eq!(
        stages[0]["entered"],
        serde_json::json!([group("good"), group("nan")])
    );
    assert_eq!(
        stages[1]["entered"],
        serde_json::json!([group("good")]),
        "{out}"
    );
    assert_eq!(stages[2]["entered"], serde_json::json!([group("good")]));
    assert_eq!(l["approved"], serde_json::json!([group("good")]));
    // The passing run continued: its step counter and one continuous metrics.csv.
    let ends: Vec<u64> = stages
        .iter()
        .map(|s| {
            s["runs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["variant"] == "good")
                .unwrap()["env_step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(ends, vec![60, 100, 140]);
    let good = run_dir(&results, "good");
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(good.join("run.json")).unwrap()).unwrap();
    assert_eq!(rec["extra"]["resumed_from_env_step"], "100");
    let rows = td3_sweep::results::read_metrics(&good.join("metrics.csv")).unwrap();
    let steps: Vec<u64> = rows.iter().map(|r| r.train_step).collect();
    // The untrained baseline's row once (stages that resume do not evaluate it again), then every
    // 10 updates across the stages.
    let want: Vec<u64> = std::iter::once(0).chain((1..=12).map(|i| i * 10)).collect();
    assert_eq!(steps, want);
    let nan = run_dir(&results, "nan");
    let nan_rows = td3_sweep::results::read_metrics(&nan.join("metrics.csv")).unwrap();
    assert!(nan_rows.iter().all(|r| r.env_step <= 60));
    // summary.csv says which stage each run was last in.
    let mut csv = csv::Reader::from_path(results.join("ladder/summary.csv")).unwrap();
    let head = csv.headers().unwrap().clone();
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let (variant, stage) = (col("variant"), col("stage"));
    let mut at: Vec<(String, String)> = csv
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[variant].to_string(), r[stage].to_string())
        })
        .collect();
    at.sort();
    assert_eq!(
        at,
        vec![("good".into(), "s3".into()), ("nan".into(), "s1".into())]
    );
    let report = std::fs::read_to_string(results.join("ladder/VALIDATION_ladder.md")).unwrap();
    assert!(report.contains("## Validation ladder"), "{report}");
    assert!(
        report.contains("**Approved for deployment:** good"),
        "{report}"
    );
    assert!(report.contains("Why `nan` stopped climbing"), "{report}");
    assert!(results
        .join("ladder/plots/ladder_critic_loss.svg")
        .is_file());

    // Finished stages are never rerun.
    let again = sweep(&s, &results);
    let again_out = String::from_utf8_lossy(&again.stdout);
    assert!(again_out.contains("already done"), "{}", text(&again));
    assert_eq!(ladder(&results), l);
}

const VARIANTS: &str = "  - name: a\n  - name: b\n    set: { training.tau: 0.01 }\n";

/// Runs stage s1 alone (a one-stage ladder of the same runs) into `results`, so that the 3-stage
/// ladder started next finds it done and its runs' checkpoints in place.
fn first_stage_alone(dir: &Path, results: &Path) {
    let one = spec_with(&dir.join("one"), VARIANTS, "  - { name: s1, steps: 60 }\n");
    let o = sweep(&one, results);
    assert!(ladder(results)["stages"][0]["done"] == true, "{}", text(&o));
}

#[test]
fn a_corrupted_checkpoint_crashes_that_run_and_the_others_carry_on() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let s = spec(tmp.path(), VARIANTS);
    // A one-stage ladder first, then the same runs climb a 3-stage ladder (stage 1 is done).
    first_stage_alone(tmp.path(), &results);
    let a = run_dir(&results, "a__");
    std::fs::write(a.join("checkpoint/model.safetensors"), b"garbage").unwrap();
    let o = sweep(&s, &results);
    let l = ladder(&results);
    let s2 = &l["stages"][1]["runs"];
    let ra = s2
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["variant"] == "a")
        .unwrap();
    let rb = s2
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["variant"] == "b")
        .unwrap();
    assert_eq!(ra["outcome"], "crashed", "{}", text(&o));
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("run.json")).unwrap()).unwrap();
    let why = format!("{} {}", rec["reason"], rec["stderr_tail"]);
    assert!(why.contains("corrupted checkpoint"), "{why}");
    assert_eq!(rb["outcome"], "completed", "{}", text(&o));
    assert_eq!(rb["env_step"], 100);
}

/// Grid points are variant groups of their own: one FAILing grid value must not hold back (or be
/// carried up by) the other value of the same variant.
#[test]
fn grid_points_climb_separately() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let s = spec_with(
        tmp.path(),
        "  - name: base\n",
        "  - { name: s1, steps: 60 }\n  - { name: s2, steps: 100, promote: pass, approve: true }\n",
    );
    // Add a grid whose first value poisons the run at update 5 and whose second is never reached.
    let text_spec =
        std::fs::read_to_string(&s).unwrap() + "grid:\n  debug.nan_at_step: [5, 1000000]\n";
    std::fs::write(&s, text_spec).unwrap();
    let o = sweep(&s, &results);
    let out = text(&o);
    let l = ladder(&results);
    let s1 = &l["stages"][0]["variants"];
    let groups: Vec<(String, String, bool)> = s1
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["variant"].as_str().unwrap().to_string(),
                v["swept"]["debug.nan_at_step"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                v["promoted"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(groups.len(), 2, "{groups:?}\n{out}");
    assert!(
        groups.contains(&("base".to_string(), "5".to_string(), false)),
        "{groups:?}"
    );
    assert!(
        groups.contains(&("base".to_string(), "1000000".to_string(), true)),
        "{groups:?}"
    );
}

#[test]
fn a_ladder_cannot_be_written_up_front_for_slurm() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spec(tmp.path(), VARIANTS);
    let o = Command::new(bin())
        .args(["sweep"])
        .arg(&s)
        .args(["--backend", "slurm", "--no-submit", "--results"])
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains("--no-submit cannot write a ladder's scripts up front"),
        "{out}"
    );
}

/// `--rerun failed` reopens the first stage with a failed run (a transient failure, here a
/// checkpoint that was damaged and then restored): that run continues from its checkpoint, the
/// others are not trained again, and the ladder goes on from the new promotions.
#[test]
fn rerun_failed_reopens_the_stage_where_a_run_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    first_stage_alone(tmp.path(), &results);
    let a = run_dir(&results, "a__");
    let weights = a.join("checkpoint/model.safetensors");
    let good = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, b"garbage").unwrap();
    let s = spec(tmp.path(), VARIANTS);
    let o = sweep(&s, &results);
    let outcome = |stage: usize, variant: &str| {
        ladder(&results)["stages"][stage]["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["variant"] == variant)
            .map(|r| r["outcome"].as_str().unwrap().to_string())
    };
    assert_eq!(outcome(1, "a").as_deref(), Some("crashed"), "{}", text(&o));
    let b_metrics = std::fs::read(run_dir(&results, "b__").join("metrics.csv")).unwrap();

    std::fs::write(&weights, good).unwrap();
    let o = Command::new(bin())
        .arg("sweep")
        .arg(&s)
        .arg("--results")
        .arg(&results)
        .args(["--rerun", "failed"])
        .output()
        .unwrap();
    let log = text(&o);
    assert!(log.contains("--rerun failed: stage s2"), "{log}");
    assert_eq!(outcome(1, "a").as_deref(), Some("completed"), "{log}");
    assert!(outcome(2, "a").is_some(), "a climbs on: {log}");
    assert_eq!(
        std::fs::read(run_dir(&results, "b__").join("metrics.csv")).unwrap(),
        b_metrics,
        "b finished every stage and is not trained again: {log}"
    );
}
