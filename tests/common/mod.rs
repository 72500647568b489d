//! Helpers shared by the integration tests that drive the real `td3-sweep` binary.
#![allow(
    dead_code,
    reason = "each test crate uses a different subset of these helpers"
)]

use std::path::PathBuf;
use std::process::Output;

/// The `td3-sweep` binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_td3-sweep"))
}

/// The crate root (tests run with it as the working directory).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
