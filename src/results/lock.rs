//! One sweep per results folder at a time.
//!
//! The lock is the kernel's advisory lock (`flock`) on `.lock`, held for as long as the sweep's
//! process lives: when it dies, however it dies, the kernel releases it, so there is no stale
//! lock to guess about and no race between two sweeps taking over the same dead holder. The file
//! also names its holder, for the error message; a file that names a holder but is not locked
//! was left by a sweep that died, and is taken over (reported as such).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Who holds a lock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub started_at: String,
    pub command: String,
}

/// Lock failures.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path} is locked by another sweep: pid {} on {} since {} (`{}`). Wait for it to finish, or stop it first.", holder.pid, holder.host, holder.started_at, holder.command)]
    Held { path: PathBuf, holder: Holder },
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        /// Quoted in the message (run records embed it), so not also a `#[source]`: printed once.
        cause: std::io::Error,
    },
}

/// A held lock: the open, locked file. On drop the file is removed and then unlocked.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    file: File,
    /// Set when the file named an earlier holder that no longer held it (it died).
    pub took_over: Option<Holder>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The holder a lock file's text names; text that names nobody (empty: its writer died between
/// locking and writing) becomes a placeholder that says so.
fn holder_of(text: &str) -> Holder {
    serde_json::from_str(text).unwrap_or_else(|_| Holder {
        pid: 0,
        host: "?".into(),
        started_at: "?".into(),
        command: format!("unreadable lock file: {text:?}"),
    })
}

/// The holder named by a lock file someone holds; an empty one is locked but not yet written:
/// its holder is between the two.
fn live_holder_of(file: &mut File) -> Holder {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    if text.trim().is_empty() {
        Holder {
            pid: 0,
            host: "?".into(),
            started_at: "now".into(),
            command: "a sweep that is starting".into(),
        }
    } else {
        holder_of(&text)
    }
}

/// Whether the open `file` is still the file at `path` (not removed or replaced since opening).
fn still_at(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// `try_lock`, tried a few times over ~200 ms: a report probing whether a sweep is live
/// ([`live_holder`]) holds a shared lock for microseconds, and must not make a sweep that starts
/// at that moment think the folder is taken.
fn try_lock_patiently(file: &mut File) -> Result<(), TryLockError> {
    for _ in 0..4 {
        match file.try_lock() {
            Err(TryLockError::WouldBlock) => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            other => return other,
        }
    }
    // Still taken, and the file names nobody: a report holding it shared while it brings the
    // folder's files up to date ([`shared`], seconds for a large sweep). Wait for it; a sweep
    // always names itself within microseconds of taking the lock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match file.try_lock() {
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let _ = file.rewind();
                if !text.trim().is_empty() || std::time::Instant::now() > deadline {
                    return Err(TryLockError::WouldBlock);
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// A shared hold on the lock at `path` (created if missing), for a report that rewrites run
/// records and `summary.csv` of a folder no sweep is writing: a sweep cannot start meanwhile
/// (it waits), and `None` says a sweep holds the folder. Released on drop; an empty file it
/// leaves behind names nobody and is taken by the next sweep as usual.
pub fn shared(path: &Path) -> Option<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .ok()?;
    match file.try_lock_shared() {
        Ok(()) if still_at(&file, path) => Some(file),
        _ => None,
    }
}

/// The sweep holding the lock at `path` right now, if any, without taking it (a running sweep
/// holds it for its whole life). A report uses it to tell runs in progress from interrupted ones.
pub fn live_holder(path: &Path) -> Option<Holder> {
    let mut file = File::open(path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(TryLockError::WouldBlock) => Some(live_holder_of(&mut file)),
        Err(TryLockError::Error(_)) => None,
    }
}

impl Lock {
    /// Takes the lock at `path`, or says who holds it.
    pub fn acquire(path: &Path, command: &str) -> Result<Lock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            cause: source,
        };
        let me = Holder {
            pid: std::process::id(),
            host: hostname(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            command: command.to_string(),
        };
        // A holder that is finishing removes the file and then unlocks it; one that opened the
        // file just before the removal can lock the removed file. It checks, after locking, that
        // the file is still the one at `path`, and starts again if not.
        for _ in 0..100 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(io)?;
            match try_lock_patiently(&mut file) {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(LockError::Held {
                        path: path.to_path_buf(),
                        holder: live_holder_of(&mut file),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
            if !still_at(&file, path) {
                continue;
            }
            let mut text = String::new();
            file.read_to_string(&mut text).map_err(io)?;
            // Text with nobody holding the lock: left by a sweep that died (its lock died with it).
            let took_over = (!text.trim().is_empty()).then(|| holder_of(&text));
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            file.write_all(serde_json::to_string(&me).unwrap_or_default().as_bytes())
                .map_err(io)?;
            file.flush().map_err(io)?;
            return Ok(Lock {
                path: path.to_path_buf(),
                file,
                took_over,
            });
        }
        Err(io(std::io::Error::other(
            "the lock file kept being removed while taking it; is another sweep starting and stopping in a loop?",
        )))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Remove while still locked, so nobody can lock this file and then find it gone unnoticed
        // (they check `still_at`); the lock goes with the file descriptor.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_and_dead_holder_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".lock");
        let first = Lock::acquire(&p, "td3-sweep sweep a.yaml").unwrap();
        let err = Lock::acquire(&p, "td3-sweep sweep b.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("td3-sweep sweep a.yaml"), "{err}");
        drop(first);
        assert!(!p.exists());
        // A holder whose PID is gone: spawn and reap a short process to get a dead PID.
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let dead = c.id();
        c.wait().unwrap();
        let stale = Holder {
            pid: dead,
            host: hostname(),
            started_at: "x".into(),
            command: "old".into(),
        };
        std::fs::write(&p, serde_json::to_string(&stale).unwrap()).unwrap();
        let l = Lock::acquire(&p, "new").unwrap();
        assert_eq!(l.took_over.as_ref().map(|h| h.pid), Some(dead));
    }

    #[test]
    fn an_unlocked_file_is_taken_over_whatever_it_says() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".lock");
        // Empty: its writer died between locking and writing.
        std::fs::File::create(&p).unwrap();
        let l = Lock::acquire(&p, "b").unwrap();
        assert_eq!(l.took_over, None, "an empty file names nobody");
        drop(l);
        // Garbage: reported as unreadable, still taken over.
        std::fs::write(&p, "{half a holder").unwrap();
        let l = Lock::acquire(&p, "c").unwrap();
        assert!(l
            .took_over
            .as_ref()
            .is_some_and(|h| h.command.contains("unreadable")));
        // A live PID in the file does not matter: only the kernel's lock does.
        drop(l);
        let alive = Holder {
            pid: std::process::id(),
            host: hostname(),
            started_at: "x".into(),
            command: "crashed earlier".into(),
        };
        std::fs::write(&p, serde_json::to_string(&alive).unwrap()).unwrap();
        let l = Lock::acquire(&p, "d").unwrap();
        assert_eq!(
            l.took_over.as_ref().map(|h| h.command.as_str()),
            Some("crashed earlier")
        );
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .contains("\"command\":\"d\""));
    }

    #[test]
    fn a_live_sweep_is_seen_without_disturbing_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".lock");
        assert_eq!(live_holder(&p), None, "no file, no sweep");
        let held = Lock::acquire(&p, "td3-sweep sweep live.yaml").unwrap();
        let seen = live_holder(&p).expect("the holder is live");
        assert_eq!(seen.command, "td3-sweep sweep live.yaml");
        assert_eq!(seen.pid, std::process::id());
        drop(held);
        // A file left by a dead sweep is not a live one; looking leaves it in place.
        std::fs::write(&p, "{}").unwrap();
        assert_eq!(live_holder(&p), None);
        assert!(p.exists());
        // A probe's shared lock, held while a sweep starts, does not turn the sweep away.
        let probe = std::fs::File::open(&p).unwrap();
        probe.try_lock_shared().unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(60));
            drop(probe);
        });
        let l = Lock::acquire(&p, "starting");
        release.join().unwrap();
        assert!(l.is_ok(), "{l:?}");
    }

    #[test]
    fn a_report_holding_the_folder_makes_a_starting_sweep_wait_not_fail() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".lock");
        let sweep = Lock::acquire(&p, "running").unwrap();
        assert!(shared(&p).is_none(), "a sweep holds the folder");
        drop(sweep);
        let hold = shared(&p).expect("free");
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(800));
            drop(hold);
        });
        let started = std::time::Instant::now();
        let l = Lock::acquire(&p, "starting");
        release.join().unwrap();
        assert!(l.is_ok(), "{l:?}");
        assert!(started.elapsed() >= std::time::Duration::from_millis(700));
        drop(l);
        // A named holder is refused at once, not waited for.
        let _held = Lock::acquire(&p, "first").unwrap();
        let started = std::time::Instant::now();
        assert!(Lock::acquire(&p, "second").is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn many_sweeps_racing_for_a_stale_lock_get_one_holder_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".lock");
        let stale = Holder {
            pid: 0,
            host: hostname(),
            started_at: "x".into(),
            command: "died".into(),
        };
        std::fs::write(&p, serde_json::to_string(&stale).unwrap()).unwrap();
        let holders = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        let wins = std::sync::atomic::AtomicUsize::new(0);
        let start = std::sync::Barrier::new(16);
        std::thread::scope(|s| {
            for i in 0..16 {
                let (p, holders, most, wins, start) = (&p, &holders, &most, &wins, &start);
                s.spawn(move || {
                    start.wait();
                    for round in 0..50 {
                        if let Ok(l) = Lock::acquire(p, &format!("t{i} r{round}")) {
                            use std::sync::atomic::Ordering::SeqCst;
                            let now = holders.fetch_add(1, SeqCst) + 1;
                            most.fetch_max(now, SeqCst);
                            wins.fetch_add(1, SeqCst);
                            std::thread::yield_now();
                            holders.fetch_sub(1, SeqCst);
                            drop(l);
                        }
                    }
                });
            }
        });
        use std::sync::atomic::Ordering::SeqCst;
        assert_eq!(most.load(SeqCst), 1, "two sweeps held the lock at once");
        assert!(wins.load(SeqCst) > 0);
        assert!(!p.exists(), "the last holder removes the file");
    }
}
