//! The `slurm:` section: how the sbatch scripts ask Slurm for resources, with the checks that keep
//! a value from breaking the script. The `--slurm-*` flags fill the same [`SlurmOptions`] and are
//! checked by the same rules ([`SlurmOptions::problems`]).

use crate::config::schema;
use crate::config::yaml::{Key, Node, Value};
use crate::diag::{Diagnostic, Source};

use super::located::{at, unknown};

/// Keys of the `slurm:` section, in documentation order.
const SLURM_KEYS: &[&str] = &[
    "partition",
    "account",
    "time",
    "gres",
    "cpus_per_task",
    "mem",
    "max_parallel",
    "extra",
];

/// The hint of a value that would break the script.
const DOCS_HINT: &str = "see docs/slurm.md for every `slurm:` key";

/// How the sbatch scripts ask Slurm for resources. Filled from the spec's `slurm:` section and the
/// `--slurm-*` flags (flags win, see [`SlurmOptions::overridden_by`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--time` per array task (Slurm's syntax: `30`, `2:00:00`, `1-00:00:00`). Default: the
    /// sweep's `timeout` plus a few minutes' margin (the Slurm backend's `TIME_MARGIN_MIN`), else
    /// the partition's default.
    pub time: Option<String>,
    /// `--gres`, e.g. `gpu:1`.
    pub gres: Option<String>,
    /// `--cpus-per-task`, also the run's libtorch threads. Default: `resources.threads_per_run`.
    pub cpus_per_task: Option<u32>,
    /// `--mem`, e.g. `4G`.
    pub mem: Option<String>,
    /// The `%N` array throttle: at most N tasks of one chunk run at once.
    pub max_parallel: Option<u32>,
    /// Extra sbatch options, one per `#SBATCH` line, e.g. `--qos=short`.
    pub extra: Vec<String>,
}

impl SlurmOptions {
    /// `self` with every key that `over` sets replaced (`extra` lines are appended).
    pub fn overridden_by(&self, over: &SlurmOptions) -> SlurmOptions {
        let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
        SlurmOptions {
            partition: pick(&self.partition, &over.partition),
            account: pick(&self.account, &over.account),
            time: pick(&self.time, &over.time),
            gres: pick(&self.gres, &over.gres),
            cpus_per_task: over.cpus_per_task.or(self.cpus_per_task),
            mem: pick(&self.mem, &over.mem),
            max_parallel: over.max_parallel.or(self.max_parallel),
            extra: self.extra.iter().chain(&over.extra).cloned().collect(),
        }
    }

    /// Every problem at once, as `slurm.key: message` lines (values that would break the script).
    /// A spec's own `slurm:` section gets the same checks, located, when it is parsed.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let strings = [
            ("partition", &self.partition),
            ("account", &self.account),
            ("time", &self.time),
            ("gres", &self.gres),
            ("mem", &self.mem),
        ];
        for (key, v) in strings {
            if let Some(p) = v.as_deref().and_then(word_problem) {
                out.push(format!("slurm.{key}: {p}"));
            }
        }
        if let Some(p) = self.time.as_deref().and_then(time_problem) {
            out.push(format!("slurm.time: {p}"));
        }
        if let Some(p) = self.mem.as_deref().and_then(mem_problem) {
            out.push(format!("slurm.mem: {p}"));
        }
        if let Some(p) = self.cpus_per_task.and_then(count_problem) {
            out.push(format!("slurm.cpus_per_task: {p}"));
        }
        if let Some(p) = self.max_parallel.and_then(count_problem) {
            out.push(format!("slurm.max_parallel: {p}"));
        }
        for (i, e) in self.extra.iter().enumerate() {
            if let Some(p) = extra_problem(e) {
                out.push(format!("slurm.extra[{i}]: {p}"));
            }
        }
        out
    }
}

/// A value that sbatch would read as more than one word (or as none).
fn word_problem(v: &str) -> Option<String> {
    (v.trim().is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()))
        .then(|| format!("{v:?} must be one word without spaces"))
}

fn time_problem(t: &str) -> Option<String> {
    (!sbatch_time_ok(t)).then(|| format!(
        "{t:?} is not an sbatch time; write minutes (30), H:MM:SS (2:00:00) or D-HH:MM:SS (1-00:00:00)"
    ))
}

fn mem_problem(m: &str) -> Option<String> {
    (!sbatch_mem_ok(m)).then(|| format!(
        "{m:?} is not an sbatch memory size; write a whole number with an optional K, M, G or T suffix (4G)"
    ))
}

/// `cpus_per_task` and `max_parallel` count from 1.
fn count_problem(n: u32) -> Option<&'static str> {
    (n == 0).then_some("must be at least 1")
}

/// An `extra` line must be one sbatch option: it becomes one `#SBATCH` line.
fn extra_problem(e: &str) -> Option<String> {
    if !e.starts_with('-') || e.contains('\n') || e.contains('\r') {
        Some(format!(
            "{e:?} must be one sbatch option such as --qos=short"
        ))
    } else if e.chars().any(char::is_whitespace) && !e.contains('"') {
        // sbatch splits `#SBATCH` lines at spaces outside quotes: `--qos=a b` is an option
        // `--qos=a` and a stray directive `b`.
        Some(format!(
            "{e:?} holds a space, which sbatch reads as a second directive; quote the value (--comment=\"a b\") or drop the space"
        ))
    } else {
        None
    }
}

/// sbatch's `--time` formats: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`, or unlimited.
fn sbatch_time_ok(t: &str) -> bool {
    if matches!(t, "UNLIMITED" | "INFINITE" | "unlimited" | "infinite") {
        return true;
    }
    let num = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, t),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    // Without days: M, M:S or H:M:S; with days: D-H, D-H:M or D-H:M:S. Three parts at most.
    days.is_none_or(num) && parts.iter().all(|p| num(p)) && parts.len() <= 3
}

/// sbatch's `--mem`: a whole number with an optional unit (K, M, G, T; MB etc. too).
fn sbatch_mem_ok(m: &str) -> bool {
    let digits = m.bytes().take_while(u8::is_ascii_digit).count();
    let unit = &m[digits..];
    digits > 0
        && matches!(
            unit.to_ascii_uppercase().as_str(),
            "" | "K" | "M" | "G" | "T" | "KB" | "MB" | "GB" | "TB"
        )
}

/// Parses a `slurm:` section like every other key of the spec: each problem at its value (an
/// `extra` line at its list item), with its key path, and unknown keys with a did-you-mean hint.
pub(super) fn parse_slurm(src: &Source, node: &Node, errs: &mut Vec<Diagnostic>) -> SlurmOptions {
    let mut o = SlurmOptions::default();
    let Value::Map(fields) = &node.value else {
        errs.push(
            at(
                src,
                node.mark,
                "slurm",
                format!("must be a mapping, got {}", schema::describe(&node.value)),
            )
            .hint("e.g. `slurm: { partition: gpu, time: \"2:00:00\" }`; see docs/slurm.md"),
        );
        return o;
    };
    for (k, v) in fields {
        let mut field = Field {
            src,
            key: k,
            node: v,
            errs,
        };
        match k.name.as_str() {
            "partition" => o.partition = field.word(),
            "account" => o.account = field.word(),
            "gres" => o.gres = field.word(),
            "time" => o.time = field.word_or_number(time_problem),
            "mem" => o.mem = field.word_or_number(mem_problem),
            "cpus_per_task" => o.cpus_per_task = field.count(),
            "max_parallel" => o.max_parallel = field.count(),
            "extra" => o.extra = field.lines(),
            _ => errs.push(unknown(src, k, &format!("slurm.{}", k.name), SLURM_KEYS)),
        }
    }
    o
}

/// One `slurm:` key being read, with where to report its problems.
struct Field<'a> {
    src: &'a Source,
    key: &'a Key,
    node: &'a Node,
    errs: &'a mut Vec<Diagnostic>,
}

impl Field<'_> {
    fn path(&self) -> String {
        format!("slurm.{}", self.key.name)
    }

    /// How docs/slurm.md writes the key, as a hint.
    fn example_hint(&self) -> &'static str {
        match self.key.name.as_str() {
            "partition" => "e.g. `partition: gpu`",
            "account" => "e.g. `account: rl-lab`",
            "time" => "e.g. `time: \"2:00:00\"`, or minutes as a number: `time: 120`",
            "gres" => "e.g. `gres: gpu:1`",
            "cpus_per_task" => "e.g. `cpus_per_task: 4`",
            "mem" => "e.g. `mem: 8G`, or megabytes as a number: `mem: 8192`",
            "max_parallel" => "e.g. `max_parallel: 16`",
            _ => "e.g. `extra: [\"--qos=short\"]`",
        }
    }

    /// A value of the wrong type: `expected` says what the key takes. A number or boolean
    /// given to a text-only key is probably meant as text, so the hint quotes it.
    fn wrong_type(&mut self, expected: &str, quote: bool) {
        let v = &self.node.value;
        let hint = match v {
            Value::Int(_) | Value::Float(_) | Value::Bool(_) if quote => {
                format!(
                    "quote it: `{}: \"{}\"`",
                    self.key.name,
                    schema::fmt_scalar(v)
                )
            }
            _ => self.example_hint().to_string(),
        };
        let message = format!("must be {expected}, got {}", schema::describe(v));
        self.errs
            .push(at(self.src, self.node.mark, &self.path(), message).hint(hint));
    }

    /// Each of `problems` (a value that would break the script) at `node`, with key path `path`.
    fn check(&mut self, node: &Node, path: &str, problems: impl IntoIterator<Item = String>) {
        for p in problems {
            self.errs
                .push(at(self.src, node.mark, path, p).hint(DOCS_HINT));
        }
    }

    /// `partition`, `account`, `gres`: one word.
    fn word(&mut self) -> Option<String> {
        let node = self.node;
        match &node.value {
            Value::Null => None,
            Value::Str(s) => {
                self.check(node, &self.path(), word_problem(s));
                Some(s.clone())
            }
            _ => {
                self.wrong_type("a string", true);
                None
            }
        }
    }

    /// `time` and `mem`: one word in sbatch's `format`, or a YAML number, read as its digits
    /// (`time: 30` and `mem: 4096` are what sbatch means by `--time=30`, minutes, and
    /// `--mem=4096`, megabytes).
    fn word_or_number(&mut self, format: fn(&str) -> Option<String>) -> Option<String> {
        let s = match &self.node.value {
            Value::Null => return None,
            Value::Str(s) => s.clone(),
            Value::Int(n) if *n >= 0 => n.to_string(),
            _ => {
                let example = if self.key.name == "time" {
                    "2:00:00"
                } else {
                    "8G"
                };
                self.wrong_type(
                    &format!("a string such as \"{example}\" or a whole number"),
                    false,
                );
                return None;
            }
        };
        let problems = word_problem(&s).into_iter().chain(format(&s));
        self.check(self.node, &self.path(), problems);
        Some(s)
    }

    /// `cpus_per_task`, `max_parallel`: a count from 1.
    fn count(&mut self) -> Option<u32> {
        match self.node.value {
            Value::Null => None,
            Value::Int(n) => match u32::try_from(n) {
                Ok(n) => {
                    let problem = count_problem(n).map(str::to_string);
                    self.check(self.node, &self.path(), problem);
                    Some(n)
                }
                Err(_) => {
                    self.wrong_type("a positive integer", false);
                    None
                }
            },
            _ => {
                self.wrong_type("a positive integer", false);
                None
            }
        }
    }

    /// `extra`: a list of sbatch options, each checked at its item.
    fn lines(&mut self) -> Vec<String> {
        let node = self.node;
        let items = match &node.value {
            Value::Seq(items) => items,
            Value::Str(s) => {
                let message = format!(
                    "must be a list of sbatch options, got {}",
                    schema::describe(&self.node.value)
                );
                let hint = format!("write it as a list: `extra: [{s:?}]`");
                self.errs
                    .push(at(self.src, self.node.mark, &self.path(), message).hint(hint));
                return Vec::new();
            }
            _ => {
                self.wrong_type("a list of sbatch options", false);
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("slurm.extra[{i}]");
            match &item.value {
                Value::Str(s) => {
                    self.check(item, &path, extra_problem(s));
                    out.push(s.clone());
                }
                other => self.errs.push(
                    at(
                        self.src,
                        item.mark,
                        &path,
                        format!(
                            "an sbatch option must be a string, got {}",
                            schema::describe(other)
                        ),
                    )
                    .hint(self.example_hint()),
                ),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    /// `slurm:` written as `text`, parsed; the problems as `key: message` lines.
    fn parse_text(text: &str) -> (SlurmOptions, Vec<String>) {
        let src = Source::inline("s.yaml", text);
        let root = yaml::parse(&src).unwrap();
        let mut errs = Vec::new();
        let o = parse_slurm(&src, root.get("slurm").unwrap(), &mut errs);
        let errs = errs
            .iter()
            .map(|d| {
                format!(
                    "{}:{}: {}",
                    d.key.as_deref().unwrap_or(""),
                    d.mark.col,
                    d.message
                )
            })
            .collect();
        (o, errs)
    }

    #[test]
    fn flags_override_spec_keys_and_append_extra_lines() {
        let spec = SlurmOptions {
            partition: Some("gpu".into()),
            time: Some("10".into()),
            extra: vec!["--qos=a".into()],
            ..Default::default()
        };
        let cli = SlurmOptions {
            time: Some("20".into()),
            extra: vec!["--qos=b".into()],
            ..Default::default()
        };
        let m = spec.overridden_by(&cli);
        assert_eq!(m.partition.as_deref(), Some("gpu"));
        assert_eq!(m.time.as_deref(), Some("20"));
        assert_eq!(m.extra, vec!["--qos=a", "--qos=b"]);
    }

    #[test]
    fn problems_are_all_reported() {
        let o = SlurmOptions {
            partition: Some("a b".into()),
            max_parallel: Some(0),
            extra: vec!["qos=x".into()],
            ..Default::default()
        };
        let p = o.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(SlurmOptions::default().problems().is_empty());
        for (time, ok) in [
            ("30", true),
            ("30:00", true),
            ("2:00:00", true),
            ("1-00:00:00", true),
            ("1-12", true),
            ("UNLIMITED", true),
            ("soon", false),
            ("1h", false),
            ("-5", false),
            ("1:2:3:4", false),
        ] {
            assert_eq!(sbatch_time_ok(time), ok, "{time}");
        }
        for (mem, ok) in [
            ("4G", true),
            ("4000", true),
            ("512M", true),
            ("16GB", true),
            ("lots", false),
            ("-4G", false),
            ("4.5G", false),
        ] {
            assert_eq!(sbatch_mem_ok(mem), ok, "{mem}");
        }
    }

    #[test]
    fn numbers_for_time_and_mem_and_spaces_in_extra() {
        let (o, errs) = parse_text("slurm: { time: 30, mem: 4096 }\n");
        assert_eq!(
            (o.time.as_deref(), o.mem.as_deref()),
            (Some("30"), Some("4096"))
        );
        assert!(errs.is_empty(), "{errs:?}");
        let (_, errs) = parse_text("slurm: { time: 1.5 }\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("whole number"), "{errs:?}");
        let (_, errs) = parse_text("slurm:\n  extra: [\"--qos=a b\", '--comment=\"two words\"']\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("slurm.extra[0]:") && errs[0].contains("space"),
            "{errs:?}"
        );
    }

    #[test]
    fn every_problem_is_at_its_key_with_a_located_hint() {
        let (_, errs) = parse_text(
            "slurm: { partiton: gpu, account: 7, cpus_per_task: 0, max_parallel: -1, gres: a b, extra: [5, x] }\n",
        );
        assert_eq!(
            errs,
            [
                "slurm.partiton:10: unknown key `partiton`",
                "slurm.account:34: must be a string, got 7",
                "slurm.cpus_per_task:52: must be at least 1",
                "slurm.max_parallel:69: must be a positive integer, got -1",
                "slurm.gres:79: \"a b\" must be one word without spaces",
                "slurm.extra[0]:92: an sbatch option must be a string, got 5",
                "slurm.extra[1]:95: \"x\" must be one sbatch option such as --qos=short",
            ]
        );
        let (_, errs) = parse_text("slurm: [gpu]\n");
        assert_eq!(errs, ["slurm:8: must be a mapping, got a list"]);
    }

    #[test]
    fn null_leaves_a_key_unset_as_before() {
        let (o, errs) = parse_text("slurm:\n  partition:\n  time: null\n");
        assert_eq!((o, errs.len()), (SlurmOptions::default(), 0));
    }
}
