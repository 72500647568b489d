//! The local executor: each run is a child process of this same binary (`td3-sweep train ...`,
//! or `td3-sweep external ...`, the harness around a user's own trainer).
//!
//! A harness names its trainer's process group on stdout (`@@trainer-pgid`); whenever this
//! executor has to kill the harness, or the harness dies by a signal, that group is killed too, so
//! no trainer process outlives its run.
//!
//! A panic, abort, segfault or OOM kill in the child is a `crashed` outcome here, never a crash of
//! the sweep. The child's stdout goes to `stdout.log` (progress lines are also parsed), its stderr
//! to `stderr.log`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Control, Event, Executor, Slot, SlotDevice};
use crate::results::protocol::{trainer_pgid, Progress, SLURM_TASK_KEY};
use crate::results::{exit, printable, read_metrics, Outcome, PlannedRun, RunRecord};

/// Time between SIGTERM and SIGKILL for a run that times out or is interrupted, and the longest
/// a child outlives a sweep that died: 10 s, or `TD3_SWEEP_KILL_GRACE_S` seconds.
pub fn kill_grace() -> Duration {
    let s = std::env::var("TD3_SWEEP_KILL_GRACE_S")
        .ok()
        .and_then(|v| v.parse::<f64>().ok());
    Duration::from_secs_f64(s.unwrap_or(10.0).max(0.0))
}

/// Calls `gone` on a thread of its own once stdin reaches its end: a child started with
/// `--watch-stdin` holds the write end of nothing but its parent sweep's pipe, so the end means
/// the sweep is gone (possibly SIGKILLed).
pub fn on_parent_gone(gone: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        while stdin
            .lock()
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            line.clear();
        }
        gone();
    });
}

/// Runs jobs as child processes of `program`.
pub struct ProcessExecutor {
    pub program: std::path::PathBuf,
    /// Grace period between SIGTERM and SIGKILL.
    pub grace: Duration,
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

impl Executor for ProcessExecutor {
    fn execute(
        &self,
        job: &PlannedRun,
        slot: &Slot,
        ctl: &Control,
        tx: &Sender<Event>,
    ) -> RunRecord {
        let dir = job.dir();
        let started = Instant::now();
        let fail = |why: String| {
            RunRecord::placeholder(
                job,
                Outcome::Crashed,
                Some(why),
                started.elapsed().as_secs_f64(),
            )
        };
        let stdout_log = match std::fs::File::create(dir.stdout_log()) {
            Ok(f) => f,
            Err(e) => return fail(format!("cannot create stdout.log: {e}")),
        };
        let stderr_log = match std::fs::File::create(dir.stderr_log()) {
            Ok(f) => f,
            Err(e) => return fail(format!("cannot create stderr.log: {e}")),
        };
        // Files older than this launch belong to an earlier attempt (a `--rerun`): never read them
        // as this attempt's record or progress.
        let launched_at = std::time::SystemTime::now() - Duration::from_millis(50);
        let mut child = match self.command(job, slot, stderr_log).spawn() {
            Ok(c) => c,
            Err(e) => return fail(format!("cannot start {}: {e}", self.program.display())),
        };
        // Keep the child's stdin open: it ends the run when this pipe closes (we died).
        let stdin = child.stdin.take();
        let seen = Arc::new(Seen::new(started));
        let reader = forward_stdout(
            child.stdout.take(),
            stdout_log,
            job.index,
            tx.clone(),
            seen.clone(),
        );
        let (status, forced) = self.wait(&mut child, job, started, ctl, &seen);
        drop(stdin);
        if status.as_ref().is_ok_and(|s| s.signal().is_some()) {
            // The harness died without ending its trainer: end the trainer's group here (before
            // waiting for the child's stdout, which a trainer still running would hold open).
            seen.kill_trainer_group();
        }
        let _ = reader.join();
        let wall = started.elapsed().as_secs_f64();
        let status = match status {
            Ok(s) => s,
            Err(e) => return fail(format!("waiting for the child failed: {e}")),
        };
        let mut rec = final_record(job, status, forced, wall, launched_at);
        if forced == Some(Forced::Stalled) {
            rec.reason = Some(format!(
                "stalled: no new metrics row for {} (stall_timeout)",
                crate::spec::format_duration(job.stall_timeout.unwrap_or_default())
            ));
        }
        // The parent's record is final, whatever the child managed to write.
        rec.provisional = false;
        let _ = dir.write_record(&rec);
        // Whatever the run managed to log, TensorBoard shows (a warning if it cannot).
        crate::results::tensorboard::refresh_or_warn(&dir);
        rec
    }
}

impl ProcessExecutor {
    /// The `train` child for `job` on `slot`: progress lines on a piped stdout, stderr to
    /// `stderr_log`, stdin kept open so the child notices when the sweep dies.
    fn command(&self, job: &PlannedRun, slot: &Slot, stderr_log: std::fs::File) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&job.args)
            .arg("--threads")
            .arg(slot.threads.to_string())
            .arg("--progress")
            .arg("--watch-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_log))
            .env("OMP_NUM_THREADS", slot.threads.to_string());
        match slot.device {
            SlotDevice::Gpu(g) => cmd.env("CUDA_VISIBLE_DEVICES", g.to_string()),
            // Hide GPUs from CPU slots so `device: auto` really means CPU there.
            SlotDevice::Cpu => cmd.env("CUDA_VISIBLE_DEVICES", ""),
        };
        cmd
    }

    /// Waits for the child to exit, ending it on the job's timeout or an interrupt (SIGTERM, then
    /// SIGKILL after the grace period or a second Ctrl-C). Returns its exit status and the
    /// outcome that was forced on it, if any.
    fn wait(
        &self,
        child: &mut std::process::Child,
        job: &PlannedRun,
        started: Instant,
        ctl: &Control,
        seen: &Seen,
    ) -> (std::io::Result<std::process::ExitStatus>, Option<Forced>) {
        let pid = child.id();
        let deadline = job.timeout.map(|t| started + t);
        let mut termed_at: Option<Instant> = None;
        let mut forced: Option<Forced> = None;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Ok(s),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
            let level = ctl.level();
            if forced.is_none() {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    forced = Some(Forced::Timeout);
                    crate::sys::signal_process(pid, libc::SIGTERM);
                    termed_at = Some(Instant::now());
                } else if job.stall_timeout.is_some_and(|s| seen.quiet_for() >= s) {
                    forced = Some(Forced::Stalled);
                    crate::sys::signal_process(pid, libc::SIGTERM);
                    termed_at = Some(Instant::now());
                } else if level >= 1 {
                    forced = Some(Forced::Interrupted);
                    crate::sys::signal_process(pid, libc::SIGTERM);
                    termed_at = Some(Instant::now());
                }
            }
            let grace_over = termed_at.is_some_and(|t| t.elapsed() >= self.grace);
            if grace_over || level >= 2 {
                let _ = child.kill();
                seen.kill_trainer_group();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, forced)
    }
}

/// Why the executor ended a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forced {
    /// The run's `timeout`.
    Timeout,
    /// No new metrics row for the run's `stall_timeout` (recorded as a timeout).
    Stalled,
    /// Ctrl-C.
    Interrupted,
}

impl Forced {
    fn outcome(self) -> Outcome {
        match self {
            Forced::Timeout | Forced::Stalled => Outcome::Timeout,
            Forced::Interrupted => Outcome::Interrupted,
        }
    }
}

/// What the stdout reader has seen of a child: when its latest metrics row arrived, and an
/// external trainer's process group.
struct Seen {
    started: Instant,
    /// Milliseconds after `started` of the latest progress line (0: none yet, counted from the start).
    last_row_ms: AtomicU64,
    trainer_group: AtomicU32,
}

impl Seen {
    fn new(started: Instant) -> Seen {
        Seen {
            started,
            last_row_ms: AtomicU64::new(0),
            trainer_group: AtomicU32::new(0),
        }
    }

    /// Time since the latest metrics row (or the start).
    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_row_ms.load(Ordering::SeqCst));
        self.started.elapsed().saturating_sub(last)
    }

    /// SIGKILL to the external trainer's process group, if the child named one.
    fn kill_trainer_group(&self) {
        let pgid = self.trainer_group.load(Ordering::SeqCst);
        if pgid != 0 {
            crate::sys::signal_group(pgid, libc::SIGKILL);
        }
    }
}

/// Copies the child's stdout to `stdout.log`, sending each progress line on as an event and
/// noting the trainer's process group when a harness names it.
fn forward_stdout(
    stdout: Option<std::process::ChildStdout>,
    stdout_log: std::fs::File,
    index: usize,
    tx: Sender<Event>,
    seen: Arc<Seen>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut log = std::io::BufWriter::new(stdout_log);
        if let Some(out) = stdout {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                if let Some(g) = trainer_pgid(&line) {
                    seen.trainer_group.store(g, Ordering::SeqCst);
                }
                if let Some(p) = Progress::parse(&line) {
                    let ms = seen.started.elapsed().as_millis().min(u64::MAX as u128) as u64;
                    seen.last_row_ms.store(ms, Ordering::SeqCst);
                    let _ = tx.send(Event::Progress {
                        index,
                        progress: Box::new(p),
                    });
                } else {
                    let _ = log.flush();
                }
            }
        }
        let _ = log.flush();
    })
}

/// The run's final record once its process exited: the child's own record when it wrote one
/// during this attempt (files older than `launched_at` are an earlier attempt's), with the
/// outcome the exit status and any forced end say, the exit, the wall time, the Slurm task and,
/// for a crash, the cause from the child's record or its last words on stderr.
fn final_record(
    job: &PlannedRun,
    status: std::process::ExitStatus,
    forced: Option<Forced>,
    wall: f64,
    launched_at: std::time::SystemTime,
) -> RunRecord {
    let dir = job.dir();
    let fresh = |file: &Path| {
        std::fs::metadata(file)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= launched_at)
    };
    let exit = exit::describe(status);
    let child_record = Some(dir.run_json())
        .filter(|f| fresh(f))
        .and_then(|_| dir.read_record());
    let mut rec =
        child_record.unwrap_or_else(|| RunRecord::placeholder(job, Outcome::Crashed, None, wall));
    let stderr_tail = tail(&dir.stderr_log(), 20);
    let outcome = match (forced, status.code()) {
        // A run that finished just as the deadline or the interrupt arrived is complete.
        (_, Some(exit::COMPLETED)) if rec.outcome == Outcome::Completed => Outcome::Completed,
        (Some(f), _) if f.outcome() == Outcome::Timeout => Outcome::Timeout,
        (Some(Forced::Interrupted), _) => Outcome::Interrupted,
        (_, code) => code.and_then(exit::outcome_of).unwrap_or(Outcome::Crashed),
    };
    if rec.steps_done == 0 && fresh(&dir.metrics_csv()) {
        // The child died before its final record: its metrics say how far it got.
        if let Some(last) = read_metrics(&dir.metrics_csv())
            .ok()
            .and_then(|r| r.last().cloned())
        {
            rec.steps_done = last.env_step;
            rec.train_steps_done = last.train_step;
        }
    }
    rec.outcome = outcome;
    // A harness records its trainer's exit, which says more than the harness's own.
    if rec.invocation.is_none() || rec.exit.is_none() {
        rec.exit = Some(exit.clone());
    }
    rec.wall_s = wall;
    // Under Slurm, the array task this record comes from: a sweep waiting for a resubmitted
    // run accepts only its own task's record, never an earlier attempt's.
    if let (Ok(job_id), Ok(task)) = (
        std::env::var("SLURM_ARRAY_JOB_ID"),
        std::env::var("SLURM_ARRAY_TASK_ID"),
    ) {
        rec.extra
            .insert(SLURM_TASK_KEY.to_string(), format!("{job_id}_{task}"));
    }
    match outcome {
        Outcome::Timeout => {
            rec.reason = Some(format!(
                "timed out after {:.0} s",
                job.timeout.unwrap_or_default().as_secs_f64()
            ))
        }
        Outcome::Crashed => {
            // Keep a cause the child recorded itself (e.g. a Gymnasium traceback), not the
            // placeholder it writes at start-up.
            rec.reason = Some(match rec.own_reason() {
                // A harness's reason already says how its trainer ended.
                Some(r) if rec.invocation.is_some() => r.to_string(),
                Some(r) => format!("{r} (process {exit})"),
                // Nothing recorded: the last thing it said is the best cause we have.
                None => match stderr_tail.lines().rev().find(|l| !l.trim().is_empty()) {
                    Some(last) => format!("process {exit}: {}", printable(last).trim()),
                    None => format!("process {exit}"),
                },
            });
            rec.stderr_tail = Some(stderr_tail);
        }
        Outcome::Interrupted if rec.own_reason().is_none() => {
            rec.reason = Some(if status.signal().is_some() {
                format!("interrupted ({exit} after a second Ctrl-C or the grace period)")
            } else {
                "interrupted".into()
            })
        }
        _ => {}
    }
    rec
}
