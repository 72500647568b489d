//! The parallel scheduler: jobs onto device slots, outcomes as data, Ctrl-C handling.
//!
//! Workers pull jobs from one queue; every state change is an [`Event`] sent to the caller's
//! thread, which owns all bookkeeping (progress display, `summary.csv`). A failed run is a
//! [`RunRecord`] with a non-`completed` outcome, never an `Err`.

pub mod ladder;
pub mod lock;
pub mod process;
pub mod progress;
pub mod slots;
pub mod slurm;
pub mod summary;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use slots::{plan_slots, DeviceRequest, Slot, SlotDevice};

use crate::metrics::{Outcome, RunRecord};

/// One run to execute. Serialisable: the Slurm backend stores every job in `plan.json` for
/// `run-one` to execute later on a compute node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Position in the plan.
    pub index: usize,
    pub run_id: String,
    pub variant: String,
    pub seed: u64,
    pub swept: BTreeMap<String, String>,
    pub steps: u64,
    pub config_hash: String,
    /// The run's folder (exists before the job starts, with `config.yaml` in it).
    pub run_dir: PathBuf,
    /// Arguments after the program name for the child (`train --config ... --out ...`).
    pub args: Vec<String>,
    /// The command a user runs to reproduce this run.
    pub command: String,
    pub timeout: Option<Duration>,
}

impl Job {
    /// A record for a run that produced none itself (could not start, died before writing).
    pub fn placeholder(&self, outcome: Outcome, reason: Option<String>, wall_s: f64) -> RunRecord {
        RunRecord {
            run_id: self.run_id.clone(),
            variant: self.variant.clone(),
            swept: self.swept.clone(),
            overrides: Some(
                self.args
                    .windows(2)
                    .filter(|w| w[0] == "--set" || w[0] == "--override")
                    .filter_map(|w| w[1].split_once('='))
                    .map(|(k, v)| (k.trim().into(), v.trim().into()))
                    .collect(),
            ),
            command: self.command.clone(),
            outcome,
            steps_planned: self.steps,
            steps_done: 0,
            train_steps_done: 0,
            seed: self.seed,
            device: String::new(),
            libtorch_version: crate::train::run::LIBTORCH_VERSION.to_string(),
            git_commit: String::new(),
            wall_s,
            started_at: String::new(),
            learning_rates: None,
            config_hash: self.config_hash.clone(),
            first_nonfinite_step: None,
            reason,
            exit: None,
            stderr_tail: None,
            extra: BTreeMap::new(),
        }
    }
}

/// A child's progress line (`@@progress {json}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    pub env_step: u64,
    pub steps: u64,
    pub train_step: u64,
    pub actor_cnn_grad_norm: Option<f64>,
    pub critic_cnn_grad_norm: Option<f64>,
    pub q_abs_max: Option<f64>,
}

/// What happens during a sweep, in order, on one channel.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        index: usize,
        slot: Slot,
    },
    Progress {
        index: usize,
        progress: Progress,
    },
    Finished {
        index: usize,
        record: Box<RunRecord>,
    },
}

/// Interrupt level shared by the scheduler and its executors: 0 running, 1 stop launching and end
/// children gracefully, 2 kill them.
#[derive(Debug, Clone, Default)]
pub struct Control(Arc<AtomicU8>);

impl Control {
    /// Current level.
    pub fn level(&self) -> u8 {
        self.0.load(Ordering::SeqCst)
    }

    /// Raises the level by one (what each Ctrl-C does).
    pub fn escalate(&self) -> u8 {
        self.0.fetch_add(1, Ordering::SeqCst).saturating_add(1)
    }
}

/// Runs one job on one slot to an outcome.
pub trait Executor: Sync {
    /// Executes `job`, sending `Progress` events as it goes; always returns a record.
    fn execute(&self, job: &Job, slot: &Slot, ctl: &Control, tx: &Sender<Event>) -> RunRecord;
}

/// Runs `jobs` over `slots` with `exec`, calling `on_event` on the caller's thread for every event.
/// Returns when every started job has finished; jobs not started because of an interrupt are left out.
pub fn run_jobs<E: Executor>(
    jobs: Vec<Job>,
    slots: &[Slot],
    exec: &E,
    ctl: &Control,
    mut on_event: impl FnMut(&Event),
) -> Vec<RunRecord> {
    let queue = Mutex::new(jobs.into_iter().collect::<VecDeque<Job>>());
    let (tx, rx) = channel::<Event>();
    let mut done = Vec::new();
    std::thread::scope(|s| {
        for slot in slots {
            let tx = tx.clone();
            let queue = &queue;
            s.spawn(move || loop {
                if ctl.level() > 0 {
                    break;
                }
                let Some(job) = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None) else {
                    break;
                };
                let _ = tx.send(Event::Started {
                    index: job.index,
                    slot: *slot,
                });
                let rec = exec.execute(&job, slot, ctl, &tx);
                let _ = tx.send(Event::Finished {
                    index: job.index,
                    record: Box::new(rec),
                });
            });
        }
        drop(tx);
        for ev in rx {
            on_event(&ev);
            if let Event::Finished { record, .. } = ev {
                done.push(*record);
            }
        }
    });
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    /// Scheduler bookkeeping only: a fake executor that sleeps and reports a scripted outcome.
    struct Fake {
        running: AtomicUsize,
        peak: AtomicUsize,
    }

    impl Executor for Fake {
        fn execute(&self, job: &Job, _slot: &Slot, ctl: &Control, tx: &Sender<Event>) -> RunRecord {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            let _ = tx.send(Event::Progress {
                index: job.index,
                progress: Progress::default(),
            });
            std::thread::sleep(Duration::from_millis(30));
            if job.index == 2 {
                ctl.escalate();
            }
            self.running.fetch_sub(1, Ordering::SeqCst);
            let outcome = if job.index == 1 {
                Outcome::Crashed
            } else {
                Outcome::Completed
            };
            job.placeholder(outcome, None, 0.03)
        }
    }

    fn job(i: usize) -> Job {
        Job {
            index: i,
            run_id: format!("r{i}"),
            variant: "v".into(),
            seed: 0,
            swept: BTreeMap::new(),
            steps: 1,
            config_hash: String::new(),
            run_dir: PathBuf::new(),
            args: vec![],
            command: String::new(),
            timeout: None,
        }
    }

    #[test]
    fn uses_all_slots_records_crashes_and_stops_launching_on_interrupt() {
        let fake = Fake {
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        };
        let slots = plan_slots(&DeviceRequest::Cpu, 1, 1, Some(2), 0, 2);
        let ctl = Control::default();
        let mut events = Vec::new();
        let t = Instant::now();
        let recs = run_jobs((0..8).map(job).collect(), &slots, &fake, &ctl, |e| {
            events.push(e.clone())
        });
        assert_eq!(
            fake.peak.load(Ordering::SeqCst),
            2,
            "two slots run two jobs at once"
        );
        // Job 2 raised the interrupt: jobs already running finish, nothing new starts.
        assert!(recs.len() >= 3 && recs.len() < 8, "{} finished", recs.len());
        assert!(recs
            .iter()
            .any(|r| r.run_id == "r1" && r.outcome == Outcome::Crashed));
        let started = events
            .iter()
            .filter(|e| matches!(e, Event::Started { .. }))
            .count();
        assert_eq!(
            started,
            recs.len(),
            "every started job finishes with a record"
        );
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
