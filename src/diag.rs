//! Diagnostics for bad input: `file:line:col`, the key path, a caret under the problem, and a hint.
//!
//! A bad spec or config is reported with *all* its problems at once (like ripgrep's config errors),
//! each rendered the way `just` renders its errors.

use std::fmt;
use std::path::{Path, PathBuf};

/// A 1-based position in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub line: usize,
    pub col: usize,
}

/// One problem in one input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub mark: Mark,
    /// Dotted key path of the offending value (`grid.networks.cnn.actor_cnn_lr`), when there is one.
    pub key: Option<String>,
    pub message: String,
    /// A suggested fix ("did you mean `actor_cnn_lr`?").
    pub hint: Option<String>,
    /// The source line the mark points into, for the caret display.
    pub snippet: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `mark` in `src`, with the source line attached.
    pub fn new(src: &Source, mark: Mark, message: impl Into<String>) -> Self {
        Self {
            file: src.path.clone(),
            mark,
            key: None,
            message: message.into(),
            hint: None,
            snippet: src.line(mark.line).map(str::to_string),
        }
    }

    /// A diagnostic about a whole file (missing, unreadable), at 1:1.
    pub fn file_level(path: &Path, message: impl Into<String>) -> Self {
        Self {
            file: path.to_path_buf(),
            mark: Mark { line: 1, col: 1 },
            key: None,
            message: message.into(),
            hint: None,
            snippet: None,
        }
    }

    /// Attaches the dotted key path.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        if !key.is_empty() {
            self.key = Some(key);
        }
        self
    }

    /// Attaches a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: ",
            self.file.display(),
            self.mark.line,
            self.mark.col
        )?;
        if let Some(k) = &self.key {
            write!(f, "`{k}`: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(line) = &self.snippet {
            let n = self.mark.line.to_string();
            let pad = " ".repeat(n.len());
            write!(
                f,
                "\n {pad} |\n {n} | {line}\n {pad} | {}^",
                " ".repeat(self.mark.col.saturating_sub(1))
            )?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  = hint: {h}")?;
        }
        Ok(())
    }
}

/// Every problem found in one validation pass. Rendered one after another, with a count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds one problem.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// `Ok(value)` when empty, else `Err(self)`.
    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(f, "{n} problem{} found", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

/// An input file's path and text, for building diagnostics.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    /// Reads a file; a missing or unreadable file is a diagnostic.
    ///
    /// A leading UTF-8 byte-order mark (some Windows editors write one) is dropped. A folder, a
    /// missing file and bytes that are not UTF-8 (with the line and column of the first one) are
    /// diagnostics.
    pub fn read(path: &Path) -> Result<Source, Diagnostic> {
        if path.is_dir() {
            return Err(Diagnostic::file_level(
                path,
                "is a folder, not a file: give the YAML file inside it",
            ));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| Diagnostic::file_level(path, format!("cannot read file: {e}")))?;
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let line = 1 + good.iter().filter(|&&b| b == b'\n').count();
                let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let col = 1 + String::from_utf8_lossy(&good[line_start..]).chars().count();
                let mut d =
                    Diagnostic::file_level(path, "not UTF-8 text: a byte here is not valid UTF-8")
                        .hint("save the file as UTF-8");
                d.mark = Mark { line, col };
                return Err(d);
            }
        };
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_string(),
            None => text,
        };
        Ok(Source {
            path: path.to_path_buf(),
            text,
        })
    }

    /// Wraps text that did not come from a file (a `--set` argument, a test string).
    pub fn inline(label: &str, text: impl Into<String>) -> Source {
        Source {
            path: PathBuf::from(label),
            text: text.into(),
        }
    }

    /// The 1-based line `n`, without its newline.
    pub fn line(&self, n: usize) -> Option<&str> {
        self.text.lines().nth(n.checked_sub(1)?)
    }
}

/// The closest candidate to `word` by edit distance, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_column() {
        let src = Source::inline("s.yaml", "a: 1\nsteps: -3\n");
        let d = Diagnostic::new(&src, Mark { line: 2, col: 8 }, "must be positive")
            .key("steps")
            .hint("use 1000");
        let text = d.to_string();
        assert!(
            text.starts_with("s.yaml:2:8: error: `steps`: must be positive"),
            "{text}"
        );
        assert!(text.contains(" 2 | steps: -3\n   |        ^"), "{text}");
        assert!(text.ends_with("= hint: use 1000"));
    }

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["actor_cnn_lr", "critic_cnn_lr", "learning_rate"];
        assert_eq!(did_you_mean("actor_cnn_rl", keys), Some("actor_cnn_lr"));
        assert_eq!(did_you_mean("critc_cnn_lr", keys), Some("critic_cnn_lr"));
        assert_eq!(did_you_mean("batch", keys), None);
    }
}

#[cfg(test)]
mod source_tests {
    use super::*;

    #[test]
    fn a_byte_order_mark_is_dropped_and_bad_utf8_is_located() {
        let d = tempfile::tempdir().unwrap();
        let bom = d.path().join("bom.yaml");
        std::fs::write(&bom, b"\xEF\xBB\xBFname: x\n").unwrap();
        assert_eq!(Source::read(&bom).unwrap().text, "name: x\n");

        let bad = d.path().join("bad.yaml");
        std::fs::write(&bad, b"name: x\nsteps: 10\nab\xFFc: 1\n").unwrap();
        let e = Source::read(&bad).unwrap_err();
        assert_eq!(e.mark, Mark { line: 3, col: 3 });
        assert!(e.message.contains("UTF-8"), "{}", e.message);

        let e = Source::read(d.path()).unwrap_err();
        assert!(e.message.contains("is a folder"), "{}", e.message);
    }
}
