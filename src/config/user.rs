//! A user's own config file as the schema of its overrides (sweeps with an external `trainer:`).
//!
//! td3-sweep knows nothing of an external trainer's config, so the base file itself is the
//! schema: an override's dotted path must name a key the base has (a typo is reported at the
//! override's `file:line`, with a did-you-mean drawn from the base's own keys), and its value must
//! have the base value's type (a null in the base accepts anything; an integer is a number). A
//! mapping value merges key by key, each key checked the same way. Each run's resolved file is
//! the base with its overrides applied, written back as YAML (comments do not survive).

use std::path::{Path, PathBuf};

use serde_json::Value as J;
use sha2::{Digest, Sha256};

use crate::config::load::Override;
use crate::config::schema::{describe, fmt_scalar, join};
use crate::config::yaml::{self, Key, Node, Value};
use crate::diag::{did_you_mean, Diagnostic, Diagnostics, Source};

/// A user's config file: its located tree (the schema) and its values with overrides applied.
#[derive(Debug, Clone)]
pub struct UserDoc {
    path: PathBuf,
    /// The base file as written, with positions: what keys exist and their types.
    schema: Node,
    /// The values, overrides applied (a tree, so keys keep the base's order).
    values: Node,
}

impl UserDoc {
    /// Reads and parses the base file; it must be a YAML mapping.
    pub fn load(path: &Path) -> Result<UserDoc, Diagnostics> {
        let src = Source::read(path)?;
        Self::from_source(&src)
    }

    /// Parses config text (a file already read, or a test string).
    pub fn from_source(src: &Source) -> Result<UserDoc, Diagnostics> {
        let root = yaml::parse(src).map_err(Diagnostics)?;
        let root = match root.value {
            Value::Map(_) => root,
            // An empty file is an empty mapping: every override then names an unknown key.
            Value::Null => Node {
                value: Value::Map(Vec::new()),
                mark: root.mark,
            },
            ref other => {
                return Err(Diagnostic::new(
                    src,
                    root.mark,
                    format!(
                        "the trainer's base config must be a mapping of keys, got {}",
                        other.type_name()
                    ),
                )
                .hint("`base:` names your trainer's own YAML config file, e.g. `base: ../agent/config/td3_config.yaml`")
                .into())
            }
        };
        Ok(UserDoc {
            path: src.path.clone(),
            values: root.clone(),
            schema: root,
        })
    }

    /// The base file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The base's node at a dotted path, if the path names one.
    fn lookup(&self, key: &str) -> Option<&Node> {
        let mut node = &self.schema;
        for seg in key.split('.') {
            node = node.get(seg)?;
        }
        Some(node)
    }

    /// Whether `key` names a mapping in the base (a `set:` mapping for it merges key by key).
    pub fn is_group(&self, key: &str) -> bool {
        self.lookup(key)
            .is_some_and(|n| matches!(n.value, Value::Map(_)))
    }

    /// Whether `key` names a list in the base (a grid of it needs a list per value).
    pub fn is_list(&self, key: &str) -> bool {
        self.lookup(key)
            .is_some_and(|n| matches!(n.value, Value::Seq(_)))
    }

    /// Every dotted key of the base (groups and leaves), in file order.
    fn all_keys(&self) -> Vec<String> {
        fn walk(prefix: &str, node: &Node, out: &mut Vec<String>) {
            for (k, child) in node.entries() {
                let full = join(prefix, &k.name);
                out.push(full.clone());
                walk(&full, child, out);
            }
        }
        let mut out = Vec::new();
        walk("", &self.schema, &mut out);
        out
    }

    /// Checks one override against the base: the key exists and the value has its type.
    pub fn check_override(&self, o: &Override) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        match self.lookup(&o.key) {
            Some(base) if !o.key.is_empty() => {
                self.check_value(&o.key, base, &o.value, &o.origin, &mut out)
            }
            _ => out.push(self.unknown_key(o)),
        }
        out
    }

    fn unknown_key(&self, o: &Override) -> Diagnostic {
        let d = Diagnostic::new(
            &o.origin,
            o.key_mark,
            format!(
                "unknown key `{}`: {} has no such key",
                o.key,
                self.path.display()
            ),
        )
        .key(&o.key);
        match self.suggest(&o.key) {
            Some(s) => d.hint(format!("did you mean `{s}`?")),
            None => {
                let parent = o.key.rsplit_once('.').map_or("", |(p, _)| p);
                let here = if parent.is_empty() {
                    Some(&self.schema)
                } else {
                    self.lookup(parent)
                };
                let names: Vec<&str> = here
                    .map(|n| n.entries().iter().map(|(k, _)| k.name.as_str()).collect())
                    .unwrap_or_default();
                if names.is_empty() {
                    d.hint("overrides can only change keys the base config already has; add the key to the base file first")
                } else {
                    let at = if here.is_some_and(|n| std::ptr::eq(n, &self.schema)) {
                        "at the top level".to_string()
                    } else {
                        format!("under `{parent}`")
                    };
                    d.hint(format!("keys {at}: {}", names.join(", ")))
                }
            }
        }
    }

    /// A close key of the base: a sibling one typo away, the same last segment elsewhere, or a
    /// close full path.
    fn suggest(&self, key: &str) -> Option<String> {
        let keys = self.all_keys();
        let (parent, name) = key.rsplit_once('.').unwrap_or(("", key));
        let siblings: Vec<&str> = keys
            .iter()
            .filter_map(|k| {
                let (p, n) = k.rsplit_once('.').unwrap_or(("", k));
                (p == parent).then_some(n)
            })
            .collect();
        if let Some(s) = did_you_mean(name, siblings) {
            return Some(join(parent, s));
        }
        if let Some(s) = keys
            .iter()
            .find(|k| k.rsplit_once('.').map_or(k.as_str(), |(_, n)| n) == name)
        {
            return Some(s.clone());
        }
        if let Some(s) = did_you_mean(key, keys.iter().map(String::as_str)) {
            return Some(s.to_string());
        }
        // A typo'd name at the wrong level (`batch_sise` for `training.batch_size`): one key
        // whose last segment is close.
        let close: Vec<&String> = keys
            .iter()
            .filter(|k| {
                did_you_mean(name, [k.rsplit_once('.').map_or(k.as_str(), |(_, n)| n)]).is_some()
            })
            .collect();
        match close.as_slice() {
            [one] => Some(one.to_string()),
            _ => None,
        }
    }

    /// Checks `value` (for `key`) against the base's `base` value, recursing into mappings.
    fn check_value(
        &self,
        key: &str,
        base: &Node,
        value: &Node,
        src: &Source,
        out: &mut Vec<Diagnostic>,
    ) {
        match (&base.value, &value.value) {
            // A null in the base says nothing about the type: anything goes.
            (Value::Null, _) => {}
            (Value::Map(_), Value::Map(entries)) => {
                for (k, child) in entries {
                    let full = join(key, &k.name);
                    match base.get(&k.name) {
                        Some(b) => self.check_value(&full, b, child, src, out),
                        None => out.push(self.unknown_key(&Override {
                            key: full,
                            key_mark: k.mark,
                            value: child.clone(),
                            origin: src.clone(),
                        })),
                    }
                }
            }
            // A list's items: like the base's items when those all have one type.
            (Value::Seq(base_items), Value::Seq(items)) => {
                let Some(first) = base_items.first() else {
                    return;
                };
                if !base_items.iter().all(|b| same_type(&first.value, &b.value)) {
                    return;
                }
                for (i, item) in items.iter().enumerate() {
                    self.check_value(&format!("{key}[{i}]"), first, item, src, out);
                }
            }
            (b, v) if same_type(b, v) => {}
            (b, v) => out.push(
                Diagnostic::new(
                    src,
                    value.mark,
                    format!(
                        "must be {} like the base's value, got {}",
                        b.type_name(),
                        describe(v)
                    ),
                )
                .key(key)
                .hint(format!(
                    "{} has `{}: {}` (line {}); write a value of that type, or make the base value null to accept any",
                    self.path.display(),
                    key,
                    fmt_scalar(b),
                    base.mark.line
                )),
            ),
        }
    }

    /// Applies an override already passed through [`UserDoc::check_override`]; mappings merge.
    pub fn apply_checked(&mut self, o: &Override) {
        let mut slot = &mut self.values;
        for seg in o.key.split('.') {
            if !matches!(slot.value, Value::Map(_)) {
                slot.value = Value::Map(Vec::new());
            }
            let Value::Map(entries) = &mut slot.value else {
                unreachable!("made a mapping above")
            };
            let i = match entries.iter().position(|(k, _)| k.name == seg) {
                Some(i) => i,
                None => {
                    entries.push((
                        Key {
                            name: seg.to_string(),
                            mark: o.key_mark,
                        },
                        Node {
                            value: Value::Null,
                            mark: o.key_mark,
                        },
                    ));
                    entries.len() - 1
                }
            };
            slot = &mut entries[i].1;
        }
        merge(slot, &o.value);
    }

    /// The resolved values as JSON (for hashing and the plan).
    pub fn values(&self) -> J {
        self.values.to_json()
    }

    /// The resolved config as YAML, keys in the base's order (what a run's `{config}` holds).
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(&to_yaml_value(&self.values))
            .expect("YAML values always serialise")
    }
}

/// Whether an override's value may replace a base value: the same YAML type, or an integer where
/// the base has a float (`1` for `1.0`).
fn same_type(base: &Value, v: &Value) -> bool {
    std::mem::discriminant(base) == std::mem::discriminant(v)
        || matches!((base, v), (Value::Float(_), Value::Int(_)))
}

/// Merges `value` into `slot`: mappings key by key, anything else replaces.
fn merge(slot: &mut Node, value: &Node) {
    match (&mut slot.value, &value.value) {
        (Value::Map(have), Value::Map(new)) => {
            for (k, v) in new {
                match have.iter_mut().find(|(hk, _)| hk.name == k.name) {
                    Some((_, h)) => merge(h, v),
                    None => have.push((k.clone(), v.clone())),
                }
            }
        }
        _ => *slot = value.clone(),
    }
}

/// A node as a YAML value, mapping order kept.
fn to_yaml_value(n: &Node) -> serde_yaml_ng::Value {
    use serde_yaml_ng::Value as Y;
    match &n.value {
        Value::Null => Y::Null,
        Value::Bool(b) => Y::Bool(*b),
        Value::Int(i) => Y::Number((*i).into()),
        Value::Float(f) => Y::Number((*f).into()),
        Value::Str(s) => Y::String(s.clone()),
        Value::Seq(items) => Y::Sequence(items.iter().map(to_yaml_value).collect()),
        Value::Map(entries) => Y::Mapping(
            entries
                .iter()
                .map(|(k, v)| (Y::String(k.name.clone()), to_yaml_value(v)))
                .collect(),
        ),
    }
}

/// The identity of an external run: sha256 over its resolved config, seed, steps and the trainer
/// invocation (`trainer` is its canonical text), first 12 hex digits like
/// [`crate::config::config_hash`]. A changed command or mapping is a different run.
pub fn run_hash(values: &J, seed: u64, steps: u64, trainer: &str) -> String {
    let canonical = serde_json::json!({
        "config": values,
        "seed": seed,
        "steps": steps,
        "trainer": trainer,
    })
    .to_string();
    Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..crate::config::load::CONFIG_HASH_LEN]
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::parse_set_arg;

    const BASE: &str = "networks:\n  cnn:\n    learning_rate: 1.0e-4\n    actor_cnn_lr: null\n  actor:\n    layers: [256, 256]\ntraining:\n  batch_size: 64\n  use_amp: false\n  algo: td3\n";

    fn doc() -> UserDoc {
        UserDoc::from_source(&Source::inline("agent.yaml", BASE)).unwrap()
    }

    fn problems(arg: &str) -> Vec<String> {
        let o = parse_set_arg(arg).unwrap();
        doc()
            .check_override(&o)
            .iter()
            .map(|d| format!("{} | {}", d.message, d.hint.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn keys_the_base_has_pass_with_their_types() {
        for ok in [
            "networks.cnn.learning_rate=1e-5",
            "networks.cnn.learning_rate=1",
            "networks.cnn.actor_cnn_lr=1e-5",
            "networks.cnn.actor_cnn_lr=anything",
            "networks.actor.layers=[64]",
            "training.batch_size=128",
            "training.use_amp=true",
            "networks.actor.layers=[64, 64, 32]",
            "networks.cnn={learning_rate: 3e-4}",
        ] {
            assert_eq!(problems(ok), Vec::<String>::new(), "{ok}");
        }
    }

    #[test]
    fn a_typo_names_the_base_key() {
        let p = problems("networks.cnn.actor_cnn_rl=1e-5");
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("unknown key `networks.cnn.actor_cnn_rl`"),
            "{p:?}"
        );
        assert!(
            p[0].ends_with("did you mean `networks.cnn.actor_cnn_lr`?"),
            "{p:?}"
        );
        let p = problems("batch_size=32");
        assert!(
            p[0].ends_with("did you mean `training.batch_size`?"),
            "{p:?}"
        );
        let p = problems("training.zzzzzzzz=1");
        assert!(
            p[0].contains("keys under `training`: batch_size, use_amp, algo"),
            "{p:?}"
        );
        let p = problems("networks.cnn={learnin_rate: 3e-4}");
        assert!(
            p[0].ends_with("did you mean `networks.cnn.learning_rate`?"),
            "{p:?}"
        );
    }

    #[test]
    fn a_value_of_another_type_is_refused() {
        let p = problems("training.batch_size=1.5");
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("must be an integer like the base's value, got 1.5"),
            "{p:?}"
        );
        assert!(p[0].contains("`training.batch_size: 64` (line 8)"), "{p:?}");
        assert_eq!(problems("training.use_amp=1").len(), 1);
        assert_eq!(problems("networks.actor.layers=64").len(), 1);
        let p = problems("networks.actor.layers=[128, x]");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("must be an integer like the base's value, got \"x\""),
            "{p:?}"
        );
        assert_eq!(problems("training.algo=3").len(), 1);
    }

    #[test]
    fn overrides_merge_into_the_values() {
        let mut d = doc();
        for arg in [
            "networks.cnn={actor_cnn_lr: 1e-5}",
            "training.batch_size=32",
        ] {
            d.apply_checked(&parse_set_arg(arg).unwrap());
        }
        let v = d.values();
        assert_eq!(
            v["networks"]["cnn"]["actor_cnn_lr"],
            serde_json::json!(1e-5)
        );
        assert_eq!(
            v["networks"]["cnn"]["learning_rate"],
            serde_json::json!(1e-4)
        );
        assert_eq!(v["training"]["batch_size"], serde_json::json!(32));
        let yaml = d.to_yaml();
        // The base's order, not alphabetical: `networks` before `training`, `learning_rate` first.
        assert!(
            yaml.starts_with("networks:\n  cnn:\n    learning_rate:"),
            "{yaml}"
        );
        let back = UserDoc::from_source(&Source::inline("r.yaml", &yaml)).unwrap();
        assert_eq!(back.values(), v);
    }

    #[test]
    fn the_run_hash_tells_seeds_steps_and_commands_apart() {
        let v = doc().values();
        let a = run_hash(&v, 0, 1000, "python train.py");
        assert_eq!(a.len(), 12);
        assert_eq!(a, run_hash(&v, 0, 1000, "python train.py"));
        assert_ne!(a, run_hash(&v, 1, 1000, "python train.py"));
        assert_ne!(a, run_hash(&v, 0, 2000, "python train.py"));
        assert_ne!(a, run_hash(&v, 0, 1000, "python other.py"));
    }
}
