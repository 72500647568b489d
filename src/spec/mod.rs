//! Sweep specs: the YAML schema, validation with `file:line:col`, and expansion into runs.
//!
//! [`load_sweep`] reads a sweep file (and the files it `extends`), checks every key against the
//! sweep schema and every override against the agent config schema, loads the base agent config,
//! and expands the grid × variants × seeds into [`RunPlan`]s in a fixed order. It reports every
//! problem at once and only reads files: nothing under `results/` is touched.
//! `docs/sweep-spec.md` documents each key.

mod duration;
mod expand;
mod located;
mod parse;
mod slurm;
pub mod stages;
pub mod trainer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::yaml::{Node, Value};
use crate::config::AgentConfig;
use crate::diag::{Diagnostic, Diagnostics, Mark, Source};

pub use duration::{format_duration, parse_duration};
pub use expand::{run_id, short_keys, RUN_ID_HASH_LEN};
pub use slurm::SlurmOptions;
pub use stages::{Aggregate, Order, Promote, Stage};
pub use trainer::TrainerSpec;

/// The CLI asks for `--yes` above this many runs.
pub const CONFIRM_ABOVE: usize = 1000;

/// A sweep that expands to more runs than this is refused outright (it would not fit in memory
/// or a lifetime of compute, and is almost certainly a mistake).
pub const MAX_RUNS: usize = 100_000;

/// A validated sweep file, with every path resolved.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    /// Names `results/<name>/`; `[A-Za-z0-9_-]+`.
    pub name: String,
    /// Free text for reports.
    pub description: Option<String>,
    /// The agent config every run starts from (resolved against the file that named it).
    pub base: PathBuf,
    /// Overrides `training.steps` for every run; `None` keeps the base config's value.
    pub steps: Option<u64>,
    /// Seeds, ascending. Each grid point and variant runs once per seed.
    pub seeds: Vec<u64>,
    /// Overrides applied to every run (dotted key, value), in file order.
    pub set: Vec<(String, Value)>,
    /// Swept keys, sorted by key; values in file order.
    pub grid: Vec<(String, Vec<Value>)>,
    /// Named override sets, in file order (one `baseline` with no overrides when absent).
    pub variants: Vec<VariantSpec>,
    /// How runs are spread over devices.
    pub resources: Resources,
    /// Per-run wall-clock limit; `None` means no limit.
    pub timeout: Option<Duration>,
    /// A run that logs no new metrics row for this long is ended (outcome timeout, "stalled");
    /// `None` means no limit.
    pub stall_timeout: Option<Duration>,
    /// Where the pass/fail criteria come from (parsed by the verdict module).
    pub criteria: CriteriaRef,
    /// End each run as soon as its FAIL is certain (outcome `stopped`). `None`: the criteria's own
    /// `stop_on_fail` decides (true unless the criteria say otherwise).
    pub stop_on_fail: Option<bool>,
    /// The validation ladder (`stages:`); empty for a plain sweep. See [`stages`].
    pub stages: Vec<Stage>,
    /// `backend:` (`local` or `slurm`); `--backend` on the command line wins.
    pub backend: Option<String>,
    /// The `slurm:` section (see docs/slurm.md); `--slurm-*` flags win.
    pub slurm: SlurmOptions,
    /// `trainer:`: the user's own training program; `None` trains the built-in TD3.
    pub trainer: Option<TrainerSpec>,
    /// The sweep file itself, as given.
    pub source: PathBuf,
    /// The files this one extends, nearest first.
    pub extends: Vec<PathBuf>,
    /// Where to point the "too many runs" message (the `grid:` key, else the file).
    size_at: Option<Diagnostic>,
}

/// One named override set.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantSpec {
    /// `[A-Za-z0-9_-]+`; unique within the sweep.
    pub name: String,
    /// Free text for reports.
    pub description: Option<String>,
    /// Overrides (dotted key, value), in file order.
    pub set: Vec<(String, Value)>,
}

/// The `resources:` mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    /// Which devices runs go to.
    pub devices: Devices,
    /// Concurrent runs per GPU (CPU slots are `cores / threads_per_run`).
    pub runs_per_device: usize,
    /// libtorch intra-op threads of each run.
    pub threads_per_run: usize,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            devices: Devices::Auto,
            runs_per_device: 1,
            threads_per_run: 1,
        }
    }
}

/// `resources.devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Devices {
    /// Every visible GPU, or the CPU when there is none.
    Auto,
    /// CPU only, even with GPUs present.
    Cpu,
    /// These GPU indices.
    Gpus(Vec<usize>),
}

/// The `criteria:` key, stored for the verdict module.
#[derive(Debug, Clone)]
pub enum CriteriaRef {
    /// No `criteria:` key: the built-in defaults.
    Default,
    /// A mapping written in the sweep file, with the file it came from (for located errors).
    Inline {
        /// The mapping.
        node: Node,
        /// The sweep file (or parent sweep) it was written in.
        source: Source,
    },
    /// A criteria file, resolved against the sweep file that named it; it exists.
    Path(PathBuf),
}

/// One run of a sweep, fully resolved.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// 0-based position in the sweep's order.
    pub index: usize,
    /// `variant__key=value__...__s<seed>__<hash6>`, see [`run_id`].
    pub run_id: String,
    /// The variant's name.
    pub variant: String,
    /// The run's seed.
    pub seed: u64,
    /// Full dotted grid key → this run's value, in display form (`1e-4`).
    pub swept: BTreeMap<String, String>,
    /// Every override applied, in order (sweep `set`, variant `set`, grid, steps, seed), display form.
    pub overrides: Vec<(String, String)>,
    /// The resolved config: the built-in agent's, or the external trainer's own.
    pub config: RunConfig,
    /// [`crate::config::config_hash`] of an agent config; [`crate::config::user::run_hash`] of an
    /// external run.
    pub config_hash: String,
}

/// A run's resolved config.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per planned run; boxing the common case would only add indirection"
)]
pub enum RunConfig {
    /// The built-in TD3's agent config.
    Agent(AgentConfig),
    /// An external trainer's own config (the base file with the run's overrides).
    External(ExternalConfig),
}

/// An external run's config and the run length the sweep gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalConfig {
    /// The resolved file, as written to the run's `config.yaml` (`{config}`).
    pub yaml: String,
    /// Steps the trainer is asked for (`{steps}`).
    pub steps: u64,
    /// The resolved values, for the run's hash.
    pub values: serde_json::Value,
    /// The run's seed, for its hash.
    pub seed: u64,
    /// [`TrainerSpec::canonical`], for the run's hash.
    pub trainer: String,
}

impl RunConfig {
    /// The built-in agent's config; `None` for an external run.
    pub fn agent(&self) -> Option<&AgentConfig> {
        match self {
            RunConfig::Agent(c) => Some(c),
            RunConfig::External(_) => None,
        }
    }

    /// Steps the run is planned for.
    pub fn steps(&self) -> u64 {
        match self {
            RunConfig::Agent(c) => c.training.steps,
            RunConfig::External(e) => e.steps,
        }
    }

    /// The same config trained for `steps` steps (a ladder stage's end).
    pub fn with_steps(&self, steps: u64) -> RunConfig {
        match self {
            RunConfig::Agent(c) => {
                let mut c = c.clone();
                c.training.steps = steps;
                RunConfig::Agent(c)
            }
            RunConfig::External(e) => RunConfig::External(ExternalConfig { steps, ..e.clone() }),
        }
    }

    /// The run's identity: [`crate::config::config_hash`] of an agent config,
    /// [`crate::config::user::run_hash`] of an external run.
    pub fn hash(&self) -> String {
        match self {
            RunConfig::Agent(c) => crate::config::config_hash(c),
            RunConfig::External(e) => {
                crate::config::user::run_hash(&e.values, e.seed, e.steps, &e.trainer)
            }
        }
    }

    /// What the run's `config.yaml` holds.
    pub fn to_yaml(&self) -> String {
        match self {
            RunConfig::Agent(c) => crate::config::config_to_yaml(c),
            RunConfig::External(e) => e.yaml.clone(),
        }
    }
}

/// A sweep and its runs, in order.
#[derive(Debug, Clone)]
pub struct SweepPlan {
    /// The validated spec.
    pub spec: SweepSpec,
    /// The runs: variants in file order × grid (keys sorted, values in file order) × seeds ascending.
    pub runs: Vec<RunPlan>,
}

impl SweepPlan {
    /// Whether this plan needs `--yes` (more than [`CONFIRM_ABOVE`] runs).
    pub fn needs_confirmation(&self) -> bool {
        self.runs.len() > CONFIRM_ABOVE
    }

    /// `Ok` unless the plan has more than [`CONFIRM_ABOVE`] runs and `yes` is false; the error
    /// points at the sweep's `grid:` key.
    pub fn confirm(&self, yes: bool) -> Result<(), Diagnostics> {
        if yes || !self.needs_confirmation() {
            return Ok(());
        }
        let base = self
            .spec
            .size_at
            .clone()
            .unwrap_or_else(|| Diagnostic::file_level(&self.spec.source, ""));
        Err(Diagnostic {
            message: format!(
                "this sweep expands to {} runs (variants × grid points × seeds = {} × {} × {}), more than {CONFIRM_ABOVE}",
                self.runs.len(),
                self.spec.variants.len(),
                self.spec.grid.iter().map(|(_, v)| v.len()).product::<usize>(),
                self.spec.seeds.len()
            ),
            ..base
        }
        .hint("pass --yes to run them all, or shrink the grid / seeds")
        .into())
    }
}

impl SweepSpec {
    /// The spec as run, normalised (extends merged, paths resolved, defaults filled in), as YAML.
    /// Written to `results/<name>/sweep.yaml`.
    pub fn to_yaml(&self) -> String {
        use serde_json::{json, Map, Value as J};
        let value = |v: &Value| {
            Node {
                value: v.clone(),
                mark: Mark::default(),
            }
            .to_json()
        };
        let pairs = |set: &[(String, Value)]| -> J {
            J::Object(
                set.iter()
                    .map(|(k, v)| (k.clone(), value(v)))
                    .collect::<Map<_, _>>(),
            )
        };
        let abs = |p: &Path| {
            p.canonicalize()
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string()
        };
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        m.insert("base".into(), json!(abs(&self.base)));
        if !self.set.is_empty() {
            m.insert("set".into(), pairs(&self.set));
        }
        if let Some(s) = self.steps {
            m.insert("steps".into(), json!(s));
        }
        m.insert("seeds".into(), json!(self.seeds));
        if !self.grid.is_empty() {
            let grid = self
                .grid
                .iter()
                .map(|(k, vs)| (k.clone(), J::Array(vs.iter().map(value).collect())));
            m.insert("grid".into(), J::Object(grid.collect()));
        }
        let variants = self.variants.iter().map(|v| {
            let mut o = Map::new();
            o.insert("name".into(), json!(v.name));
            if let Some(d) = &v.description {
                o.insert("description".into(), json!(d));
            }
            if !v.set.is_empty() {
                o.insert("set".into(), pairs(&v.set));
            }
            J::Object(o)
        });
        m.insert("variants".into(), J::Array(variants.collect()));
        let devices = match &self.resources.devices {
            Devices::Auto => json!("auto"),
            Devices::Cpu => json!("cpu"),
            Devices::Gpus(g) => json!(g),
        };
        m.insert(
            "resources".into(),
            json!({
                "devices": devices,
                "runs_per_device": self.resources.runs_per_device,
                "threads_per_run": self.resources.threads_per_run,
            }),
        );
        if let Some(t) = self.timeout {
            m.insert("timeout".into(), json!(format_duration(t)));
        }
        if let Some(t) = self.stall_timeout {
            m.insert("stall_timeout".into(), json!(format_duration(t)));
        }
        match &self.criteria {
            CriteriaRef::Default => {}
            CriteriaRef::Inline { node, .. } => {
                m.insert("criteria".into(), node.to_json());
            }
            CriteriaRef::Path(p) => {
                m.insert("criteria".into(), json!(abs(p)));
            }
        }
        m.insert("stop_on_fail".into(), json!(self.stop_on_fail));
        serde_yaml_ng::to_string(&J::Object(m)).expect("JSON values always serialise")
    }
}

/// Reads, validates and expands a sweep file. Every problem in the sweep, the files it extends and
/// its base config is reported together. Only reads files.
pub fn load_sweep(path: &Path) -> Result<SweepPlan, Diagnostics> {
    let parsed = parse::parse(path).map_err(in_file_order)?;
    let runs = expand::expand(&parsed).map_err(in_file_order)?;
    Ok(SweepPlan {
        spec: parsed.spec,
        runs,
    })
}

/// Sorts problems by position, files in order of first mention, so they read top to bottom.
fn in_file_order(mut d: Diagnostics) -> Diagnostics {
    let mut files: Vec<PathBuf> = Vec::new();
    for x in &d.0 {
        if !files.contains(&x.file) {
            files.push(x.file.clone());
        }
    }
    d.0.sort_by_key(|x| {
        (
            files.iter().position(|f| *f == x.file),
            x.mark.line,
            x.mark.col,
        )
    });
    d
}

/// Removes `.` and `a/..` pairs without touching the file system, so paths in messages read
/// `configs/td3.yaml` rather than `sweeps/../configs/td3.yaml`.
pub fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        for (input, want) in [
            ("sweeps/../configs/td3.yaml", "configs/td3.yaml"),
            ("./a/b/../c", "a/c"),
            ("../x", "../x"),
            ("/a/../../b", "/b"),
            ("a/..", "."),
        ] {
            assert_eq!(normalize(Path::new(input)), PathBuf::from(want), "{input}");
        }
    }
}
