//! One sweep per results folder at a time. The lock file names its holder; a holder that is
//! dead (its PID is gone on this host) is taken over.

use std::fs::OpenOptions;
use std::io::Write;
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
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A held lock; released (file removed) on drop.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    /// Set when a dead holder's lock was taken over.
    pub took_over: Option<Holder>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Whether `pid` is a live process on this machine.
pub fn pid_alive(pid: u32) -> bool {
    // /proc/<pid>/stat exists for live processes and zombies; a zombie ('Z') is dead for our purpose.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .map(|r| r.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// How old an unreadable (empty, cut short) lock file must be before it is taken over: a live
/// holder writes its line microseconds after creating the file.
const UNREADABLE_STALE: std::time::Duration = std::time::Duration::from_secs(10);

/// Time since the file at `path` was last modified (zero when unknown).
fn lock_age(path: &Path) -> std::time::Duration {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default()
}

impl Lock {
    /// Takes the lock at `path`, or says who holds it.
    pub fn acquire(path: &Path, command: &str) -> Result<Lock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let me = Holder {
            pid: std::process::id(),
            host: hostname(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            command: command.to_string(),
        };
        let mut took_over = None;
        for _ in 0..3 {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut f) => {
                    f.write_all(serde_json::to_string(&me).unwrap_or_default().as_bytes())
                        .map_err(io)?;
                    return Ok(Lock {
                        path: path.to_path_buf(),
                        took_over,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(path).unwrap_or_default();
                    match serde_json::from_str::<Holder>(&text) {
                        Ok(h) if h.host == me.host && !pid_alive(h.pid) => {
                            // Stale: its holder died (e.g. SIGKILL). Safe to take over.
                            let _ = std::fs::remove_file(path);
                            took_over = Some(h);
                        }
                        Ok(h) => {
                            return Err(LockError::Held {
                                path: path.to_path_buf(),
                                holder: h,
                            })
                        }
                        // Unreadable and old: its writer died between create and write (or
                        // the disk was full). Nobody will ever complete it; take it over.
                        Err(_) if lock_age(path) > UNREADABLE_STALE => {
                            let _ = std::fs::remove_file(path);
                            took_over = Some(Holder {
                                pid: 0,
                                host: "?".into(),
                                started_at: "?".into(),
                                command: format!("unreadable lock file: {text:?}"),
                            });
                        }
                        // Unreadable: a holder may be between create and write; retry briefly.
                        Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
                    }
                }
                Err(e) => return Err(io(e)),
            }
        }
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let holder = serde_json::from_str(&text).unwrap_or(Holder {
            pid: 0,
            host: "?".into(),
            started_at: "?".into(),
            command: format!("unreadable lock file: {text:?}"),
        });
        Err(LockError::Held {
            path: path.to_path_buf(),
            holder,
        })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
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
    fn an_empty_lock_is_refused_while_fresh_and_taken_over_when_old() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".lock");
        let f = std::fs::File::create(&p).unwrap();
        // Fresh: its writer may be about to fill it in.
        assert!(Lock::acquire(&p, "a").is_err());
        // Old: its writer died between create and write.
        let old = std::time::SystemTime::now() - 2 * UNREADABLE_STALE;
        f.set_modified(old).unwrap();
        let l = Lock::acquire(&p, "b").unwrap();
        assert!(l
            .took_over
            .as_ref()
            .is_some_and(|h| h.command.contains("unreadable")));
    }
}
