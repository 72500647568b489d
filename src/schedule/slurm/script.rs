//! sbatch array scripts: options, chunking and rendering (pure functions).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Most clusters cap array indices at 1,000 (`MaxArraySize=1001`), so no chunk is larger.
pub const MAX_ARRAY_TASKS: usize = 1000;

/// Minutes added to a sweep's per-run `timeout` to form the default `--time`, so the run's own
/// timeout (a clean `timeout` outcome with metrics kept) fires before Slurm's kill.
pub const TIME_MARGIN_MIN: u64 = 5;

/// How the sbatch scripts ask Slurm for resources. Filled from the spec's `slurm:` section and the
/// `--slurm-*` flags (flags win, see [`SlurmOptions::overridden_by`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmOptions {
    /// `--partition`.
    #[serde(default)]
    pub partition: Option<String>,
    /// `--account`.
    #[serde(default)]
    pub account: Option<String>,
    /// `--time` per array task (Slurm's syntax: `30`, `2:00:00`, `1-00:00:00`). Default: the sweep's
    /// `timeout` plus [`TIME_MARGIN_MIN`] minutes, else the partition's default.
    #[serde(default, deserialize_with = "word_or_number")]
    pub time: Option<String>,
    /// `--gres`, e.g. `gpu:1`.
    #[serde(default)]
    pub gres: Option<String>,
    /// `--cpus-per-task`, also the run's libtorch threads. Default: `resources.threads_per_run`.
    #[serde(default)]
    pub cpus_per_task: Option<u32>,
    /// `--mem`, e.g. `4G`.
    #[serde(default, deserialize_with = "word_or_number")]
    pub mem: Option<String>,
    /// The `%N` array throttle: at most N tasks of one chunk run at once.
    #[serde(default)]
    pub max_parallel: Option<u32>,
    /// Extra sbatch options, one per `#SBATCH` line, e.g. `--qos=short`.
    #[serde(default)]
    pub extra: Vec<String>,
}

/// `time: 30` and `mem: 4096` are what sbatch means by `--time=30` (minutes) and `--mem=4096`
/// (megabytes): a YAML number reads as its digits.
fn word_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum WordOrNumber {
        Word(String),
        Number(u64),
    }
    Ok(Option::<WordOrNumber>::deserialize(d)
        .map_err(|_| {
            serde::de::Error::custom(
                "expected a string such as \"2:00:00\" or \"4G\", or a whole number",
            )
        })?
        .map(|v| match v {
            WordOrNumber::Word(s) => s,
            WordOrNumber::Number(n) => n.to_string(),
        }))
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

    /// Every problem at once, as `key: message` lines (values that would break the script).
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
            if let Some(v) = v {
                if v.trim().is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    out.push(format!(
                        "slurm.{key}: {v:?} must be one word without spaces"
                    ));
                }
            }
        }
        if let Some(t) = self.time.as_deref().filter(|t| !sbatch_time_ok(t)) {
            out.push(format!(
                "slurm.time: {t:?} is not an sbatch time; write minutes (30), H:MM:SS (2:00:00) or D-HH:MM:SS (1-00:00:00)"
            ));
        }
        if let Some(m) = self.mem.as_deref().filter(|m| !sbatch_mem_ok(m)) {
            out.push(format!(
                "slurm.mem: {m:?} is not an sbatch memory size; write a whole number with an optional K, M, G or T suffix (4G)"
            ));
        }
        if self.cpus_per_task == Some(0) {
            out.push("slurm.cpus_per_task: must be at least 1".into());
        }
        if self.max_parallel == Some(0) {
            out.push("slurm.max_parallel: must be at least 1".into());
        }
        for (i, e) in self.extra.iter().enumerate() {
            if !e.starts_with('-') || e.contains('\n') || e.contains('\r') {
                out.push(format!(
                    "slurm.extra[{i}]: {e:?} must be one sbatch option such as --qos=short"
                ));
            } else if e.chars().any(char::is_whitespace) && !e.contains('"') {
                // sbatch splits `#SBATCH` lines at spaces outside quotes: `--qos=a b` is an
                // option `--qos=a` and a stray directive `b`.
                out.push(format!(
                    "slurm.extra[{i}]: {e:?} holds a space, which sbatch reads as a second directive; quote the value (--comment=\"a b\") or drop the space"
                ));
            }
        }
        out
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

/// `--time` in minutes for a per-run timeout, with [`TIME_MARGIN_MIN`] to spare.
pub fn default_time(timeout: Option<std::time::Duration>) -> Option<String> {
    timeout.map(|t| (t.as_secs().div_ceil(60) + TIME_MARGIN_MIN).to_string())
}

/// Single-quotes `s` for bash unless it is made of safe characters only.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:+,@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// One array script's inputs.
#[derive(Debug, Clone)]
pub struct ArrayScript<'a> {
    /// `--job-name`.
    pub job_name: &'a str,
    /// Global plan indices; array task `i` runs `indices[i]`.
    pub indices: &'a [usize],
    /// The `--output` pattern, `<slurm folder>/slurm-%A_%a.out` (absolute).
    pub output: &'a Path,
    /// Where the task runs (absolute); relative paths in `plan.json` resolve against it.
    pub workdir: &'a Path,
    /// The `td3-sweep` binary (absolute).
    pub program: &'a Path,
    /// `results/<name>/sweep.yaml`, as `run-one --sweep` gets it.
    pub sweep_file: &'a Path,
    /// A plan other than `plan.json` beside the sweep file (`run-one --plan`): a ladder stage's.
    pub plan_file: Option<&'a Path>,
    /// Effective options (`cpus_per_task` and `time` already defaulted).
    pub options: &'a SlurmOptions,
}

/// The sbatch script text. It maps the chunk-local `$SLURM_ARRAY_TASK_ID` to a global plan index
/// through a bash array, so chunks past the cluster's index cap and resumed subsets both work.
pub fn render(s: &ArrayScript<'_>) -> String {
    let o = s.options;
    let n = s.indices.len();
    let mut array = format!("0-{}", n.saturating_sub(1));
    if let Some(m) = o.max_parallel {
        array.push_str(&format!("%{m}"));
    }
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!("#SBATCH --job-name={}", s.job_name),
        format!("#SBATCH --array={array}"),
        format!("#SBATCH --output={}", s.output.display()),
        format!("#SBATCH --chdir={}", s.workdir.display()),
        "#SBATCH --ntasks=1".to_string(),
    ];
    let opt = |name: &str, v: &Option<String>| v.as_ref().map(|v| format!("#SBATCH --{name}={v}"));
    lines.extend(opt("partition", &o.partition));
    lines.extend(opt("account", &o.account));
    lines.extend(opt("time", &o.time));
    lines.extend(opt("gres", &o.gres));
    lines.extend(
        o.cpus_per_task
            .map(|c| format!("#SBATCH --cpus-per-task={c}")),
    );
    lines.extend(opt("mem", &o.mem));
    lines.extend(o.extra.iter().map(|e| format!("#SBATCH {e}")));
    let indices: Vec<String> = s.indices.iter().map(|i| i.to_string()).collect();
    let mut wrapped = String::new();
    for (k, chunk) in indices.chunks(20).enumerate() {
        wrapped.push_str(if k == 0 { "" } else { "\n  " });
        wrapped.push_str(&chunk.join(" "));
    }
    lines.push(String::new());
    lines.push(format!(
        "# Written by td3-sweep: {n} run(s); array task i runs the sweep's run INDEX[i]."
    ));
    lines.push(
        "# Submit by hand with `sbatch <this file>` (after `td3-sweep sweep --no-submit`).".into(),
    );
    lines.push("set -u".into());
    lines.push(format!("INDEX=({wrapped})"));
    let plan = s
        .plan_file
        .map(|p| format!(" --plan {}", shell_quote(&p.display().to_string())))
        .unwrap_or_default();
    lines.push(format!(
        "exec \"${{TD3_SWEEP:-{}}}\" run-one --sweep {}{plan} --index \"${{INDEX[$SLURM_ARRAY_TASK_ID]}}\"",
        s.program.display(),
        shell_quote(&s.sweep_file.display().to_string())
    ));
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn default_time_adds_a_margin_to_the_run_timeout() {
        assert_eq!(
            default_time(Some(std::time::Duration::from_secs(120))).as_deref(),
            Some("7")
        );
        assert_eq!(
            default_time(Some(std::time::Duration::from_secs(121))).as_deref(),
            Some("8")
        );
        assert_eq!(default_time(None), None);
    }

    #[test]
    fn script_maps_chunk_local_task_ids_and_throttles() {
        let indices: Vec<usize> = (1000..1025).collect();
        let o = SlurmOptions {
            gres: Some("gpu:1".into()),
            cpus_per_task: Some(2),
            max_parallel: Some(4),
            extra: vec!["--qos=short".into()],
            ..Default::default()
        };
        let text = render(&ArrayScript {
            job_name: "td3-smoke",
            indices: &indices,
            output: &crate::results::ResultsDir::new("/r/smoke")
                .slurm(None)
                .task_out_pattern(),
            workdir: Path::new("/w"),
            program: Path::new("/bin/td3-sweep"),
            sweep_file: Path::new("results/smoke/sweep.yaml"),
            plan_file: None,
            options: &o,
        });
        assert!(text.contains("#SBATCH --array=0-24%4\n"), "{text}");
        assert!(
            text.contains("#SBATCH --gres=gpu:1\n#SBATCH --cpus-per-task=2\n#SBATCH --qos=short\n"),
            "{text}"
        );
        assert!(
            text.contains("#SBATCH --output=/r/smoke/slurm/slurm-%A_%a.out\n"),
            "{text}"
        );
        assert!(text.contains("INDEX=(1000 1001"), "{text}");
        assert!(
            text.contains("1019\n  1020"),
            "long index lists wrap: {text}"
        );
        assert!(text.contains(
            "run-one --sweep results/smoke/sweep.yaml --index \"${INDEX[$SLURM_ARRAY_TASK_ID]}\""
        ));
        assert!(
            !text.contains("--partition"),
            "unset options are left to the cluster"
        );
    }

    #[test]
    fn shell_quote_quotes_only_when_needed() {
        assert_eq!(shell_quote("results/a_b.yaml"), "results/a_b.yaml");
        assert_eq!(shell_quote("it's here"), "'it'\\''s here'");
    }
}

#[cfg(test)]
mod yaml_forms {
    use super::*;

    #[test]
    fn numbers_for_time_and_mem_and_spaces_in_extra() {
        let o: SlurmOptions =
            serde_json::from_value(serde_json::json!({ "time": 30, "mem": 4096 })).unwrap();
        assert_eq!(
            (o.time.as_deref(), o.mem.as_deref()),
            (Some("30"), Some("4096"))
        );
        assert!(o.problems().is_empty(), "{:?}", o.problems());
        let e = serde_json::from_value::<SlurmOptions>(serde_json::json!({ "time": 1.5 }))
            .unwrap_err()
            .to_string();
        assert!(e.contains("whole number"), "{e}");
        let o = SlurmOptions {
            extra: vec!["--qos=a b".into(), "--comment=\"two words\"".into()],
            ..Default::default()
        };
        let p = o.problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("slurm.extra[0]") && p[0].contains("space"),
            "{p:?}"
        );
    }
}
