//! sbatch array scripts: chunking and rendering (pure functions). The options they render are
//! the spec's [`SlurmOptions`] (its `slurm:` section and the `--slurm-*` flags).

use std::path::Path;

use crate::spec::SlurmOptions;

/// Most clusters cap array indices at 1,000 (`MaxArraySize=1001`), so no chunk is larger.
pub const MAX_ARRAY_TASKS: usize = 1000;

/// Minutes added to a sweep's per-run `timeout` to form the default `--time`, so the run's own
/// timeout (a clean `timeout` outcome with metrics kept) fires before Slurm's kill.
pub const TIME_MARGIN_MIN: u64 = 5;

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
