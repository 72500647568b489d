//! Links libtorch so that the binary finds it without `LD_LIBRARY_PATH` and keeps CUDA, and
//! compiles `src/torch_ext/ops.cpp` (libtorch operators tch does not bind) against it.
//!
//! Cargo passes `DEP_TCH_LIBTORCH_LIB` only to direct dependents of the crate with
//! `links = "tch"` (torch-sys), which is why `torch-sys` is a direct dependency.
//! `--no-as-needed -ltorch` stops the linker from dropping `libtorch_cuda.so`
//! (tch-rs issue #980): without it CUDA is never available, even on a GPU machine.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=src/torch_ext/ops.cpp");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not report its libtorch directory (DEP_TCH_LIBTORCH_LIB)");
    println!("cargo:rustc-link-arg=-Wl,-rpath={lib}");
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    // PyPI's torch and the libtorch zips both keep the headers in `include` beside `lib`.
    let root = Path::new(&lib)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .std("c++20")
        .warnings(false)
        .include(root.join("include"))
        // torch-sys builds its own wrapper with the new ABI unless told otherwise; match it.
        .define(
            "_GLIBCXX_USE_CXX11_ABI",
            std::env::var("LIBTORCH_CXX11_ABI")
                .unwrap_or_else(|_| "1".into())
                .as_str(),
        )
        .file("src/torch_ext/ops.cpp")
        .compile("td3_torch_ext");
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-link-search=native={lib}");
    // PyPI's torch ships `torch/version.py` next to `torch/lib`; a plain libtorch
    // zip ships `build-version`. Either gives the version `devices` prints.
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
