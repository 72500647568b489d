//! Building blocks of the sweep schema's located messages, shared by every section parser: a
//! problem at a mark with its key path, an unknown key with a did-you-mean hint, and the rule for
//! names that become folder names and run ids.

use std::path::Path;

use crate::config::yaml::Key;
use crate::diag::{did_you_mean, Diagnostic, Mark, Source};

/// A problem at `mark` in `src`, about the value at key path `key` (`""`: the whole file).
pub(super) fn at(src: &Source, mark: Mark, key: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic::new(src, mark, message).key(key)
}

/// `unknown key` at `key`, with the closest of `valid` as a hint (all of them when none is close).
pub(super) fn unknown(src: &Source, key: &Key, path: &str, valid: &[&str]) -> Diagnostic {
    let d = at(src, key.mark, path, format!("unknown key `{}`", key.name));
    match did_you_mean(&key.name, valid.iter().copied()) {
        Some(s) => d.hint(format!("did you mean `{s}`?")),
        None => d.hint(format!("valid keys: {}", valid.join(", "))),
    }
}

/// `[A-Za-z0-9_-]+`: sweep, variant and stage names end up in folder names and run ids.
pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The folder a file is in (`""` for a bare file name), which its relative paths resolve against.
pub(super) fn dir_of(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new(""))
}

/// "does not exist" or, for a folder, "is a folder, not a file": why `p` can't be read as a file.
pub(super) fn not_a_file(p: &Path) -> &'static str {
    if p.is_dir() {
        "is a folder, not a file"
    } else {
        "does not exist"
    }
}
