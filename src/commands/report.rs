//! `td3-sweep report`, and the report step of `sweep`: reconcile a results folder, read and judge
//! its runs, build the report and write its files, without training.
//!
//! The steps are separate so each can be used alone: [`build`] only reads (a report of a
//! read-only folder, or of a test fixture, needs no copy), [`generate`] also writes the outputs
//! through the results folder's atomic writer.

use std::path::{Path, PathBuf};

use super::BadInput;
use crate::cli::ReportArgs;
use crate::config::yaml;
use crate::diag::Source;
use crate::report::{Exporter, Judged, Markdown, Plots, Report, ReportError, STABLE_BLANK};
use crate::results::{load_runs, printable, write_atomic, LadderState, ResultsDir};
use crate::schedule::reconcile::{reconcile, By};
use crate::verdict::{judge, load_criteria, Criteria, Unfinished};

/// What a report was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// A template file to use instead of the embedded one.
    pub template: Option<PathBuf>,
    /// Also write JUnit XML here.
    pub junit: Option<PathBuf>,
    /// Criteria file overriding the results folder's `criteria.yaml`.
    pub criteria: Option<PathBuf>,
    /// The date printed in the header; `None` means now (local time). Tests pin it.
    pub date: Option<String>,
    /// Leave out what changes between two renderings of the same results on another day or
    /// commit (date, git commit, run durations), so the report can be snapshot-tested.
    pub stable: bool,
}

/// What [`generate`] wrote.
#[derive(Debug)]
pub struct ReportOutcome {
    pub report: Report,
    /// `VALIDATION_<name>.md`.
    pub report_path: PathBuf,
    pub plots: Vec<PathBuf>,
}

/// Renders `VALIDATION_<name>.md` for a results folder, once it is reconciled (Slurm tasks nobody
/// watched settled, `summary.csv` brought up to date); the exit code is the verdict's.
pub fn run(args: ReportArgs) -> anyhow::Result<i32> {
    let opts = ReportOptions {
        template: args.template.clone(),
        junit: args.junit.clone(),
        criteria: args.criteria.clone(),
        stable: args.stable,
        ..Default::default()
    };
    super::check_report_outputs(args.template.as_deref(), args.junit.as_deref())?;
    reconcile(&ResultsDir::new(&args.dir), By::Report);
    let out = generate(&args.dir, &opts).map_err(|e| -> anyhow::Error {
        match e {
            // Bad input (exit 2), each printed once: the diagnostics already name file:line:key.
            ReportError::Criteria(d) => d.into(),
            e @ ReportError::NotResults { .. } => BadInput(e.to_string()).into(),
            // A custom template that does not render is the user's file (the embedded one is
            // tested): bad input.
            e @ ReportError::Template { .. } if args.template.is_some() => {
                BadInput(e.to_string()).into()
            }
            e => e.into(),
        }
    })?;
    println!("{}", out.report.overview);
    println!("report: {}", out.report_path.display());
    if let Some(j) = &args.junit {
        println!("junit:  {}", j.display());
    }
    Ok(out.report.exit_code())
}

/// The sweep's name from `sweep.yaml`'s `name:`, else the folder name.
fn sweep_name(results: &ResultsDir) -> String {
    let from_yaml = Source::read(&results.sweep_yaml())
        .ok()
        .and_then(|src| yaml::parse(&src).ok())
        .and_then(|n| n.get("name").and_then(|v| v.as_str().map(str::to_string)));
    from_yaml.unwrap_or_else(|| {
        results
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sweep".into())
    })
}

/// The criteria to judge with and where they came from: `--criteria`, else the folder's
/// `criteria.yaml`, else the built-in default.
fn resolve_criteria(
    results: &ResultsDir,
    opts: &ReportOptions,
) -> Result<(Criteria, String), ReportError> {
    if let Some(p) = &opts.criteria {
        return Ok((
            load_criteria(p).map_err(ReportError::Criteria)?,
            p.display().to_string(),
        ));
    }
    let stored = results.criteria_yaml();
    if stored.is_file() {
        return Ok((
            load_criteria(&stored).map_err(ReportError::Criteria)?,
            "criteria.yaml".into(),
        ));
    }
    Ok((
        Criteria::default_set(),
        "built-in default (criteria/default.yaml)".into(),
    ))
}

/// Why a folder is not a results folder, or `None` when it is one.
fn not_results(results: &ResultsDir) -> Option<ReportError> {
    if results.exists() {
        return None;
    }
    let p = results.path();
    let why = if !p.exists() {
        "does not exist"
    } else if !p.is_dir() {
        "is a file, not a results folder"
    } else {
        "not a results folder (no runs/ folder inside)"
    };
    Some(ReportError::NotResults {
        path: p.to_path_buf(),
        why,
    })
}

/// Reads and judges a results folder and builds its report, writing nothing. Unreadable runs are
/// in the report (and printed to stderr), never fatal.
pub fn build(results_dir: &Path, opts: &ReportOptions) -> Result<Report, ReportError> {
    let results = ResultsDir::new(results_dir);
    if let Some(e) = not_results(&results) {
        return Err(e);
    }
    let (criteria, criteria_source) = resolve_criteria(&results, opts)?;
    let loaded = load_runs(&results).map_err(|source| ReportError::Io {
        path: results.runs(),
        cause: source,
    })?;
    let shown = results_dir.display();
    if !loaded.left_out.is_empty() {
        eprintln!(
            "warning: {shown}: {} run folder(s) under runs/ are not in the sweep's current plan (plan.json) and are left out of the verdict: {}",
            loaded.left_out.len(),
            loaded.left_out.join(", ")
        );
    }
    for r in &loaded.runs {
        for e in &r.load_errors {
            eprintln!("warning: {shown}: {e}");
        }
        for n in &r.notes {
            eprintln!("note: {shown}: {n}");
        }
    }
    let mut judgement = judge(loaded.runs, &criteria);
    // A sweep still running on this folder (another process holding its lock): its started,
    // unended runs are in progress, not interrupted. The sweep's own final report is not a
    // snapshot, whatever its lock says.
    let live =
        crate::results::lock::live_holder(&results.lock()).filter(|h| h.pid != std::process::id());
    if let Some(h) = &live {
        for r in &mut judgement.runs {
            if r.unfinished == Some(Unfinished::Interrupted)
                && r.record.as_ref().is_some_and(|x| x.ended_unobserved())
            {
                r.unfinished = Some(Unfinished::Running);
            }
        }
        eprintln!(
            "note: {shown} is being written by a running sweep (pid {} since {}: `{}`); this report is a snapshot, and runs it has not finished are RUNNING or PENDING",
            h.pid,
            h.started_at,
            printable(&h.command)
        );
    }
    let date = match (&opts.date, opts.stable) {
        (Some(d), _) => d.clone(),
        (None, true) => STABLE_BLANK.to_string(),
        (None, false) => chrono::Local::now().format("%Y-%m-%d %H:%M").to_string(),
    };
    Ok(Report::new(
        Judged {
            sweep: sweep_name(&results),
            criteria,
            criteria_source,
            runs: judgement.runs,
            groups: judgement.groups,
            ladder: LadderState::read(&results),
            left_out: loaded.left_out,
        },
        date,
        opts.stable,
    ))
}

/// Writes one output atomically, creating its folder.
fn write_output(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io {
            path,
            cause: source,
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    write_atomic(path, bytes).map_err(io(path))
}

/// [`build`]s the report and writes it: the plots, `VALIDATION_<name>.md` and, when asked, JUnit
/// XML.
pub fn generate(results_dir: &Path, opts: &ReportOptions) -> Result<ReportOutcome, ReportError> {
    // Read first: a template that cannot be read fails before anything is judged or written.
    let markdown = Markdown::from_file(opts.template.as_deref())?;
    let report = build(results_dir, opts)?;
    let mut plots = Vec::new();
    for out in Plots.export(&report)? {
        let path = results_dir.join(&out.name);
        write_output(&path, &out.bytes)?;
        plots.push(path);
    }
    let mut report_path = PathBuf::new();
    for out in markdown.export(&report)? {
        report_path = results_dir.join(&out.name);
        write_output(&report_path, &out.bytes)?;
    }
    if let Some(j) = &opts.junit {
        write_output(j, report.junit().as_bytes())?;
    }
    Ok(ReportOutcome {
        report,
        report_path,
        plots,
    })
}

/// Checks the output options before any work: a `--template` that is not a readable file or
/// does not compile, and a `--junit` path whose folder does not exist or that names a folder.
/// Every problem, one line each (`--flag PATH: why`), so a long sweep never trains only to fail
/// at the report.
pub fn check_outputs(template: Option<&Path>, junit: Option<&Path>) -> Vec<String> {
    let mut problems: Vec<String> = template
        .and_then(crate::report::check_template)
        .into_iter()
        .collect();
    if let Some(j) = junit {
        let parent = j
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if j.is_dir() {
            problems.push(format!(
                "--junit {}: is a folder; give a file path such as {}",
                j.display(),
                j.join("junit.xml").display()
            ));
        } else if !parent.is_dir() {
            problems.push(format!(
                "--junit {}: the folder {} does not exist; create it first",
                j.display(),
                parent.display()
            ));
        }
    }
    problems
}
