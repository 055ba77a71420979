//! The real binaries: `liege` (the master) runs `liege-perl` workers on a loopback HTTP socket,
//! and each test checks the answers a client gets. Needs `cargo build -p liege -p liege-perl`
//! (scripts/test builds every binary first).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../../tests/support/ports.rs"]
mod ports;

const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps");

/// `target/debug`, where cargo put `liege` and `liege-perl` (this test is in its `deps/`).
fn bin_dir() -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    let dir = me
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    for exe in ["liege", "liege-perl"] {
        assert!(
            dir.join(exe).exists(),
            "{} is missing: run `cargo build -p liege -p liege-perl` first",
            dir.join(exe).display()
        );
    }
    dir
}

/// A running `liege`, stopped (SIGINT, then SIGKILL) when dropped.
struct Liege {
    child: Child,
    addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Liege {
    fn start(app: &str, extra: &[&str]) -> Liege {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let addr = format!("127.0.0.1:{}", ports::free_port());
        let mut cmd = Command::new(bin_dir().join("liege"));
        cmd.args(["--master", "--http-socket", &addr, "--psgi"])
            .arg(format!("{APPS}/{app}"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs_err::File::create(&log).unwrap().into_parts().0);
        let child = cmd.spawn().expect("start liege");
        let liege = Liege {
            child,
            addr,
            log,
            _dir: dir,
        };
        liege.wait_ready();
        liege
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("liege never listened on {}: {}", self.addr, self.log_text());
    }

    fn log_text(&self) -> String {
        fs_err::read_to_string(&self.log).unwrap_or_default()
    }

    fn request(&self, raw: &[u8]) -> Reply {
        let mut s = TcpStream::connect(&self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(raw).unwrap();
        let mut bytes = Vec::new();
        s.read_to_end(&mut bytes).expect("read the answer");
        Reply::parse(&bytes)
    }

    fn get(&self, path: &str) -> Reply {
        self.request(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    }
}

impl Drop for Liege {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: a signal to the master this test started, by its pid; no memory involved.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn parse(bytes: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status");
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        Reply {
            status,
            head: head.to_string(),
            body,
        }
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex size");
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

#[test]
fn hello_world_through_the_real_binary() {
    let liege = Liege::start("hello.psgi", &["--processes", "2"]);
    for _ in 0..5 {
        let r = liege.get("/");
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.head.contains("Content-Length: 13"), "{r:?}");
        assert_eq!(r.body, "Hello, World!");
    }
}

#[test]
fn prefork_workers_serve_the_app_the_zygote_loaded() {
    let liege = Liege::start("stream.psgi", &["--processes", "2", "--lazy-apps=false"]);
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let r = liege.get("/pid");
        assert_eq!(r.status, 200, "{r:?}");
        pids.insert(r.body);
    }
    assert!(!pids.is_empty() && pids.len() <= 2, "{pids:?}");
    let log = liege.log_text();
    assert!(
        log.contains("prefork (zygote)") && log.contains("spawned zygote"),
        "{log}"
    );
}

#[test]
fn the_lint_wrapped_matrix_passes_plack_lint() {
    let liege = Liege::start("lint.psgi", &["--processes", "1"]);
    let r = liege.get("/");
    assert_eq!((r.status, r.body.as_str()), (200, "lint ok http"), "{r:?}");
    let r = liege.get("/query?name=bob");
    assert_eq!((r.status, r.body.as_str()), (200, "hello bob"), "{r:?}");
    let body = "a body with\nlines\n".repeat(100);
    let r = liege.request(
        format!(
            "POST /echo HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!((r.status, r.body.as_str()), (200, body.as_str()), "{r:?}");
    let r = liege.get("/stream");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.head.contains("Transfer-Encoding: chunked"), "{r:?}");
    assert_eq!(r.body, "chunk1\nchunk2\nchunk3\n");
    let r = liege.get("/delayed");
    assert_eq!((r.status, r.body.as_str()), (200, "delayed"), "{r:?}");
    let r = liege.get("/fh");
    let source = fs_err::read_to_string(format!("{APPS}/lint.psgi")).unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, source.as_str()), "{r:?}");
    assert!(
        !liege.log_text().contains("the app died"),
        "{}",
        liege.log_text()
    );
}

#[test]
fn psgi_errors_reach_the_log_and_harakiri_commit_ends_the_worker() {
    let liege = Liege::start("stream.psgi", &["--processes", "1"]);
    let r = liege.get("/stream");
    assert_eq!(r.body, "piece 1\npiece 2\npiece 3\n", "{r:?}");
    let r = liege.get("/errors?x=1");
    assert_eq!((r.status, r.body.as_str()), (200, "logged"), "{r:?}");
    let log = liege.log_text();
    assert!(
        log.contains("psgi.errors line from /errors?x=1\nanswer=42\n"),
        "{log}"
    );
    let r = liege.get("/harakiri");
    assert_eq!(r.status, 200, "{r:?}");
    let first = r.body.clone();
    // The master starts another worker: a later answer comes from another pid.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = TcpStream::connect(&liege.addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut bytes = Vec::new();
            if s.write_all(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .is_ok()
                && s.read_to_end(&mut bytes).is_ok()
                && !bytes.is_empty()
            {
                let r = Reply::parse(&bytes);
                if r.status == 200 && r.body != first {
                    break;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no new worker: {}",
            liege.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        liege
            .log_text()
            .contains("the app set psgix.harakiri.commit"),
        "{}",
        liege.log_text()
    );
}

#[test]
fn a_die_is_a_500_and_the_log_has_perls_message() {
    let liege = Liege::start("shapes.psgi", &["--processes", "1"]);
    let r = liege.get("/die");
    assert_eq!(r.status, 500, "{r:?}");
    let r = liege.get("/array");
    assert_eq!((r.status, r.body.as_str()), (200, "one two 3"), "{r:?}");
    assert!(
        liege
            .log_text()
            .contains("GET /die: the app died: the app broke"),
        "{}",
        liege.log_text()
    );
}

#[test]
fn a_broken_file_is_logged_with_its_name() {
    let liege = Liege::start("broken.psgi", &["--processes", "1"]);
    let r = liege.get("/");
    assert_eq!(r.status, 500, "{r:?}");
    let log = liege.log_text();
    assert!(
        log.contains(&format!(
            "option `psgi`: loading `{APPS}/broken.psgi` failed:"
        )),
        "{log}"
    );
}
