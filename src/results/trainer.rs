//! The contract between td3-sweep and an external trainer: `trainer.json` (how the harness runs
//! it for one run: the exact command, working directory, environment and column mapping), the
//! `TD3SWEEP_*` environment variables the trainer reads, and the CSV it appends its rows to
//! (`trainer_metrics.csv`, which the harness maps into the run's `metrics.csv`).
//! `docs/external-trainer.md` is the user's side of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The run's resolved copy of the trainer's config (`{config}`).
pub const ENV_CONFIG: &str = "TD3SWEEP_CONFIG";
/// The run folder (`{run_dir}`).
pub const ENV_RUN_DIR: &str = "TD3SWEEP_RUN_DIR";
/// The run's seed (`{seed}`).
pub const ENV_SEED: &str = "TD3SWEEP_SEED";
/// The steps asked for (`{steps}`).
pub const ENV_STEPS: &str = "TD3SWEEP_STEPS";
/// The run id (`{run_id}`).
pub const ENV_RUN_ID: &str = "TD3SWEEP_RUN_ID";
/// The CSV the trainer appends its rows to.
pub const ENV_METRICS: &str = "TD3SWEEP_METRICS";
/// Set only when the trainer continues a run (a ladder stage with `trainer.resume: true`): the
/// run folder whose checkpoint to continue from.
pub const ENV_RESUME_FROM: &str = "TD3SWEEP_RESUME_FROM";

/// The variables a slot sets for every run (built-in or external); recorded with the rest.
pub const SLOT_ENV: &[&str] = &["CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS"];

/// `trainer.json`: one external run's invocation. Written by the sweep before the run starts,
/// read by the harness, and copied into `run.json` (with the slot's variables) so the record says
/// exactly how the trainer ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// The program and its arguments, placeholders filled in.
    pub argv: Vec<String>,
    /// Where it runs.
    pub workdir: PathBuf,
    /// The variables set for it on top of the sweep's own environment: `TD3SWEEP_*`, the
    /// trainer's `env:`, and (in `run.json`) the slot's [`SLOT_ENV`].
    pub env: BTreeMap<String, String>,
    /// Criteria metric name → the trainer's column (columns named like a metric need no entry).
    pub metrics: BTreeMap<String, String>,
    /// The steps asked for.
    pub steps: u64,
    /// The largest |Q| the task allows (`trainer.q_bound`), for fail-fast and `run.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q_bound: Option<f64>,
}

impl Invocation {
    /// The trainer's CSV, from the environment.
    pub fn metrics_path(&self) -> Option<PathBuf> {
        self.env.get(ENV_METRICS).map(PathBuf::from)
    }

    /// Whether this run continues from a checkpoint (`TD3SWEEP_RESUME_FROM` is set).
    pub fn resumes(&self) -> bool {
        self.env.contains_key(ENV_RESUME_FROM)
    }

    /// A shell line that runs the trainer the same way: `cd DIR && VAR=... program args...`.
    pub fn shell_line(&self) -> String {
        let mut parts = vec![
            "cd".to_string(),
            shell_quote(&self.workdir.display().to_string()),
            "&&".into(),
            "env".into(),
        ];
        parts.extend(
            self.env
                .iter()
                .map(|(k, v)| format!("{k}={}", shell_quote(v))),
        );
        parts.extend(self.argv.iter().map(|a| shell_quote(a)));
        parts.join(" ")
    }

    /// Reads `trainer.json`.
    pub fn read(path: &Path) -> std::io::Result<Invocation> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }

    /// Writes `trainer.json` atomically.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        super::write_atomic(path, text.as_bytes())
    }
}

/// `s` quoted for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_line_quotes_what_needs_it() {
        let inv = Invocation {
            argv: vec![
                "python".into(),
                "train.py".into(),
                "--note".into(),
                "it's 1e-4".into(),
            ],
            workdir: PathBuf::from("/home/u/agent"),
            env: [
                (ENV_SEED.to_string(), "3".to_string()),
                ("X".into(), String::new()),
            ]
            .into_iter()
            .collect(),
            metrics: BTreeMap::new(),
            steps: 10,
            q_bound: None,
        };
        assert_eq!(
            inv.shell_line(),
            "cd /home/u/agent && env TD3SWEEP_SEED=3 X='' python train.py --note 'it'\\''s 1e-4'"
        );
        assert!(!inv.resumes());
        assert_eq!(inv.metrics_path(), None);
    }
}
