//! The VALIDATION report: re-classify a results folder's stored CSVs, render
//! `VALIDATION_<name>.md` (minijinja, from view models whose numbers are already formatted), write
//! SVG plots beside it, and optionally JUnit XML.
//!
//! It only reads the results folder (besides writing its own outputs): reconciling the folder
//! first is the command's step (`crate::schedule::reconcile`). Exit codes of
//! [`ReportOutcome::exit_code`]: see [`crate::results::exit`].

mod junit;
mod load;
pub use load::group_label;
mod plot;
mod recommend;
mod view;

pub use junit::junit_xml;
pub use load::{group_runs, load_run, load_runs, GroupResult, LoadedRuns, RunResult, Unfinished};
pub use recommend::{recommend, Recommendation, GRAD_CLIP_KEY, Q_NORM_KEY};

use std::path::{Path, PathBuf};

use crate::config::yaml;
use crate::diag::{Diagnostics, Source};
pub use crate::results::printable;
use crate::results::{exit, GroupId, ResultsDir};
use crate::verdict::{load_criteria, Criteria};

/// The embedded default template (`templates/validation.md.j2`).
pub const DEFAULT_TEMPLATE: &str = include_str!("../../templates/validation.md.j2");

/// The metrics plotted, in order.
pub const PLOTTED: [&str; 3] = ["actor_cnn_grad_norm", "critic_cnn_grad_norm", "q_abs_max"];

/// What `td3-sweep report` was asked to do.
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

/// Why no report could be written. A failed or corrupted *run* is not one of these: it is in the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {why}; give a sweep's results folder, e.g. results/actor_lr")]
    NotResults { path: PathBuf, why: &'static str },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid criteria:\n{0}")]
    Criteria(#[source] Diagnostics),
    /// Printed once: minijinja's alternate form carries the file, line and detail; `line` is that
    /// line of the template, since an undefined value's message does not name it.
    #[error("template {name}: {error:#}{line}")]
    Template {
        name: String,
        error: minijinja::Error,
        line: String,
    },
}

/// The overall status of a sweep: the worst variant group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Pass,
    Investigate,
    /// Some runs have not finished (and no group FAILs): rerun the sweep to resume.
    Incomplete,
    Fail,
}

/// What `generate` did, for the CLI to print and turn into an exit code.
#[derive(Debug, Clone)]
pub struct ReportOutcome {
    pub sweep: String,
    pub status: Status,
    pub report_path: PathBuf,
    pub plots: Vec<PathBuf>,
    /// A plain-text table of variant groups × seeds, for the terminal.
    pub overview: String,
    /// Every unreadable file, `runs/<id>/<file>:line: message` (also printed to stderr).
    pub load_errors: Vec<String>,
    pub runs: Vec<RunResult>,
    pub groups: Vec<GroupResult>,
    pub recommendation: Recommendation,
    /// Rendered with [`ReportOptions::stable`].
    pub stable: bool,
}

impl ReportOutcome {
    /// The status's exit code ([`crate::results::exit`]). Groups, not runs, decide, so a seeds
    /// quorum below `all` is honoured.
    pub fn exit_code(&self) -> i32 {
        match self.status {
            Status::Pass => exit::OK,
            Status::Investigate => exit::INVESTIGATE,
            Status::Fail => exit::FAIL,
            Status::Incomplete => exit::INCOMPLETE,
        }
    }

    /// The JUnit XML for these runs (and the groups' seeds rules, when the criteria have any).
    pub fn junit(&self) -> String {
        junit_xml(&self.sweep, &self.runs, &self.groups, self.stable)
    }
}

/// Writes `text` to `path` atomically ([`crate::results::write_atomic`]).
pub fn write_atomic(path: &Path, text: &str) -> Result<(), ReportError> {
    crate::results::write_atomic(path, text.as_bytes()).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes the JUnit XML of a report's runs to `path` (atomically).
pub fn write_junit(outcome: &ReportOutcome, path: &Path) -> Result<(), ReportError> {
    write_atomic(path, &outcome.junit())
}

/// The sweep's name from `sweep.yaml`'s `name:`, else the folder name.
fn sweep_name(results_dir: &Path) -> String {
    let from_yaml = Source::read(&ResultsDir::new(results_dir).sweep_yaml())
        .ok()
        .and_then(|src| yaml::parse(&src).ok())
        .and_then(|n| n.get("name").and_then(|v| v.as_str().map(str::to_string)));
    from_yaml.unwrap_or_else(|| {
        results_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sweep".into())
    })
}

fn resolve_criteria(
    results_dir: &Path,
    opts: &ReportOptions,
) -> Result<(Criteria, String), ReportError> {
    if let Some(p) = &opts.criteria {
        return Ok((
            load_criteria(p).map_err(ReportError::Criteria)?,
            p.display().to_string(),
        ));
    }
    let stored = ResultsDir::new(results_dir).criteria_yaml();
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

/// Loads, classifies and renders a results folder: `VALIDATION_<name>.md`, `plots/*.svg` and, when
/// asked, JUnit XML. Unreadable runs are reported (and printed to stderr), never fatal.
pub fn generate(results_dir: &Path, opts: &ReportOptions) -> Result<ReportOutcome, ReportError> {
    let results = ResultsDir::new(results_dir);
    if !results.exists() {
        let why = if !results_dir.exists() {
            "does not exist"
        } else if !results_dir.is_dir() {
            "is a file, not a results folder"
        } else {
            "not a results folder (no runs/ folder inside)"
        };
        return Err(ReportError::NotResults {
            path: results_dir.to_path_buf(),
            why,
        });
    }
    let (criteria, criteria_source) = resolve_criteria(results_dir, opts)?;
    let sweep = sweep_name(results_dir);
    // A sweep still running on this folder (another process holding its lock): its started,
    // unended runs are in progress, not interrupted. The sweep's own final report is not a
    // snapshot, whatever its lock says.
    let live =
        crate::results::lock::live_holder(&results.lock()).filter(|h| h.pid != std::process::id());
    let LoadedRuns { mut runs, left_out } =
        load_runs(results_dir, &criteria).map_err(|source| ReportError::Io {
            path: results.runs(),
            source,
        })?;
    if let Some(h) = &live {
        for r in &mut runs {
            if r.unfinished == Some(Unfinished::Interrupted)
                && r.record.as_ref().is_some_and(|x| x.ended_unobserved())
            {
                r.unfinished = Some(Unfinished::Running);
            }
        }
        eprintln!(
            "note: {} is being written by a running sweep (pid {} since {}: `{}`); this report is a snapshot, and runs it has not finished are RUNNING or PENDING",
            results_dir.display(),
            h.pid,
            h.started_at,
            printable(&h.command)
        );
    }
    if !left_out.is_empty() {
        eprintln!(
            "warning: {}: {} run folder(s) under runs/ are not in the sweep's current plan (plan.json) and are left out of the verdict: {}",
            results_dir.display(),
            left_out.len(),
            left_out.join(", ")
        );
    }
    let load_errors: Vec<String> = runs
        .iter()
        .flat_map(|r| r.load_errors.iter().cloned())
        .collect();
    for e in &load_errors {
        eprintln!("warning: {}: {e}", results_dir.display());
    }
    for n in runs.iter().flat_map(|r| &r.notes) {
        eprintln!("note: {}: {n}", results_dir.display());
    }
    let groups = group_runs(&runs, &criteria);
    let ladder_state = crate::results::LadderState::read(&results);
    // A ladder recommends among the variants that reached its last stage.
    let finalists: Option<Vec<String>> = ladder_state.as_ref().and_then(|l| {
        l.stages
            .last()
            .map(|s| s.entered.iter().map(GroupId::to_string).collect())
    });
    let recommendation = recommend(&groups, &runs, finalists.as_deref());
    let mut worst = groups
        .iter()
        .map(|g| g.verdict.severity())
        .max()
        .unwrap_or(0);
    // A finished ladder that approved nobody is not a PASS, whatever its early stages said.
    let ladder_done = ladder_state
        .as_ref()
        .is_some_and(|l| l.stages.iter().all(|s| s.done || s.entered.is_empty()));
    if ladder_done && finalists.as_ref().is_some_and(|f| f.is_empty()) {
        worst = worst.max(1);
    }
    let status = match worst {
        0 => Status::Pass,
        1 => Status::Investigate,
        2 => Status::Incomplete,
        _ => Status::Fail,
    };

    let plots_dir = results.plots();
    let mut plots = Vec::new();
    let mut plot_views = Vec::new();
    for metric in PLOTTED {
        match view::plot_metric(metric, &criteria, &groups, &runs) {
            Ok(None) => {}
            Ok(Some(svg)) => {
                std::fs::create_dir_all(&plots_dir).map_err(|source| ReportError::Io {
                    path: plots_dir.clone(),
                    source,
                })?;
                let path = results.plot(metric);
                write_atomic(&path, &svg)?;
                plots.push(path);
                plot_views.push(view::PlotView::ok(metric));
            }
            Err(e) => {
                eprintln!("warning: plot {metric}: {e}");
                plot_views.push(view::PlotView::failed(metric, &e));
            }
        }
    }

    let date = match (&opts.date, opts.stable) {
        (Some(d), _) => d.clone(),
        (None, true) => view::STABLE_BLANK.to_string(),
        (None, false) => chrono::Local::now().format("%Y-%m-%d %H:%M").to_string(),
    };
    let model = view::build(view::Input {
        sweep: &sweep,
        date,
        stable: opts.stable,
        criteria: &criteria,
        criteria_source,
        runs: &runs,
        groups: &groups,
        recommendation: &recommendation,
        plots: plot_views,
        load_errors: &load_errors,
        left_out: &left_out,
        worst,
    });
    let mut model = model;
    if let Some(l) = ladder_state {
        let plot = match ladder_plot(&l, &runs) {
            Ok(Some(svg)) => {
                std::fs::create_dir_all(&plots_dir).map_err(|source| ReportError::Io {
                    path: plots_dir.clone(),
                    source,
                })?;
                let path = results.plot("ladder_critic_loss");
                write_atomic(&path, &svg)?;
                plots.push(path);
                Some("plots/ladder_critic_loss.svg".to_string())
            }
            Ok(None) => None,
            Err(e) => {
                eprintln!("warning: ladder plot: {e}");
                None
            }
        };
        // A ladder's groups ended at different stages: say where, beside each verdict.
        let n = l.stages.len();
        for (g, gv) in groups.iter().zip(model.overview.iter_mut()) {
            let id = GroupId::new(&g.variant, &g.swept);
            if let Some((k, st)) = l
                .stages
                .iter()
                .enumerate()
                .rev()
                .find(|(_, st)| st.entered.contains(&id))
            {
                gv.label = format!("{} · stage {} `{}` of {n}", gv.label, k + 1, st.name);
            }
        }
        model.ladder = Some(view::ladder_view(&l, plot));
    }
    let (name, text) = match &opts.template {
        Some(p) => (
            p.display().to_string(),
            std::fs::read_to_string(p).map_err(|source| ReportError::Io {
                path: p.clone(),
                source,
            })?,
        ),
        None => (
            "validation.md.j2 (embedded)".to_string(),
            DEFAULT_TEMPLATE.to_string(),
        ),
    };
    let rendered =
        render(&name, &text, &model).map_err(|error| {
            let line = error
                .line()
                .and_then(|n| text.lines().nth(n.saturating_sub(1)))
                .map(|l| format!("\n  | {}\n  = hint: check the names used on this line against the fields the embedded templates/validation.md.j2 uses", l.trim_end()))
                .unwrap_or_default();
            ReportError::Template { name, error, line }
        })?;
    let report_path = results.report_md(&sweep);
    write_atomic(&report_path, &rendered)?;
    let overview = view::overview_text(&groups, &runs);
    let outcome = ReportOutcome {
        sweep,
        status,
        report_path,
        plots,
        overview,
        load_errors,
        runs,
        groups,
        recommendation,
        stable: opts.stable,
    };
    if let Some(j) = &opts.junit {
        write_junit(&outcome, j)?;
    }
    Ok(outcome)
}

/// Checks the output options before any work: a `--template` that is not a readable file or
/// does not compile, and a `--junit` path whose folder does not exist or that names a folder.
/// Every problem, one line each (`--flag PATH: why`), so a long sweep never trains only to fail
/// at the report.
pub fn check_outputs(template: Option<&Path>, junit: Option<&Path>) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(t) = template {
        match std::fs::read_to_string(t) {
            Err(_) if t.is_dir() => problems.push(format!(
                "--template {}: is a folder; give a template file (the embedded one is templates/validation.md.j2)",
                t.display()
            )),
            Err(e) => problems.push(format!("--template {}: {e}", t.display())),
            Ok(text) => {
                let mut env = minijinja::Environment::new();
                if let Err(e) = env.add_template_owned(t.display().to_string(), text) {
                    problems.push(format!("--template {}: {e:#}", t.display()));
                }
            }
        }
    }
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

fn render(name: &str, text: &str, model: &view::ReportView) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    // A typo in a custom template should fail loudly, not render an empty cell.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template_owned(name.to_string(), text.to_string())?;
    env.get_template(name)?.render(model)
}

/// The continuous critic-loss curve of every run of a ladder, with each stage's end marked.
fn ladder_plot(
    l: &crate::results::LadderState,
    runs: &[load::RunResult],
) -> Result<Option<String>, String> {
    let series: Vec<plot::Series> = runs
        .iter()
        .map(|r| plot::Series {
            label: r.dir_name.clone(),
            points: r
                .rows
                .iter()
                .filter_map(|row| row.critic_loss.map(|v| (row.train_step as f64, v)))
                .collect(),
        })
        .collect();
    let markers: Vec<plot::Marker> = l
        .stages
        .iter()
        .filter(|s| s.done)
        .filter_map(|s| {
            let x = s.runs.iter().map(|r| r.train_step).max()?;
            Some(plot::Marker {
                x: x as f64,
                label: format!("end of {}", s.name),
            })
        })
        .collect();
    plot::render_svg_marked(
        "critic_loss across the ladder's stages",
        &series,
        &[],
        &markers,
    )
}
