//! Resumable checkpoints of one run: `<run>/checkpoint/`.
//!
//! Layout (all tensors on the CPU, loadable with any safetensors reader):
//! - `model.safetensors`: online networks under their VarStore names (`actor_cnn.conv0.weight`,
//!   `actor.fc0.weight`, `q1.fc1.bias`, ...) and the target networks under `target.<name>`.
//! - `optimizer.safetensors`: the four Adam states, `adam.<group>.m.<i>`, `.v.<i>`, `.step`.
//! - `replay.safetensors`: the replay ring (`replay.*`; for pixels the frame store's frames as u8,
//!   each frame once, plus its rings, see `Replay::state`) and the current episode:
//!   `episode.actions` `[n, act_dim]` (the actions taken since its reset) and `episode.obs`
//!   (the observation the agent acts on next).
//! - `state.json`: step counters, the host RNG (ChaCha8 seed, stream and word position), episode
//!   counters, `metrics.csv`'s length, and a hash of the config without `training.steps`.
//!
//! **Env state.** An env is not serialised. Every episode starts with `reset(Some(seed))` from a
//! seed that depends only on the run seed and the episode index ([`episode_seed`]), and the
//! built-in envs are pure functions of their reset seed and actions. Resuming re-creates the env,
//! resets it with the current episode's seed and replays the episode's stored actions; the
//! resulting observation must equal the stored one, else the resume is refused (an env that is
//! not deterministic, e.g. some Gymnasium envs). The cost is at most one episode of env steps.
//!
//! **RNG.** All randomness of the loop comes from one host ChaCha8 RNG (replay sampling,
//! exploration noise, random warm-up actions and the target-smoothing noise, which is drawn on
//! the host and uploaded). torch's generator only initialises the networks, whose weights the
//! checkpoint holds. So a resumed CPU run repeats an uninterrupted one value for value.
//!
//! Checkpoints are taken only when the metrics window is empty (right after a `metrics.csv`
//! row, or before learning starts), so no partial window has to be saved; the last 50 steps of
//! `evidence.csv` are not kept either (a divergence right after a resume has a shorter evidence
//! window). Writes go to a temporary folder that is then renamed into place.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Version of the checkpoint layout; bumped on incompatible changes.
/// 2: pixel replay buffers are a frame store (`replay.frames`, `replay.frame_last`).
pub const FORMAT_VERSION: u32 = 2;

/// The name a checkpoint folder falls back on when its own path has none.
const DIR_NAME: &str = "checkpoint";

const MODEL: &str = "model.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const REPLAY: &str = "replay.safetensors";
const STATE: &str = "state.json";

/// Why a checkpoint could not be written or used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// No checkpoint where one was expected.
    #[error("no checkpoint at {0} (expected model.safetensors, optimizer.safetensors, replay.safetensors and state.json)")]
    Missing(PathBuf),
    /// A file of the checkpoint could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        /// Quoted in the message (run records embed it), so not also a `#[source]`: printed once.
        cause: std::io::Error,
    },
    /// A file exists but its contents are unusable (truncated, corrupted, wrong shapes).
    #[error("corrupted checkpoint {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// The checkpoint was written for a different config (other than `training.steps`).
    #[error("checkpoint {path} was written by a different config (hash {found}, this config {expected}); start the run afresh or restore the old config")]
    ConfigMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },
}

/// The host RNG's full state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte seed, hex.
    pub seed: String,
    /// ChaCha stream number.
    pub stream: u64,
    /// Position in the key stream in 32-bit words (decimal string: it is a u128).
    pub word_pos: String,
}

impl RngState {
    /// Captures `rng`.
    pub fn of(rng: &ChaCha8Rng) -> RngState {
        RngState {
            seed: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// Rebuilds the RNG at exactly the captured position.
    pub fn restore(&self) -> Result<ChaCha8Rng, String> {
        if self.seed.len() != 64 {
            return Err("rng.seed must be 64 hex digits".into());
        }
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16)
                .map_err(|e| format!("rng.seed: {e}"))?;
        }
        let pos: u128 = self
            .word_pos
            .parse()
            .map_err(|e| format!("rng.word_pos: {e}"))?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(pos);
        Ok(rng)
    }
}

/// Host-side state of a run at a checkpoint (`state.json`). Floats that must round-trip exactly
/// are stored as their IEEE bits next to a readable copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    /// [`FORMAT_VERSION`] of the writer.
    pub format: u32,
    /// Hash of the config with `training.steps` and `training.checkpoint_every` cleared: a
    /// checkpoint resumes only under the same config.
    pub config_hash: String,
    /// Environment steps done.
    pub env_step: u64,
    /// Gradient updates done (`Td3::total_it`).
    pub train_step: u64,
    /// The host RNG.
    pub rng: RngState,
    /// Episodes finished.
    pub episodes: u64,
    /// Return of the last finished episode, as f64 bits.
    pub last_return_bits: Option<u64>,
    /// Return so far of the current episode, as f64 bits.
    pub current_return_bits: u64,
    /// Readable copy of `current_return_bits`.
    pub current_return: f64,
    /// Reset seed of the current episode.
    pub episode_seed: u64,
    /// An evaluation result not yet written to a metrics row, as f64 bits.
    pub pending_eval_bits: Option<u64>,
    /// Length in bytes of `metrics.csv` at the checkpoint: a resume cuts the file back to it.
    pub metrics_bytes: u64,
    /// Rows in `metrics.csv` at the checkpoint.
    pub metrics_rows: u64,
    /// Training wall time before the checkpoint, seconds (`wall_s` continues from it).
    pub wall_s: f64,
    /// When it was written (RFC 3339).
    pub written_at: String,
}

/// A loaded checkpoint: host state plus all tensors by name.
pub struct Checkpoint {
    /// `state.json`.
    pub state: HostState,
    /// Every tensor of the three safetensors files.
    pub tensors: HashMap<String, Tensor>,
    /// The folder it was read from.
    pub path: PathBuf,
}

impl Checkpoint {
    /// A tensor by name (a shallow clone).
    pub fn get(&self, name: &str) -> Option<Tensor> {
        self.tensors.get(name).map(|t| t.shallow_clone())
    }

    /// A [`CheckpointError::Corrupt`] for this checkpoint.
    pub fn corrupt(&self, message: impl Into<String>) -> CheckpointError {
        CheckpointError::Corrupt {
            path: self.path.clone(),
            message: message.into(),
        }
    }
}

/// The reset seed of episode `index` of a run seeded `seed`: the run seed for the first episode
/// (as before checkpoints existed), then a SplitMix64 mix so episodes differ.
pub fn episode_seed(seed: u64, index: u64) -> u64 {
    if index == 0 {
        return seed;
    }
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The hash a checkpoint is matched against: the config without the keys that may change
/// between stages or attempts without changing the training itself (`training.steps`,
/// `training.checkpoint_every`, and the fault hooks `debug.abort_at_step` / `debug.hang_at_step`).
pub fn resume_hash(cfg: &crate::config::AgentConfig) -> String {
    let mut c = cfg.clone();
    c.training.steps = 0;
    c.training.checkpoint_every = 0;
    c.debug.abort_at_step = None;
    c.debug.hang_at_step = None;
    crate::config::load::config_hash(&c)
}

/// The checkpoint folder of a run folder ([`crate::results::RunDir::checkpoint`]).
pub fn dir_of(run_dir: &Path) -> PathBuf {
    crate::results::RunDir::new(run_dir).checkpoint()
}

fn prev_of(dir: &Path) -> PathBuf {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or(DIR_NAME);
    dir.with_file_name(format!("{name}.prev"))
}

/// Where a checkpoint folder effectively is: `dir`, or the previous one a crash in the middle of
/// [`save`]'s swap left behind.
pub fn locate(dir: &Path) -> Option<PathBuf> {
    if dir.join(STATE).is_file() {
        return Some(dir.to_path_buf());
    }
    let prev = prev_of(dir);
    (!dir.exists() && prev.join(STATE).is_file()).then_some(prev)
}

/// Reads only `state.json` (cheap: for planning a resume).
pub fn read_state(dir: &Path) -> Result<HostState, CheckpointError> {
    let dir = locate(dir).ok_or_else(|| CheckpointError::Missing(dir.to_path_buf()))?;
    let path = dir.join(STATE);
    let text = std::fs::read_to_string(&path).map_err(|source| CheckpointError::Io {
        path: path.clone(),
        cause: source,
    })?;
    let state: HostState = serde_json::from_str(&text).map_err(|e| CheckpointError::Corrupt {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if state.format != FORMAT_VERSION {
        return Err(CheckpointError::Corrupt {
            path,
            message: format!(
                "format {} (this td3-sweep reads format {FORMAT_VERSION})",
                state.format
            ),
        });
    }
    Ok(state)
}

/// Reads a whole checkpoint and checks it was written for a config with hash `expected_hash`
/// (see [`resume_hash`]).
pub fn load(dir: &Path, expected_hash: &str) -> Result<Checkpoint, CheckpointError> {
    let state = read_state(dir)?;
    let dir = locate(dir).ok_or_else(|| CheckpointError::Missing(dir.to_path_buf()))?;
    if state.config_hash != expected_hash {
        return Err(CheckpointError::ConfigMismatch {
            path: dir,
            found: state.config_hash,
            expected: expected_hash.to_string(),
        });
    }
    let mut tensors = HashMap::new();
    for f in [MODEL, OPTIMIZER, REPLAY] {
        let path = dir.join(f);
        if !path.is_file() {
            return Err(CheckpointError::Missing(path));
        }
        let ts = Tensor::read_safetensors(&path).map_err(|e| CheckpointError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        tensors.extend(ts);
    }
    Ok(Checkpoint {
        state,
        tensors,
        path: dir,
    })
}

/// The three tensor files' contents, by file.
pub struct TensorSets {
    /// Online and target networks.
    pub model: Vec<(String, Tensor)>,
    /// Adam states.
    pub optimizer: Vec<(String, Tensor)>,
    /// Replay buffer and current episode.
    pub replay: Vec<(String, Tensor)>,
}

/// Writes a checkpoint atomically to `dir`: everything goes to a temporary sibling folder, which
/// then replaces `dir` (the old one is kept as `<dir>.prev` during the swap, see [`locate`]).
pub fn save(dir: &Path, state: &HostState, sets: &TensorSets) -> Result<(), CheckpointError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or(DIR_NAME);
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CheckpointError::Io {
            path,
            cause: source,
        }
    };
    let res = (|| {
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        for (file, set) in [
            (MODEL, &sets.model),
            (OPTIMIZER, &sets.optimizer),
            (REPLAY, &sets.replay),
        ] {
            let path = tmp.join(file);
            Tensor::write_safetensors(set, &path).map_err(|e| CheckpointError::Io {
                path: path.clone(),
                cause: std::io::Error::other(e.to_string()),
            })?;
        }
        let text = serde_json::to_string_pretty(state).unwrap_or_default();
        let path = tmp.join(STATE);
        crate::results::write_atomic(&path, text.as_bytes()).map_err(io(&path))?;
        let prev = prev_of(dir);
        if prev.exists() {
            std::fs::remove_dir_all(&prev).map_err(io(&prev))?;
        }
        if dir.exists() {
            std::fs::rename(dir, &prev).map_err(io(dir))?;
        }
        std::fs::rename(&tmp, dir).map_err(io(dir))?;
        if prev.exists() {
            std::fs::remove_dir_all(&prev).map_err(io(&prev))?;
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn rng_state_round_trips_mid_block() {
        let mut a = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..13 {
            a.next_u32();
        }
        let mut b = RngState::of(&a).restore().unwrap();
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn episode_seeds_start_at_the_run_seed_and_differ() {
        assert_eq!(episode_seed(5, 0), 5);
        let s: std::collections::BTreeSet<u64> = (0..100).map(|i| episode_seed(5, i)).collect();
        assert_eq!(s.len(), 100);
    }
}
