//! Helpers shared by the integration tests that drive the real `td3-sweep` binary.

use std::path::{Path, PathBuf};
use std::process::Output;

/// The `td3-sweep` binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_td3-sweep"))
}

/// The crate root (tests run with it as the working directory).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `td3-sweep sweep SPEC --results RESULTS EXTRA...`, run from the crate root, to completion.
pub fn sweep(spec: &Path, results: &Path, extra: &[&str]) -> Output {
    std::process::Command::new(bin())
        .arg("sweep")
        .arg(spec)
        .arg("--results")
        .arg(results)
        .args(extra)
        .current_dir(repo())
        .output()
        .expect("run td3-sweep")
}

/// A command's exit status, stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A run folder's `metrics.csv` lines with `wall_s` (the third column) blanked: the only column
/// allowed to differ between two runs of the same config and seed on the CPU.
pub fn metrics_values(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("metrics.csv").display()))
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f[2] = "";
            f.join(",")
        })
        .collect()
}
