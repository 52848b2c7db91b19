//! Wall-clock times as people read them, in local time (run names, run records).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// `unix` in local time as `strftime` formats it (`%Y-%m-%d-%H%M-%S`, ...).
pub fn local(unix: i64, format: &str) -> String {
    let format = std::ffi::CString::new(format).expect("formats have no NUL");
    let time = unix as libc::time_t;
    // SAFETY: localtime_r and strftime write only into the buffers given, sized here.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&time, &mut tm).is_null() {
            return unix.to_string();
        }
        let mut buffer = [0u8; 64];
        let written = libc::strftime(buffer.as_mut_ptr().cast(), buffer.len(), format.as_ptr(), &tm);
        String::from_utf8_lossy(&buffer[..written]).into_owned()
    }
}

/// A run's default name: its start, readable and sorting in time order (`2026-12-03-1051-07`).
pub fn run_name(unix: i64) -> String {
    local(unix, "%Y-%m-%d-%H%M-%S")
}

/// A time in a run record or listing: `2026-12-03 10:51:07 +0100`.
pub fn timestamp(unix: i64) -> String {
    local(unix, "%Y-%m-%d %H:%M:%S %z")
}

/// `seconds` as `1h02m`, `3m05s` or `42s`.
pub fn duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match (seconds / 3600, seconds % 3600 / 60, seconds % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_times_and_durations_read_short() {
        let (earlier, later) = (run_name(1_800_000_000), run_name(1_800_000_061));
        assert_eq!(earlier.len(), "2026-12-03-1051-07".len());
        assert!(earlier < later, "{earlier} {later}");
        assert_eq!((duration(42), duration(185), duration(3720)), ("42s".into(), "3m05s".into(), "1h02m".into()));
    }
}
