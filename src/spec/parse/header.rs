//! `name:`, `description:` and `base:`: what the sweep is called and the agent config it starts
//! from.

use std::path::{Path, PathBuf};

use crate::config::load::ConfigDoc;
use crate::config::user::UserDoc;

use super::keys::BaseDoc;
use crate::config::schema;
use crate::config::yaml::{self, Value};
use crate::diag::{Diagnostic, Mark, Source};
use crate::spec::located::{at, dir_of, not_a_file, valid_name};
use crate::spec::normalize;

use super::Top;

/// `name:`, else the sweep file's stem (which must then be a valid name).
pub(super) fn name(top: &Top, path: &Path, errs: &mut Vec<Diagnostic>) -> String {
    let Some(e) = top.get("name") else {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !valid_name(&stem) {
            errs.push(
                at(
                    &top.leaf,
                    Mark { line: 1, col: 1 },
                    "name",
                    "missing `name:` (the file name is not a valid one)",
                )
                .hint("add `name: my_sweep` (letters, digits, `_` and `-`)"),
            );
        }
        return stem;
    };
    match &e.node.value {
        Value::Str(s) if valid_name(s) => s.clone(),
        other => {
            let hint = match other {
                // `name: 123` or `name: 1e-4` is a number to YAML.
                Value::Int(_) | Value::Float(_) | Value::Bool(_) => format!(
                    "YAML reads it as {}; quote it: name: \"{}\"",
                    other.type_name(),
                    schema::fmt_scalar(other)
                ),
                _ => "use letters, digits, `_` and `-` only (it names the folder results/<name>/)"
                    .into(),
            };
            errs.push(
                at(
                    &e.src,
                    e.node.mark,
                    "name",
                    format!("invalid sweep name {}", schema::describe(other)),
                )
                .hint(hint),
            );
            String::new()
        }
    }
}

/// `description:`, free text.
pub(super) fn description(top: &Top, errs: &mut Vec<Diagnostic>) -> Option<String> {
    let e = top.get("description")?;
    match &e.node.value {
        Value::Str(s) => Some(s.clone()),
        other => {
            errs.push(
                at(
                    &e.src,
                    e.node.mark,
                    "description",
                    format!("must be text, got {}", other.type_name()),
                )
                .hint("quote it: `description: \"...\"`"),
            );
            None
        }
    }
}

/// `base:` resolved against the file that names it, and the config loaded from it: an agent
/// config, or with an external trainer (`external`) the trainer's own file (`None` when it is
/// missing, is not such a config, or has problems of its own).
pub(super) fn base(
    top: &Top,
    external: bool,
    errs: &mut Vec<Diagnostic>,
) -> (PathBuf, Option<BaseDoc>) {
    let Some(e) = top.get("base") else {
        errs.push(missing_base(top));
        return (PathBuf::new(), None);
    };
    let s = match &e.node.value {
        Value::Str(s) => s,
        other => {
            errs.push(
                at(
                    &e.src,
                    e.node.mark,
                    "base",
                    format!("must be a path, got {}", other.type_name()),
                )
                .hint("e.g. `base: ../configs/td3.yaml`"),
            );
            return (PathBuf::new(), None);
        }
    };
    let base = normalize(&dir_of(&e.src.path).join(s));
    if !base.is_file() {
        errs.push(
            at(
                &e.src,
                e.node.mark,
                "base",
                format!("base config `{}` {}", base.display(), not_a_file(&base)),
            )
            .hint("`base` is a path relative to the sweep file, e.g. ../configs/td3.yaml"),
        );
        return (base, None);
    }
    if let Some(keys) = sweep_keys_in(&base) {
        // A sweep file given as `base:` would fail on every sweep key it has.
        errs.push(
            at(&e.src, e.node.mark, "base", format!(
                "`{}` is a sweep file (it has {keys}), not an agent config",
                base.display()
            ))
            .hint(format!(
                "`base:` takes an agent config such as ../configs/td3.yaml; to build on another sweep, write `extends: {s}`"
            )),
        );
        return (base, None);
    }
    let loaded = if external {
        UserDoc::load(&base).map(BaseDoc::User)
    } else {
        ConfigDoc::load(&base).map(BaseDoc::Agent)
    };
    match loaded {
        Ok(doc) => (base, Some(doc)),
        Err(d) => {
            errs.extend(d.0);
            (base, None)
        }
    }
}

/// No `base:`. `validate configs/td3.yaml` gives an agent config where a sweep file goes; say so.
fn missing_base(top: &Top) -> Diagnostic {
    let agent_keys: Vec<&str> = ["env", "networks", "training", "logging", "evaluation"]
        .into_iter()
        .filter(|k| top.entries.iter().any(|e| e.key.name == *k))
        .collect();
    let hint = if agent_keys.len() >= 2 {
        format!(
            "this looks like an agent config (it has {}), not a sweep file; a sweep names one with `base:`. To check an agent config alone: td3-sweep train --config FILE --steps 1 --out /tmp/check",
            agent_keys.iter().map(|k| format!("`{k}:`")).collect::<Vec<_>>().join(", ")
        )
    } else if top.get("trainer").is_some() {
        "add `base:` naming your trainer's own config file (relative to this sweep file), e.g. `base: ../agent/config/td3_config.yaml`".to_string()
    } else {
        "add `base: ../configs/td3.yaml` (relative to this sweep file)".to_string()
    };
    at(
        &top.leaf,
        Mark { line: 1, col: 1 },
        "base",
        "missing `base:`, the agent config every run starts from",
    )
    .hint(hint)
}

/// The sweep-only top-level keys the YAML file at `p` has ("`name:`, `grid:`"), when it has at
/// least two of them (one could be a typo in an agent config).
fn sweep_keys_in(p: &Path) -> Option<String> {
    let src = Source::read(p).ok()?;
    let root = yaml::parse(&src).ok()?;
    let Value::Map(entries) = &root.value else {
        return None;
    };
    let found: Vec<String> = entries
        .iter()
        .map(|(k, _)| k.name.as_str())
        .filter(|k| {
            matches!(
                *k,
                "name"
                    | "base"
                    | "extends"
                    | "grid"
                    | "variants"
                    | "seeds"
                    | "steps"
                    | "stages"
                    | "set"
            )
        })
        .map(|k| format!("`{k}:`"))
        .collect();
    (found.len() >= 2).then(|| found.join(", "))
}
