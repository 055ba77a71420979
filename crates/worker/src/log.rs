//! The worker's log: one line per request (uWSGI's layout, or `log-format`), and errors. Lines go
//! to stderr, which the master pointed at `logto` when it is set; each line is one write, so the
//! lines of several workers never mix.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// What one request line reports.
#[derive(Debug)]
pub struct RequestLine<'a> {
    pub pid: u32,
    pub worker: usize,
    pub core: usize,
    pub worker_requests: u64,
    pub core_requests: u64,
    pub addr: &'a str,
    pub method: &'a [u8],
    pub uri: &'a [u8],
    pub proto: &'a [u8],
    pub status: u16,
    pub size: u64,
    pub micros: u64,
    pub vars: usize,
    pub vars_bytes: usize,
}

/// Writes one line to stderr.
pub fn line(text: &str) {
    let mut s = String::with_capacity(text.len() + 1);
    s.push_str(text);
    s.push('\n');
    let _ = std::io::stderr().lock().write_all(s.as_bytes());
}

/// The request line: `log-format` when given, else uWSGI's default layout.
pub fn request(format: Option<&str>, r: &RequestLine<'_>) {
    let text = match format {
        Some(f) => expand(f, r),
        None => format!(
            "[pid: {}|app: 0|req: {}/{}] {} () {{{} vars in {} bytes}} [{}] {} {} => generated {} bytes in {} msecs ({} {}) (1 switches on core {})",
            r.pid,
            r.core_requests,
            r.worker_requests,
            r.addr,
            r.vars,
            r.vars_bytes,
            asctime(now_secs()),
            String::from_utf8_lossy(r.method),
            String::from_utf8_lossy(r.uri),
            r.size,
            r.micros / 1000,
            String::from_utf8_lossy(r.proto),
            r.status,
            r.core,
        ),
    };
    line(&text);
}

/// Expands uWSGI's `%(name)` log variables that liege knows; others stay as written.
fn expand(format: &str, r: &RequestLine<'_>) -> String {
    let mut out = String::with_capacity(format.len() + 64);
    let mut rest = format;
    while let Some(i) = rest.find("%(") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find(')') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let name = &after[..end];
        let value = match name {
            "method" => Some(String::from_utf8_lossy(r.method).into_owned()),
            "uri" => Some(String::from_utf8_lossy(r.uri).into_owned()),
            "proto" => Some(String::from_utf8_lossy(r.proto).into_owned()),
            "status" => Some(r.status.to_string()),
            "size" | "rsize" => Some(r.size.to_string()),
            "msecs" => Some((r.micros / 1000).to_string()),
            "micros" => Some(r.micros.to_string()),
            "addr" => Some(r.addr.to_string()),
            "pid" => Some(r.pid.to_string()),
            "wid" => Some(r.worker.to_string()),
            "core" => Some(r.core.to_string()),
            "time" | "epoch" => Some(now_secs().to_string()),
            "ltime" => Some(asctime(now_secs())),
            _ => None,
        };
        match value {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[i..i + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `Sun Nov 29 21:00:00 2026` (UTC), as uWSGI's request lines show the time.
pub fn asctime(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86400;
    let tod = secs % 86400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[usize::try_from(days % 7).unwrap_or(0)],
        MONTHS[usize::try_from(m - 1).unwrap_or(0)],
        d,
        tod / 3600,
        (tod / 60) % 60,
        tod % 60,
        y
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asctime_matches_known_dates() {
        assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime(1_795_986_000), "Sun Nov 29 21:00:00 2026");
    }

    #[test]
    fn log_format_expands_known_variables_only() {
        let r = RequestLine {
            pid: 7,
            worker: 2,
            core: 0,
            worker_requests: 1,
            core_requests: 1,
            addr: "10.0.0.1",
            method: b"GET",
            uri: b"/x?y",
            proto: b"HTTP/1.1",
            status: 404,
            size: 12,
            micros: 2500,
            vars: 3,
            vars_bytes: 40,
        };
        assert_eq!(
            expand(
                "%(addr) %(method) %(uri) %(status) %(size) %(msecs)ms %(wid) %(nope) %(",
                &r
            ),
            "10.0.0.1 GET /x?y 404 12 2ms 2 %(nope) %("
        );
    }
}
