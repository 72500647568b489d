//! Renders each fixture results folder (hand-written run.json and metrics.csv files) into a temporary
//! copy and snapshots the VALIDATION report and the JUnit XML.

use std::path::{Path, PathBuf};

use td3_sweep::commands::report::{generate, ReportOptions, ReportOutcome};
use td3_sweep::report::Status;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// A fresh copy of `tests/fixtures/results/<name>`, so rendering never touches the committed files.
fn fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/results")
            .join(name),
        &dir,
    );
    (tmp, dir)
}

/// The fixture an `insta::glob!` match (`fixtures/results/<name>/sweep.yaml`) belongs to: its
/// name and a fresh copy.
fn glob_fixture(sweep_yaml: &Path) -> (String, tempfile::TempDir, PathBuf) {
    let name = sweep_yaml
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap()
        .to_string();
    let (tmp, dir) = fixture(&name);
    (name, tmp, dir)
}

fn opts() -> ReportOptions {
    ReportOptions {
        date: Some("2025-11-12 09:00".into()),
        ..Default::default()
    }
}

/// Dates, temp paths, commit hashes and durations vary between machines and runs.
fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?", "[date]"),
        (r"/tmp/[^\s)`]*", "[path]"),
        (r"\b[0-9a-f]{40}\b", "[commit]"),
        (r#"time="[0-9.]+""#, r#"time="[duration]""#),
        (r"\d+\.\d s\b", "[duration]"),
    ]
}

#[test]
fn snapshot_every_fixture() {
    insta::glob!("../fixtures", "results/*/sweep.yaml", |path| {
        let (_, _tmp, dir) = glob_fixture(path);
        let junit = dir.join("junit.xml");
        let out = generate(
            &dir,
            &ReportOptions {
                junit: Some(junit.clone()),
                ..opts()
            },
        )
        .unwrap();
        let md = std::fs::read_to_string(&out.report_path).unwrap();
        let xml = std::fs::read_to_string(&junit).unwrap();
        insta::with_settings!({ filters => filters() }, {
            insta::assert_snapshot!("report", md);
            insta::assert_snapshot!("junit", xml);
            insta::assert_snapshot!("overview", format!("exit code {}\n{}", out.report.exit_code(), out.report.overview));
        });
    });
}

#[test]
fn lr_grid_verdicts_and_recommendation() {
    let (_tmp, dir) = fixture("lr-grid");
    let out = generate(&dir, &opts()).unwrap();
    assert_eq!(out.report.status, Status::Fail);
    assert_eq!(out.report.exit_code(), 11);
    assert!(
        out.report
            .recommendation
            .headline
            .contains("actor_cnn_lr=1e-5"),
        "{}",
        out.report.recommendation.headline
    );
    let md = std::fs::read_to_string(dir.join("VALIDATION_lr-grid.md")).unwrap();
    assert!(
        md.contains("5,191 → 7,475,702, 1,440x"),
        "growth is in the report"
    );
    assert!(md.contains("exponential growth: doubling every"));
    // Seeds are judged strictly: one FAIL seed fails its variant, with the count.
    assert!(md.contains("FAIL 1/2"));
    assert!(md.contains(
        "[runs/actor_cnn_lr=1e-4-s1/evidence.csv](runs/actor_cnn_lr=1e-4-s1/evidence.csv)"
    ));
    for p in ["actor_cnn_grad_norm", "critic_cnn_grad_norm", "q_abs_max"] {
        let svg = std::fs::read_to_string(dir.join(format!("plots/{p}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("FAIL") || p == "critic_cnn_grad_norm",
            "{p}"
        );
        assert!(md.contains(&format!("](plots/{p}.svg)")));
    }
    // No temporary files are left beside the report.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn corrupted_metrics_are_reported_not_fatal() {
    let (_tmp, dir) = fixture("no-pass");
    let out = generate(&dir, &opts()).unwrap();
    assert_eq!(out.report.runs.len(), 2, "the other run is still reported");
    assert_eq!(out.report.load_errors.len(), 1);
    assert!(
        out.report.load_errors[0]
            .starts_with("runs/actor_cnn_lr=5e-5-s0/metrics.csv:3: column `actor_cnn_grad_norm`"),
        "{}",
        out.report.load_errors[0]
    );
    assert!(
        out.report
            .recommendation
            .headline
            .contains("gradient clipping"),
        "{}",
        out.report.recommendation.headline
    );
}

#[test]
fn criteria_override_and_custom_template() {
    let (tmp, dir) = fixture("lr-grid");
    let crit = tmp.path().join("lenient.yaml");
    std::fs::write(
        &crit,
        "rules:\n  - metric: actor_cnn_grad_norm\n    fail_above: 100000000\n",
    )
    .unwrap();
    let tpl = tmp.path().join("t.j2");
    std::fs::write(&tpl, "{{ sweep }}: {{ status }}\n{% for g in overview %}{{ g.label }}={{ g.verdict }}\n{% endfor %}").unwrap();
    let o = ReportOptions {
        criteria: Some(crit),
        template: Some(tpl),
        ..opts()
    };
    let out = generate(&dir, &o).unwrap();
    let text = std::fs::read_to_string(out.report_path).unwrap();
    // The NaN and crashed runs still fail through the built-in rules, and fail their variants
    // (seeds judged strictly); the 20k and seed-number runs now pass.
    assert!(text.starts_with("lr-grid: FAIL\n"), "{text}");
    assert!(text.contains("lr (actor_cnn_lr=1e-4)=FAIL 1/2"), "{text}");
    assert!(text.contains("lr (actor_cnn_lr=5e-5)=PASS"), "{text}");

    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, "rules:\n  - metric: q_abs_mx\n").unwrap();
    let err = generate(
        &dir,
        &ReportOptions {
            criteria: Some(bad),
            ..opts()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("bad.yaml:2:13: error: `rules[0].metric`: unknown metric `q_abs_mx`"),
        "{err}"
    );
    assert!(err.contains("did you mean `q_abs_max`?"), "{err}");
}

#[test]
fn seeds_rules_get_their_own_section_and_change_group_verdicts() {
    let (tmp, dir) = fixture("lr-grid");
    let crit = tmp.path().join("seeds.yaml");
    // Per run: the lenient rule of the test above. Across seeds: the mean of each seed's peak
    // actor CNN gradient norm, which every completed group crosses at 1.
    std::fs::write(
        &crit,
        "rules:\n  - metric: actor_cnn_grad_norm\n    fail_above: 100000000\nseeds:\n  rules:\n    - metric: actor_cnn_grad_norm\n      investigate_above: 1\n      description: every group crosses this\n",
    )
    .unwrap();
    let o = ReportOptions {
        criteria: Some(crit),
        ..opts()
    };
    let out = generate(&dir, &o).unwrap();
    let text = std::fs::read_to_string(&out.report_path).unwrap();
    assert!(text.contains("## Across seeds"), "{text}");
    assert!(
        text.contains("### actor_cnn_grad_norm (max, mean over seeds)"),
        "{text}"
    );
    assert!(
        text.contains("max of `actor_cnn_grad_norm` per seed, mean over seeds; INVESTIGATE ≥ 1; completed runs only — every group crosses this"),
        "{text}"
    );
    // 5e-5 passed on every seed under the per-run rules (the test above); now it is INVESTIGATE.
    let row = text
        .lines()
        .find(|l| l.starts_with("| lr (actor_cnn_lr=5e-5) | INVESTIGATE | mean "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("over 2 of 2 seeds"), "{row}");
    assert!(row.contains("crossed INVESTIGATE ≥ 1"), "{row}");
    assert!(
        text.contains("| lr (actor_cnn_lr=5e-5) | PASS | PASS | **INVESTIGATE** |"),
        "{text}"
    );
    // JUnit: one testcase per group and seeds rule, failing where the rule does.
    let xml = out.report.junit();
    let case = xml
        .split("<testcase ")
        .find(|c| {
            c.starts_with(
                "name=\"lr (actor_cnn_lr=5e-5) · actor_cnn_grad_norm (max, mean over seeds)\"",
            )
        })
        .unwrap_or_else(|| panic!("{xml}"));
    assert!(case.contains("<failure type=\"INVESTIGATE\""), "{case}");
    assert!(case.contains("over 2 of 2 seeds"), "{case}");
}

#[test]
fn not_a_results_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let err = generate(tmp.path(), &opts()).unwrap_err().to_string();
    assert!(err.contains("not a results folder"), "{err}");
}

/// `templates/verdicts.md.j2` for snapshot tests across CPUs: the same verdicts whatever the last
/// digits of the measured values, which differ from one CPU to another.
#[test]
fn the_verdicts_template_ignores_last_digit_differences() {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/verdicts.md.j2");
    insta::glob!("../fixtures", "results/*/sweep.yaml", |path| {
        let (name, _tmp, dir) = glob_fixture(path);
        let name = name.as_str();
        let render = |template: Option<&Path>| {
            let o = ReportOptions {
                template: template.map(Path::to_path_buf),
                stable: true,
                ..opts()
            };
            let out = generate(&dir, &o).unwrap();
            std::fs::read_to_string(&out.report_path).unwrap()
        };
        let (verdicts, full) = (render(Some(&template)), render(None));
        // Every measured float, a tenth of a percent larger, as another CPU's kernels can give.
        for run in std::fs::read_dir(dir.join("runs")).unwrap().flatten() {
            let m = run.path().join("metrics.csv");
            let Ok(text) = std::fs::read_to_string(&m) else {
                continue;
            };
            let nudged: String = text
                .lines()
                .map(|line| {
                    line.split(',')
                        .map(|f| match f.parse::<f64>() {
                            Ok(v) if f.contains(['.', 'e']) && v.is_finite() && v != 0.0 => {
                                format!("{}", v * (1.0 + 1e-3))
                            }
                            _ => f.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .map(|l| l + "\n")
                .collect();
            std::fs::write(&m, nudged).unwrap();
        }
        assert_eq!(
            verdicts,
            render(Some(&template)),
            "{name}: the verdicts changed"
        );
        assert_ne!(
            full,
            render(None),
            "{name}: the nudge changed no printed value"
        );
        insta::with_settings!({ filters => filters() }, {
            insta::assert_snapshot!("verdicts", verdicts);
        });
    });
}

/// Writes a completed synthetic run `id` under `dir/runs/`: 5 metric rows with the given actor CNN
/// gradient norm (all else calm), and a run.json of `record`'s fields on top of a completed
/// 600-step record.
fn synthetic_run(dir: &Path, id: &str, grad: f64, record: serde_json::Value) {
    let run = dir.join("runs").join(id);
    std::fs::create_dir_all(&run).unwrap();
    let rows: String = (1..=5)
        .map(|i| {
            format!(
                "{},{},{i}.0,{grad},300.0,0.01,40.0,10.0,12.0,10.0,-10.0,0.5,-5.0,{i},0,\n",
                i * 100,
                i * 100 + 100
            )
        })
        .collect();
    // A header of the leading columns the rows fill: later columns are optional.
    let width = rows.lines().next().unwrap().split(',').count();
    let csv = td3_sweep::results::COLUMNS[..width].join(",") + "\n" + &rows;
    std::fs::write(run.join("metrics.csv"), csv).unwrap();
    let mut rec = serde_json::json!({
        "run_id": id, "outcome": "completed", "steps_planned": 600, "steps_done": 600,
        "train_steps_done": 500, "learning_rates": null, "config_hash": "0", "extra": {}
    });
    for (k, v) in record.as_object().unwrap() {
        rec[k] = v.clone();
    }
    std::fs::write(run.join("run.json"), rec.to_string()).unwrap();
}

/// A results folder of `variants: [baseline, clip (set: max_norm 1.0)] × actor_cnn_lr [1e-3,
/// 1e-5]`, 2 seeds, as the sweep records it: the clip setting is in each run's `overrides`, not in
/// `swept`. `failing` lists the groups (variant, lr) whose actor CNN gradient explodes.
fn variant_set_results(failing: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rollback");
    for variant in ["baseline", "clip"] {
        for lr in ["1e-3", "1e-5"] {
            for seed in 0..2 {
                let id = format!("{variant}__actor_cnn_lr={lr}__s{seed}");
                let grad = if failing.contains(&(variant, lr)) {
                    9.0e6
                } else {
                    0.5
                };
                let mut overrides = serde_json::json!({
                    "networks.cnn.critic_cnn_lr": "1e-4",
                    "networks.cnn.actor_cnn_lr": lr,
                });
                if variant == "clip" {
                    overrides["training.actor_cnn_grad_clip.max_norm"] = "1.0".into();
                }
                let rec = serde_json::json!({
                    "variant": variant, "seed": seed, "overrides": overrides,
                    "swept": { "networks.cnn.actor_cnn_lr": lr },
                });
                synthetic_run(&dir, &id, grad, rec);
            }
        }
    }
    std::fs::write(dir.join("sweep.yaml"), "name: rollback\n").unwrap();
    (tmp, dir)
}

#[test]
fn a_variants_set_counts_in_the_recommendation() {
    // Only the baseline at 1e-3 explodes: the least intrusive passing choice is the baseline at
    // the highest passing rate, not the clipped 1e-3 (whose settings alone would be the failing
    // baseline's).
    let (_t, dir) = variant_set_results(&[("baseline", "1e-3")]);
    let r = generate(&dir, &opts()).unwrap().report.recommendation;
    assert!(r.headline.contains("baseline (actor_cnn_lr=1e-5)"), "{r:?}");
    assert!(
        r.details
            .iter()
            .any(|d| d == "Settings: `networks.cnn.actor_cnn_lr: 1e-5`"),
        "the sweep-wide critic_cnn_lr is not the choice: {r:?}"
    );

    // Every baseline explodes: the clipped variant passes, and its settings say so.
    let (_t, dir) = variant_set_results(&[("baseline", "1e-3"), ("baseline", "1e-5")]);
    let r = generate(&dir, &opts()).unwrap().report.recommendation;
    assert!(r.headline.contains("clip (actor_cnn_lr=1e-3)"), "{r:?}");
    assert!(
        r.details
            .iter()
            .any(|d| d.contains("gradient clipping (rollback Option 2)")),
        "{r:?}"
    );
    assert!(
        r.details.iter().any(|d| d
            == "Settings: `networks.cnn.actor_cnn_lr: 1e-3`, `training.actor_cnn_grad_clip.max_norm: 1.0`"),
        "{r:?}"
    );

    // Nothing passes: clipping was tried (through the variant's set), so Q normalisation is next.
    let all = [
        ("baseline", "1e-3"),
        ("baseline", "1e-5"),
        ("clip", "1e-3"),
        ("clip", "1e-5"),
    ];
    let (_t, dir) = variant_set_results(&all);
    let r = generate(&dir, &opts()).unwrap().report.recommendation;
    assert!(r.headline.contains("try Q normalisation next"), "{r:?}");
}

#[test]
fn a_last_line_cut_off_mid_write_is_dropped_and_the_rest_judged() {
    let (_t, dir) = fixture("lr-grid");
    let run = "actor_cnn_lr=1e-5-s0";
    let before = generate(&dir, &opts()).unwrap();
    let find = |o: &ReportOutcome| {
        o.report
            .runs
            .iter()
            .find(|r| r.dir_name == run)
            .map(|r| {
                (
                    r.rows.len(),
                    r.verdict.verdict,
                    r.load_errors.clone(),
                    r.notes.clone(),
                )
            })
            .unwrap()
    };
    let (rows, verdict, _, _) = find(&before);
    let csv = dir.join("runs").join(run).join("metrics.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("600,1100,12.0,991.2,2");
    std::fs::write(&csv, &text).unwrap();
    let after = generate(&dir, &opts()).unwrap();
    let (rows2, verdict2, errors, notes) = find(&after);
    assert_eq!((rows2, verdict2), (rows, verdict));
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        notes[0].contains("metrics.csv:7: the last line was cut off mid-write"),
        "{notes:?}"
    );

    // A damaged line in the middle is a FAIL, but the rows around it are still shown.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.truncate(6);
    lines[3] = "300,800,oops";
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    let damaged = generate(&dir, &opts()).unwrap();
    let (rows3, verdict3, errors, _) = find(&damaged);
    assert_eq!(verdict3, td3_sweep::verdict::Verdict::Fail);
    assert_eq!(rows3, rows - 1);
    assert!(
        errors[0].contains("metrics.csv:4: malformed CSV record: 3 fields"),
        "{errors:?}"
    );
}

#[test]
fn a_damaged_summary_row_never_drops_a_planned_run() {
    let (_t, dir) = fixture("lr-grid");
    let mut ids: Vec<String> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    // The plan lists every run but the first (an earlier sweep version's folder); one row's
    // reason cell holds bytes that are not UTF-8 (quoted from a child's output).
    let mut summary = b"run_id,variant,seed,networks.cnn.actor_cnn_lr,outcome,reason\n".to_vec();
    for id in &ids[1..] {
        summary.extend_from_slice(format!("{id},lr,0,1e-4,completed,").as_bytes());
        summary.extend_from_slice(if id == &ids[1] {
            b"bad \xff\xfe\n"
        } else {
            b"\n"
        });
    }
    std::fs::write(dir.join("summary.csv"), &summary).unwrap();
    let out = generate(&dir, &opts()).unwrap();
    assert_eq!(out.report.runs.len(), ids.len() - 1);
    assert!(
        out.report.runs.iter().any(|r| r.dir_name == ids[1]),
        "the damaged row's run is judged"
    );
    assert!(out.report.runs.iter().all(|r| r.dir_name != ids[0]));
    let md = std::fs::read_to_string(&out.report_path).unwrap();
    assert!(
        md.contains("## Left out") && md.contains(&format!("- `runs/{}`", ids[0])),
        "{md}"
    );

    // A row whose run id itself is unreadable: the plan is unknown, so every folder is judged
    // (a planned run must never drop out of the verdict unnoticed).
    summary.extend_from_slice(b"\xff\xfe,lr,1,1e-4,completed,\n");
    std::fs::write(dir.join("summary.csv"), &summary).unwrap();
    let out = generate(&dir, &opts()).unwrap();
    assert_eq!(out.report.runs.len(), ids.len());
}

#[test]
fn a_run_json_missing_fields_stays_in_its_planned_group() {
    let (_t, dir) = fixture("lr-grid");
    let groups_before = generate(&dir, &opts()).unwrap().report.groups.len();
    // As a ladder writes it: a `stage` column before the swept keys.
    let mut summary = String::from("run_id,variant,seed,stage,networks.cnn.actor_cnn_lr,outcome\n");
    let mut ids: Vec<String> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    for id in &ids {
        let rec: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("runs").join(id).join("run.json")).unwrap(),
        )
        .unwrap();
        summary.push_str(&format!(
            "{id},{},{},s1,{},{}\n",
            rec["variant"].as_str().unwrap(),
            rec["seed"],
            rec["swept"]["networks.cnn.actor_cnn_lr"].as_str().unwrap(),
            rec["outcome"].as_str().unwrap()
        ));
    }
    std::fs::write(dir.join("summary.csv"), summary).unwrap();
    let edit = |id: &str, drop: &[&str]| {
        let p = dir.join("runs").join(id).join("run.json");
        let mut rec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        for k in drop {
            rec.as_object_mut().unwrap().remove(*k);
        }
        std::fs::write(&p, rec.to_string()).unwrap();
    };
    edit(&ids[0], &["variant", "swept", "device", "wall_s"]);
    edit(&ids[2], &["steps_planned"]);
    let out = generate(&dir, &opts()).unwrap();
    assert_eq!(
        out.report.groups.len(),
        groups_before,
        "{}",
        out.report.overview
    );
    assert!(
        !out.report.overview.contains("unreadable"),
        "{}",
        out.report.overview
    );
    let unreadable = out
        .report
        .runs
        .iter()
        .find(|r| r.dir_name == ids[2])
        .unwrap();
    assert_eq!(
        unreadable.verdict.verdict,
        td3_sweep::verdict::Verdict::Fail
    );
}

#[test]
fn a_large_sweep_lists_the_runs_that_need_a_look() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wide");
    for seed in 0..30u64 {
        let grad = if seed == 7 { 9.0e6 } else { 0.5 };
        let rec = serde_json::json!({ "variant": "baseline", "swept": {}, "seed": seed });
        synthetic_run(&dir, &format!("baseline__s{seed}"), grad, rec);
    }
    std::fs::write(dir.join("sweep.yaml"), "name: wide\n").unwrap();
    let out = generate(&dir, &opts()).unwrap();
    let md = std::fs::read_to_string(&out.report_path).unwrap();
    let section = |name: &str| {
        let start = md.find(&format!("### {name}\n")).unwrap();
        md[start..].split("\n### ").next().unwrap().to_string()
    };
    let grad = section("actor_cnn_grad_norm");
    assert!(grad.contains("| baseline__s7 | FAIL |"), "{grad}");
    assert!(grad.contains("| 29 more runs | PASS |"), "{grad}");
    assert!(!grad.contains("| baseline__s8 |"), "{grad}");
    let completed = section("completed");
    assert!(completed.contains("| 30 runs | PASS |"), "{completed}");
    // Every run still has its own entry under Runs.
    assert!(md.contains("### baseline__s8 — PASS"), "{md}");
}

#[test]
fn the_settings_line_names_a_variants_set_against_a_bare_baseline() {
    // `variants: [baseline, clip (set: max_norm 1.0)]`, nothing swept: the baseline's runs were
    // trained with no override at all (`overrides: {}`), and explode.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bare");
    for (variant, grad, overrides) in [
        ("baseline", 9.0e6, serde_json::json!({})),
        (
            "clip",
            0.5,
            serde_json::json!({ "training.actor_cnn_grad_clip.max_norm": "1.0" }),
        ),
    ] {
        for seed in 0..2u64 {
            let rec = serde_json::json!({
                "variant": variant, "swept": {}, "overrides": overrides, "seed": seed
            });
            synthetic_run(&dir, &format!("{variant}__s{seed}"), grad, rec);
        }
    }
    std::fs::write(dir.join("sweep.yaml"), "name: bare\n").unwrap();
    let r = generate(&dir, &opts()).unwrap().report.recommendation;
    assert!(r.headline.contains("**clip**"), "{r:?}");
    assert!(
        r.details
            .iter()
            .any(|d| d == "Settings: `training.actor_cnn_grad_clip.max_norm: 1.0`"),
        "{r:?}"
    );
}

#[test]
fn a_quorum_pass_names_the_failing_rules_not_their_values() {
    // Seed 1 of every variant explodes; with a quorum of 1 they all still pass.
    let (tmp, dir) = variant_set_results(&[]);
    for v in ["baseline", "clip"] {
        for lr in ["1e-3", "1e-5"] {
            let run = dir.join(format!("runs/{v}__actor_cnn_lr={lr}__s1/metrics.csv"));
            let text = std::fs::read_to_string(&run)
                .unwrap()
                .replace(",0.5,300.0,", ",9000000,300.0,");
            std::fs::write(&run, text).unwrap();
        }
    }
    let crit = tmp.path().join("quorum.yaml");
    std::fs::write(&crit, "seeds:\n  quorum: 1\n").unwrap();
    let o = ReportOptions {
        criteria: Some(crit),
        template: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/verdicts.md.j2")),
        ..opts()
    };
    let out = generate(&dir, &o).unwrap();
    let md = std::fs::read_to_string(&out.report_path).unwrap();
    let quorum = md
        .lines()
        .find(|l| l.contains("Only the quorum passes"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(
        quorum.contains("seed 1 FAIL (actor_cnn_grad_norm)"),
        "{quorum}"
    );
    assert!(!quorum.contains("9,000,000"), "{quorum}");
}

/// One synthetic run for the verdict fixtures below: a row every 100 training steps to 3,000
/// (`env_step` 100 ahead), with the actor CNN gradient norm and |Q| from `actor` and `q` (of the
/// training step), calm elsewhere, and evaluations every 500 env steps from an untrained baseline
/// row at step 0 (`eval` of the env step; `None`: no evaluation).
fn verdict_run(
    dir: &Path,
    (variant, seed): (&str, u64),
    actor: impl Fn(u64) -> f64,
    q: impl Fn(u64) -> f64,
    eval: Option<&dyn Fn(u64) -> f64>,
    q_bound: Option<f64>,
) {
    let id = format!("{variant}__s{seed}");
    let run = dir.join("runs").join(&id);
    std::fs::create_dir_all(&run).unwrap();
    let mut csv = td3_sweep::results::COLUMNS[..16].join(",") + "\n";
    if let Some(e) = eval {
        csv += &format!("0,0,0.0,,,,,,,,,,,0,0,{}\n", e(0));
    }
    for i in 1..=30u64 {
        let (t, env) = (i * 100, i * 100 + 100);
        let ev = eval
            .filter(|_| env % 500 == 0)
            .map(|e| e(env).to_string())
            .unwrap_or_default();
        csv += &format!(
            "{t},{env},{i}.0,{},300.0,0.05,40.0,{},{},10.0,-10.0,0.5,-5.0,{i},0,{ev}\n",
            actor(t),
            q(t) * 0.5,
            q(t)
        );
    }
    std::fs::write(run.join("metrics.csv"), csv).unwrap();
    let rec = serde_json::json!({
        "run_id": id, "variant": variant, "seed": seed, "swept": {}, "overrides": {},
        "outcome": "completed", "steps_planned": 3100, "steps_done": 3100,
        "train_steps_done": 3000, "learning_rates": null, "config_hash": "0", "extra": {},
        "q_bound": q_bound,
    });
    std::fs::write(run.join("run.json"), rec.to_string()).unwrap();
}

/// The verdicts that decide whether a fix works, each on a group of 3 seeds: explosive growth
/// from a small base that never crosses the seed's 10,000 FAILs by growth alone; a straight-line
/// rise does not; |Q| past its bound FAILs; a stable group that does not learn is INVESTIGATE; one
/// FAIL seed fails its group ("FAIL 1/3"); and two learning groups whose intervals overlap are
/// "not distinguishable", the least intrusive of them recommended.
#[test]
fn verdicts_on_growth_bounds_learning_and_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("verdicts");
    let calm = |_: u64| 0.5;
    let q_calm = |_: u64| 12.0;
    // Learns: untrained -8.6, rising to about 100 + 20·seed by the end.
    let learns =
        |seed: u64| move |env: u64| -8.6 + (env as f64 / 3100.0) * (100.0 + 20.0 * seed as f64);
    let flat = |seed: u64| move |env: u64| -8.6 + 0.05 * ((env / 500 + seed) % 2) as f64;
    for seed in 0..3 {
        // 1,440x over training steps 1,000-1,500, from 0.005: never above 10,000.
        let explode = |t: u64| 0.005 * 1440f64.powf(((t as f64 - 1000.0) / 500.0).clamp(0.0, 1.0));
        let e = learns(seed);
        verdict_run(
            &dir,
            ("explodes_from_small_base", seed),
            explode,
            q_calm,
            Some(&e),
            Some(1000.0),
        );
        let linear = |t: u64| 1.0 + t as f64 / 3.0;
        verdict_run(
            &dir,
            ("grows_linearly", seed),
            linear,
            q_calm,
            Some(&e),
            Some(1000.0),
        );
        let q_over = |t: u64| 12.0 + t as f64 * 0.6;
        verdict_run(
            &dir,
            ("q_past_its_bound", seed),
            calm,
            q_over,
            Some(&e),
            Some(1000.0),
        );
        let f = flat(seed);
        verdict_run(
            &dir,
            ("stable_not_learning", seed),
            calm,
            q_calm,
            Some(&f),
            Some(1000.0),
        );
        let nan_last = |t: u64| {
            if seed == 2 && t == 3000 {
                f64::NAN
            } else {
                0.5
            }
        };
        verdict_run(
            &dir,
            ("one_seed_fails", seed),
            nan_last,
            q_calm,
            Some(&e),
            Some(1000.0),
        );
        verdict_run(
            &dir,
            ("learns_a", seed),
            calm,
            q_calm,
            Some(&e),
            Some(1000.0),
        );
        let e_b = move |env: u64| e(env) + 5.0;
        verdict_run(
            &dir,
            ("learns_b", seed),
            calm,
            q_calm,
            Some(&e_b),
            Some(1000.0),
        );
    }
    std::fs::write(dir.join("sweep.yaml"), "name: verdicts\n").unwrap();
    let out = generate(&dir, &opts()).unwrap();
    let md = std::fs::read_to_string(&out.report_path).unwrap();
    let top = md.split("## Criteria").next().unwrap();
    insta::with_settings!({ filters => filters() }, {
        insta::assert_snapshot!("verdicts_fixture", format!("{}\n{top}", out.report.overview));
    });
}

/// A clip that never engages and two variants that train identically are said to have tested
/// nothing (they are one finding, not two).
#[test]
fn settings_that_tested_nothing_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("knobs");
    for seed in 0..2 {
        for (variant, clip) in [("baseline", None), ("clip10", Some("10.0"))] {
            let mut overrides = serde_json::json!({});
            if let Some(c) = clip {
                overrides["training.actor_cnn_grad_clip.max_norm"] = c.into();
            }
            let rec =
                serde_json::json!({ "variant": variant, "seed": seed, "overrides": overrides });
            synthetic_run(&dir, &format!("{variant}__s{seed}"), 0.5, rec);
        }
    }
    std::fs::write(dir.join("sweep.yaml"), "name: knobs\n").unwrap();
    let md = std::fs::read_to_string(generate(&dir, &opts()).unwrap().report_path).unwrap();
    assert!(
        md.contains(
            "clip10: actor CNN clipping never engaged: max pre-clip norm 0.5 ≤ max_norm 10"
        ),
        "{md}"
    );
    assert!(
        md.contains("baseline and clip10 trained identically on all 2 shared seed(s)"),
        "{md}"
    );
}
