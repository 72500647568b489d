//! The Slurm backend: the same runs as the local backend, as sbatch job arrays.
//!
//! Files under `results/<name>/` (paths from [`crate::results::ResultsDir::slurm`]):
//! - `plan.json`: the plan manifest every sweep writes ([`crate::results::plan`]): `td3-sweep
//!   run-one --index N` runs its entry N. A ladder stage's plan is `slurm/<stage>/plan.json`.
//! - `slurm/array-<submission>-<chunk>.sbatch`: one array script per chunk of at most
//!   [`MAX_ARRAY_TASKS`] runs; `slurm/slurm-<job>_<task>.out`: each task's Slurm output.
//! - `slurm/jobs.json`: every submission's job id and the plan indices of its tasks.
//!
//! Progress comes from the runs' own `run.json` files; `squeue` only says which tasks are still
//! queued or running. A task that left the queue while its `run.json` still says "never seen to
//! end" (`exit: null`) is recorded as crashed (or timeout, when Slurm's time limit killed it), so
//! every planned run ends with a row. `sbatch --wait` is never used: it can report success after
//! Slurm has forgotten a failed task.

pub mod queue;
pub mod script;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use queue::{classify_gone, SlurmCommandError};
pub use script::{default_time, render, ArrayScript, MAX_ARRAY_TASKS};

use super::Control;

use crate::results::plan::file_sha256;
use crate::results::protocol::{run_of_task_output, SLURM_TASK_KEY};
use crate::results::{write_atomic, Plan, PlanError, PlannedRun, ResultsDir, RunRecord, SlurmDir};
use crate::spec::SlurmOptions;

/// Failures of the backend itself (not of runs, which are data).
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// A file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Quoted in the message (run records embed it), so not also a `#[source]`: printed once.
        cause: std::io::Error,
    },
    /// A JSON file is not what this version writes.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// sbatch refused a script.
    #[error("submitting {script}")]
    Submit {
        /// The script.
        script: PathBuf,
        /// sbatch's complaint.
        #[source]
        source: SlurmCommandError,
    },
    /// Earlier submissions exist but `squeue` cannot say which of their tasks are still queued.
    #[error("cannot ask Slurm which tasks of earlier submissions are still queued; nothing submitted, so that no run is trained twice. Try again when squeue answers")]
    Queue(#[source] SlurmCommandError),
    /// Bad `slurm:` options, every problem listed.
    #[error("invalid Slurm options:\n  {}", .0.join("\n  "))]
    Options(Vec<String>),
    /// The plan manifest could not be read or written.
    #[error(transparent)]
    Plan(#[from] PlanError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SlurmError + '_ {
    move |source| SlurmError::Io {
        path: path.to_path_buf(),
        cause: source,
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, SlurmError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| SlurmError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SlurmError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| SlurmError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes()).map_err(io(path))
}

/// One `sbatch` of one array script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// Slurm's job id of the array.
    pub job_id: String,
    /// The script submitted.
    pub script: PathBuf,
    /// Array task `i` ran the plan's run `indices[i]`.
    pub indices: Vec<usize>,
    /// The run id of each index, when submitted: a later version of the sweep may number its
    /// runs differently. Empty in jobs files written before this was recorded.
    #[serde(default)]
    pub run_ids: Vec<String>,
    /// RFC 3339.
    pub submitted_at: String,
}

/// A script written by `--no-submit`, for a person to submit: a later sweep recognises its tasks
/// in the queue by the script's path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Written {
    /// The script.
    pub script: PathBuf,
    /// Array task `i` runs the plan's run `indices[i]`.
    pub indices: Vec<usize>,
    /// The run id of each index.
    pub run_ids: Vec<String>,
}

impl Submission {
    /// `<job>_<task>` for each task, with its plan index.
    fn tasks(&self) -> impl Iterator<Item = (String, usize)> + '_ {
        self.indices
            .iter()
            .enumerate()
            .map(|(t, &i)| (format!("{}_{t}", self.job_id), i))
    }
}

/// `results/<name>/slurm/jobs.json`: every submission, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobsFile {
    /// The submissions.
    pub submissions: Vec<Submission>,
    /// Scripts written by `--no-submit` and not submitted by td3-sweep.
    #[serde(default)]
    pub written: Vec<Written>,
}

/// Everything the backend needs for one `sweep --backend slurm`.
pub struct SlurmSweep<'a> {
    /// The sweep's name (job names).
    pub name: &'a str,
    /// `results/<name>` (relative paths resolve against the current directory).
    pub results: &'a ResultsDir,
    /// Every run of the plan, in order.
    pub all: &'a [PlannedRun],
    /// Plan indices that need a run (resume already applied).
    pub to_run: BTreeSet<usize>,
    /// The `td3-sweep` binary the tasks run.
    pub program: PathBuf,
    /// Effective options (see [`SlurmOptions::overridden_by`]).
    pub options: SlurmOptions,
    /// `resources.threads_per_run`.
    pub threads: usize,
    /// `resources.devices: cpu`.
    pub cpu_only: bool,
    /// `false` for `--no-submit`.
    pub submit: bool,
    /// A ladder stage's name: its scripts, jobs and plan go to `slurm/<stage>/` so that each
    /// stage's array indices refer to its own plan.
    pub stage: Option<&'a str>,
}

/// How [`run_sweep`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SlurmEnd {
    /// `--no-submit`: these scripts were written.
    Written(Vec<PathBuf>),
    /// Every waited-for task ended; `submitted` tasks were submitted now (others were already queued).
    Finished {
        /// Tasks submitted by this call.
        submitted: usize,
    },
    /// Ctrl-C: stopped waiting; these jobs still have tasks in Slurm.
    Interrupted {
        /// Job ids still queued or running.
        jobs: Vec<String>,
    },
}

struct Waiting<'a> {
    job: &'a PlannedRun,
    task: String,
    out: PathBuf,
    misses: u32,
    state: Option<String>,
    reason: Option<String>,
    /// The run's `run.json` as it was before this submission (a resubmitted run's earlier
    /// attempt): still those bytes means the task has not written its own record yet.
    prior: Option<Vec<u8>>,
}

/// After this many consecutive polls without the task in `squeue` and without a final `run.json`,
/// the task is recorded as killed (two polls tolerate a file written just as the task ended).
const GONE_AFTER_POLLS: u32 = 2;

fn absolute(p: &Path) -> Result<PathBuf, SlurmError> {
    std::path::absolute(p).map_err(io(p))
}

fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Writes the scripts, submits them (unless `--no-submit`), then waits until every task ended,
/// calling `on_end` with each run and its final record once its `run.json` is in place.
pub fn run_sweep(
    s: SlurmSweep<'_>,
    ctl: &Control,
    on_end: impl FnMut(&PlannedRun, &RunRecord),
) -> Result<SlurmEnd, SlurmError> {
    let problems = s.options.problems();
    if !problems.is_empty() {
        return Err(SlurmError::Options(problems));
    }
    let slurm = s.results.slurm(s.stage);
    std::fs::create_dir_all(slurm.path()).map_err(io(slurm.path()))?;
    let plan = write_plan(&s, &slurm)?;
    let mut jobs = Jobs::read(slurm.jobs_json())?;
    let by_index: BTreeMap<usize, &PlannedRun> = s.all.iter().map(|j| (j.index, j)).collect();
    let earlier = still_queued(&s, &mut jobs)?;
    let to_submit: Vec<usize> = s
        .to_run
        .iter()
        .copied()
        .filter(|i| !earlier.active.contains_key(i))
        .collect();
    let scripts = write_scripts(&s, &slurm, &plan, &jobs.file, &to_submit)?;
    if !s.submit {
        for (path, indices) in &scripts {
            jobs.file.written.push(Written {
                script: path.clone(),
                indices: indices.clone(),
                run_ids: run_ids(&by_index, indices),
            });
        }
        jobs.write()?;
        return Ok(SlurmEnd::Written(
            scripts.into_iter().map(|(p, _)| p).collect(),
        ));
    }
    let waiter = |index: usize, task: String, prior: Option<Vec<u8>>| {
        by_index.get(&index).map(|job| Waiting {
            job,
            out: slurm.task_out(&task),
            task,
            misses: 0,
            state: None,
            reason: None,
            prior,
        })
    };
    let mut waiting: Vec<Waiting<'_>> = earlier
        .active
        .iter()
        .filter_map(|(index, (task, _))| waiter(*index, task.clone(), None))
        .collect();
    for (path, indices) in &scripts {
        let sub = submit(path, indices, &by_index, &mut jobs)?;
        waiting.extend(
            sub.into_iter()
                .filter_map(|t| waiter(t.index, t.task, t.prior)),
        );
    }
    if !earlier.active.is_empty() {
        crate::say!(
            "waiting for {} task(s) already in Slurm from an earlier submission (they keep the options they were submitted with; to change those, scancel them first)",
            earlier.active.len()
        );
    }
    let stuck_told = !earlier.stuck.is_empty();
    if stuck_told {
        let jobs: Vec<String> = earlier.stuck.into_iter().collect();
        eprintln!(
            "warning: job(s) {} wait for a reason under which Slurm will not start them as submitted; `scancel {}`, then run the sweep again with other --slurm-* options",
            jobs.join(", "),
            jobs.join(" ")
        );
    }
    let wait = Wait {
        total: waiting.len(),
        ended: 0,
        last_line: String::new(),
        stuck_warned: stuck_told,
    };
    wait.until_all_ended(waiting, to_submit.len(), ctl, on_end)
}

/// Writes the plan the tasks read: the sweep's `plan.json`, or a ladder stage's.
fn write_plan(s: &SlurmSweep<'_>, slurm: &SlurmDir) -> Result<Plan, SlurmError> {
    let plan = Plan {
        sweep: s.name.to_string(),
        sweep_sha256: file_sha256(&s.results.sweep_yaml())?,
        threads: s.threads,
        cpu_only: s.cpu_only,
        runs: s.all.to_vec(),
    };
    plan.write(&match s.stage {
        Some(_) => slurm.plan_json(),
        None => s.results.plan_json(),
    })?;
    Ok(plan)
}

/// `jobs.json` and where it lives.
struct Jobs {
    path: PathBuf,
    file: JobsFile,
}

impl Jobs {
    fn read(path: PathBuf) -> Result<Jobs, SlurmError> {
        let file = if path.exists() {
            read_json(&path)?
        } else {
            JobsFile::default()
        };
        Ok(Jobs { path, file })
    }

    fn write(&self) -> Result<(), SlurmError> {
        write_json(&self.path, &self.file)
    }
}

/// The run id of each plan index.
fn run_ids(by_index: &BTreeMap<usize, &PlannedRun>, indices: &[usize]) -> Vec<String> {
    indices
        .iter()
        .map(|i| {
            by_index
                .get(i)
                .map(|j| j.run_id.clone())
                .unwrap_or_default()
        })
        .collect()
}

/// Tasks of earlier submissions that are still in the queue.
#[derive(Default)]
struct StillQueued {
    /// Plan index → its task (`<job>_<task>`) and, while pending, why it waits.
    active: BTreeMap<usize, (String, Option<String>)>,
    /// Jobs waiting for a reason under which Slurm will never start them.
    stuck: BTreeSet<String>,
}

/// Tasks of earlier submissions still in the queue are waited for, not submitted twice: the ones
/// td3-sweep submitted (`jobs.json`) and the ones a person submitted from a `--no-submit` script
/// (recognised by the script's path, and adopted into `jobs.json`). An earlier submission's index
/// is mapped to this plan through its run id, since an edited sweep numbers its runs differently.
fn still_queued(s: &SlurmSweep<'_>, jobs: &mut Jobs) -> Result<StillQueued, SlurmError> {
    let mut out = StillQueued::default();
    // Asked for `--no-submit` too: its scripts must not hold runs whose tasks are still queued.
    if jobs.file.submissions.is_empty() && jobs.file.written.is_empty() {
        return Ok(out);
    }
    let q = match queue::squeue() {
        Ok(q) => q,
        // Submitting blind could train a queued run twice.
        Err(e) if s.submit || !jobs.file.submissions.is_empty() => {
            return Err(SlurmError::Queue(e))
        }
        // Only scripts written before, and no Slurm to ask (scripts written for another
        // machine): write them all again.
        Err(e) => {
            eprintln!("warning: {e}; writing scripts for every run still to train");
            return Ok(out);
        }
    };
    let by_run_id: BTreeMap<&str, usize> =
        s.all.iter().map(|j| (j.run_id.as_str(), j.index)).collect();
    let mut adopted: Vec<Submission> = Vec::new();
    let mut foreign: BTreeSet<String> = BTreeSet::new();
    for (task, queued) in &q {
        let Some((job_id, t)) = task.split_once('_') else {
            continue;
        };
        let Ok(t) = t.parse::<usize>() else { continue };
        let file = &jobs.file;
        let known = file.submissions.iter().find(|x| x.job_id == job_id);
        let by_hand = || {
            file.written
                .iter()
                .find(|w| absolute(&w.script).is_ok_and(|p| p == Path::new(&queued.command)))
        };
        let (index, run_id) = match (known, known.is_none().then(by_hand).flatten()) {
            (Some(sub), _) => (sub.indices.get(t).copied(), sub.run_ids.get(t).cloned()),
            (None, Some(w)) => {
                if !adopted.iter().any(|x| x.job_id == job_id) {
                    adopted.push(Submission {
                        job_id: job_id.to_string(),
                        script: w.script.clone(),
                        indices: w.indices.clone(),
                        run_ids: w.run_ids.clone(),
                        submitted_at: "by hand (seen in the queue)".into(),
                    });
                }
                (w.indices.get(t).copied(), w.run_ids.get(t).cloned())
            }
            (None, None) => continue,
        };
        let here = match (&run_id, index) {
            (Some(id), _) => by_run_id.get(id.as_str()).copied(),
            (None, Some(i)) => Some(i),
            (None, None) => None,
        };
        match here {
            Some(i) => {
                let reason = (queued.state == "PENDING").then(|| queued.reason.clone());
                if reason.as_deref().is_some_and(queue::never_starts) {
                    out.stuck.insert(job_id.to_string());
                }
                out.active.insert(i, (task.clone(), reason));
            }
            None => {
                foreign.insert(job_id.to_string());
            }
        }
    }
    if !adopted.is_empty() {
        for x in &adopted {
            crate::say!(
                "job {} runs {} (submitted by hand): its tasks are waited for, not submitted again",
                x.job_id,
                x.script.display()
            );
        }
        jobs.file.submissions.extend(adopted);
        jobs.write()?;
    }
    if !foreign.is_empty() {
        let foreign: Vec<String> = foreign.into_iter().collect();
        eprintln!(
            "note: job(s) {} still have tasks in Slurm for runs that are not in this version of the sweep; they are not waited for (a queued one refuses to start: its plan is stale). `scancel {}` frees the cluster sooner.",
            foreign.join(", "),
            foreign.join(" ")
        );
    }
    Ok(out)
}

/// Writes the array scripts for `to_submit` (chunks of at most [`MAX_ARRAY_TASKS`]) and the
/// plan copy they read; returns each script with its plan indices.
fn write_scripts(
    s: &SlurmSweep<'_>,
    slurm: &SlurmDir,
    plan: &Plan,
    jobs: &JobsFile,
    to_submit: &[usize],
) -> Result<Vec<(PathBuf, Vec<usize>)>, SlurmError> {
    let workdir = absolute(Path::new("."))?;
    let output = absolute(&slurm.task_out_pattern())?;
    let submission = jobs
        .submissions
        .iter()
        .map(|x| x.script.clone())
        .chain(jobs.written.iter().map(|w| w.script.clone()))
        .collect::<BTreeSet<_>>()
        .len();
    // Each submission reads its own copy of the plan, so tasks still queued from it keep their
    // numbering when a later version of the sweep rewrites `plan.json`.
    let sub_plan = slurm.submission_plan(submission);
    if !to_submit.is_empty() {
        plan.write(&sub_plan)?;
    }
    let sweep_file = s.results.sweep_yaml();
    let job_name = format!("td3-{}", s.name);
    let mut scripts = Vec::new();
    for (k, chunk) in to_submit.chunks(MAX_ARRAY_TASKS).enumerate() {
        let path = slurm.script(submission, k);
        let text = render(&ArrayScript {
            job_name: &job_name,
            indices: chunk,
            output: &output,
            workdir: &workdir,
            program: &s.program,
            sweep_file: &sweep_file,
            plan_file: Some(sub_plan.as_path()),
            options: &s.options,
        });
        write_atomic(&path, text.as_bytes()).map_err(io(&path))?;
        scripts.push((path, chunk.to_vec()));
    }
    Ok(scripts)
}

/// A task just submitted.
struct Submitted {
    /// `<job>_<task>`.
    task: String,
    /// Its plan index.
    index: usize,
    /// The bytes of its run's earlier `run.json`, if any.
    prior: Option<Vec<u8>>,
}

/// Submits one script and records the submission in `jobs.json`; returns its tasks.
fn submit(
    path: &Path,
    indices: &[usize],
    by_index: &BTreeMap<usize, &PlannedRun>,
    jobs: &mut Jobs,
) -> Result<Vec<Submitted>, SlurmError> {
    // An earlier attempt's final record stays in place (a refused or interrupted submission
    // loses nothing); its bytes are kept to tell it from the record this attempt writes.
    let priors: Vec<Option<Vec<u8>>> = indices
        .iter()
        .map(|i| {
            by_index
                .get(i)
                .and_then(|j| std::fs::read(j.dir().run_json()).ok())
        })
        .collect();
    let job_id = queue::sbatch(path).map_err(|source| SlurmError::Submit {
        script: path.to_path_buf(),
        source,
    })?;
    let sub = Submission {
        job_id,
        script: path.to_path_buf(),
        indices: indices.to_vec(),
        run_ids: run_ids(by_index, indices),
        submitted_at: chrono::Utc::now().to_rfc3339(),
    };
    crate::say!(
        "submitted {} ({} task(s)) as job {}",
        path.display(),
        indices.len(),
        sub.job_id
    );
    let tasks = sub
        .tasks()
        .zip(priors)
        .map(|((task, index), prior)| Submitted { task, index, prior })
        .collect();
    jobs.file.submissions.push(sub);
    jobs.write()?;
    Ok(tasks)
}

/// The waiting loop's bookkeeping.
struct Wait {
    total: usize,
    ended: usize,
    /// The last status line printed (printed again only when it changes).
    last_line: String,
    stuck_warned: bool,
}

impl Wait {
    /// Polls until every task in `waiting` ended (`Finished`) or Ctrl-C (`Interrupted`).
    fn until_all_ended(
        mut self,
        mut waiting: Vec<Waiting<'_>>,
        submitted: usize,
        ctl: &Control,
        mut on_end: impl FnMut(&PlannedRun, &RunRecord),
    ) -> Result<SlurmEnd, SlurmError> {
        let mut interval = Duration::from_millis(500);
        let mut queue_warned: Option<Instant> = None;
        while !waiting.is_empty() {
            if ctl.level() > 0 {
                let jobs: BTreeSet<String> = waiting
                    .iter()
                    .filter_map(|w| w.task.split('_').next().map(String::from))
                    .collect();
                return Ok(SlurmEnd::Interrupted {
                    jobs: jobs.into_iter().collect(),
                });
            }
            let q = match queue::squeue() {
                Ok(q) => Some(q),
                Err(e) => {
                    if queue_warned
                        .map(|t| t.elapsed() > Duration::from_secs(60))
                        .unwrap_or(true)
                    {
                        eprintln!(
                            "warning: {e}; still waiting (deciding from run.json files only)"
                        );
                        queue_warned = Some(Instant::now());
                    }
                    None
                }
            };
            let before = waiting.len();
            waiting = self.poll(waiting, q.as_ref(), &mut on_end);
            self.say_status(&waiting);
            if waiting.is_empty() {
                break;
            }
            // Poll often while things happen, back off to 10 s on a quiet cluster.
            interval = if waiting.len() < before {
                Duration::from_millis(500)
            } else {
                (interval * 3 / 2).min(Duration::from_secs(10))
            };
            let until = Instant::now() + interval;
            while Instant::now() < until && ctl.level() == 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(SlurmEnd::Finished { submitted })
    }

    /// One look at every waiting task: those that ended are settled and handed to `on_end`; the
    /// others are returned. `q` is `squeue`'s answer (`None`: it could not be asked).
    fn poll<'a>(
        &mut self,
        waiting: Vec<Waiting<'a>>,
        q: Option<&BTreeMap<String, queue::Queued>>,
        on_end: &mut impl FnMut(&PlannedRun, &RunRecord),
    ) -> Vec<Waiting<'a>> {
        let mut still = Vec::new();
        for mut w in waiting {
            // A record still byte for byte the earlier attempt's is not this task's.
            let rec = match std::fs::read(w.job.dir().run_json()) {
                Ok(bytes) if Some(&bytes) == w.prior.as_ref() => None,
                Ok(bytes) => serde_json::from_slice::<RunRecord>(&bytes).ok(),
                Err(_) => None,
            };
            let listed = q.map(|q| q.get(&w.task).cloned());
            if let Some(Some(queued)) = &listed {
                w.state = Some(queued.state.clone());
                w.reason = (queued.state == "PENDING").then(|| queued.reason.clone());
                w.misses = 0;
            }
            // A task still in the queue has not ended, whatever its run.json says: Slurm
            // requeued it (preemption, a node failure) and it will run again.
            let in_queue = matches!(listed, Some(Some(_)));
            // A record that names another task is an earlier attempt's (this run was
            // resubmitted): not this task's end, even if squeue cannot be asked right now.
            let own = |r: &RunRecord| r.extra.get(SLURM_TASK_KEY).is_none_or(|t| *t == w.task);
            let final_rec = rec
                .as_ref()
                .filter(|r| r.exit.is_some() && !in_queue && own(r));
            let ended_rec = if let Some(r) = final_rec {
                Some(settle_final(r.clone(), &w))
            } else if matches!(listed, Some(None)) {
                w.misses += 1;
                (w.misses >= GONE_AFTER_POLLS).then(|| record_gone(rec.filter(own), &w))
            } else {
                None
            };
            match ended_rec {
                Some(r) => {
                    self.ended += 1;
                    let reason = r
                        .reason
                        .as_deref()
                        .map(|x| format!(" ({x})"))
                        .unwrap_or_default();
                    crate::say!(
                        "[{:>3}/{}] {} {}{reason}  [task {}]",
                        self.ended,
                        self.total,
                        r.run_id,
                        r.outcome,
                        w.task
                    );
                    on_end(w.job, &r);
                }
                None => still.push(w),
            }
        }
        still
    }

    /// Prints the queue's state when it changed, and warns once about jobs Slurm will never start.
    fn say_status(&mut self, waiting: &[Waiting<'_>]) {
        let running = waiting
            .iter()
            .filter(|w| matches!(w.state.as_deref(), Some("RUNNING" | "COMPLETING")))
            .count();
        let reasons: BTreeSet<&str> = waiting
            .iter()
            .filter_map(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty() && *r != "None")
            .collect();
        let line = format!(
            "slurm: {}/{} ended, {running} running, {} queued{}",
            self.ended,
            self.total,
            waiting.len() - running,
            if reasons.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    reasons.iter().copied().collect::<Vec<_>>().join(", ")
                )
            }
        );
        if line != self.last_line && !waiting.is_empty() {
            crate::say!("{line}");
            self.last_line = line;
        }
        if !self.stuck_warned && reasons.iter().any(|r| queue::never_starts(r)) {
            self.stuck_warned = true;
            let jobs: BTreeSet<&str> = waiting
                .iter()
                .filter(|w| w.reason.as_deref().is_some_and(queue::never_starts))
                .filter_map(|w| w.task.split('_').next())
                .collect();
            let jobs: Vec<&str> = jobs.into_iter().collect();
            eprintln!(
                "warning: Slurm will not start job(s) {} as submitted ({}): `scancel {}`, then run the sweep again with other --slurm-* options",
                jobs.join(", "),
                reasons.iter().copied().filter(|r| queue::never_starts(r)).collect::<Vec<_>>().join(", "),
                jobs.join(" ")
            );
        }
    }
}

/// A final record as `run-one` wrote it, corrected when Slurm ended the run (time limit → timeout;
/// cancel, preemption, OOM kill → crashed with Slurm's reason).
fn settle_final(mut rec: RunRecord, w: &Waiting<'_>) -> RunRecord {
    let out = std::fs::read_to_string(&w.out).ok();
    if let Some((outcome, reason)) = queue::slurm_ended(rec.outcome, out.as_deref()) {
        rec.outcome = outcome;
        rec.reason = Some(format!("{reason} (task {})", w.task));
        write_or_warn(&w.job.dir(), &rec);
    }
    rec
}

/// The record of a task that left the queue with no final `run.json`.
fn record_gone(rec: Option<RunRecord>, w: &Waiting<'_>) -> RunRecord {
    let out = std::fs::read_to_string(&w.out).ok();
    let state = queue::ended_state(&w.task);
    let (outcome, reason) = classify_gone(out.as_deref(), state.as_deref());
    let mut rec = rec.unwrap_or_else(|| RunRecord::placeholder(w.job, outcome, None, 0.0));
    rec.outcome = outcome;
    rec.provisional = false;
    rec.reason = Some(format!("{reason} (task {})", w.task));
    rec.exit = Some(format!(
        "slurm task {} {}",
        w.task,
        state.as_deref().unwrap_or("left the queue")
    ));
    let stderr = std::fs::read_to_string(w.job.dir().stderr_log()).unwrap_or_default();
    let mut t = tail(&stderr, 20);
    if let Some(o) = &out {
        t.push_str(&format!("\n--- {} ---\n{}", w.out.display(), tail(o, 10)));
    }
    rec.stderr_tail = Some(t.trim().to_string());
    write_or_warn(&w.job.dir(), &rec);
    rec
}

fn write_or_warn(dir: &crate::results::RunDir, rec: &RunRecord) {
    if let Err(e) = dir.write_record(rec) {
        eprintln!("warning: {}: {e}", dir.run_json().display());
    }
}

/// Runs whose final `run.json` says they ended from outside (`interrupted`, or `crashed` by a
/// signal) while their latest task's `slurm-<job>_<task>.out` shows Slurm ended them (time limit,
/// cancel, preemption, OOM kill) are recorded with Slurm's outcome and reason, as the waiting sweep
/// does (see [`queue::slurm_ended`]). This covers the tasks nobody waited for: the sweep was
/// stopped or killed while they ran, or they were submitted by hand from `--no-submit` scripts.
/// Returns the run ids it corrected. Call it only while no sweep is writing the folder.
pub fn settle_unwatched(results: &ResultsDir) -> Vec<String> {
    let slurm = results.slurm(None).path().to_path_buf();
    let Ok(entries) = std::fs::read_dir(&slurm) else {
        return Vec::new();
    };
    // The sweep's own folder, then each ladder stage's.
    let mut dirs = vec![slurm.clone()];
    dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    // run id -> its latest task's output file. Each output names its run on its first line
    // (`run-one: index N = <run id> on ...`), which also covers tasks submitted by hand, whose
    // job ids td3-sweep never saw.
    let mut latest: BTreeMap<String, (std::time::SystemTime, PathBuf)> = BTreeMap::new();
    for dir in dirs {
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        for out in files.flatten().map(|e| e.path()) {
            let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if SlurmDir::task_of(name).is_none() {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&out) else {
                continue;
            };
            let Some(run_id) = run_of_task_output(&text) else {
                continue;
            };
            let when = std::fs::metadata(&out)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            if latest.get(&run_id).is_none_or(|(w, _)| *w <= when) {
                latest.insert(run_id, (when, out));
            }
        }
    }
    let mut fixed = Vec::new();
    for (run_id, (_, out)) in latest {
        let dir = results.run(&run_id);
        let Some(mut rec) = dir.read_record() else {
            continue;
        };
        if rec.exit.is_none() {
            continue;
        }
        let text = std::fs::read_to_string(&out).ok();
        if let Some((outcome, reason)) = queue::slurm_ended(rec.outcome, text.as_deref()) {
            let task = out
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(SlurmDir::task_of)
                .unwrap_or("?")
                .to_string();
            let reason = Some(format!("{reason} (task {task})"));
            if rec.outcome == outcome && rec.reason == reason {
                continue; // settled before
            }
            rec.outcome = outcome;
            rec.reason = reason;
            if dir.write_record(&rec).is_ok() {
                fixed.push(run_id);
            }
        }
    }
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_tasks_round_trip_to_jobs() {
        let job = PlannedRun {
            index: 3,
            run_id: "a__s0__abc".into(),
            variant: "a".into(),
            seed: 0,
            swept: BTreeMap::from([("k".into(), "1".into())]),
            steps: 60,
            config_hash: "h".into(),
            run_dir: "results/x/runs/a".into(),
            args: vec!["train".into(), "--config".into(), "c.yaml".into()],
            command: "td3-sweep train".into(),
            timeout: Some(Duration::from_secs(120)),
            stall_timeout: None,
        };
        let j: PlannedRun = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
        assert_eq!(
            (j.index, j.args, j.timeout, j.swept),
            (3, job.args.clone(), job.timeout, job.swept.clone())
        );
    }

    #[test]
    fn unwatched_tasks_are_settled_from_their_output_once() {
        let d = tempfile::tempdir().unwrap();
        let res = &ResultsDir::new(d.path());
        let jobs = JobsFile {
            submissions: vec![Submission {
                job_id: "5".into(),
                script: "s".into(),
                indices: vec![0, 1],
                run_ids: vec!["slow".into(), "requeued".into()],
                submitted_at: "2026-11-26T08:00:00Z".into(),
            }],
            written: Vec::new(),
        };
        let slurm = res.slurm(None);
        std::fs::create_dir_all(slurm.path()).unwrap();
        write_json(&slurm.jobs_json(), &jobs).unwrap();
        for id in ["slow", "requeued"] {
            let run = PlannedRun {
                index: 0,
                run_id: id.into(),
                variant: "v".into(),
                seed: 0,
                swept: BTreeMap::new(),
                steps: 100,
                config_hash: "h".into(),
                run_dir: res.run(id).path().to_path_buf(),
                args: Vec::new(),
                command: String::new(),
                timeout: None,
                stall_timeout: None,
            };
            let mut rec = RunRecord::placeholder(
                &run,
                crate::results::Outcome::Interrupted,
                Some("signal".into()),
                1.0,
            );
            rec.exit = Some("exit code 130".into());
            std::fs::create_dir_all(&run.run_dir).unwrap();
            run.dir().write_record(&rec).unwrap();
        }
        std::fs::write(
            slurm.task_out("5_0"),
            "run-one: index 0 = slow on slot 0 (cpu, 1 thread)\nslurmstepd: error: *** JOB 5 ON n1 CANCELLED AT 2026 DUE TO TIME LIMIT ***\n",
        )
        .unwrap();
        std::fs::write(
            slurm.task_out("5_1"),
            "run-one: index 1 = requeued on slot 0 (cpu, 1 thread)\n*** JOB 5 ON n1 CANCELLED AT 2026 DUE TO JOB REQUEUE ***\n",
        )
        .unwrap();
        assert_eq!(settle_unwatched(res), vec!["slow".to_string()]);
        let rec = res.run("slow").read_record().unwrap();
        assert_eq!(rec.outcome, crate::results::Outcome::Timeout);
        assert!(rec.reason.unwrap().contains("(task 5_0)"));
        assert!(settle_unwatched(res).is_empty(), "settled once");
    }

    #[test]
    fn submissions_name_tasks_by_chunk_local_ids() {
        let s = Submission {
            job_id: "42".into(),
            script: "x".into(),
            indices: vec![1000, 1003],
            run_ids: Vec::new(),
            submitted_at: String::new(),
        };
        let tasks: Vec<_> = s.tasks().collect();
        assert_eq!(
            tasks,
            vec![("42_0".to_string(), 1000), ("42_1".to_string(), 1003)]
        );
    }
}
