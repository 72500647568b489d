//! Agent configuration: the struct, its schema of dotted keys, loading with located errors.

mod agent;
pub mod yaml;

pub use agent::*;
