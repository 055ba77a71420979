//! The Python side's cost per request: `App::call` of hello world (tests/apps/python/hello.py) in
//! a loop, with a request like a benchmark client's (`wrk`: a dozen CGI variables, two headers).
//! Run: `cargo bench -p liege-python --bench call [-- CALLS]`.

use std::fs::File;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use liege_python::Python;
use liege_worker::response::Framing;
use liege_worker::{App, Body, Language, Output, Request, Response, Vars};

const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/apps/python");

/// Counts the bytes a response sends.
#[derive(Debug, Default)]
struct Sink {
    bytes: u64,
}

impl Output for Sink {
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.bytes += data.len() as u64;
        Ok(())
    }
    fn send_file(&mut self, _: File, _: u64, len: u64) -> io::Result<()> {
        self.bytes += len;
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn request() -> Request {
    let mut vars = Vars::with_capacity(512, 16);
    for (k, v) in [
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", "/"),
        ("PATH_INFO", "/"),
        ("QUERY_STRING", ""),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SCRIPT_NAME", ""),
        ("SERVER_NAME", "127.0.0.1"),
        ("SERVER_PORT", "8080"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "51234"),
    ] {
        vars.push(k.as_bytes(), v.as_bytes());
    }
    vars.push_header(b"Host", b"127.0.0.1:8080");
    vars.push_header(b"User-Agent", b"wrk");
    Request {
        vars,
        body: Body::Empty,
        scheme: "http",
    }
}

const FRAMING: Framing = Framing {
    http11: true,
    keep_alive: true,
    head_only: false,
    http: true,
};

fn run(app: &impl App, calls: u32, out: &mut Sink) -> Duration {
    let start = Instant::now();
    for _ in 0..calls {
        let mut r = Response::new(out, FRAMING);
        app.call(request(), &mut r).expect("hello world answers");
        r.finish().expect("the response finishes");
    }
    start.elapsed()
}

fn main() {
    let calls: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let options = [
        ("pythonpath".to_string(), APPS.to_string()),
        ("module".to_string(), "hello".to_string()),
    ];
    let app = Python::new().load(&options).expect("hello.py loads");
    let mut out = Sink::default();
    run(&app, calls / 10, &mut out);

    let start = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(request());
    }
    let building = start.elapsed();
    let took = run(&app, calls, &mut out);

    let per = |d: Duration| d.as_secs_f64() * 1e9 / f64::from(calls);
    let mut stdout = io::stdout();
    let _ = writeln!(
        stdout,
        "{calls} calls of hello world: {:.0} ns per call (of which {:.0} ns building the \
         request in Rust), {:.0} calls/s on one thread; {} bytes sent",
        per(took),
        per(building),
        f64::from(calls) / took.as_secs_f64(),
        out.bytes
    );
}
