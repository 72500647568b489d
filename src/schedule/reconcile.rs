//! Reconciling a results folder: the one step that brings what a folder says up to date with
//! what happened to its runs, before a command judges it.
//!
//! Runs can end while nobody watches: a sweep was stopped or killed, or Slurm tasks were
//! submitted by hand. Their Slurm task outputs say how Slurm ended them, and `summary.csv` may
//! still show them pending. `report` calls [`reconcile`] before it renders; `sweep` calls it
//! while it holds the folder's lock, before it decides what to train.

use crate::results::lock::{self, Lock};
use crate::results::summary::refresh_summary;
use crate::results::ResultsDir;

/// Who reconciles the folder.
pub enum By<'a> {
    /// A sweep that holds the folder's lock; it rewrites `summary.csv` itself right after.
    Sweep(&'a Lock),
    /// `report`: the folder is reconciled only when no sweep is writing it, under a
    /// shared hold of its lock so a sweep that starts meanwhile waits.
    Report,
}

/// Records how Slurm ended the tasks nobody watched (see
/// [`super::slurm::settle_unwatched`]) and, for a report, brings `summary.csv` up to date with the
/// run folders (`report`). Says what it changed on stderr. A folder that is not a results folder (no
/// `runs/`) is left alone, and so is one a sweep is writing.
pub fn reconcile(results: &ResultsDir, by: By<'_>) {
    if !results.exists() {
        return;
    }
    let hold = match by {
        By::Sweep(_) => None,
        By::Report => {
            let lock_path = results.lock();
            let live = lock::live_holder(&lock_path).filter(|h| h.pid != std::process::id());
            match live.is_none().then(|| lock::shared(&lock_path)).flatten() {
                Some(hold) => Some(hold),
                None => return,
            }
        }
    };
    let dir = results.path().display();
    for id in super::slurm::settle_unwatched(results) {
        eprintln!(
            "note: {dir}: runs/{id}/run.json now records how Slurm ended it (from its task's output file)"
        );
    }
    if hold.is_some() {
        // The sweep that wrote summary.csv may have died before its runs ended.
        match refresh_summary(results) {
            Ok(true) => {
                eprintln!("note: {dir}: summary.csv brought up to date with the run folders")
            }
            Ok(false) => {}
            Err(e) => eprintln!("warning: {dir}: summary.csv not refreshed: {e}"),
        }
    }
}
