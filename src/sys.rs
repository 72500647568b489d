//! Process set-up through libc: the allocator thresholds every training process wants, a quiet
//! exit for short commands whose output is piped into `head`, and signals to an external
//! trainer's process group.
//!
//! One of the two modules allowed `unsafe` code (Cargo.toml's `[lints]` names both).

#![allow(unsafe_code)]

/// Keeps freed tensor buffers in the heap instead of returning them to the kernel.
///
/// glibc serves blocks above its mmap threshold (128 KiB, adapting up to 32 MiB) with fresh
/// `mmap`s and unmaps them on free, so every update page-faults and zero-fills its activation and
/// gradient buffers again; issue 9's bench measured oneDNN's stride-2 input gradient at 8.4 ms
/// that way against 3.1 ms with the thresholds raised. Raising them makes the training loop reuse
/// the same heap blocks. Buffers of 64 MiB and more (the replay store) are still mapped on their
/// own, and up to 128 MiB of free heap may stay resident. Call once at start-up, before any tensor
/// exists.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation parameters; called before other threads
    // allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
}

/// Restores the default SIGPIPE action, so that a command whose reader went away
/// (`td3-sweep sweep x.yaml --dry-run | head`) ends quietly, as `cat` would, instead of panicking
/// on its next `println!`. Only for commands that just print: a training process keeps Rust's
/// ignored SIGPIPE, so a dead Gymnasium bridge is an error it records, not a signal that kills it.
pub fn die_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: installs the default disposition for one signal; no handler code runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Writes one line to stdout and ignores a failure. Long-running commands (`sweep`, `train`,
/// `run-one`) print progress through [`crate::say!`]: a closed stdout (a `| head` that exited, a
/// dead terminal, a parent sweep that was killed) must not panic in the middle of a run or of a
/// sweep's bookkeeping. The run's records are files; the console is a courtesy.
pub fn say_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
}

/// `println!` that drops the line when stdout is closed instead of panicking (see
/// [`say_line`]).
#[macro_export]
macro_rules! say {
    () => {
        $crate::sys::say_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::sys::say_line(format_args!($($arg)*))
    };
}

/// CPU seconds (user + system) used so far by this process's children that have ended and been
/// waited for, their own descendants included (a run's Gymnasium bridge). Differences of two
/// readings measure a sweep's runs; divided by the wall time, the cores they kept busy, which,
/// unlike summed run durations, cannot exceed the machine's cores.
pub fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own; RUSAGE_CHILDREN is always valid.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) != 0 {
            return 0.0;
        }
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Sends `signal` to process `pid` (a run's child: SIGTERM on a timeout or Ctrl-C). False when it
/// is gone.
pub fn signal_process(pid: u32, signal: i32) -> bool {
    match i32::try_from(pid) {
        // SAFETY: kill(2) on one positive pid; it touches no memory of ours.
        Ok(pid) if pid > 1 => unsafe { libc::kill(pid, signal) == 0 },
        _ => false,
    }
}

/// Sends `signal` (`libc::SIGTERM`, `libc::SIGKILL`, or 0 to probe) to every process in process
/// group `pgid`: an external trainer and the workers it started. False when the group has no
/// process left (or may not be signalled).
pub fn signal_group(pgid: u32, signal: i32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        // 0 would signal our own group, 1 every process we may signal: never meant here.
        return false;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory of ours.
    unsafe { libc::kill(-pgid, signal) == 0 }
}
