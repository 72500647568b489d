//! The parallel scheduler: jobs (the plan's runs) onto device slots, outcomes as data, Ctrl-C
//! handling; the executors (local child processes, Slurm arrays), the ladder's promotion rule,
//! and reconciling a results folder nobody is writing.
//!
//! Workers pull jobs from one queue; every state change is an [`Event`] sent to the caller's
//! thread, which owns all bookkeeping (progress display, `summary.csv`). A failed run is a
//! [`RunRecord`] with a non-`completed` outcome, never an `Err`.

pub mod ladder;
pub mod process;
pub mod progress;
pub mod reconcile;
pub mod slots;
pub mod slurm;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};

pub use slots::{plan_slots, DeviceRequest, Slot, SlotDevice};

use crate::results::protocol::Progress;
use crate::results::{PlannedRun, RunRecord};

/// What happens during a sweep, in order, on one channel.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        index: usize,
        slot: Slot,
    },
    Progress {
        index: usize,
        progress: Box<Progress>,
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
    fn execute(
        &self,
        job: &PlannedRun,
        slot: &Slot,
        ctl: &Control,
        tx: &Sender<Event>,
    ) -> RunRecord;
}

/// Runs `jobs` over `slots` with `exec`, calling `on_event` on the caller's thread for every event.
/// Returns when every started job has finished; jobs not started because of an interrupt are left out.
pub fn run_jobs<E: Executor>(
    jobs: Vec<PlannedRun>,
    slots: &[Slot],
    exec: &E,
    ctl: &Control,
    mut on_event: impl FnMut(&Event),
) -> Vec<RunRecord> {
    let queue = Mutex::new(jobs.into_iter().collect::<VecDeque<PlannedRun>>());
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
    use crate::results::Outcome;
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    /// Scheduler bookkeeping only: a fake executor that sleeps and reports a scripted outcome.
    struct Fake {
        running: AtomicUsize,
        peak: AtomicUsize,
    }

    impl Executor for Fake {
        fn execute(
            &self,
            job: &PlannedRun,
            _slot: &Slot,
            ctl: &Control,
            tx: &Sender<Event>,
        ) -> RunRecord {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            let _ = tx.send(Event::Progress {
                index: job.index,
                progress: Box::default(),
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
            RunRecord::placeholder(job, outcome, None, 0.03)
        }
    }

    fn job(i: usize) -> PlannedRun {
        PlannedRun {
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
            stall_timeout: None,
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
