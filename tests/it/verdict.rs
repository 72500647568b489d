//! Table tests for the classifier, the growth fit and fail-fast, on hand-built rows.

use td3_sweep::results::{MetricRow, Outcome, RunRecord};
use td3_sweep::verdict::{
    certain_fail, classify_group, classify_run, growth, log_linear_fit, with_seed_rules, Across,
    Aggregate, Criteria, GroupVerdict, Rule, SeedRule, Verdict,
};

fn record(outcome: Outcome, done: u64, planned: u64) -> RunRecord {
    RunRecord {
        run_id: "r".into(),
        variant: "v".into(),
        swept: Default::default(),
        overrides: Default::default(),
        command: String::new(),
        outcome,
        steps_planned: planned,
        steps_done: done,
        train_steps_done: done,
        seed: 0,
        device: "cpu".into(),
        libtorch_version: "2.x".into(),
        git_commit: "abc".into(),
        wall_s: 1.0,
        started_at: String::new(),
        learning_rates: None,
        config_hash: String::new(),
        first_nonfinite_step: None,
        reason: None,
        exit: None,
        stderr_tail: None,
        q_bound: None,
        extra: Default::default(),
        invocation: None,
        provisional: false,
    }
}

/// Rows every 100 training steps with the given actor CNN grad norms and a calm everything else.
fn rows(actor: &[f64]) -> Vec<MetricRow> {
    actor
        .iter()
        .enumerate()
        .map(|(i, a)| MetricRow {
            train_step: 100 * (i as u64 + 1),
            env_step: 100 * (i as u64 + 1),
            actor_cnn_grad_norm: Some(*a),
            critic_cnn_grad_norm: Some(800.0),
            q_abs_max: Some(50.0),
            actor_loss: Some(-1.0 - i as f64 * 0.01),
            ..Default::default()
        })
        .collect()
}

/// The seed's Day-11 numbers: 5,191 → 7,475,702 over steps 100–500, Q at ~11M by step 500.
fn seed_rows() -> Vec<MetricRow> {
    let mut r = rows(&[5_191.0, 31_560.0, 201_000.0, 1_220_000.0, 7_475_702.0]);
    for (row, q) in r
        .iter_mut()
        .zip([9_000.0, 80_000.0, 600_000.0, 2_400_000.0, 11_000_000.0])
    {
        row.q_abs_max = Some(q);
    }
    r
}

fn finding<'a>(
    v: &'a td3_sweep::verdict::RunVerdict,
    rule: &str,
) -> &'a td3_sweep::verdict::Finding {
    v.findings
        .iter()
        .find(|f| f.rule == rule)
        .unwrap_or_else(|| panic!("no finding {rule}"))
}

#[test]
fn classifier_table() {
    let c = Criteria::default_set();
    let done = record(Outcome::Completed, 1000, 1000);
    let mut nan = rows(&[900.0, 1_000.0, 1_100.0]);
    nan[2].nonfinite = 2;
    nan[2].actor_loss = Some(f64::NAN);
    let mut spiky = rows(&[900.0; 8]);
    spiky[6].actor_loss = Some(-40.0);
    let mut diverged = record(Outcome::Diverged, 280, 1000);
    diverged.first_nonfinite_step = Some(287);
    let table: Vec<(&str, RunRecord, Vec<MetricRow>, Verdict)> = vec![
        (
            "clean",
            done.clone(),
            rows(&[900.0, 1_200.0, 1_100.0]),
            Verdict::Pass,
        ),
        ("seed numbers", done.clone(), seed_rows(), Verdict::Fail),
        (
            "20k grad norm",
            done.clone(),
            rows(&[9_000.0, 20_000.0, 15_000.0]),
            Verdict::Investigate,
        ),
        (
            "exactly 10k is not < 10k",
            done.clone(),
            rows(&[10_000.0]),
            Verdict::Investigate,
        ),
        (
            "exactly 50k is not > 50k",
            done.clone(),
            rows(&[50_000.0]),
            Verdict::Investigate,
        ),
        ("NaN", diverged, nan, Verdict::Fail),
        (
            "crashed at 300/1000",
            record(Outcome::Crashed, 300, 1000),
            rows(&[900.0; 3]),
            Verdict::Fail,
        ),
        (
            "completed but short",
            record(Outcome::Completed, 900, 1000),
            rows(&[900.0; 9]),
            Verdict::Fail,
        ),
        (
            "stopped early",
            record(Outcome::Stopped, 300, 1000),
            rows(&[900.0; 3]),
            Verdict::Fail,
        ),
        (
            "actor loss spike",
            done.clone(),
            spiky,
            Verdict::Investigate,
        ),
        ("no rows at all", done, Vec::new(), Verdict::Pass),
    ];
    for (name, rec, rs, want) in table {
        let v = classify_run(&c, &rec, &rs);
        assert_eq!(v.verdict, want, "{name}: {}", v.evidence());
    }
}

#[test]
fn seed_numbers_carry_their_evidence() {
    let v = classify_run(
        &Criteria::default_set(),
        &record(Outcome::Completed, 1000, 1000),
        &seed_rows(),
    );
    let a = finding(&v, "actor_cnn_grad_norm");
    assert_eq!(a.verdict, Verdict::Fail);
    assert_eq!(a.worst, Some((7_475_702.0, 500)));
    let firsts: Vec<(Verdict, u64)> = a.crossings.iter().map(|c| (c.level, c.step)).collect();
    assert_eq!(firsts, [(Verdict::Investigate, 200), (Verdict::Fail, 300)]);
    let g = a.growth.unwrap();
    assert_eq!(g.describe(), "5,191 → 7,475,702, 1,440x (steps 100–500)");
    assert!(g.is_exponential(), "{}", g.describe_fit());
    assert!(
        a.evidence.contains("exponential growth: doubling every"),
        "{}",
        a.evidence
    );
    assert_eq!(finding(&v, "q_abs_max").verdict, Verdict::Fail);
    assert_eq!(finding(&v, "critic_cnn_grad_norm").verdict, Verdict::Pass);
}

#[test]
fn nan_and_incomplete_name_the_step() {
    let c = Criteria::default_set();
    let mut rec = record(Outcome::Diverged, 280, 1000);
    rec.first_nonfinite_step = Some(287);
    let mut rs = rows(&[900.0, 1_000.0, 1_100.0]);
    rs[2].nonfinite = 1;
    let v = classify_run(&c, &rec, &rs);
    assert!(
        finding(&v, "non-finite")
            .evidence
            .contains("training step 287"),
        "{}",
        v.evidence()
    );
    assert!(finding(&v, "completed")
        .evidence
        .contains("diverged at training step 287"));

    let v = classify_run(&c, &record(Outcome::Crashed, 300, 1000), &rows(&[900.0; 3]));
    assert_eq!(
        finding(&v, "completed").evidence,
        "crashed at 300/1,000 steps"
    );
}

#[test]
fn step_window_limits_a_rule() {
    let rule = Rule {
        from_step: Some(300),
        investigate_above: Some(10_000.0),
        fail_above: Some(50_000.0),
        ..Rule::new("actor_cnn_grad_norm", Aggregate::Max)
    };
    let c = Criteria {
        rules: vec![rule],
        ..Criteria::default_set()
    };
    let done = record(Outcome::Completed, 1000, 1000);
    // A warm-up burst at step 100 is outside the window.
    let v = classify_run(&c, &done, &rows(&[90_000.0, 900.0, 900.0, 900.0]));
    assert_eq!(v.verdict, Verdict::Pass, "{}", v.evidence());
    let v = classify_run(&c, &done, &rows(&[900.0, 900.0, 90_000.0]));
    assert_eq!(v.verdict, Verdict::Fail);
    assert_eq!(certain_fail(&c, &rows(&[90_000.0, 900.0]), None), None);
}

#[test]
fn other_aggregates() {
    let done = record(Outcome::Completed, 1000, 1000);
    let mut eval = rows(&[900.0; 4]);
    for (r, e) in eval.iter_mut().zip([-50.0, -20.0, -10.0, -150.0]) {
        r.eval_return = Some(e);
    }
    let table = [
        (
            Rule {
                fail_below: Some(-100.0),
                ..Rule::new("eval_return", Aggregate::Last)
            },
            Verdict::Fail,
        ),
        (
            Rule {
                fail_below: Some(-100.0),
                ..Rule::new("eval_return", Aggregate::Mean)
            },
            Verdict::Pass,
        ),
        (
            Rule {
                investigate_below: Some(-100.0),
                ..Rule::new("eval_return", Aggregate::Min)
            },
            Verdict::Investigate,
        ),
    ];
    for (rule, want) in table {
        let name = rule.name.clone();
        let c = Criteria {
            rules: vec![rule],
            spike: None,
            ..Criteria::default_set()
        };
        assert_eq!(classify_run(&c, &done, &eval).verdict, want, "{name}");
    }
    let grow = Rule {
        fail_above: Some(100.0),
        ..Rule::new("actor_cnn_grad_norm", Aggregate::Growth)
    };
    let c = Criteria {
        rules: vec![grow],
        spike: None,
        ..Criteria::default_set()
    };
    assert_eq!(classify_run(&c, &done, &seed_rows()).verdict, Verdict::Fail);
}

#[test]
fn exact_exponential_fits_perfectly() {
    // Doubling every 50 steps: v = 1000 × 2^(step/50).
    let pts: Vec<(u64, f64)> = (1..=6)
        .map(|i| (i * 100, 1000.0 * 2f64.powf(i as f64 * 2.0)))
        .collect();
    let fit = log_linear_fit(&pts).unwrap();
    assert!((fit.r2 - 1.0).abs() < 1e-12, "{fit:?}");
    assert!(
        (fit.doubling_steps().unwrap() - 50.0).abs() < 1e-9,
        "{fit:?}"
    );
    assert!(growth(&pts).unwrap().is_exponential());
}

#[test]
fn noise_and_flat_are_not_exponential() {
    let flat: Vec<(u64, f64)> = (1..=10).map(|i| (i * 100, 800.0)).collect();
    let g = growth(&flat).unwrap();
    assert_eq!(g.fit.unwrap().r2, 0.0);
    assert!(!g.is_exponential());
    let noisy: Vec<(u64, f64)> = [233.0, 1_256.0, 410.0, 980.0, 300.0, 1_100.0, 650.0, 240.0]
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64 * 100, *v))
        .collect();
    assert!(!growth(&noisy).unwrap().is_exponential());
    // A clean fit that only grows 1.5x is not an explosion.
    let slow: Vec<(u64, f64)> = (0..6)
        .map(|i| (i * 100, 1000.0 * 1.08f64.powi(i as i32)))
        .collect();
    assert!(!growth(&slow).unwrap().is_exponential());
    // Three points fit anything.
    assert!(!growth(&[(100, 1.0), (200, 100.0), (300, 10_000.0)])
        .unwrap()
        .is_exponential());
}

#[test]
fn certain_fail_table() {
    let c = Criteria::default_set();
    assert_eq!(
        certain_fail(&c, &rows(&[900.0, 20_000.0]), None),
        None,
        "INVESTIGATE is not a certain FAIL"
    );
    let reason = certain_fail(&c, &seed_rows(), None).unwrap();
    assert_eq!(
        reason,
        "actor_cnn_grad_norm = 201,000 > 50,000 (FAIL) at training step 300"
    );
    let mut nan = rows(&[900.0, 900.0]);
    nan[1].critic_loss = Some(f64::INFINITY);
    let reason = certain_fail(&c, &nan, None).unwrap();
    assert!(
        reason.starts_with("non-finite value at training step 200"),
        "{reason}"
    );
    assert_eq!(certain_fail(&c, &[], None), None);
}

/// Rows whose last `eval_return` is `last`.
fn eval_rows(last: f64) -> Vec<MetricRow> {
    let mut r = rows(&[900.0; 3]);
    for (row, e) in r.iter_mut().zip([-1200.0, -600.0, last]) {
        row.eval_return = Some(e);
    }
    r
}

#[test]
fn seeds_rules_judge_a_group_as_a_whole() {
    // Pendulum's published bar: the mean over seeds of the final return at -250 or better.
    let rule = |across| SeedRule {
        rule: Rule {
            investigate_below: Some(-250.0),
            fail_below: Some(-600.0),
            ..Rule::new("eval_return", Aggregate::Last)
        },
        across,
    };
    let seeds = [eval_rows(-150.0), eval_rows(-200.0), eval_rows(-380.0)];
    let refs: Vec<&[MetricRow]> = seeds.iter().map(|r| r.as_slice()).collect();
    let table = [
        // mean -243.3: passes although one seed is at -380.
        (Across::Mean, Verdict::Pass, -730.0 / 3.0),
        (Across::Median, Verdict::Pass, -200.0),
        (Across::Min, Verdict::Investigate, -380.0),
        (Across::Max, Verdict::Pass, -150.0),
    ];
    for (across, want, value) in table {
        let c = Criteria {
            seed_rules: vec![rule(across)],
            ..Criteria::default_set()
        };
        let f = classify_group(&c, &refs);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].verdict, want, "{across}: {}", f[0].evidence);
        assert!((f[0].value.unwrap() - value).abs() < 1e-9, "{across}");
        assert!(
            f[0].evidence.contains("over 3 of 3 seeds"),
            "{}",
            f[0].evidence
        );
    }
    // A mean below the FAIL line.
    let bad = [eval_rows(-700.0), eval_rows(-900.0)];
    let refs: Vec<&[MetricRow]> = bad.iter().map(|r| r.as_slice()).collect();
    let c = Criteria {
        seed_rules: vec![rule(Across::Mean)],
        ..Criteria::default_set()
    };
    let f = classify_group(&c, &refs);
    assert_eq!(f[0].verdict, Verdict::Fail, "{}", f[0].evidence);
    // No seed logged the metric: not measured, PASS (as a per-run rule with no values).
    let none = [rows(&[900.0; 3])];
    let refs: Vec<&[MetricRow]> = none.iter().map(|r| r.as_slice()).collect();
    let f = classify_group(&c, &refs);
    assert_eq!(f[0].verdict, Verdict::Pass);
    assert!(
        f[0].evidence.starts_with("not measured"),
        "{}",
        f[0].evidence
    );
}

#[test]
fn seeds_rules_combine_with_the_quorum() {
    let finding = |v: Verdict| {
        let c = Criteria {
            seed_rules: vec![SeedRule {
                rule: Rule {
                    investigate_below: Some(0.0),
                    fail_below: Some(-10.0),
                    ..Rule::new("eval_return", Aggregate::Last)
                },
                across: Across::Mean,
            }],
            ..Criteria::default_set()
        };
        let last = match v {
            Verdict::Pass => 5.0,
            Verdict::Investigate => -5.0,
            Verdict::Fail => -50.0,
        };
        let seeds = [eval_rows(last)];
        let refs: Vec<&[MetricRow]> = seeds.iter().map(|r| r.as_slice()).collect();
        classify_group(&c, &refs)
    };
    let flaky = GroupVerdict::Flaky {
        passed: 1,
        total: 2,
    };
    let table = [
        (GroupVerdict::Pass, Verdict::Pass, GroupVerdict::Pass),
        (
            GroupVerdict::Pass,
            Verdict::Investigate,
            GroupVerdict::Investigate,
        ),
        (
            GroupVerdict::Pass,
            Verdict::Fail,
            GroupVerdict::Fail {
                failed: 0,
                total: 0,
            },
        ),
        (flaky, Verdict::Investigate, flaky),
        (
            flaky,
            Verdict::Fail,
            GroupVerdict::Fail {
                failed: 0,
                total: 2,
            },
        ),
        (
            GroupVerdict::Investigate,
            Verdict::Pass,
            GroupVerdict::Investigate,
        ),
    ];
    for (quorum, seeds, want) in table {
        let f = finding(seeds);
        assert_eq!(f[0].verdict, seeds);
        assert_eq!(with_seed_rules(quorum, &f), want, "{quorum} + {seeds}");
    }
    assert_eq!(with_seed_rules(GroupVerdict::Pass, &[]), GroupVerdict::Pass);
}

/// Evidence must not contradict the verdict: a mean, growth or slope crosses as a whole (no
/// "first crossed at step" from rows it never judged), a NaN in the window FAILs the rule with
/// the finite rows' evidence kept, and a value just short of a threshold never prints as it.
#[test]
fn evidence_matches_what_each_aggregate_judges() {
    let mean_rule = Rule {
        investigate_above: Some(10_000.0),
        fail_above: Some(50_000.0),
        ..Rule::new("actor_cnn_grad_norm", Aggregate::Mean)
    };
    let c = Criteria {
        rules: vec![mean_rule],
        spike: None,
        ..Criteria::default_set()
    };
    let done = record(Outcome::Completed, 500, 500);
    // The mean (6,600) is within limits although one row is far above both thresholds.
    let v = classify_run(&c, &done, &rows(&[100.0, 100.0, 100.0, 100.0, 32_700.0]));
    let f = v
        .findings
        .iter()
        .find(|f| f.metric.as_deref() == Some("actor_cnn_grad_norm"))
        .unwrap();
    assert_eq!(f.verdict, Verdict::Pass, "{}", f.evidence);
    assert!(!f.evidence.contains("crossed"), "{}", f.evidence);
    assert_eq!(f.worst, None, "a mean has no worst row");
    // Above both: the mean crosses as a whole.
    let v = classify_run(&c, &done, &rows(&[60_000.0; 5]));
    let f = v
        .findings
        .iter()
        .find(|f| f.metric.as_deref() == Some("actor_cnn_grad_norm"))
        .unwrap();
    assert_eq!(f.verdict, Verdict::Fail);
    assert!(
        f.evidence.contains("FAIL: the mean is > 50,000"),
        "{}",
        f.evidence
    );
    assert!(!f.evidence.contains("first crossed"), "{}", f.evidence);

    // A NaN after the rows that crossed: FAIL, the crossing kept, the NaN named.
    let max = Criteria {
        spike: None,
        ..Criteria::default_set()
    };
    let v = classify_run(&max, &done, &rows(&[5_000.0, 20_000.0, f64::NAN]));
    let f = v
        .findings
        .iter()
        .find(|f| f.rule == "actor_cnn_grad_norm")
        .unwrap();
    assert_eq!(f.verdict, Verdict::Fail);
    assert!(
        f.evidence.contains("first crossed at step 200"),
        "{}",
        f.evidence
    );
    assert!(f.evidence.contains("NaN at step 300"), "{}", f.evidence);

    // 9,999.6 is within limits and must not read "10,000".
    let v = classify_run(&max, &done, &rows(&[100.0, 9_999.6]));
    let f = v
        .findings
        .iter()
        .find(|f| f.rule == "actor_cnn_grad_norm")
        .unwrap();
    assert_eq!(f.verdict, Verdict::Pass);
    assert!(f.evidence.starts_with("max 9999.6"), "{}", f.evidence);
}

/// The growth fit covers the rise the factor describes: a collapse after an explosion does not
/// make the explosion "not growing".
#[test]
fn growth_is_fitted_up_to_its_peak() {
    let pts: Vec<(u64, f64)> = [
        5_191.0,
        42_000.0,
        260_000.0,
        1_900_000.0,
        7_475_702.0,
        0.1,
        0.1,
        0.1,
        0.1,
    ]
    .iter()
    .enumerate()
    .map(|(i, v)| (100 * (i as u64 + 1), *v))
    .collect();
    let g = growth(&pts).unwrap();
    assert_eq!(g.peak_step, 500);
    assert!(g.is_exponential(), "{}", g.describe_fit());
}

/// The scale-free growth rule in the default criteria: the seed's 1,440x within 500 steps FAILs at
/// any scale, a straight-line rise or a rise among near-zero values never does.
#[test]
fn window_growth_rule_table() {
    let c = Criteria::default_set();
    let rule = "actor_cnn_grad_norm (window_growth)";
    let seed_shape = |base: f64| -> Vec<f64> {
        // 5,191 -> 7,475,702 over steps 100-500 (1,440x), scaled to `base`.
        [
            5_191.0,
            31_560.0,
            201_000.0,
            1_220_000.0,
            7_475_702.0,
            7_500_000.0,
        ]
        .iter()
        .map(|v| v / 5_191.0 * base)
        .collect()
    };
    let linear: Vec<f64> = (1..=10).map(|i| 100.0 * i as f64).collect();
    let near_zero: Vec<f64> = (0..6).map(|i| 1e-9 * 4f64.powi(i)).collect();
    let table: [(&str, Vec<f64>, Verdict); 4] = [
        (
            "seed's explosion from 0.5, never above 10,000",
            seed_shape(0.5),
            Verdict::Fail,
        ),
        (
            "seed's explosion at its own scale",
            seed_shape(5_191.0),
            Verdict::Fail,
        ),
        ("linear 100 -> 1,000", linear, Verdict::Pass),
        (
            "4x per row from 1e-9: below the floor",
            near_zero,
            Verdict::Pass,
        ),
    ];
    for (what, actor, want) in table {
        let v = classify_run(&c, &record(Outcome::Completed, 1000, 1000), &rows(&actor));
        let f = v.findings.iter().find(|f| f.rule == rule).unwrap();
        assert_eq!(f.verdict, want, "{what}: {}", f.evidence);
    }
    // A small base never crosses the seed's absolute thresholds: the growth rule alone fails it.
    let v = classify_run(
        &c,
        &record(Outcome::Completed, 1000, 1000),
        &rows(&seed_shape(0.5)),
    );
    let abs = v
        .findings
        .iter()
        .find(|f| f.rule == "actor_cnn_grad_norm")
        .unwrap();
    assert_eq!(abs.verdict, Verdict::Pass, "{}", abs.evidence);
    assert_eq!(v.verdict, Verdict::Fail);
}
