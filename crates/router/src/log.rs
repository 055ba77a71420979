//! The router's log on stderr: one access line per request (when `access_log` is set) and
//! error lines, written by a thread of its own so a slow stderr never stalls a request (lines
//! past a backlog of [`BACKLOG`] are dropped, and their count is logged).

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lines waiting to be written before new ones are dropped.
pub(crate) const BACKLOG: usize = 16 * 1024;

/// The log's sending side.
#[derive(Debug)]
pub(crate) struct Log {
    tx: Option<SyncSender<String>>,
    dropped: AtomicU64,
}

impl Log {
    /// Starts the writer thread (without one, lines are dropped).
    pub(crate) fn start() -> Log {
        let (tx, rx) = sync_channel(BACKLOG);
        let started = std::thread::Builder::new()
            .name("liege-router-log".into())
            .spawn(move || writer(rx))
            .is_ok();
        Log {
            tx: started.then_some(tx),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues a line (without its newline).
    pub(crate) fn line(&self, mut line: String) {
        let Some(tx) = &self.tx else { return };
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = write!(
                line,
                "\n{} liege-router: {dropped} log lines dropped (stderr too slow)",
                now()
            );
        }
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(dropped + 1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Logs an error of the router.
    pub(crate) fn error(&self, what: impl std::fmt::Display) {
        self.line(format!("{} liege-router: {what}", now()));
    }
}

fn writer(rx: Receiver<String>) {
    let stderr = std::io::stderr();
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Ok(line) = rx.recv() {
        batch.clear();
        batch.extend_from_slice(line.as_bytes());
        batch.push(b'\n');
        while batch.len() < 64 * 1024
            && let Ok(line) = rx.try_recv()
        {
            batch.extend_from_slice(line.as_bytes());
            batch.push(b'\n');
        }
        // Locked per batch only: a panic message elsewhere must not wait for the log.
        let mut out = stderr.lock();
        let _ = out.write_all(&batch);
        let _ = out.flush();
    }
}

/// The time now, UTC, `2026-05-01T12:34:56.789Z`.
pub(crate) fn now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_time(d.as_secs(), d.subsec_millis())
}

/// Formats seconds since the epoch (and ms) as RFC 3339 UTC.
fn format_time(secs: u64, ms: u32) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A request target for the log: escaped, at most 1024 bytes.
pub(crate) fn shown(b: &[u8]) -> String {
    let cut = &b[..b.len().min(1024)];
    let mut s = cut.escape_ascii().to_string();
    if b.len() > 1024 {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(format_time(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_time(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(format_time(1_777_638_896, 789), "2026-05-01T12:34:56.789Z");
    }
}
