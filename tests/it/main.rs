//! td3-sweep's integration tests, as one test binary with a module per area (ripgrep's layout).
//!
//! Each module used to be a binary of its own, and every one of them linked the library, tch and
//! every other dependency again: touching `src/` relinked twelve binaries. One binary links once.
//! Run one area with a filter, e.g. `cargo test --test it faults::`.
//!
//! The fixtures stay in `tests/fixtures/` (their paths appear in error snapshots and the docs);
//! `insta::glob!` reaches them from here as `../fixtures`. Snapshots live in `tests/it/snapshots/`,
//! named after the module path (`it__report__…`).

mod common;

mod checkpoint;
mod external;
mod faults;
mod gym_bridge;
mod gym_conformance;
mod ladder;
mod report;
mod slurm;
mod spec_errors;
mod spec_expand;
mod sweep_e2e;
mod tensorboard;
mod torch_parity;
mod train_cpu;
mod verdict;
