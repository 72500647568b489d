//! Training: environments, networks, the replay buffer and the TD3 loop. No CLI or file-format types here.

pub mod adam;
pub mod checkpoint;
pub mod env;
pub mod frame_store;
pub mod nets;
pub mod replay;
pub mod run;
pub mod td3;
