//! What a sweep's overrides are checked against and applied to: the built-in agent config (its
//! schema in `config::schema`), or, with a `trainer:`, the user's own base file, which is its own
//! schema (`config::user`).

use crate::config::load::{check_override, ConfigDoc, Override};
use crate::config::schema;
use crate::config::user::UserDoc;
use crate::diag::Diagnostic;

/// The loaded `base:`.
#[derive(Debug, Clone)]
pub(in crate::spec) enum BaseDoc {
    /// An agent config for the built-in TD3.
    Agent(ConfigDoc),
    /// The external trainer's own config file.
    User(UserDoc),
}

impl BaseDoc {
    /// Applies an override already checked by [`Keys::check`].
    pub fn apply_checked(&mut self, o: &Override) {
        match self {
            BaseDoc::Agent(d) => d.apply_checked(o),
            BaseDoc::User(d) => d.apply_checked(o),
        }
    }
}

/// The keys overrides may name. With a `trainer:` whose base did not load, nothing is checked
/// (the base's own problem is reported instead).
#[derive(Debug, Clone, Copy)]
pub(super) enum Keys<'a> {
    Agent,
    User(Option<&'a UserDoc>),
}

impl<'a> Keys<'a> {
    /// The keys of `base` (`external`: a sweep with a `trainer:`).
    pub fn of(base: Option<&'a BaseDoc>, external: bool) -> Keys<'a> {
        match (external, base) {
            (false, _) => Keys::Agent,
            (true, Some(BaseDoc::User(d))) => Keys::User(Some(d)),
            (true, _) => Keys::User(None),
        }
    }

    /// Problems with one override: an unknown key (with a did-you-mean), a value of the wrong type.
    pub fn check(&self, o: &Override) -> Vec<Diagnostic> {
        match self {
            Keys::Agent => check_override(o),
            Keys::User(Some(d)) => d.check_override(o),
            Keys::User(None) => Vec::new(),
        }
    }

    /// Whether `key` is a group, whose mapping value merges key by key.
    pub fn is_group(&self, key: &str) -> bool {
        match self {
            Keys::Agent => schema::lookup(key).is_some_and(|s| s.kind == schema::Kind::Group),
            Keys::User(d) => d.is_some_and(|d| d.is_group(key)),
        }
    }

    /// Whether `key` takes a list (so a grid of it lists lists).
    pub fn is_list(&self, key: &str) -> bool {
        match self {
            Keys::Agent => {
                schema::lookup(key).is_some_and(|s| matches!(s.kind, schema::Kind::IntList { .. }))
            }
            Keys::User(d) => d.is_some_and(|d| d.is_list(key)),
        }
    }

    /// Whether the sweep's own `seeds:` and `steps:` keys own `seed` and `training.steps` (only
    /// for the built-in agent: a user's config may have keys of those names for its own use).
    pub fn reserves_seed_and_steps(&self) -> bool {
        matches!(self, Keys::Agent)
    }
}
