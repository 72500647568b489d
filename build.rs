//! Links libtorch so that the binary finds it without `LD_LIBRARY_PATH` and keeps CUDA.
//!
//! Cargo passes `DEP_TCH_LIBTORCH_LIB` only to direct dependents of the crate with
//! `links = "tch"` (torch-sys), which is why `torch-sys` is a direct dependency.
//! `--no-as-needed -ltorch` stops the linker from dropping `libtorch_cuda.so`
//! (tch-rs issue #980): without it CUDA is never available, even on a GPU machine.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:rustc-env=TD3_LIBTORCH_VERSION=unknown");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath={lib}");
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    // PyPI's torch ships `torch/version.py` next to `torch/lib`; a plain libtorch
    // zip ships `build-version`. Either gives the version `devices` prints.
    let root = Path::new(&lib)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let version = std::fs::read_to_string(root.join("version.py"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("__version__"))
                .and_then(|l| l.split('\'').nth(1).map(str::to_string))
        })
        .or_else(|| {
            std::fs::read_to_string(root.join("build-version"))
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=TD3_LIBTORCH_VERSION={version}");
}
