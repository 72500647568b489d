//! JUnit XML: one testcase per run, so CI dashboards show each run's verdict, and one per variant
//! group and seeds rule (`seeds.rules`), since those judge a group, not a run.
//!
//! A FAIL run is a `<failure type="FAIL">`; an INVESTIGATE run is a `<failure type="INVESTIGATE">`
//! too, because a person has to look at it (the same reason the exit code is non-zero). The failure
//! message is the headline evidence, its body every non-PASS finding.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use super::{Exporter, Output, Report, ReportError};
use crate::results::printable;
use crate::verdict::Verdict;
use crate::verdict::{GroupResult, RunResult, Unfinished};

/// The JUnit XML format; its one output is named `junit.xml` (the caller writes it where `--junit`
/// says).
pub struct Junit;

impl Exporter for Junit {
    fn export(&self, report: &Report) -> Result<Vec<Output>, ReportError> {
        Ok(vec![Output {
            name: "junit.xml".into(),
            bytes: junit_xml(&report.sweep, &report.runs, &report.groups, report.stable)
                .into_bytes(),
        }])
    }
}

/// Renders the JUnit XML document for a sweep's runs and its groups' seeds rules; `stable` writes
/// every time as 0 (see `ReportOptions::stable`).
pub fn junit_xml(suite: &str, runs: &[RunResult], groups: &[GroupResult], stable: bool) -> String {
    let wall = |r: &RunResult| {
        r.record
            .as_ref()
            .map(|x| x.wall_s)
            .filter(|_| !stable)
            .unwrap_or(0.0)
    };
    let group_cases: Vec<(&GroupResult, &crate::verdict::Finding)> = groups
        .iter()
        .flat_map(|g| g.seed_findings.iter().map(move |f| (g, f)))
        .collect();
    let skipped = runs.iter().filter(|r| r.unfinished.is_some()).count();
    let failures = runs
        .iter()
        .filter(|r| r.unfinished.is_none() && r.verdict.verdict != Verdict::Pass)
        .count()
        + group_cases
            .iter()
            .filter(|(_, f)| f.verdict != Verdict::Pass)
            .count();
    let total_time: f64 = runs.iter().map(wall).sum();
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing to a Vec cannot fail.
    let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    let (tests, fails, skips, time) = (
        (runs.len() + group_cases.len()).to_string(),
        failures.to_string(),
        skipped.to_string(),
        format!("{total_time:.3}"),
    );
    let mut suites = BytesStart::new("testsuites");
    suites.push_attribute(("name", suite));
    suites.push_attribute(("tests", tests.as_str()));
    suites.push_attribute(("failures", fails.as_str()));
    suites.push_attribute(("time", time.as_str()));
    let _ = w.write_event(Event::Start(suites));
    let mut s = BytesStart::new("testsuite");
    s.push_attribute(("name", suite));
    s.push_attribute(("tests", tests.as_str()));
    s.push_attribute(("failures", fails.as_str()));
    s.push_attribute(("errors", "0"));
    if skipped > 0 {
        s.push_attribute(("skipped", skips.as_str()));
    }
    s.push_attribute(("time", time.as_str()));
    let _ = w.write_event(Event::Start(s));
    for r in runs {
        let class = r
            .record
            .as_ref()
            .map(|x| x.variant.clone())
            .unwrap_or_else(|| {
                if r.unfinished.is_some() {
                    "not-started".into()
                } else {
                    "unreadable".into()
                }
            });
        let time = format!("{:.3}", wall(r));
        let mut tc = BytesStart::new("testcase");
        tc.push_attribute(("name", r.run_id()));
        tc.push_attribute(("classname", class.as_str()));
        tc.push_attribute(("time", time.as_str()));
        if let Some(u) = r.unfinished {
            // Not a failure of the run: it has no verdict yet (the sweep will train it).
            let _ = w.write_event(Event::Start(tc));
            let mut sk = BytesStart::new("skipped");
            let why = match u {
                Unfinished::Running => {
                    "running: the sweep is still training it (a mid-sweep snapshot)".to_string()
                }
                _ => format!(
                    "{}: not finished; run the same sweep again to resume",
                    u.as_str().to_lowercase()
                ),
            };
            sk.push_attribute(("message", why.as_str()));
            let _ = w.write_event(Event::Empty(sk));
            let _ = w.write_event(Event::End(BytesEnd::new("testcase")));
            continue;
        }
        if r.verdict.verdict == Verdict::Pass {
            let _ = w.write_event(Event::Empty(tc));
            continue;
        }
        let _ = w.write_event(Event::Start(tc));
        let mut f = BytesStart::new("failure");
        let headline = r.verdict.headline();
        f.push_attribute(("type", r.verdict.verdict.as_str()));
        let headline = printable(&headline);
        f.push_attribute(("message", headline.as_str()));
        let _ = w.write_event(Event::Start(f));
        let mut body = r.verdict.evidence();
        if let Some(cmd) = r
            .record
            .as_ref()
            .map(|x| x.command.as_str())
            .filter(|c| !c.is_empty())
        {
            body.push_str(&format!("\nreproduce: {cmd}"));
        }
        let _ = w.write_event(Event::Text(BytesText::new(&printable(&body))));
        let _ = w.write_event(Event::End(BytesEnd::new("failure")));
        let _ = w.write_event(Event::End(BytesEnd::new("testcase")));
    }
    for (g, f) in &group_cases {
        let mut tc = BytesStart::new("testcase");
        let name = format!("{} · {}", g.label(), f.rule);
        tc.push_attribute(("name", name.as_str()));
        tc.push_attribute(("classname", g.variant.as_str()));
        tc.push_attribute(("time", "0.000"));
        if f.verdict == Verdict::Pass {
            let _ = w.write_event(Event::Empty(tc));
            continue;
        }
        let _ = w.write_event(Event::Start(tc));
        let mut fe = BytesStart::new("failure");
        fe.push_attribute(("type", f.verdict.as_str()));
        let evidence = printable(&f.evidence);
        fe.push_attribute(("message", evidence.as_str()));
        let _ = w.write_event(Event::Start(fe));
        let _ = w.write_event(Event::Text(BytesText::new(&evidence)));
        let _ = w.write_event(Event::End(BytesEnd::new("failure")));
        let _ = w.write_event(Event::End(BytesEnd::new("testcase")));
    }
    let _ = w.write_event(Event::End(BytesEnd::new("testsuite")));
    let _ = w.write_event(Event::End(BytesEnd::new("testsuites")));
    let mut out = String::from_utf8(w.into_inner()).unwrap_or_default();
    out.push('\n');
    out
}
