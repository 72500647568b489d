//! `trainer:`: the user's own training program (command, workdir, metrics mapping, env, resume),
//! checked with positions: placeholders, the program's existence, the metric names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::schema;
use crate::config::yaml::{Node, Value};
use crate::diag::{did_you_mean, Diagnostic, Mark, Source};
use crate::results::Metric;
use crate::spec::located::{at, dir_of, unknown};
use crate::spec::normalize;
use crate::spec::trainer::{check, TrainerSpec};

use super::Top;

const TRAINER_KEYS: &[&str] = &["command", "workdir", "metrics", "env", "resume", "q_bound"];

/// The `trainer:` block, `None` when absent (the built-in TD3 trains) or unusable.
pub(super) fn trainer(top: &Top, errs: &mut Vec<Diagnostic>) -> Option<TrainerSpec> {
    let e = top.get("trainer")?;
    let src = &*e.src;
    let Value::Map(fields) = &e.node.value else {
        errs.push(
            at(
                src,
                e.node.mark,
                "trainer",
                format!("must be a mapping, got {}", schema::describe(&e.node.value)),
            )
            .hint("e.g. `trainer: { command: [python, train.py, --config, \"{config}\"] }`"),
        );
        return None;
    };
    let before = errs.len();
    for (k, _) in fields {
        if !TRAINER_KEYS.contains(&k.name.as_str()) {
            errs.push(unknown(
                src,
                k,
                &format!("trainer.{}", k.name),
                TRAINER_KEYS,
            ));
        }
    }
    let workdir = workdir(src, e.node.get("workdir"), errs);
    let command = match e.node.get("command") {
        Some(n) => command(src, n, &workdir, errs),
        None => {
            errs.push(
                at(src, e.key.mark, "trainer", "missing `command:`, the program to run for each run")
                    .hint("e.g. `command: [python, train.py, --config, \"{config}\", --seed, \"{seed}\"]`"),
            );
            Vec::new()
        }
    };
    let metrics = metrics(src, e.node.get("metrics"), errs);
    let env = env(src, e.node.get("env"), errs);
    let resume = match e.node.get("resume").map(|n| (n, &n.value)) {
        None | Some((_, Value::Null)) => false,
        Some((_, Value::Bool(b))) => *b,
        Some((n, other)) => {
            errs.push(
                at(src, n.mark, "trainer.resume", format!("must be true or false, got {}", schema::describe(other)))
                    .hint("true: a ladder's next stage continues each run from the trainer's own checkpoint (TD3SWEEP_RESUME_FROM)"),
            );
            false
        }
    };
    if top.get("steps").is_none() && top.get("stages").is_none() {
        errs.push(
            at(src, e.key.mark, "trainer", "a sweep with a `trainer:` needs `steps:` (or `stages:`, each with its steps)")
                .hint("add `steps: 1000` at the top level: each run gets it as {steps} and TD3SWEEP_STEPS, and its progress is measured against it"),
        );
    }
    let q_bound = q_bound(src, e.node.get("q_bound"), errs);
    (errs.len() == before).then_some(TrainerSpec {
        command,
        workdir,
        metrics,
        env,
        resume,
        q_bound,
    })
}

/// `q_bound:`, the largest |Q| the trainer's task allows (a positive number), for the criteria's
/// `|Q| vs its bound` rule.
fn q_bound(src: &Source, node: Option<&Node>, errs: &mut Vec<Diagnostic>) -> Option<f64> {
    let n = node.filter(|n| !matches!(n.value, Value::Null))?;
    match n.as_f64() {
        Some(b) if b > 0.0 && b.is_finite() => Some(b),
        _ => {
            errs.push(
                at(src, n.mark, "trainer.q_bound", format!("must be a positive number, got {}", schema::describe(&n.value)))
                    .hint("r_max × |reward scale| / (1 − discount): e.g. Pendulum-v1 (|r| ≤ 16.27, γ 0.99) gives 1627"),
            );
            None
        }
    }
}

/// `workdir:` resolved against the sweep file; the sweep file's folder when absent.
fn workdir(src: &Source, node: Option<&Node>, errs: &mut Vec<Diagnostic>) -> PathBuf {
    let base = dir_of(&src.path);
    let Some(n) = node.filter(|n| !matches!(n.value, Value::Null)) else {
        return normalize(&base.join("."));
    };
    let Value::Str(s) = &n.value else {
        errs.push(
            at(
                src,
                n.mark,
                "trainer.workdir",
                format!("must be a path, got {}", schema::describe(&n.value)),
            )
            .hint("a folder relative to this sweep file, e.g. `workdir: ../agent`"),
        );
        return PathBuf::new();
    };
    let p = normalize(&base.join(s));
    if !p.is_dir() {
        errs.push(
            at(
                src,
                n.mark,
                "trainer.workdir",
                format!(
                    "folder `{}` {}",
                    p.display(),
                    if p.exists() {
                        "is not a folder"
                    } else {
                        "does not exist"
                    }
                ),
            )
            .hint("`workdir` is relative to the sweep file"),
        );
    }
    p
}

/// `command:` as a list of strings (numbers are taken as their text), placeholders checked, the
/// program found.
fn command(src: &Source, n: &Node, workdir: &Path, errs: &mut Vec<Diagnostic>) -> Vec<String> {
    let items = match &n.value {
        Value::Seq(items) if !items.is_empty() => items,
        Value::Str(s) => {
            errs.push(
                at(
                    src,
                    n.mark,
                    "trainer.command",
                    "must be a list: the program, then each argument",
                )
                .hint(format!(
                    "write `command: [{}]`, or `[bash, -c, \"...\"]` for a shell line",
                    s.split_whitespace()
                        .map(|w| if w.contains('{') {
                            format!("\"{w}\"")
                        } else {
                            w.to_string()
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
            return Vec::new();
        }
        other => {
            errs.push(
                at(
                    src,
                    n.mark,
                    "trainer.command",
                    format!(
                        "must be a non-empty list, got {}",
                        match other {
                            Value::Seq(_) => "an empty list".to_string(),
                            other => schema::describe(other),
                        }
                    ),
                )
                .hint("e.g. `command: [python, train.py, --config, \"{config}\"]`"),
            );
            return Vec::new();
        }
    };
    let mut argv = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("trainer.command[{i}]");
        let text = match &item.value {
            Value::Str(s) => s.clone(),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => schema::fmt_scalar(&item.value),
            other => {
                errs.push(at(src, item.mark, &path, format!("must be text, got {}", schema::describe(other)))
                    .hint("quote placeholders: `\"{config}\"` (YAML reads a bare `{config}` as a mapping)"));
                continue;
            }
        };
        if let Err(p) = check(&text) {
            errs.push(at(src, shifted(src, item.mark, p.offset), &path, p.message).hint(p.hint));
            continue;
        }
        argv.push(text);
    }
    if let Some(program) = argv.first() {
        if let Some(why) = missing_program(program, workdir) {
            errs.push(at(src, items[0].mark, "trainer.command[0]", why).hint(
                "give a program on the PATH (python, bash) or a path relative to `workdir`, e.g. `./train.sh`",
            ));
        }
    }
    argv
}

/// Why the trainer's program cannot run, if it cannot: a path (relative to `workdir`) that is no
/// file, or a bare name not on the `PATH`. Placeholders are left to run time.
fn missing_program(program: &str, workdir: &Path) -> Option<String> {
    if program.contains('{') {
        return None;
    }
    let close = |dirs: &[PathBuf], name: &str| -> String {
        let names: Vec<String> = dirs
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        did_you_mean(name, names.iter().map(String::as_str))
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default()
    };
    if program.contains('/') {
        let p = normalize(&workdir.join(program));
        if p.is_file() {
            return None;
        }
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
        return Some(format!(
            "program `{}` does not exist{}",
            p.display(),
            close(&[dir], &name)
        ));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if dirs.iter().any(|d| d.join(program).is_file()) {
        return None;
    }
    Some(format!(
        "program `{program}` is not on the PATH{}",
        close(&dirs, program)
    ))
}

/// The mark `offset` characters into the scalar at `mark` (past its opening quote, if quoted),
/// for a placeholder inside it.
fn shifted(src: &Source, mark: Mark, offset: usize) -> Mark {
    let quoted = src
        .line(mark.line)
        .and_then(|l| l.chars().nth(mark.col.saturating_sub(1)))
        .is_some_and(|c| c == '"' || c == '\'');
    Mark {
        line: mark.line,
        col: mark.col + offset + usize::from(quoted),
    }
}

/// `metrics:`: criteria metric name → the trainer's column.
fn metrics(
    src: &Source,
    node: Option<&Node>,
    errs: &mut Vec<Diagnostic>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(n) = node.filter(|n| !matches!(n.value, Value::Null)) else {
        return out;
    };
    let Value::Map(entries) = &n.value else {
        errs.push(
            at(src, n.mark, "trainer.metrics", format!("must be a mapping, got {}", schema::describe(&n.value)))
                .hint("criteria metric name: your CSV column, e.g. `{ train_step: step, q_abs_max: q_max }`"),
        );
        return out;
    };
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    let mut columns: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in entries {
        let path = format!("trainer.metrics.{}", k.name);
        if Metric::from_name(&k.name).is_none() {
            let d = at(src, k.mark, &path, format!("unknown metric `{}`", k.name));
            errs.push(match did_you_mean(&k.name, names.iter().copied()) {
                Some(s) => d.hint(format!("did you mean `{s}`?")),
                None => d.hint(format!(
                    "the keys are the criteria's metric names: {}",
                    names.join(", ")
                )),
            });
            continue;
        }
        let column = match &v.value {
            Value::Str(s) if !s.is_empty() => s.clone(),
            other => {
                errs.push(
                    at(
                        src,
                        v.mark,
                        &path,
                        format!(
                            "must be the name of a column in your CSV, got {}",
                            schema::describe(other)
                        ),
                    )
                    .hint(format!("e.g. `{}: my_column`", k.name)),
                );
                continue;
            }
        };
        if let Some(first) = columns.get(&column) {
            errs.push(
                at(
                    src,
                    v.mark,
                    &path,
                    format!("column `{column}` is already mapped to `{first}`"),
                )
                .hint("each column feeds one metric"),
            );
            continue;
        }
        columns.insert(column.clone(), k.name.clone());
        out.insert(k.name.clone(), column);
    }
    out
}

/// `env:`: extra environment variables (names `[A-Za-z_][A-Za-z0-9_]*`, not `TD3SWEEP_*`).
fn env(src: &Source, node: Option<&Node>, errs: &mut Vec<Diagnostic>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(n) = node.filter(|n| !matches!(n.value, Value::Null)) else {
        return out;
    };
    let Value::Map(entries) = &n.value else {
        errs.push(
            at(
                src,
                n.mark,
                "trainer.env",
                format!("must be a mapping, got {}", schema::describe(&n.value)),
            )
            .hint("e.g. `env: { WANDB_MODE: offline }`"),
        );
        return out;
    };
    for (k, v) in entries {
        let path = format!("trainer.env.{}", k.name);
        let valid = k
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid || k.name.starts_with("TD3SWEEP_") {
            errs.push(at(src, k.mark, &path, format!("`{}` cannot be set here", k.name)).hint(
                "names are letters, digits and `_`; TD3SWEEP_* variables are set by the harness",
            ));
            continue;
        }
        let text = match &v.value {
            Value::Str(s) => s.clone(),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => schema::fmt_scalar(&v.value),
            other => {
                errs.push(at(
                    src,
                    v.mark,
                    &path,
                    format!("must be text, got {}", schema::describe(other)),
                ));
                continue;
            }
        };
        if let Err(p) = check(&text) {
            errs.push(at(src, shifted(src, v.mark, p.offset), &path, p.message).hint(p.hint));
            continue;
        }
        out.insert(k.name.clone(), text);
    }
    out
}
