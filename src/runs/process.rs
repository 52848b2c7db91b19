//! Whether a process still runs, for locks and run records left by a process that died, and
//! asking a training in another process to stop.

/// Whether `pid` is a live process (a zombie, which has ended but not been reaped, is not).
pub fn is_alive(pid: u32) -> bool {
    let Ok(pid_t) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let exists =
        unsafe { libc::kill(pid_t, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !is_zombie(pid)
}

/// Sends SIGINT to `pid`: a training stops after its current batch, as on Ctrl-C.
pub fn interrupt(pid: u32) -> std::io::Result<()> {
    let pid_t = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: kill only sends a signal; a positive pid names one process.
    if unsafe { libc::kill(pid_t, libc::SIGINT) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// `/proc/PID/stat`'s state field, after the parenthesised command name, is `Z` for a zombie.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_lives_and_a_reaped_child_does_not() {
        assert!(is_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!is_alive(pid));
    }

    #[test]
    fn an_unreaped_child_that_ended_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!is_alive(child.id()));
        child.wait().unwrap();
    }
}
