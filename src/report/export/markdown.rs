//! The Markdown report, rendered from a minijinja template over the report's view model (every
//! number already formatted). The embedded template is `templates/validation.md.j2`; `--template`
//! names another (`templates/verdicts.md.j2` leaves out every measured number, for CI snapshots).

use std::path::Path;

use super::{Exporter, Output, Report, ReportError};

/// The embedded default template (`templates/validation.md.j2`).
pub const DEFAULT_TEMPLATE: &str = include_str!("../../../templates/validation.md.j2");

/// The Markdown format: `VALIDATION_<name>.md` from a template.
pub struct Markdown {
    /// The template's name in messages (its path, or the embedded one's).
    name: String,
    text: String,
    /// Whether the template is the user's (`--template`): a template that fails to render is
    /// then bad input, not a bug of ours.
    pub custom: bool,
}

impl Markdown {
    /// The embedded `templates/validation.md.j2`.
    pub fn embedded() -> Markdown {
        Markdown {
            name: "validation.md.j2 (embedded)".into(),
            text: DEFAULT_TEMPLATE.into(),
            custom: false,
        }
    }

    /// A template file, or the embedded one for `None`.
    pub fn from_file(path: Option<&Path>) -> Result<Markdown, ReportError> {
        let Some(p) = path else {
            return Ok(Markdown::embedded());
        };
        let text = std::fs::read_to_string(p).map_err(|source| ReportError::Io {
            path: p.to_path_buf(),
            cause: source,
        })?;
        Ok(Markdown {
            name: p.display().to_string(),
            text,
            custom: true,
        })
    }

    /// The rendered report text.
    pub fn render(&self, report: &Report) -> Result<String, ReportError> {
        render(&self.name, &self.text, &report.model).map_err(|error| {
            let line = error
                .line()
                .and_then(|n| self.text.lines().nth(n.saturating_sub(1)))
                .map(|l| format!("\n  | {}\n  = hint: check the names used on this line against the fields the embedded templates/validation.md.j2 uses", l.trim_end()))
                .unwrap_or_default();
            ReportError::Template {
                name: self.name.clone(),
                error,
                line,
            }
        })
    }
}

impl Exporter for Markdown {
    fn export(&self, report: &Report) -> Result<Vec<Output>, ReportError> {
        Ok(vec![Output {
            name: report.file_name(),
            bytes: self.render(report)?.into_bytes(),
        }])
    }
}

/// Why a `--template` file cannot be used (unreadable, a folder, or it does not compile), or
/// `None` when it can.
pub fn check_template(t: &Path) -> Option<String> {
    match std::fs::read_to_string(t) {
        Err(_) if t.is_dir() => Some(format!(
            "--template {}: is a folder; give a template file (the embedded one is templates/validation.md.j2)",
            t.display()
        )),
        Err(e) => Some(format!("--template {}: {e}", t.display())),
        Ok(text) => {
            let mut env = minijinja::Environment::new();
            env.add_template_owned(t.display().to_string(), text)
                .err()
                .map(|e| format!("--template {}: {e:#}", t.display()))
        }
    }
}

fn render(
    name: &str,
    text: &str,
    model: &impl serde::Serialize,
) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    // A typo in a custom template should fail loudly, not render an empty cell.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template_owned(name.to_string(), text.to_string())?;
    env.get_template(name)?.render(model)
}
