//! Agent configuration: the struct, its schema of dotted keys, loading with located errors.

mod agent;
pub mod load;
pub mod schema;
pub mod user;
pub mod yaml;

pub use agent::*;
pub use load::{
    config_hash, config_to_yaml, load_agent_config, parse_set_arg, ConfigDoc, Override,
};
pub use schema::{lookup, KeySpec};
