//! td3-sweep: declarative TD3 stability sweeps.
//!
//! The flow is `spec` (sweep YAML → validated runs) → `schedule` (child processes on device slots)
//! → `train` (one TD3 run through tch) → `results` (the results folder's files, one owner) →
//! `verdict` (PASS / INVESTIGATE / FAIL) → `report` (VALIDATION markdown, plots, JUnit). With a
//! sweep's `trainer:`, `harness` runs the user's own training program where `train` would run.

pub mod cli;
pub mod commands;
pub mod config;
pub mod diag;
pub mod harness;
pub mod report;
pub mod results;
pub mod schedule;
pub mod spec;
pub mod sys;
pub mod torch_ext;
pub mod train;
pub mod verdict;
