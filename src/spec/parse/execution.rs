//! `resources:`, `timeout:` and `backend:`: where and how long the runs execute.

use std::time::Duration;

use crate::config::schema;
use crate::config::yaml::{Node, Value};
use crate::diag::{did_you_mean, Diagnostic, Source};
use crate::spec::located::{at, unknown};
use crate::spec::{parse_duration, Devices, Resources};

use super::{positive_int, Top};

const RESOURCE_KEYS: &[&str] = &["devices", "runs_per_device", "threads_per_run"];

/// `resources:`, with the defaults for keys it leaves out.
pub(super) fn resources(top: &Top, errs: &mut Vec<Diagnostic>) -> Resources {
    let mut resources = Resources::default();
    let Some(e) = top.get("resources") else {
        return resources;
    };
    let Value::Map(fields) = &e.node.value else {
        errs.push(
            at(
                &e.src,
                e.node.mark,
                "resources",
                format!("must be a mapping, got {}", schema::describe(&e.node.value)),
            )
            .hint("e.g. `resources: { devices: auto, runs_per_device: 2, threads_per_run: 1 }`"),
        );
        return resources;
    };
    for (k, v) in fields {
        let path = format!("resources.{}", k.name);
        match k.name.as_str() {
            "devices" => {
                if let Some(d) = devices(&e.src, v, &path, errs) {
                    resources.devices = d;
                }
            }
            "runs_per_device" | "threads_per_run" => match positive_int(v) {
                Some(n) if k.name == "runs_per_device" => resources.runs_per_device = n as usize,
                Some(n) => resources.threads_per_run = n as usize,
                None => errs.push(
                    at(
                        &e.src,
                        v.mark,
                        &path,
                        format!(
                            "must be a positive integer, got {}",
                            schema::describe(&v.value)
                        ),
                    )
                    .hint(format!("e.g. `{}: 1`", k.name)),
                ),
            },
            _ => errs.push(unknown(&e.src, k, &path, RESOURCE_KEYS)),
        }
    }
    resources
}

/// `resources.devices`: `auto`, `cpu` or a list of GPU indices. A list with bad items still
/// yields its good ones (the problems are reported); anything else yields `None`.
fn devices(src: &Source, v: &Node, path: &str, errs: &mut Vec<Diagnostic>) -> Option<Devices> {
    match &v.value {
        Value::Str(s) if s == "auto" => Some(Devices::Auto),
        Value::Str(s) if s == "cpu" => Some(Devices::Cpu),
        Value::Seq(items) if !items.is_empty() => {
            let mut gpus = Vec::new();
            for item in items {
                match item.value {
                    Value::Int(g) if g >= 0 && !gpus.contains(&(g as usize)) => {
                        gpus.push(g as usize)
                    }
                    Value::Int(g) if g >= 0 => errs.push(
                        at(src, item.mark, path, format!("GPU {g} is listed twice"))
                            .hint("list each GPU index once"),
                    ),
                    ref other => errs.push(
                        at(
                            src,
                            item.mark,
                            path,
                            format!(
                                "a GPU index must be an integer >= 0, got {}",
                                schema::describe(other)
                            ),
                        )
                        .hint("e.g. `devices: [0, 1]`"),
                    ),
                }
            }
            Some(Devices::Gpus(gpus))
        }
        other => {
            let hint = match other {
                Value::Int(g) => format!("a list of GPU indices: `devices: [{g}]`"),
                Value::Str(s) => match did_you_mean(s, ["auto", "cpu"]) {
                    Some(c) => {
                        format!("did you mean `{c}`? use `auto`, `cpu` or a list of GPU indices")
                    }
                    None => "use `auto`, `cpu` or a list of GPU indices like `[0, 1]`".into(),
                },
                _ => "use `auto`, `cpu` or a list of GPU indices like `[0, 1]`".into(),
            };
            errs.push(
                at(
                    src,
                    v.mark,
                    path,
                    format!("invalid devices {}", schema::describe(other)),
                )
                .hint(hint),
            );
            None
        }
    }
}

/// `timeout:`, a duration with a unit (`90s`, `30m`, `1h30m`).
pub(super) fn timeout(top: &Top, errs: &mut Vec<Diagnostic>) -> Option<Duration> {
    duration(top, "timeout", errs)
}

/// `stall_timeout:`, a duration: a run that logs no new metrics row for this long is ended.
pub(super) fn stall_timeout(top: &Top, errs: &mut Vec<Diagnostic>) -> Option<Duration> {
    duration(top, "stall_timeout", errs)
}

/// The top-level `key` as a duration with a unit.
fn duration(top: &Top, key: &str, errs: &mut Vec<Diagnostic>) -> Option<Duration> {
    let e = top.get(key)?;
    let hint = "a number with a unit: `90s`, `30m`, `1h30m`";
    let problem = match &e.node.value {
        Value::Str(s) => match parse_duration(s) {
            Ok(d) => return Some(d),
            Err(why) => at(
                &e.src,
                e.node.mark,
                key,
                format!("invalid duration \"{s}\": {why}"),
            )
            .hint(hint),
        },
        Value::Int(n) => {
            let hint = if *n > 0 && n % 60 == 0 {
                format!("write `{n}s` (or `{}m`)", n / 60)
            } else {
                format!("write `{n}s` for seconds or `{n}m` for minutes")
            };
            at(
                &e.src,
                e.node.mark,
                key,
                format!("the duration {n} has no unit"),
            )
            .hint(hint)
        }
        other => at(
            &e.src,
            e.node.mark,
            key,
            format!("must be a duration, got {}", schema::describe(other)),
        )
        .hint(hint),
    };
    errs.push(problem);
    None
}

/// `backend:`, `local` or `slurm` (`--backend` on the command line wins).
pub(super) fn backend(top: &Top, errs: &mut Vec<Diagnostic>) -> Option<String> {
    let e = top.get("backend")?;
    match &e.node.value {
        Value::Str(b) if b == "local" || b == "slurm" => Some(b.clone()),
        other => {
            errs.push(
                at(
                    &e.src,
                    e.node.mark,
                    "backend",
                    format!("unknown backend {}", schema::describe(other)),
                )
                .hint("`local` (child processes on this machine) or `slurm` (sbatch job arrays)"),
            );
            None
        }
    }
}
