//! `trainer:`: the user's own training program, run once per run instead of the built-in TD3.
//!
//! Its command line may hold placeholders (`{config}`, `{run_dir}`, `{seed}`, `{steps}`,
//! `{run_id}`; `{{` and `}}` are literal braces), filled in per run; the same values reach the
//! trainer as `TD3SWEEP_*` environment variables ([`crate::results::trainer`]).
//! `docs/external-trainer.md` documents the block.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The placeholders a trainer command may use, in documentation order.
pub const PLACEHOLDERS: &[&str] = &["config", "run_dir", "seed", "steps", "run_id"];

/// A validated `trainer:` block, paths resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerSpec {
    /// The program and its arguments, placeholders unfilled. A relative program path with a `/`
    /// is resolved against `workdir`.
    pub command: Vec<String>,
    /// The folder the trainer runs in (resolved against the sweep file; its folder by default).
    pub workdir: PathBuf,
    /// Criteria metric name → the trainer's CSV column. Columns named like a metric need no entry.
    pub metrics: BTreeMap<String, String>,
    /// Extra environment variables for the trainer (placeholders filled in like the command's).
    pub env: BTreeMap<String, String>,
    /// The trainer continues a run from its own checkpoint when a ladder's next stage starts
    /// (`TD3SWEEP_RESUME_FROM`); otherwise each stage trains from scratch.
    pub resume: bool,
    /// The largest |Q| the trainer's task allows, `r_max × |reward scale| / (1 − discount)`: the
    /// criteria's `|Q| vs its bound` rule judges against it (not applicable without it).
    pub q_bound: Option<f64>,
}

impl TrainerSpec {
    /// The block's identity for run hashes: command, workdir, metrics and env, canonically.
    pub fn canonical(&self) -> String {
        serde_json::json!({
            "command": self.command,
            "workdir": self.workdir,
            "metrics": self.metrics,
            "env": self.env,
            "q_bound": self.q_bound,
        })
        .to_string()
    }
}

/// A problem with a placeholder in one string: its byte offset and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaceholderError {
    pub offset: usize,
    pub message: String,
    pub hint: String,
}

/// Fills the placeholders of `text` from `values`; `{{`/`}}` are literal braces.
pub fn fill(text: &str, values: &BTreeMap<&str, String>) -> Result<String, PlaceholderError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text.char_indices().peekable();
    while let Some((i, c)) = rest.next() {
        match c {
            '{' if rest.peek().map(|&(_, c)| c) == Some('{') => {
                rest.next();
                out.push('{');
            }
            '}' if rest.peek().map(|&(_, c)| c) == Some('}') => {
                rest.next();
                out.push('}');
            }
            '{' => {
                let Some(end) = text[i + 1..].find('}') else {
                    return Err(PlaceholderError {
                        offset: i,
                        message: "`{` without a closing `}`".into(),
                        hint: "write `{{` for a literal brace".into(),
                    });
                };
                let name = &text[i + 1..i + 1 + end];
                match values.get(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        let hint =
                            match crate::diag::did_you_mean(name, PLACEHOLDERS.iter().copied()) {
                                Some(s) => format!("did you mean `{{{s}}}`?"),
                                None => format!(
                                    "placeholders: {} (`{{{{` for a literal brace)",
                                    PLACEHOLDERS
                                        .iter()
                                        .map(|p| format!("{{{p}}}"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            };
                        return Err(PlaceholderError {
                            offset: i,
                            message: format!("unknown placeholder `{{{name}}}`"),
                            hint,
                        });
                    }
                }
                for _ in 0..=end {
                    rest.next();
                }
            }
            '}' => {
                return Err(PlaceholderError {
                    offset: i,
                    message: "`}` without an opening `{`".into(),
                    hint: "write `}}` for a literal brace".into(),
                })
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Every placeholder filled with its own name, to check a string without a run.
pub fn check(text: &str) -> Result<(), PlaceholderError> {
    let values = PLACEHOLDERS.iter().map(|p| (*p, p.to_string())).collect();
    fill(text, &values).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<&'static str, String> {
        [
            ("config", "/r/config.yaml".to_string()),
            ("seed", "3".to_string()),
            ("steps", "1000".to_string()),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn placeholders_fill_and_braces_escape() {
        let v = values();
        assert_eq!(
            fill("--config={config}", &v).unwrap(),
            "--config=/r/config.yaml"
        );
        assert_eq!(fill("s{seed}_{steps}", &v).unwrap(), "s3_1000");
        assert_eq!(fill("{{\"a\": 1}}", &v).unwrap(), "{\"a\": 1}");
        assert_eq!(fill("plain", &v).unwrap(), "plain");
    }

    #[test]
    fn bad_placeholders_say_where_and_what() {
        let v = values();
        let e = fill("--seed={sed}", &v).unwrap_err();
        assert_eq!(
            (e.offset, e.message.as_str()),
            (7, "unknown placeholder `{sed}`")
        );
        assert_eq!(e.hint, "did you mean `{seed}`?");
        assert_eq!(fill("{config", &v).unwrap_err().offset, 0);
        assert_eq!(fill("a}", &v).unwrap_err().offset, 1);
        assert!(check("{run_dir}/{run_id}").is_ok());
        assert!(check("{bogus_thing}")
            .unwrap_err()
            .hint
            .contains("{run_dir}"));
    }
}
