//! Loading an agent config file with overrides, reporting every problem with its position.
//!
//! The steps are: parse the file into a located tree, check it against [`schema`], apply each
//! override (checked the same way, its diagnostics pointing at the override's own file), check the
//! rules between keys, and only then let serde build the [`AgentConfig`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as J;
use sha2::{Digest, Sha256};

use crate::config::schema::{self, Kind};
use crate::config::yaml::{self, Node, Value};
use crate::config::AgentConfig;
use crate::diag::{Diagnostic, Diagnostics, Mark, Source};

/// One override of a dotted key, remembering where it was written.
#[derive(Debug, Clone)]
pub struct Override {
    /// Dotted key of the agent config (`networks.cnn.actor_cnn_lr`), or a group key with a mapping.
    pub key: String,
    /// Where the key is written in `origin` (diagnostics about the key itself point here).
    pub key_mark: Mark,
    /// The value, with its position in `origin`.
    pub value: Node,
    /// The file the override was written in: a sweep file, or `Source::inline("--set", ..)`.
    pub origin: Source,
}

impl Override {
    /// The override as `key=value`, for plans and logs.
    pub fn display(&self) -> (String, String) {
        (self.key.clone(), schema::fmt_scalar(&self.value.value))
    }
}

/// A position to report at, detached from its [`Source`] (cheap to keep per key).
#[derive(Debug, Clone, PartialEq)]
struct Loc {
    file: PathBuf,
    mark: Mark,
    snippet: Option<String>,
}

impl Loc {
    fn new(src: &Source, mark: Mark) -> Self {
        Loc {
            file: src.path.clone(),
            mark,
            snippet: src.line(mark.line).map(str::to_string),
        }
    }

    fn diagnostic(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            mark: self.mark,
            key: None,
            message: message.into(),
            hint: None,
            snippet: self.snippet.clone(),
        }
    }
}

/// Checks `node` against the schema entry of `key`, recursing into groups. Problems go to `out`,
/// each at the position of the offending key or value.
pub fn check_tree(key: &str, node: &Node, src: &Source, out: &mut Vec<Diagnostic>) {
    let Some(spec) = schema::lookup(key) else {
        return;
    };
    if let Err(p) = schema::check_value(spec, node) {
        out.push(
            Diagnostic::new(src, node.mark, p.message)
                .key(key)
                .hint(p.hint),
        );
        return;
    }
    if spec.kind != Kind::Group {
        return;
    }
    for (k, child) in node.entries() {
        let full = schema::join(key, &k.name);
        if k.name.contains('.') {
            out.push(
                Diagnostic::new(
                    src,
                    k.mark,
                    format!("dotted key `{}` inside a mapping", k.name),
                )
                .key(&full)
                .hint(
                    "config files nest keys (`networks:` / `  cnn:` / `    actor_cnn_lr: 1e-5`); \
                     dotted keys are for sweeps and --set",
                ),
            );
            continue;
        }
        if schema::lookup(&full).is_some() {
            check_tree(&full, child, src, out);
        } else {
            out.push(unknown_key(src, k.mark, &full, &k.name));
        }
    }
}

fn unknown_key(src: &Source, mark: Mark, full: &str, shown: &str) -> Diagnostic {
    let d = Diagnostic::new(src, mark, format!("unknown key `{shown}`")).key(full);
    match schema::suggest(full) {
        Some(s) => d.hint(format!("did you mean `{s}`?")),
        None => {
            let parent = schema::parent_of(full);
            let valid = if schema::lookup(parent).is_some() {
                schema::children(parent).join(", ")
            } else {
                schema::children("").join(", ")
            };
            d.hint(format!("valid keys here: {valid}"))
        }
    }
}

/// Checks one override: the key exists in the schema and the value fits it.
pub fn check_override(o: &Override) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if o.key.is_empty() || schema::lookup(&o.key).is_none() {
        out.push(unknown_key(&o.origin, o.key_mark, &o.key, &o.key));
        return out;
    }
    check_tree(&o.key, &o.value, &o.origin, &mut out);
    out
}

/// A config file being assembled: its JSON form plus where each leaf value was written.
#[derive(Debug, Clone)]
pub struct ConfigDoc {
    path: PathBuf,
    json: J,
    origins: BTreeMap<String, Loc>,
}

impl ConfigDoc {
    /// Reads, parses and checks a config file; every problem in it is reported.
    pub fn load(path: &Path) -> Result<ConfigDoc, Diagnostics> {
        let src = Source::read(path)?;
        Self::from_source(&src)
    }

    /// Parses and checks config text (a file already read, or a test string).
    pub fn from_source(src: &Source) -> Result<ConfigDoc, Diagnostics> {
        let root = yaml::parse(src).map_err(Diagnostics)?;
        let mut errs = Vec::new();
        check_tree("", &root, src, &mut errs);
        Diagnostics(errs).into_result(())?;
        let mut doc = ConfigDoc {
            path: src.path.clone(),
            json: root.to_json(),
            origins: BTreeMap::new(),
        };
        doc.record("", &root, src);
        Ok(doc)
    }

    /// The config file this document started from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&mut self, key: &str, node: &Node, src: &Source) {
        let is_group = schema::lookup(key).is_some_and(|s| s.kind == Kind::Group);
        match &node.value {
            Value::Map(entries) if is_group => {
                for (k, child) in entries {
                    self.record(&schema::join(key, &k.name), child, src);
                }
            }
            _ => {
                self.origins
                    .insert(key.to_string(), Loc::new(src, node.mark));
            }
        }
    }

    /// Checks `o` and applies it. Mapping values for group keys merge into the group.
    pub fn apply(&mut self, o: &Override) -> Result<(), Diagnostics> {
        Diagnostics(check_override(o)).into_result(())?;
        self.apply_checked(o);
        Ok(())
    }

    /// Applies an override already passed through [`check_override`].
    pub fn apply_checked(&mut self, o: &Override) {
        let mut slot = &mut self.json;
        for seg in o.key.split('.') {
            if !slot.is_object() {
                *slot = J::Object(Default::default());
            }
            let J::Object(map) = slot else {
                unreachable!("made an object above")
            };
            slot = map.entry(seg.to_string()).or_insert(J::Null);
        }
        merge(slot, o.value.to_json());
        self.record(&o.key, &o.value, &o.origin);
    }

    /// Builds the config: cross-key rules, then serde.
    pub fn finish(&self) -> Result<AgentConfig, Diagnostics> {
        let cfg: AgentConfig = serde_json::from_value(self.json.clone()).map_err(|e| {
            Diagnostic::file_level(
                &self.path,
                format!("config does not match the agent config: {e}"),
            )
            .hint("this is a bug in the schema table (src/config/schema.rs); please report it")
        })?;
        let mut errs = Diagnostics::default();
        for c in schema::check_cross(&cfg) {
            // Point at what the user changed: an override of any involved key before the base file.
            let involved: Vec<(&str, &Loc)> = std::iter::once(c.key)
                .chain(c.related.iter().copied())
                .filter_map(|k| self.origins.get(k).map(|loc| (k, loc)))
                .collect();
            let at = involved
                .iter()
                .find(|(_, loc)| loc.file != self.path)
                .or(involved.first());
            let d = match at {
                Some((k, loc)) => loc.diagnostic(c.problem.message).key(*k),
                None => Diagnostic::file_level(
                    &self.path,
                    format!("{} (default values)", c.problem.message),
                )
                .key(c.key),
            };
            errs.push(d.hint(c.problem.hint));
        }
        errs.into_result(cfg)
    }
}

fn merge(slot: &mut J, value: J) {
    match (slot, value) {
        (J::Object(have), J::Object(new)) => {
            for (k, v) in new {
                merge(have.entry(k).or_insert(J::Null), v);
            }
        }
        (slot, value) => *slot = value,
    }
}

/// Loads `path`, applies `overrides` in order, and returns the resolved config, or every problem
/// found in the file and the overrides together.
pub fn load_agent_config(path: &Path, overrides: &[Override]) -> Result<AgentConfig, Diagnostics> {
    let mut errs: Vec<Diagnostic> = overrides.iter().flat_map(check_override).collect();
    let doc = match ConfigDoc::load(path) {
        Ok(doc) => Some(doc),
        Err(d) => {
            errs.splice(0..0, d.0);
            None
        }
    };
    let mut doc = match doc {
        Some(doc) if errs.is_empty() => doc,
        _ => return Err(Diagnostics(errs)),
    };
    for o in overrides {
        doc.apply_checked(o);
    }
    doc.finish()
}

/// Parses a `--set KEY=VALUE` argument; the value follows YAML's scalar rules (`1e-5`, `true`,
/// `null`, `[8, 8]`). The key is checked later, by [`load_agent_config`].
#[expect(
    clippy::result_large_err,
    reason = "a `--set` argument has one problem at most, and it is built once"
)]
pub fn parse_set_arg(arg: &str) -> Result<Override, Diagnostic> {
    let origin = Source::inline("--set", arg);
    let Some((key, value)) = arg.split_once('=') else {
        return Err(Diagnostic::new(
            &origin,
            Mark { line: 1, col: 1 },
            format!("expected KEY=VALUE, got `{arg}`"),
        )
        .hint("e.g. --set networks.cnn.actor_cnn_lr=1e-5"));
    };
    let key_trim = key.trim();
    if key_trim.is_empty() {
        return Err(
            Diagnostic::new(&origin, Mark { line: 1, col: 1 }, "missing key before `=`")
                .hint("e.g. --set networks.cnn.actor_cnn_lr=1e-5"),
        );
    }
    let value_col = key.chars().count() + 2;
    if value.trim().is_empty() {
        return Err(Diagnostic::new(
            &origin,
            Mark {
                line: 1,
                col: value_col,
            },
            format!("no value after `{key_trim}=`"),
        )
        .key(key_trim)
        .hint(format!(
            "give one, e.g. --set {key_trim}=VALUE (write null to unset a key that allows it)"
        )));
    }
    // Positions inside a mapping or list value (`--set 'networks.cnn={actor_cnn_lr: 1e-5}'`) are
    // counted from the value's start; shift them to the whole argument's columns.
    let mut parsed = yaml::parse_scalar(value);
    shift_cols(&mut parsed, value_col - 1);
    let value = Node {
        value: parsed,
        mark: Mark {
            line: 1,
            col: value_col,
        },
    };
    Ok(Override {
        key: key_trim.to_string(),
        key_mark: Mark { line: 1, col: 1 },
        value,
        origin,
    })
}

/// Adds `by` to the column of every first-line position inside `v` (keys and values).
fn shift_cols(v: &mut Value, by: usize) {
    let shift = |m: &mut Mark| {
        if m.line == 1 {
            m.col += by;
        }
    };
    match v {
        Value::Map(entries) => {
            for (k, n) in entries {
                shift(&mut k.mark);
                shift(&mut n.mark);
                shift_cols(&mut n.value, by);
            }
        }
        Value::Seq(items) => {
            for n in items {
                shift(&mut n.mark);
                shift_cols(&mut n.value, by);
            }
        }
        _ => {}
    }
}

/// The fully resolved config as YAML (what a run's `config.yaml` holds). Loading it back with
/// [`load_agent_config`] gives the same config.
pub fn config_to_yaml(cfg: &AgentConfig) -> String {
    serde_yaml_ng::to_string(cfg).expect("AgentConfig always serialises")
}

/// Hex digits of [`config_hash`].
pub const CONFIG_HASH_LEN: usize = 12;

/// sha256 of the config's canonical JSON (fields in declaration order), first
/// [`CONFIG_HASH_LEN`] hex digits. Equal configs hash equal, across processes and machines.
pub fn config_hash(cfg: &AgentConfig) -> String {
    let canonical = serde_json::to_string(cfg).expect("AgentConfig always serialises");
    let digest = Sha256::digest(canonical.as_bytes());
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..CONFIG_HASH_LEN]
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Result<AgentConfig, Diagnostics> {
        ConfigDoc::from_source(&Source::inline("c.yaml", text))?.finish()
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(doc("").unwrap(), AgentConfig::default());
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let text = "networks:\n  cnn:\n    actor_cnn_rl: 1e-5\n    critic_cnn_lr: -1e-4\nenv:\n  kind: lanekeep\n";
        let errs = doc(text).unwrap_err();
        let got: Vec<String> = errs
            .0
            .iter()
            .map(|d| format!("{}:{} {:?} {}", d.mark.line, d.mark.col, d.key, d.message))
            .collect();
        assert_eq!(
            got,
            [
                "3:5 Some(\"networks.cnn.actor_cnn_rl\") unknown key `actor_cnn_rl`",
                "4:20 Some(\"networks.cnn.critic_cnn_lr\") must be a positive number, got -1e-4",
                "6:9 Some(\"env.kind\") unknown value `lanekeep`",
            ]
        );
        assert_eq!(
            errs.0[0].hint.as_deref(),
            Some("did you mean `networks.cnn.actor_cnn_lr`?")
        );
    }

    #[test]
    fn overrides_apply_in_order_and_merge_groups() {
        let mut d =
            ConfigDoc::from_source(&Source::inline("c.yaml", "training:\n  batch_size: 64\n"))
                .unwrap();
        for arg in [
            "networks.cnn.actor_cnn_lr=1e-5",
            "training={q_normalization: true}",
            "networks.cnn.actor_cnn_lr=2e-5",
        ] {
            d.apply(&parse_set_arg(arg).unwrap()).unwrap();
        }
        let cfg = d.finish().unwrap();
        assert_eq!(cfg.networks.cnn.actor_cnn_lr, Some(2e-5));
        assert_eq!(
            cfg.training.batch_size, 64,
            "merging a group keeps its other keys"
        );
        assert!(cfg.training.q_normalization);
    }

    #[test]
    fn bad_set_args_point_into_the_argument() {
        let o = parse_set_arg("networks.cnn.actor_cnn_lr=-1").unwrap();
        let errs = check_override(&o);
        assert_eq!(
            errs[0].to_string().lines().next().unwrap(),
            "--set:1:27: error: `networks.cnn.actor_cnn_lr`: must be a positive number, got -1"
        );
        let o = parse_set_arg("training.batchsize=3").unwrap();
        assert_eq!(
            check_override(&o)[0].hint.as_deref(),
            Some("did you mean `training.batch_size`?")
        );
        assert!(parse_set_arg("no-equals").is_err());
    }

    #[test]
    fn set_arg_positions_inside_a_mapping_are_the_arguments_columns() {
        let o = parse_set_arg("networks.cnn={actor_cnn_lr: 1e-5, foo: 1}").unwrap();
        let Value::Map(entries) = &o.value.value else {
            panic!("{:?}", o.value.value)
        };
        // `foo` starts at column 35 of the whole argument.
        assert_eq!(entries[1].0.name, "foo");
        assert_eq!(entries[1].0.mark, Mark { line: 1, col: 35 });
        assert!(parse_set_arg("training.tau=").is_err());
    }

    #[test]
    fn cross_problems_point_at_the_key_that_was_written() {
        let errs = doc("training:\n  buffer_size: 8\n").unwrap_err();
        assert_eq!(
            (errs.0[0].mark.line, errs.0[0].key.as_deref()),
            (2, Some("training.buffer_size"))
        );
        let errs = doc("networks:\n  cnn:\n    kernels: [3, 3]\n").unwrap_err();
        assert_eq!(
            (errs.0[0].mark.line, errs.0[0].key.as_deref()),
            (3, Some("networks.cnn.kernels"))
        );
    }

    #[test]
    fn yaml_round_trip_and_stable_hash() {
        let mut cfg = AgentConfig::default();
        cfg.networks.cnn.actor_cnn_lr = Some(1e-5);
        cfg.training.actor_cnn_grad_clip.max_norm = Some(1.0);
        let text = config_to_yaml(&cfg);
        assert_eq!(doc(&text).unwrap(), cfg);
        assert_eq!(config_hash(&cfg), config_hash(&cfg.clone()));
        assert_eq!(config_hash(&cfg).len(), CONFIG_HASH_LEN);
        assert_ne!(config_hash(&cfg), config_hash(&AgentConfig::default()));
    }

    #[test]
    fn shipped_default_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/td3.yaml");
        let cfg = load_agent_config(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.networks.cnn.actor_cnn_lr, Some(1e-4));
        assert_eq!(cfg.resolved_lrs().actor_cnn.lr, 1e-4);
        assert_eq!(cfg.logging.log_every, 100);
        assert_eq!(cfg.training.gradient_steps, 1);
    }

    #[test]
    fn gradient_steps_defaults_to_one_and_takes_positive_integers() {
        assert_eq!(doc("").unwrap().training.gradient_steps, 1);
        let cfg = doc("training:\n  gradient_steps: 4\n").unwrap();
        assert_eq!(cfg.training.gradient_steps, 4);
        for bad in ["0", "1.5", "-2"] {
            let errs = doc(&format!("training:\n  gradient_steps: {bad}\n")).unwrap_err();
            assert_eq!(
                errs.0[0].key.as_deref(),
                Some("training.gradient_steps"),
                "{bad}"
            );
        }
        let o = parse_set_arg("training.gradient_steps=0").unwrap();
        assert!(!check_override(&o).is_empty());
    }
}
