//! Rack apps (tests/apps) through the real `liege` master and `liege-ruby` workers, over HTTP on
//! 127.0.0.1. Needs both executables built beside this test's: `cargo build -p liege -p
//! liege-ruby` first (`cargo test -p liege-ruby` builds only the second).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../../tests/support/ports.rs"]
mod ports;

const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps");

/// `liege`, beside this package's `liege-ruby`.
fn liege_bin() -> PathBuf {
    let worker = Path::new(env!("CARGO_BIN_EXE_liege-ruby"));
    let liege = worker.with_file_name("liege");
    assert!(
        liege.is_file(),
        "{} is missing: run `cargo build -p liege -p liege-ruby` first",
        liege.display()
    );
    liege
}

/// A running instance; stopped (SIGINT: the master stops its workers and exits) when dropped.
struct Instance {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Instance {
    fn start(app: &str, extra: &[&str]) -> Instance {
        let port = ports::free_port();
        let dir = tempfile::tempdir().unwrap();
        let log = fs_err::File::create(dir.path().join("log.txt"))
            .unwrap()
            .into_parts()
            .0;
        let sock = format!("127.0.0.1:{port}");
        let app = if app.starts_with('/') {
            app.to_string()
        } else {
            format!("{APPS}/{app}")
        };
        let child = Command::new(liege_bin())
            .args(["--master", "--http-socket", &sock, "--rack", &app])
            .args(extra)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut inst = Instance { child, dir, port };
        inst.wait_ready();
        inst
    }

    fn log(&self) -> String {
        fs_err::read_to_string(self.dir.path().join("log.txt")).unwrap_or_default()
    }

    /// Waits until the socket answers anything (up to 30 seconds).
    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("liege exited with {status}:\n{}", self.log());
            }
            if self
                .request(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .is_ok()
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "not ready after 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends raw bytes and reads until the server closes.
    fn request(&self, raw: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.write_all(raw)?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        if out.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(out)
    }

    fn get(&self, path: &str) -> Resp {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        Resp::parse(&self.request(raw.as_bytes()).unwrap())
    }

    fn post(&self, path: &str, body: &[u8]) -> Resp {
        let mut raw = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(body);
        Resp::parse(&self.request(&raw).unwrap())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: signals our own child, which has not been waited for yet.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let start = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if start.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[derive(Debug)]
struct Resp {
    head: String,
    /// The body, its chunks joined when chunked.
    body: Vec<u8>,
    /// The chunks, when chunked.
    chunks: Vec<Vec<u8>>,
}

impl Resp {
    fn parse(bytes: &[u8]) -> Resp {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete head");
        let head = String::from_utf8_lossy(&bytes[..end + 2]).into_owned();
        let mut body = bytes[end + 4..].to_vec();
        let mut chunks = Vec::new();
        if head.contains("Transfer-Encoding: chunked\r\n") {
            let mut rest = &body[..];
            loop {
                let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
                let size =
                    usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
                rest = &rest[eol + 2..];
                if size == 0 {
                    break;
                }
                chunks.push(rest[..size].to_vec());
                rest = &rest[size + 2..];
            }
            body = chunks.concat();
        }
        Resp { head, body, chunks }
    }

    fn status(&self) -> u16 {
        self.head[9..12].parse().unwrap()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[test]
fn hello_world_with_two_workers_and_keep_alive() {
    let inst = Instance::start("hello.ru", &["--processes", "2"]);
    let r = inst.get("/");
    assert_eq!(r.status(), 200, "{}", inst.log());
    assert_eq!(r.text(), "Hello, World!");
    assert!(r.head.contains("Content-Length: 13\r\n"), "{}", r.head);
    // Two requests on one connection: the first is kept alive.
    let both = inst
        .request(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let text = String::from_utf8_lossy(&both);
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{text}");
}

#[test]
fn the_lint_matrix_over_http_in_memory_and_in_a_file() {
    // A post-buffering of 8 bytes: the 13-byte body reaches the app from a temporary file.
    for extra in [&[][..], &["--post-buffering", "8"][..]] {
        let inst = Instance::start("matrix.ru", extra);
        let r = inst.get("/env?a=b");
        assert_eq!(r.status(), 200, "{}", inst.log());
        let text = r.text();
        assert!(text.contains(r#""QUERY_STRING":"a=b""#), "{text}");
        assert!(
            text.contains(&format!(r#""SERVER_PORT":"{}""#, inst.port)),
            "{text}"
        );
        assert!(text.contains(r#""REMOTE_ADDR":"127.0.0.1""#), "{text}");
        let r = inst.post("/input", b"one\ntwo\nthree");
        assert_eq!(r.status(), 200, "{}", inst.log());
        assert!(
            r.text().contains(r#""each":["one\n","two\n","three"]"#),
            "{extra:?}: {}",
            r.text()
        );
        let r = inst.get("/multi");
        assert!(
            r.head.contains("Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n"),
            "{}",
            r.head
        );
    }
}

#[test]
fn an_exception_is_a_500_with_its_backtrace_in_the_log() {
    let inst = Instance::start("matrix.ru", &[]);
    let r = inst.get("/raise");
    assert_eq!(r.status(), 500);
    let log = inst.log();
    assert!(
        log.contains("GET /raise: the app raised an exception: ArgumentError: boom from the app"),
        "{log}"
    );
    assert!(
        log.contains("matrix.ru:"),
        "the backtrace names the app's file:\n{log}"
    );
    // The worker goes on.
    assert_eq!(inst.get("/closed").status(), 200);
}

#[test]
fn a_streamed_body_goes_out_one_chunk_per_part() {
    let inst = Instance::start("stream.ru", &[]);
    let r = inst.get("/");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.chunks,
        [
            b"part 0\n".to_vec(),
            b"part 1\n".to_vec(),
            b"part 2\n".to_vec()
        ]
    );
}

#[test]
fn prefork_serves_from_the_zygote_s_app() {
    let inst = Instance::start("matrix.ru", &["--processes", "2", "--lazy-apps=false"]);
    let r = inst.get("/env");
    assert_eq!(r.status(), 200, "{}", inst.log());
    assert!(inst.log().contains("zygote"), "{}", inst.log());
}

#[test]
fn a_syntax_error_names_the_file_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.ru");
    fs_err::write(&bad, "run ->(env) { [200, {}, [\"x\"]\n").unwrap();
    let inst = Instance::start(bad.to_str().unwrap(), &[]);
    assert_eq!(inst.get("/").status(), 500);
    let log = inst.log();
    let want = format!(
        "cannot load the app: option `rack`: loading `{0}` failed: SyntaxError: {0}:1: syntax error",
        bad.display()
    );
    assert!(log.contains(&want), "{log}");
}
