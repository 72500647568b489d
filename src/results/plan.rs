//! `plan.json`: the plan manifest, written by every sweep whatever its backend.
//!
//! It lists every run of the sweep's current plan (index → run id, identity, folder, the exact
//! `train` child arguments), so a Slurm task (`run-one --index N`) needs neither the original
//! sweep file nor its relative `base:`, and a report knows which run folders belong to the sweep
//! and which variant group a run that has not started yet belongs to. A ladder's Slurm stages
//! keep their own plans in `slurm/<stage>/`. Results folders written before this manifest
//! existed are read from their `summary.csv`, which served as the plan then.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ResultsDir;

/// File name of a plan manifest.
pub const PLAN_FILE: &str = "plan.json";

/// One run of a plan: everything needed to execute it (the scheduler's job).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    /// Position in the plan.
    pub index: usize,
    pub run_id: String,
    pub variant: String,
    pub seed: u64,
    pub swept: BTreeMap<String, String>,
    /// Environment steps planned.
    pub steps: u64,
    pub config_hash: String,
    /// The run's folder (exists before the run starts, with `config.yaml` in it).
    pub run_dir: PathBuf,
    /// Arguments after the program name for the child (`train --config ... --out ...`).
    pub args: Vec<String>,
    /// The command a user runs to reproduce this run.
    pub command: String,
    pub timeout: Option<Duration>,
    /// End the run when it logs no new metrics row for this long (older plans have none).
    #[serde(default)]
    pub stall_timeout: Option<Duration>,
}

impl PlannedRun {
    /// The run's folder.
    pub fn dir(&self) -> super::RunDir {
        super::RunDir::new(&self.run_dir)
    }

    /// The `--set` / `--override` settings among the child's arguments (key → value).
    pub fn overrides(&self) -> BTreeMap<String, String> {
        self.args
            .windows(2)
            .filter(|w| w[0] == "--set" || w[0] == "--override")
            .filter_map(|w| w[1].split_once('='))
            .map(|(k, v)| (k.trim().into(), v.trim().into()))
            .collect()
    }
}

/// The contents of `plan.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The sweep's name.
    pub sweep: String,
    /// sha256 (hex) of `sweep.yaml` when this plan was written; `run-one` refuses a mismatch.
    pub sweep_sha256: String,
    /// libtorch threads per run when Slurm does not say (`SLURM_CPUS_PER_TASK`).
    pub threads: usize,
    /// `resources.devices: cpu`: hide GPUs from the run even where Slurm grants some.
    pub cpu_only: bool,
    /// Every run of the plan, in plan order.
    pub runs: Vec<PlannedRun>,
}

/// A plan manifest that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file could not be read or written.
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not what this version writes.
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PlanError + '_ {
    move |source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Plan {
    /// Reads a plan manifest.
    pub fn read(path: &Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        serde_json::from_str(&text).map_err(|e| PlanError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Writes a plan manifest atomically.
    pub fn write(&self, path: &Path) -> Result<(), PlanError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| PlanError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        super::write_atomic(path, text.as_bytes()).map_err(io(path))
    }
}

/// sha256 of a file's bytes, hex (what [`Plan::sweep_sha256`] holds).
pub fn file_sha256(path: &Path) -> Result<String, PlanError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A planned run's identity: which variant group and seed it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub variant: String,
    pub seed: Option<u64>,
    pub swept: BTreeMap<String, String>,
}

/// The runs of a results folder's current plan by run id: from `plan.json`, else (a folder
/// written before the manifest existed) from `summary.csv`. `None` when neither is readable (a
/// results folder put together by hand: then every run folder counts).
pub fn read_planned(results: &ResultsDir) -> Option<BTreeMap<String, Planned>> {
    let manifest = results.plan_json();
    if manifest.is_file() {
        match Plan::read(&manifest) {
            Ok(plan) => {
                return Some(
                    plan.runs
                        .into_iter()
                        .map(|r| {
                            let planned = Planned {
                                variant: r.variant,
                                seed: Some(r.seed),
                                swept: r.swept,
                            };
                            (r.run_id, planned)
                        })
                        .collect(),
                )
            }
            Err(e) => {
                eprintln!("warning: {e}; every folder under runs/ is judged");
                return None;
            }
        }
    }
    legacy_planned(&results.summary_csv())
}

/// The runs an older `summary.csv` lists (one row per planned run: id, variant, seed, then one
/// column per swept key up to `outcome`).
fn legacy_planned(path: &Path) -> Option<BTreeMap<String, Planned>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .ok()?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let Some((headers, id)) = reader.byte_headers().ok().and_then(|h| {
        let h: Vec<String> = h.iter().map(text).collect();
        let id = h.iter().position(|x| x == "run_id")?;
        Some((h, id))
    }) else {
        eprintln!(
            "warning: {}: no run_id column; every folder under runs/ is judged",
            path.display()
        );
        return None;
    };
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (variant, seed) = (col("variant"), col("seed"));
    // The swept keys sit between `seed` (and a ladder's `stage`) and `outcome`.
    let swept_cols: Vec<usize> = match (seed, col("outcome")) {
        (Some(s), Some(o)) if s < o => (s + 1..o).filter(|c| headers[*c] != "stage").collect(),
        _ => Vec::new(),
    };
    let mut out = BTreeMap::new();
    for rec in reader.byte_records() {
        // Bad bytes in a cell (a reason quoting a child's output, say) cost that cell only. A
        // row whose run id cannot be read makes the plan unknown: every folder is judged then,
        // rather than a planned run silently left out of the verdict.
        let run_id = rec
            .as_ref()
            .ok()
            .and_then(|r| r.get(id))
            .and_then(|b| std::str::from_utf8(b).ok())
            .filter(|x| !x.is_empty())
            .map(str::to_string);
        let (Ok(rec), Some(run_id)) = (rec, run_id) else {
            eprintln!(
                "warning: {}: a row's run id cannot be read; every folder under runs/ is judged",
                path.display()
            );
            return None;
        };
        let field = |i: Option<usize>| i.and_then(|i| rec.get(i)).map(text).unwrap_or_default();
        out.insert(
            run_id,
            Planned {
                variant: field(variant),
                seed: field(seed).parse().ok(),
                swept: swept_cols
                    .iter()
                    .filter_map(|&c| {
                        let v = text(rec.get(c)?);
                        (!v.is_empty()).then(|| (headers[c].clone(), v))
                    })
                    .collect(),
            },
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(index: usize, id: &str) -> PlannedRun {
        PlannedRun {
            index,
            run_id: id.into(),
            variant: "a".into(),
            seed: 1,
            swept: BTreeMap::from([("k".into(), "1".into())]),
            steps: 60,
            config_hash: "h".into(),
            run_dir: format!("results/x/runs/{id}").into(),
            args: vec![
                "train".into(),
                "--override".into(),
                "training.tau = 0.01".into(),
            ],
            command: "td3-sweep train".into(),
            timeout: Some(Duration::from_secs(120)),
            stall_timeout: None,
        }
    }

    #[test]
    fn the_manifest_round_trips_and_names_the_planned_runs() {
        let d = tempfile::tempdir().unwrap();
        let res = ResultsDir::new(d.path());
        std::fs::write(res.summary_csv(), "not,a,plan\n").unwrap();
        let plan = Plan {
            sweep: "x".into(),
            sweep_sha256: "00".into(),
            threads: 2,
            cpu_only: true,
            runs: vec![run(0, "a__s1"), run(1, "b__s1")],
        };
        plan.write(&res.plan_json()).unwrap();
        assert_eq!(Plan::read(&res.plan_json()).unwrap(), plan);
        let planned = read_planned(&res).unwrap();
        assert_eq!(planned.len(), 2);
        assert_eq!(planned["b__s1"].seed, Some(1));
        assert_eq!(planned["b__s1"].swept["k"], "1");
        assert_eq!(
            plan.runs[0].overrides(),
            BTreeMap::from([("training.tau".into(), "0.01".into())])
        );
    }

    #[test]
    fn an_older_folder_is_planned_by_its_summary() {
        let d = tempfile::tempdir().unwrap();
        let res = ResultsDir::new(d.path());
        std::fs::write(
            res.summary_csv(),
            "run_id,variant,seed,stage,lr,outcome\na__s0,a,0,s1,1e-4,completed\n",
        )
        .unwrap();
        let planned = read_planned(&res).unwrap();
        assert_eq!(
            planned["a__s0"],
            Planned {
                variant: "a".into(),
                seed: Some(0),
                swept: BTreeMap::from([("lr".into(), "1e-4".into())]),
            }
        );
    }
}
