//! Reading a sweep file (and the files it extends) into a validated [`SweepSpec`] plus the
//! located overrides that expansion applies.
//!
//! [`parse`] reads the `extends` chain and merges its top-level keys, then parses each section in
//! its own module, in the order a reader meets them: the sweep itself (`header`: name,
//! description, base), what varies between runs (`set`, `runs`: steps and seeds, `grid`,
//! `variants`), where and how long they run (`execution`: resources, timeout, backend), how they
//! are judged (`judging`: criteria, stop_on_fail, stages), and the `slurm:` section. Every
//! problem of every section is collected before any is returned.

mod chain;
mod execution;
mod grid;
mod header;
mod judging;
mod keys;
mod overrides;
mod runs;
mod trainer;
mod variants;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::config::load::Override;
use crate::config::schema;
use crate::config::yaml::{Node, Value};
use crate::diag::{Diagnostic, Diagnostics, Mark, Source};

use super::located::{at, unknown};
use super::slurm::{parse_slurm, SlurmOptions};
use super::{SweepSpec, VariantSpec};
use chain::Entry;
pub(super) use keys::BaseDoc;
use keys::Keys;

/// Top-level keys of a sweep file, in documentation order.
const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "extends",
    "base",
    "trainer",
    "set",
    "steps",
    "seeds",
    "grid",
    "variants",
    "resources",
    "timeout",
    "stall_timeout",
    "criteria",
    "stop_on_fail",
    "stages",
    "backend",
    "slurm",
];

/// One swept key with its values, each ready to apply.
pub(super) struct Axis {
    pub key: String,
    pub values: Vec<Override>,
}

/// A variant with its overrides ready to apply.
pub(super) struct Variant {
    pub name: String,
    /// Position of the variant's name (or its list item), for messages about the variant.
    pub at: Diagnostic,
    pub description: Option<String>,
    pub set: Vec<Override>,
}

/// Everything expansion needs.
pub(super) struct Parsed {
    pub spec: SweepSpec,
    pub base: BaseDoc,
    pub set: Vec<Override>,
    pub grid: Vec<Axis>,
    pub variants: Vec<Variant>,
    pub steps: Option<Override>,
    /// Each seed with the override that sets it, ascending.
    pub seeds: Vec<(u64, Override)>,
    /// Where to point messages about the whole sweep's size.
    pub size_at: Diagnostic,
}

/// The merged top-level entries of a sweep, by key; unknown keys are reported on indexing.
struct Top<'a> {
    /// Every entry, known or not, in file order.
    entries: &'a [Entry],
    by_key: BTreeMap<&'a str, &'a Entry>,
    /// The sweep file itself (not a file it extends), for messages about a missing key.
    leaf: Rc<Source>,
}

impl<'a> Top<'a> {
    fn index(entries: &'a [Entry], leaf: Rc<Source>, errs: &mut Vec<Diagnostic>) -> Top<'a> {
        let mut by_key = BTreeMap::new();
        for e in entries {
            if TOP_KEYS.contains(&e.key.name.as_str()) {
                by_key.insert(e.key.name.as_str(), e);
                continue;
            }
            let mut d = unknown(&e.src, &e.key, &e.key.name, TOP_KEYS);
            if schema::lookup(&e.key.name).is_some() && e.key.name != "seed" {
                d = d.hint(format!(
                    "`{}` is an agent config key: put it under `set:` (or sweep it under `grid:`)",
                    e.key.name
                ));
            }
            errs.push(d);
        }
        Top {
            entries,
            by_key,
            leaf,
        }
    }

    /// The entry of `key`, unless it is absent or null (`key:` with nothing after it).
    fn get(&self, key: &str) -> Option<&'a Entry> {
        self.written(key)
            .filter(|e| !matches!(e.node.value, Value::Null))
    }

    /// The entry of `key` even when null: an empty `grid:` or `variants:` is a mistake.
    fn written(&self, key: &str) -> Option<&'a Entry> {
        self.by_key.get(key).copied()
    }
}

/// Reads the sweep at `path` with the files it extends, parses and checks every section, and
/// loads its base config. Every problem found is returned together.
pub(super) fn parse(path: &Path) -> Result<Parsed, Diagnostics> {
    let mut errs: Vec<Diagnostic> = Vec::new();
    let Some(chain) = chain::read_chain(path, &mut errs) else {
        return Err(Diagnostics(errs));
    };
    let extends: Vec<PathBuf> = chain.iter().skip(1).map(|(s, _)| s.path.clone()).collect();
    let leaf = chain[0].0.clone();
    let entries = chain::merge(chain);
    let top = Top::index(&entries, leaf.clone(), &mut errs);
    let e = &mut errs;

    let name = header::name(&top, path, e);
    let description = header::description(&top, e);
    let trainer = trainer::trainer(&top, e);
    let external = top.get("trainer").is_some();
    let (base, base_doc) = header::base(&top, external, e);
    let keys = Keys::of(base_doc.as_ref(), external);
    let set = match top.get("set") {
        Some(x) => overrides::overrides_of(&keys, &x.src, &x.node, "set", e),
        None => Vec::new(),
    };
    let (steps, steps_override) = runs::steps(&top, e);
    // The user's config has no `training.steps` or `seed` of ours: those reach an external
    // trainer as {steps} and {seed}.
    let steps_override = steps_override.filter(|_| !external);
    let seeds = runs::seeds(&top, e);
    let (grid, grid_at) = grid::grid(&keys, &top, e);
    grid::set_also_swept(&set, &grid, e);
    let variants = variants::variants(&keys, &top, &grid, e);
    let resources = execution::resources(&top, e);
    let timeout = execution::timeout(&top, e);
    let stall_timeout = execution::stall_timeout(&top, e);
    let criteria = judging::criteria(&top, e);
    let stop_on_fail = judging::stop_on_fail(&top, e);
    let stages = judging::stages(&top, e);
    let backend = execution::backend(&top, e);
    let slurm = match top.get("slurm") {
        Some(x) => parse_slurm(&x.src, &x.node, e),
        None => SlurmOptions::default(),
    };

    let Some(base_doc) = base_doc.filter(|_| errs.is_empty()) else {
        return Err(Diagnostics(errs));
    };
    let size_at = grid_at.unwrap_or_else(|| at(&leaf, Mark { line: 1, col: 1 }, "", ""));
    let spec = SweepSpec {
        stages,
        name,
        description,
        base,
        steps,
        seeds: seed_list(&seeds, &base_doc),
        set: plain(&set),
        grid: grid
            .iter()
            .map(|a| {
                let values = a.values.iter().map(|o| o.value.value.clone()).collect();
                (a.key.clone(), values)
            })
            .collect(),
        variants: variants
            .iter()
            .map(|v| VariantSpec {
                name: v.name.clone(),
                description: v.description.clone(),
                set: plain(&v.set),
            })
            .collect(),
        resources,
        timeout,
        stall_timeout,
        criteria,
        stop_on_fail,
        backend,
        slurm,
        trainer,
        source: path.to_path_buf(),
        extends,
        size_at: Some(size_at.clone()),
    };
    Ok(Parsed {
        spec,
        base: base_doc,
        set,
        grid,
        variants,
        steps: steps_override,
        seeds,
        size_at,
    })
}

/// The sweep's seeds: those of `seeds:`, else the base agent config's own seed (0 for an
/// external trainer's config, whose seed key td3-sweep does not know).
fn seed_list(seeds: &[(u64, Override)], base: &BaseDoc) -> Vec<u64> {
    if seeds.is_empty() {
        match base {
            BaseDoc::Agent(d) => vec![d.finish().map(|c| c.seed).unwrap_or(0)],
            BaseDoc::User(_) => vec![0],
        }
    } else {
        seeds.iter().map(|(s, _)| *s).collect()
    }
}

/// Overrides as (dotted key, value) pairs, positions dropped.
fn plain(os: &[Override]) -> Vec<(String, Value)> {
    os.iter()
        .map(|o| (o.key.clone(), o.value.value.clone()))
        .collect()
}

/// The value of `node` as a count, when it is an integer >= 1.
fn positive_int(node: &Node) -> Option<u64> {
    match node.value {
        Value::Int(i) if i >= 1 => Some(i as u64),
        _ => None,
    }
}
