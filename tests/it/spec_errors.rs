//! One snapshot per malformed sweep or agent config: every problem, with `file:line:col`, the key
//! path, a caret under the problem and a hint. Paths are rendered relative to the crate root.

use std::path::{Path, PathBuf};

use td3_sweep::commands::load_checked;
use td3_sweep::config::load_agent_config;
use td3_sweep::diag::Diagnostics;

/// The fixture's path relative to the crate root (tests run there), so messages don't depend on
/// where the checkout lives.
fn relative(dir: &str, path: &Path) -> PathBuf {
    Path::new("tests/fixtures")
        .join(dir)
        .join(path.file_name().unwrap())
}

fn assert_located(d: &Diagnostics) {
    assert!(!d.is_empty());
    for x in &d.0 {
        assert!(x.mark.line >= 1 && x.mark.col >= 1, "{x}");
        assert!(x.hint.is_some(), "every problem needs a hint: {x}");
    }
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(&regex_escape(env!("CARGO_MANIFEST_DIR")), "[ROOT]");
    s
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if r".^$*+?()[]{}|\".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

#[test]
fn bad_specs() {
    settings().bind(|| {
        insta::glob!("../fixtures", "bad_specs/*.yaml", |path| {
            let rel = relative("bad_specs", path);
            let diags = match load_checked(&rel) {
                Err(d) => d,
                // The only fixture that loads is one too big to run without --yes.
                Ok((plan, _)) => plan.confirm(false).expect_err("fixture should be rejected"),
            };
            assert_located(&diags);
            insta::assert_snapshot!(diags.to_string());
        });
    });
}

#[test]
fn bad_configs() {
    settings().bind(|| {
        insta::glob!("../fixtures", "bad_configs/*.yaml", |path| {
            let diags = load_agent_config(&relative("bad_configs", path), &[])
                .expect_err("fixture should be rejected");
            assert_located(&diags);
            insta::assert_snapshot!(diags.to_string());
        });
    });
}

#[test]
fn load_sweep_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad_specs");
    std::fs::copy(
        fixtures.join("many_problems.yaml"),
        dir.path().join("s.yaml"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("support")).unwrap();
    std::fs::copy(
        fixtures.join("support/base.yaml"),
        dir.path().join("support/base.yaml"),
    )
    .unwrap();
    let before: Vec<_> = walk(dir.path());
    assert!(load_checked(&dir.path().join("s.yaml")).is_err());
    assert_eq!(walk(dir.path()), before);
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.extend(walk(&e));
        }
        out.push(e);
    }
    out.sort();
    out
}
