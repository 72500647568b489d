//! `criteria:`, `stop_on_fail:` and `stages:`: how runs are judged, and the validation ladder.

use crate::config::schema;
use crate::config::yaml::Value;
use crate::diag::Diagnostic;
use crate::spec::located::{at, dir_of, not_a_file};
use crate::spec::{normalize, stages, CriteriaRef, Stage};

use super::Top;

/// `criteria:`, a file resolved against the sweep file that names it or an inline mapping. The
/// criteria themselves are checked here too, so one round shows every problem.
pub(super) fn criteria(top: &Top, errs: &mut Vec<Diagnostic>) -> CriteriaRef {
    let criteria = criteria_ref(top, errs);
    match &criteria {
        CriteriaRef::Default => {}
        CriteriaRef::Path(p) => {
            if let Err(d) = crate::verdict::load_criteria(p) {
                errs.extend(d.0);
            }
        }
        CriteriaRef::Inline { node, source } => {
            if let Err(ds) = crate::verdict::parse_criteria(source, node) {
                // Inline, the criteria's keys live under `criteria:` in the sweep file.
                errs.extend(ds.into_iter().map(|mut d| {
                    d.key = Some(match d.key.take() {
                        Some(k) => format!("criteria.{k}"),
                        None => "criteria".into(),
                    });
                    d
                }));
            }
        }
    }
    criteria
}

/// Where the criteria come from; [`CriteriaRef::Default`] when the key is absent or wrong.
fn criteria_ref(top: &Top, errs: &mut Vec<Diagnostic>) -> CriteriaRef {
    let Some(e) = top.get("criteria") else {
        return CriteriaRef::Default;
    };
    match &e.node.value {
        Value::Str(s) => {
            let p = normalize(&dir_of(&e.src.path).join(s));
            if p.is_file() {
                return CriteriaRef::Path(p);
            }
            errs.push(
                at(
                    &e.src,
                    e.node.mark,
                    "criteria",
                    format!("criteria file `{}` {}", p.display(), not_a_file(&p)),
                )
                .hint("`criteria` is a path relative to the sweep file, or an inline mapping"),
            );
        }
        Value::Map(_) => {
            return CriteriaRef::Inline {
                node: e.node.clone(),
                source: (*e.src).clone(),
            }
        }
        other => errs.push(
            at(
                &e.src,
                e.node.mark,
                "criteria",
                format!(
                    "must be a path or a mapping, got {}",
                    schema::describe(other)
                ),
            )
            .hint("e.g. `criteria: ../criteria/default.yaml`"),
        ),
    }
    CriteriaRef::Default
}

/// `stop_on_fail:`; `None` leaves it to the criteria.
pub(super) fn stop_on_fail(top: &Top, errs: &mut Vec<Diagnostic>) -> Option<bool> {
    let e = top.get("stop_on_fail")?;
    match e.node.value {
        Value::Bool(b) => Some(b),
        ref other => {
            errs.push(
                at(
                    &e.src,
                    e.node.mark,
                    "stop_on_fail",
                    format!("must be true or false, got {}", schema::describe(other)),
                )
                .hint("write `true` or `false` (unquoted)"),
            );
            None
        }
    }
}

/// `stages:` (see [`stages`](mod@stages)); empty for a plain sweep. `steps:` cannot be set
/// beside it.
pub(super) fn stages(top: &Top, errs: &mut Vec<Diagnostic>) -> Vec<Stage> {
    let Some(e) = top.get("stages") else {
        return Vec::new();
    };
    let stages = stages::parse_stages(&e.src, &e.node, errs);
    if let Some(st) = top.get("steps") {
        errs.push(
            at(
                &st.src,
                st.node.mark,
                "steps",
                "`steps` and `stages` both set the run length",
            )
            .hint(
                "remove `steps:`; each stage's `steps` is the run's total at the end of that stage",
            ),
        );
    }
    stages
}
