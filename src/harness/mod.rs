//! The harness: one run of an external trainer (`td3-sweep external`, the child a sweep starts for
//! a run when its sweep has a `trainer:`).
//!
//! It starts the trainer in a process group of its own, with the `TD3SWEEP_*` environment of
//! `trainer.json`, and then, until the trainer exits: reads the rows the trainer flushes to its
//! CSV, maps them into the run's `metrics.csv` (printing each as a progress line, so the sweep's
//! display, fail-fast and stall timeout work as for built-in runs), ends the trainer when a value
//! turns non-finite (diverged) or a FAIL is certain (stopped), and forwards an interrupt. Ending
//! means SIGTERM to the whole group, a grace period, then SIGKILL, so the workers a trainer starts
//! end with it; when the trainer exits, whatever is left of its group is ended too. The sweep
//! learns the group from a `@@trainer-pgid` line, so it can kill the group even if this process is
//! killed first. The run's outcome, the trainer's exact invocation and its steps go to `run.json`.

pub mod columns;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use columns::{fields, Columns, Tail};

use crate::results::metrics::{write_evidence, EvidenceStep};
use crate::results::protocol::{Progress, TRAINER_PGID_PREFIX};
use crate::results::trainer::{Invocation, SLOT_ENV};
use crate::results::{
    printable, MetricRow, MetricsWriter, Outcome, RunDir, RunRecord, PLACEHOLDER_REASON,
};
use crate::verdict::Criteria;

/// Rows kept for `evidence.csv`.
const EVIDENCE_ROWS: usize = 50;

/// How often the trainer's CSV and exit are checked.
const POLL: Duration = Duration::from_millis(100);

/// Everything about the run besides its invocation.
pub struct HarnessOptions {
    pub dir: RunDir,
    /// The run's identity in its sweep, as `run.json` records it.
    pub identity: RunRecord,
    /// The criteria for fail-fast; `None`: no fail-fast.
    pub criteria: Option<Criteria>,
    /// End the run when its FAIL is certain (otherwise only write `evidence.csv`).
    pub stop_on_fail: bool,
    /// Print `@@progress` lines.
    pub progress: bool,
    /// Set by SIGINT/SIGTERM/SIGHUP: end the trainer, outcome interrupted.
    pub interrupt: Arc<AtomicBool>,
    /// Set when the sweep is gone (stdin closed): end the trainer and exit.
    pub orphaned: Arc<AtomicBool>,
    /// SIGTERM to SIGKILL.
    pub grace: Duration,
}

/// Why the harness ended the trainer.
#[derive(Debug, Clone, PartialEq)]
enum Ending {
    /// A non-finite value in a column the harness reads.
    Diverged { step: u64, what: String },
    /// Fail-fast: the criteria's FAIL is certain.
    Stopped(String),
    /// The trainer's CSV cannot be read or mapped, or the run's own files cannot be written: the
    /// run cannot be judged, so it is crashed.
    Unreadable(String),
    /// SIGINT, SIGTERM or SIGHUP reached the harness (Ctrl-C, the run's timeout).
    Interrupted,
    /// The sweep went away.
    Orphaned,
}

/// The state of one harness run.
struct Watch {
    tail: Tail,
    columns: Option<Columns>,
    writer: MetricsWriter,
    last_rows: VecDeque<MetricRow>,
    rows: u64,
    last: Option<MetricRow>,
    max_gap: u64,
    notes: Vec<String>,
    started: Instant,
    fail_noted: bool,
}

/// Runs the trainer to an outcome and writes `run.json`; returns the final record.
pub fn run(inv: &Invocation, opts: &HarnessOptions) -> anyhow::Result<RunRecord> {
    let started = Instant::now();
    let mut rec = opts.identity.clone();
    let recorded = recorded_invocation(inv);
    // With the slot's variables: the command reproduces the run as it ran.
    rec.command = recorded.shell_line();
    rec.invocation = Some(recorded);
    rec.steps_planned = inv.steps;
    rec.q_bound = inv.q_bound;
    // The trainer brings its own framework; td3-sweep's libtorch did not train this run.
    rec.libtorch_version = String::new();
    rec.started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    rec.device = device_of_slot();
    rec.outcome = Outcome::Crashed;
    rec.reason = Some(PLACEHOLDER_REASON.into());
    rec.provisional = true;
    // The trainer's own code, for reproduction (td3-sweep's is `git_commit`).
    rec.extra.insert(
        "trainer_git_commit".into(),
        crate::train::run::git_commit_of(&inv.workdir),
    );
    opts.dir.write_record(&rec)?;

    let metrics_path = inv
        .metrics_path()
        .unwrap_or_else(|| opts.dir.trainer_metrics());
    if !inv.resumes() {
        // A fresh start: an earlier attempt's rows are not this run's.
        for p in [metrics_path.clone(), opts.dir.evidence_csv()] {
            if p.is_file() {
                std::fs::remove_file(&p)?;
            }
        }
    }
    let mut watch = Watch {
        tail: Tail::new(&metrics_path),
        columns: None,
        writer: MetricsWriter::create(&opts.dir.metrics_csv())?,
        last_rows: VecDeque::new(),
        rows: 0,
        last: None,
        max_gap: 0,
        notes: Vec::new(),
        started,
        fail_noted: false,
    };
    let mut child = match spawn(inv) {
        Ok(c) => c,
        Err(e) => {
            rec.reason = Some(format!("cannot start `{}`: {e}", inv.argv[0]));
            return finish(rec, opts, &watch, Outcome::Crashed, "not started".into());
        }
    };
    let pgid = child.id();
    crate::say!("{TRAINER_PGID_PREFIX}{pgid}");
    let relayed = relay_stdout(&mut child);
    let mut ending: Option<(Ending, Instant)> = None;
    let status = loop {
        // Whatever goes wrong here (a full disk under metrics.csv), the trainer must not be
        // left running: it ends the run like any other reason.
        let polled = watch
            .poll(inv, opts)
            .unwrap_or_else(|e| Some(Ending::Unreadable(format!("{e:#}"))));
        if let Some(e) = polled {
            if ending.is_none() {
                crate::sys::signal_group(pgid, libc::SIGTERM);
                ending = Some((e, Instant::now()));
            }
        }
        if ending.is_none() {
            let signalled = if opts.orphaned.load(Ordering::SeqCst) {
                Some(Ending::Orphaned)
            } else if opts.interrupt.load(Ordering::SeqCst) {
                Some(Ending::Interrupted)
            } else {
                None
            };
            if let Some(e) = signalled {
                crate::sys::signal_group(pgid, libc::SIGTERM);
                ending = Some((e, Instant::now()));
            }
        }
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => {
                end_group(pgid, Duration::ZERO);
                return Err(anyhow::Error::new(e).context("waiting for the trainer"));
            }
        }
        if ending
            .as_ref()
            .is_some_and(|(_, t)| t.elapsed() >= opts.grace)
        {
            crate::sys::signal_group(pgid, libc::SIGKILL);
        }
        std::thread::sleep(POLL);
    };
    // Rows flushed just before the exit.
    let polled = watch
        .poll(inv, opts)
        .unwrap_or_else(|e| Some(Ending::Unreadable(format!("{e:#}"))));
    if let Some(e) = polled {
        ending.get_or_insert((e, Instant::now()));
    }
    end_group(pgid, opts.grace);
    // The rest of its output, unless something it detached still holds the pipe.
    let _ = relayed.recv_timeout(Duration::from_secs(1));
    let exit = crate::results::exit::describe(status);
    let (outcome, reason) = outcome(&ending.map(|(e, _)| e), status, &watch, inv, &exit);
    rec.reason = reason;
    finish(rec, opts, &watch, outcome, exit)
}

/// The trainer's process, in a new process group, in its working directory with its environment.
fn spawn(inv: &Invocation) -> std::io::Result<Child> {
    let program = PathBuf::from(&inv.argv[0]);
    // A relative path with a `/` means relative to the trainer's folder, as the sweep file says.
    let program = if program.is_relative() && inv.argv[0].contains('/') {
        inv.workdir.join(program)
    } else {
        program
    };
    Command::new(program)
        .args(&inv.argv[1..])
        .current_dir(&inv.workdir)
        .envs(&inv.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
}

/// Copies the trainer's stdout to ours (the run's stdout.log), line by line; the receiver hears
/// when it ends. The trainer does not write to our stdout itself: a process it detached
/// (`setsid`) would then hold the sweep's pipe open after the run ended. Bytes that are not UTF-8
/// are replaced, a line longer than [`RELAY_LINE_MAX`] is cut, and the pipe is drained to its end
/// whatever comes, so the trainer never blocks or dies writing to it. A trainer line that looks
/// like a protocol line (`@@…`) is indented so the sweep does not take it for one.
fn relay_stdout(child: &mut Child) -> std::sync::mpsc::Receiver<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take();
    std::thread::spawn(move || {
        if let Some(out) = out {
            let mut r = BufReader::new(out);
            let mut line: Vec<u8> = Vec::new();
            loop {
                let (done, used) = match r.fill_buf() {
                    Ok([]) | Err(_) => (true, 0),
                    Ok(buf) => {
                        let end = buf.iter().position(|&b| b == b'\n');
                        let take = end.map_or(buf.len(), |i| i + 1);
                        let room = RELAY_LINE_MAX.saturating_sub(line.len());
                        line.extend_from_slice(&buf[..take.min(room)]);
                        if end.is_some() || line.len() >= RELAY_LINE_MAX {
                            emit(&line);
                            line.clear();
                        }
                        (false, take)
                    }
                };
                r.consume(used);
                if done {
                    break;
                }
            }
            if !line.is_empty() {
                emit(&line);
            }
        }
        let _ = tx.send(());
    });
    rx
}

/// The longest trainer output line the relay passes on whole (a longer one is cut there).
const RELAY_LINE_MAX: usize = 64 * 1024;

/// One relayed line.
fn emit(raw: &[u8]) {
    let text = String::from_utf8_lossy(raw);
    let line = text.trim_end_matches(['\n', '\r']);
    if line.starts_with("@@") {
        crate::say!(" {line}");
    } else {
        crate::say!("{line}");
    }
}

/// After the trainer exited: its workers must not outlive it. SIGTERM to what is left of the
/// group, then SIGKILL after the grace period.
fn end_group(pgid: u32, grace: Duration) {
    if !crate::sys::signal_group(pgid, 0) {
        return;
    }
    crate::sys::signal_group(pgid, libc::SIGTERM);
    let t = Instant::now();
    while crate::sys::signal_group(pgid, 0) && t.elapsed() < grace {
        std::thread::sleep(POLL);
    }
    crate::sys::signal_group(pgid, libc::SIGKILL);
}

impl Watch {
    /// Reads the rows flushed since the last poll into `metrics.csv`; `Some` when the run must end.
    fn poll(&mut self, inv: &Invocation, opts: &HarnessOptions) -> anyhow::Result<Option<Ending>> {
        let (lines, restarted) = self.tail.read()?;
        if restarted {
            // The trainer started its CSV over: so does the run's metrics.csv, or the two
            // attempts' rows would read as one series.
            self.note(
                "the trainer rewrote its CSV from the start; metrics.csv starts over with it",
            );
            self.columns = None;
            self.writer = MetricsWriter::create(&opts.dir.metrics_csv())?;
            self.last_rows.clear();
            self.last = None;
            self.rows = 0;
            self.max_gap = 0;
        }
        for (n, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let cells = fields(&line);
            let Some(cols) = &self.columns else {
                match Columns::new(&cells, &inv.metrics) {
                    Ok(c) => {
                        for (metric, column) in &c.missing {
                            self.note(&format!(
                                "trainer.metrics maps {metric} to `{column}`, which the trainer's header lacks: {metric} is not measured"
                            ));
                        }
                        self.columns = Some(c);
                    }
                    Err(e) => {
                        return Ok(Some(Ending::Unreadable(format!("the trainer's CSV: {e}"))))
                    }
                }
                continue;
            };
            let row = match cols.row(&cells, self.started.elapsed().as_secs_f64()) {
                Ok(r) => r,
                Err(e) => {
                    return Ok(Some(Ending::Unreadable(format!(
                        "the trainer's CSV, line {n}: {e}"
                    ))))
                }
            };
            if let Some(e) = self.take(row, opts)? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// Records one mapped row; `Some` when it ends the run.
    fn take(&mut self, row: MetricRow, opts: &HarnessOptions) -> anyhow::Result<Option<Ending>> {
        self.writer.write(&row)?;
        if opts.progress {
            crate::say!(
                "{}",
                Progress {
                    steps: opts.identity.steps_planned.max(1),
                    row: row.clone(),
                }
                .line()
            );
            let _ = std::io::stdout().flush();
        }
        if let Some(prev) = &self.last {
            self.max_gap = self.max_gap.max(row.env_step.saturating_sub(prev.env_step));
        }
        self.rows += 1;
        if self.last_rows.len() == EVIDENCE_ROWS {
            self.last_rows.pop_front();
        }
        self.last_rows.push_back(row.clone());
        self.last = Some(row.clone());
        if row.nonfinite > 0 {
            let what = crate::results::Metric::ALL
                .iter()
                .filter(|m| row.value(**m).is_some_and(|v| !v.is_finite()))
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", ");
            self.evidence(opts, row.train_step, "first_nonfinite");
            return Ok(Some(Ending::Diverged {
                step: row.train_step,
                what,
            }));
        }
        let Some(c) = &opts.criteria else {
            return Ok(None);
        };
        if self.fail_noted {
            return Ok(None);
        }
        let q_bound = opts.identity.q_bound;
        if let Some(why) = crate::verdict::certain_fail(c, std::slice::from_ref(&row), q_bound) {
            self.fail_noted = true;
            self.evidence(opts, row.train_step, "fail_detected");
            if opts.stop_on_fail {
                return Ok(Some(Ending::Stopped(why)));
            }
            self.note(&format!(
                "FAIL certain ({why}); stop_on_fail is off, so the run goes on"
            ));
        }
        Ok(None)
    }

    /// `evidence.csv`: the trainer's last rows before `step`.
    fn evidence(&mut self, opts: &HarnessOptions, step: u64, marker: &str) {
        let steps: Vec<EvidenceStep> = self
            .last_rows
            .iter()
            .map(|r| EvidenceStep {
                row: r.clone(),
                layers: &[],
            })
            .collect();
        if let Err(e) = write_evidence(&opts.dir.evidence_csv(), &[], &steps, step, marker) {
            self.note(&format!("could not write evidence.csv: {e}"));
        }
    }

    /// A remark for the run's stdout.log and `run.json`.
    fn note(&mut self, text: &str) {
        crate::say!("td3-sweep harness: {text}");
        self.notes.push(text.to_string());
    }
}

/// The outcome and reason from how the run ended.
fn outcome(
    ending: &Option<Ending>,
    status: ExitStatus,
    watch: &Watch,
    inv: &Invocation,
    exit: &str,
) -> (Outcome, Option<String>) {
    match ending {
        Some(Ending::Diverged { step, what }) => (
            Outcome::Diverged,
            Some(format!("the trainer logged a non-finite {what} at training step {step}")),
        ),
        Some(Ending::Stopped(why)) => (Outcome::Stopped, Some(format!("fail-fast: {why}"))),
        Some(Ending::Unreadable(why)) => (Outcome::Crashed, Some(why.clone())),
        Some(Ending::Interrupted) => (Outcome::Interrupted, Some("interrupted".into())),
        Some(Ending::Orphaned) => (
            Outcome::Interrupted,
            Some("the sweep went away; the trainer was ended".into()),
        ),
        None if status.success() => match &watch.last {
            None => (
                Outcome::Crashed,
                Some(format!(
                    "the trainer exited with code 0 but wrote no rows to {}",
                    inv.metrics_path().unwrap_or_default().display()
                )),
            ),
            // Complete when the last row is within one logging interval of the end (a trainer
            // that logs every 100 steps of 1,000 may last log at 900).
            Some(last) if last.env_step + watch.max_gap.max(1) >= inv.steps => {
                (Outcome::Completed, None)
            }
            Some(last) => (
                Outcome::Crashed,
                Some(format!(
                    "the trainer exited with code 0 after step {} of {} (its last row; rows came every {} steps at most)",
                    last.env_step, inv.steps, watch.max_gap
                )),
            ),
        },
        None => (Outcome::Crashed, Some(format!("the trainer ended with {exit}"))),
    }
}

/// Writes the final record and returns it.
fn finish(
    mut rec: RunRecord,
    opts: &HarnessOptions,
    watch: &Watch,
    outcome: Outcome,
    exit: String,
) -> anyhow::Result<RunRecord> {
    rec.outcome = outcome;
    rec.provisional = false;
    rec.wall_s = watch.started.elapsed().as_secs_f64();
    if let Some(last) = &watch.last {
        rec.steps_done = last.env_step;
        rec.train_steps_done = last.train_step;
    }
    if outcome == Outcome::Completed {
        // It exited 0 with its last row within a logging interval of the end: it did the steps
        // asked of it, logged or not.
        rec.steps_done = rec.steps_done.max(rec.steps_planned);
    }
    if outcome == Outcome::Diverged {
        rec.first_nonfinite_step = watch.last.as_ref().map(|r| r.train_step);
    }
    // The trainer's exit, not this process's: the sweep keeps it.
    rec.exit = Some(exit);
    rec.extra
        .insert("trainer_rows".into(), watch.rows.to_string());
    if !watch.notes.is_empty() {
        rec.extra
            .insert("harness_notes".into(), printable(&watch.notes.join("\n")));
    }
    if let Some(cols) = &watch.columns {
        // Not the columns this harness fills in itself.
        use crate::results::Metric::{EnvStep, Nonfinite, WallS};
        let unmeasured: Vec<&str> = crate::results::Metric::ALL
            .iter()
            .filter(|m| !cols.has(**m) && ![EnvStep, Nonfinite, WallS].contains(*m))
            .map(|m| m.name())
            .collect();
        rec.extra.insert("not_logged".into(), unmeasured.join(","));
    }
    opts.dir.write_record(&rec)?;
    Ok(rec)
}

/// The invocation as the trainer got it: with the slot's variables this process inherited.
fn recorded_invocation(inv: &Invocation) -> Invocation {
    let mut inv = inv.clone();
    for k in SLOT_ENV {
        if let Ok(v) = std::env::var(k) {
            inv.env.entry(k.to_string()).or_insert(v);
        }
    }
    inv
}

/// "cuda:0" when the slot gave the run a GPU, else "cpu" (the trainer picks its own device; this
/// is what it was allowed).
fn device_of_slot() -> String {
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(v) if !v.trim().is_empty() => format!("cuda (CUDA_VISIBLE_DEVICES={v})"),
        _ => "cpu".into(),
    }
}
