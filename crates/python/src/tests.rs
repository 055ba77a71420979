//! The worker against real apps (tests/apps/python), in this process's one interpreter: each test
//! builds a request by hand, calls the app, and checks the exact bytes the response sent.

use std::fs::File;
use std::io::{self, Write};

use liege_worker::response::Framing;
use liege_worker::{App, AppError, Body, Language, Output, Request, Response, Vars};
use pyo3::prelude::*;

use crate::{Python, WsgiApp};

const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/apps/python");

/// Collects what a response sends, files included.
type Collect = liege_worker::response::MemoryOutput;

/// A client that went away: every send fails.
#[derive(Debug, Default)]
struct Gone;

impl Output for Gone {
    fn send(&mut self, _: &[u8]) -> io::Result<()> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
    fn send_file(&mut self, _: File, _: u64, _: u64) -> io::Result<()> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
}

const HTTP11: Framing = Framing::HTTP11;

fn load_with(module: &str, extra: &[(&str, &str)]) -> Result<WsgiApp, String> {
    let mut options = vec![
        ("pythonpath".to_string(), APPS.to_string()),
        ("module".to_string(), module.to_string()),
    ];
    options.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Python::new().load(&options).map_err(|e| e.0)
}

fn load(module: &str) -> WsgiApp {
    load_with(module, &[]).unwrap()
}

/// The CGI variables the runtime gives an HTTP/1.1 request.
fn request_with(method: &str, uri: &str, body: Body, extra: &[(&str, &[u8])]) -> Request {
    Request::http11(method, uri, body, extra)
}

fn get(uri: &str) -> Request {
    request_with("GET", uri, Body::Empty, &[])
}

fn post(uri: &str, body: &[u8]) -> Request {
    request_with("POST", uri, Body::Memory(body.to_vec()), &[])
}

/// Calls the app and finishes the response as the runtime does when the call succeeded.
fn serve_with(
    app: &WsgiApp,
    request: Request,
    framing: Framing,
) -> (Result<(), AppError>, Collect) {
    let mut c = Collect::default();
    let mut r = Response::new(&mut c, framing);
    let result = app.call(request, &mut r);
    if result.is_ok() {
        r.finish().unwrap();
    }
    drop(r);
    (result, c)
}

fn serve(app: &WsgiApp, request: Request) -> (Result<(), AppError>, Collect) {
    serve_with(app, request, HTTP11)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The chunks of a chunked body (without the last, empty one), and what follows it.
fn chunks(body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
        rest = &rest[eol + 2..];
        if size == 0 {
            assert_eq!(rest, b"\r\n", "the last chunk ends the body");
            return out;
        }
        out.push(rest[..size].to_vec());
        assert_eq!(&rest[size..size + 2], b"\r\n");
        rest = &rest[size + 2..];
    }
}

/// The head (as text) and the body of a response.
fn split(bytes: &[u8]) -> (String, Vec<u8>) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    (text(&bytes[..end]), bytes[end..].to_vec())
}

fn chunked(head: &str) -> String {
    format!("HTTP/1.1 200 OK\r\n{head}Transfer-Encoding: chunked\r\n\r\n")
}

fn closed_count(module: &str, name: &str) -> i64 {
    pyo3::Python::attach(|py| {
        py.import(module)
            .unwrap()
            .getattr("closed")
            .unwrap()
            .get_item(name)
            .map_or(0, |v| v.extract().unwrap())
    })
}

#[test]
fn hello_world_gets_a_content_length() {
    let (r, c) = serve(&load("hello"), get("/"));
    r.unwrap();
    assert_eq!(
        text(&c.bytes),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
    );
}

#[test]
fn wsgi_file_loads_as_a_uwsgi_named_module() {
    let file = format!("{APPS}/hello.py");
    let app = Python::new()
        .load(&[("wsgi-file".to_string(), file.clone())])
        .unwrap();
    let (r, c) = serve(&app, get("/"));
    r.unwrap();
    assert!(text(&c.bytes).ends_with("Hello, World!"));
    let name = format!("uwsgi_file_{}", file.replace(['/', '.'], "_"));
    let name = name.strip_suffix("_py").unwrap();
    pyo3::Python::attach(|py| {
        let modules = py.import("sys").unwrap().getattr("modules").unwrap();
        assert!(modules.contains(name).unwrap(), "{name} in sys.modules");
    });
}

#[test]
fn validated_hello() {
    let (r, c) = serve(&load("validated:hello"), get("/"));
    r.unwrap();
    assert_eq!(
        text(&c.bytes),
        chunked("Content-Type: text/plain\r\n") + "5\r\nhello\r\n0\r\n\r\n"
    );
}

#[test]
fn validator_warnings_are_errors() {
    // The validator warns about an unknown method: a warning turned error makes the call fail,
    // so the validated tests passing means no warning was raised.
    let (r, _) = serve(
        &load("validated:hello"),
        request_with("BREW", "/", Body::Empty, &[]),
    );
    assert_eq!(
        r.unwrap_err().0,
        "WSGIWarning: Unknown REQUEST_METHOD: 'BREW'"
    );
}

#[test]
fn validated_echo_of_a_post_body() {
    let (r, c) = serve(&load("validated:echo"), post("/echo", b"hello world"));
    r.unwrap();
    assert_eq!(
        text(&c.bytes),
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 11\r\n\r\nhello world"
    );
}

#[test]
fn validated_readline_loop() {
    let (r, c) = serve(&load("validated:readline"), post("/", b"a\nbb\nccc"));
    r.unwrap();
    let (head, body) = split(&c.bytes);
    assert_eq!(head, chunked("Content-Type: text/plain\r\n"));
    assert_eq!(text(&chunks(&body).concat()), "3 lines: [a][bb][ccc]");
}

#[test]
fn validated_iteration_over_input() {
    let (r, c) = serve(&load("validated:iterate"), post("/", b"x\nyy\nz"));
    r.unwrap();
    let (_, body) = split(&c.bytes);
    assert_eq!(
        chunks(&body),
        [b"X\n".to_vec(), b"YY\n".to_vec(), b"Z".to_vec()]
    );
}

#[test]
fn validated_streaming_generator_sends_a_chunk_per_item() {
    let (r, c) = serve(&load("validated:stream"), get("/"));
    r.unwrap();
    let (head, body) = split(&c.bytes);
    assert_eq!(head, chunked("Content-Type: text/plain\r\n"));
    assert_eq!(
        chunks(&body),
        [b"one\n".to_vec(), b"two\n".to_vec(), b"three\n".to_vec()]
    );
    assert_eq!(c.flushes, 3, "each chunk is pushed out as it comes");
}

#[test]
fn validated_file_wrapper_of_a_real_file() {
    let (r, c) = serve(&load("validated:file"), get("/"));
    r.unwrap();
    let (head, body) = split(&c.bytes);
    assert_eq!(head, chunked("Content-Type: text/x-python\r\n"));
    let expected = fs_err::read(format!("{APPS}/validated.py")).unwrap();
    let pieces = chunks(&body);
    assert!(pieces.iter().all(|p| p.len() <= 64), "blksize pieces");
    assert_eq!(pieces.concat(), expected);
}

#[test]
fn validated_exc_info_replaces_an_unsent_status() {
    let (r, c) = serve(&load("validated:exc_info"), get("/"));
    r.unwrap();
    assert_eq!(
        text(&c.bytes),
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\nc\r\nfailed: boom\r\n0\r\n\r\n"
    );
}

#[test]
fn validated_app_that_raises_is_an_app_error_and_sends_nothing() {
    let (r, c) = serve(&load("validated:raises"), get("/boom"));
    assert_eq!(r.unwrap_err().0, "RuntimeError: the app failed");
    assert!(c.bytes.is_empty());
}

#[test]
fn validated_empty_body() {
    let (r, c) = serve(&load("validated:empty"), get("/"));
    r.unwrap();
    assert_eq!(
        text(&c.bytes),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n"
    );
}

#[test]
fn validated_head_request_gets_the_head_only() {
    let app = load("validated:head");
    let head_only = Framing {
        head_only: true,
        ..HTTP11
    };
    let (r, c) = serve_with(&app, request_with("HEAD", "/", Body::Empty, &[]), head_only);
    r.unwrap();
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n";
    assert_eq!(text(&c.bytes), head);
    let (r, c) = serve(&app, get("/"));
    r.unwrap();
    assert_eq!(text(&c.bytes), format!("{head}head or get"));
}

#[test]
fn validated_legacy_write_goes_before_the_iterable() {
    let (r, c) = serve(&load("validated:legacy_write"), get("/"));
    r.unwrap();
    assert_eq!(
        text(&c.bytes),
        chunked("Content-Type: text/plain\r\n") + "6\r\nfirst \r\n6\r\nsecond\r\n0\r\n\r\n"
    );
}

#[test]
fn a_10_mb_file_body_reads_back_exactly_in_8192_byte_reads() {
    let data: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| u8::try_from((i * 7 + i / 8191) % 251).unwrap())
        .collect();
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&data).unwrap();
    let body = Body::File {
        file,
        len: data.len() as u64,
    };
    let (r, c) = serve(
        &load("validated:chunks"),
        request_with("POST", "/", body, &[]),
    );
    r.unwrap();
    let (_, body) = split(&c.bytes);
    let got = chunks(&body).concat();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the body came back changed");
}

#[test]
fn environ_has_every_pep_3333_key_with_its_type() {
    let app = load("environ_keys");
    let mut vars = Vars::new();
    vars.push(b"REQUEST_METHOD", b"POST");
    vars.push(b"REQUEST_URI", b"/x");
    vars.push(b"PATH_INFO", b"/x");
    vars.push(b"SERVER_PROTOCOL", b"HTTP/1.1");
    vars.push(b"SERVER_NAME", b"example.org");
    vars.push(b"SERVER_PORT", b"443");
    vars.push(b"CONTENT_TYPE", b"text/plain");
    vars.push(b"CONTENT_LENGTH", b"2");
    vars.push_header(b"X-Name", b"caf\xe9");
    vars.push_header(b"X-Rare-Header-Nobody-Sends", b"v");
    let request = Request {
        vars,
        body: Body::Memory(b"hi".to_vec()),
        scheme: "https",
    };
    let (r, c) = serve(&app, request);
    r.unwrap();
    let (_, body) = split(&c.bytes);
    let env: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let entry = |k: &str| -> (String, String) {
        let e = &env[k];
        assert!(e.is_array(), "{k} is in environ");
        (
            e[0].as_str().unwrap().to_string(),
            e[1].as_str().unwrap_or_default().to_string(),
        )
    };
    let str_value = |k: &str, v: &str| assert_eq!(entry(k), ("str".into(), format!("'{v}'")));
    str_value("REQUEST_METHOD", "POST");
    str_value("SCRIPT_NAME", "");
    str_value("PATH_INFO", "/x");
    str_value("QUERY_STRING", "");
    str_value("CONTENT_TYPE", "text/plain");
    str_value("CONTENT_LENGTH", "2");
    str_value("SERVER_NAME", "example.org");
    str_value("SERVER_PORT", "443");
    str_value("SERVER_PROTOCOL", "HTTP/1.1");
    str_value("HTTP_X_NAME", "caf\u{e9}");
    str_value("HTTP_X_RARE_HEADER_NOBODY_SENDS", "v");
    assert_eq!(entry("wsgi.version"), ("tuple".into(), "(1, 0)".into()));
    str_value("wsgi.url_scheme", "https");
    assert_eq!(entry("wsgi.input").0, "Input");
    assert_eq!(entry("wsgi.errors").0, "TextIOWrapper");
    assert_eq!(entry("wsgi.multithread"), ("bool".into(), "False".into()));
    assert_eq!(entry("wsgi.multiprocess"), ("bool".into(), "True".into()));
    assert_eq!(entry("wsgi.run_once"), ("bool".into(), "False".into()));
    assert_eq!(entry("wsgi.file_wrapper").0, "type");
    assert_eq!(
        entry("wsgi.input_terminated"),
        ("bool".into(), "True".into())
    );
    assert_eq!(
        env["@input"],
        serde_json::json!(["read", "readline", "readlines", "__iter__"])
    );
    assert_eq!(
        env["@errors"],
        serde_json::json!(["write", "writelines", "flush"])
    );
    assert_eq!(env["@file_wrapper_callable"], true);
    assert_eq!(env["@environ_type"], "dict");
}

#[test]
fn wsgi_multithread_follows_threads() {
    let app = load_with("environ_keys", &[("threads", "4")]).unwrap();
    let (r, c) = serve(&app, get("/"));
    r.unwrap();
    let (_, body) = split(&c.bytes);
    let env: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(env["wsgi.multithread"][1], "True");
}

#[test]
fn close_is_called_when_iteration_raises() {
    let (r, c) = serve(&load("misbehaving:failing_iteration"), get("/"));
    assert_eq!(r.unwrap_err().0, "RuntimeError: iteration failed");
    assert!(
        text(&c.bytes).ends_with("8\r\npart one\r\n"),
        "the first piece went out"
    );
    assert_eq!(closed_count("misbehaving", "failing_iteration"), 1);
}

#[test]
fn close_is_called_when_the_client_went_away() {
    let app = load("misbehaving:client_gone");
    let mut gone = Gone;
    let mut r = Response::new(&mut gone, HTTP11);
    let e = app.call(get("/"), &mut r).unwrap_err();
    assert!(e.0.starts_with("sending the response failed"), "{e}");
    assert_eq!(closed_count("misbehaving", "client_gone"), 1);
}

#[test]
fn an_app_that_never_calls_start_response_fails() {
    let (r, c) = serve(&load("misbehaving:no_start_response"), get("/"));
    assert_eq!(
        r.unwrap_err().0,
        "the app sent body bytes before calling start_response"
    );
    assert!(c.bytes.is_empty());
}

#[test]
fn an_app_that_returns_nothing_without_start_response_fails() {
    let (r, c) = serve(&load("misbehaving:silent"), get("/"));
    assert_eq!(
        r.unwrap_err().0,
        "the app returned without calling start_response"
    );
    assert!(c.bytes.is_empty());
}

/// An output whose flush waits until the test lets it go, and says when it started waiting.
#[derive(Debug)]
struct Held {
    waiting: std::sync::mpsc::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
}

impl Output for Held {
    fn send(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn send_file(&mut self, _: File, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        let _ = self.waiting.send(());
        let _ = self.release.recv();
        Ok(())
    }
}

#[test]
fn the_gil_is_free_while_a_chunk_goes_out() {
    use std::sync::mpsc::channel;
    use std::time::Duration;
    let stream = load("validated:stream");
    let hello = load("hello");
    let (waiting_tx, waiting) = channel();
    let (release, release_rx) = channel();
    let streaming = std::thread::spawn(move || {
        let mut out = Held {
            waiting: waiting_tx,
            release: release_rx,
        };
        let mut r = Response::new(&mut out, HTTP11);
        stream.call(get("/"), &mut r)
    });
    waiting.recv().unwrap();
    // The streaming call is now blocked in a flush: another call must still get the GIL. (A
    // deadlock shows as the timeout, not as a hang.)
    let (done_tx, done) = channel();
    std::thread::spawn(move || {
        let (r, c) = serve(&hello, get("/"));
        let _ = done_tx.send((r.is_ok(), c.bytes));
    });
    let (ok, bytes) = done
        .recv_timeout(Duration::from_secs(60))
        .expect("hello world ran");
    assert!(ok);
    assert!(text(&bytes).ends_with("Hello, World!"));
    for _ in 0..3 {
        let _ = release.send(());
    }
    streaming.join().unwrap().unwrap();
}

#[test]
fn sys_exit_in_a_request_is_an_app_error() {
    let (r, c) = serve(&load("misbehaving:exits"), get("/"));
    assert_eq!(r.unwrap_err().0, "SystemExit: 3");
    assert!(c.bytes.is_empty());
}

#[test]
fn str_items_are_a_type_error() {
    let (r, _) = serve(&load("misbehaving:str_body"), get("/"));
    assert_eq!(
        r.unwrap_err().0,
        "TypeError: the response iterable yielded a str where bytes were expected"
    );
}

#[test]
fn start_response_checks_types_values_and_a_second_call() {
    let (r, c) = serve(&load("misbehaving:bad_header"), get("/"));
    r.unwrap();
    let (_, body) = split(&c.bytes);
    assert_eq!(
        text(&body),
        "TypeError TypeError TypeError TypeError ValueError ValueError ValueError ValueError AssertionError"
    );
}

#[test]
fn exc_info_after_the_head_went_out_reraises() {
    let (r, c) = serve(&load("misbehaving:late_exc_info"), get("/"));
    assert_eq!(r.unwrap_err().0, "KeyError: 'late'");
    assert!(text(&c.bytes).ends_with("7\r\npartial\r\n"));
}

#[test]
fn a_kept_start_response_is_dead_after_the_call() {
    let (r, _) = serve(&load("misbehaving:keeps_start_response"), get("/"));
    r.unwrap();
    let answer: String = pyo3::Python::attach(|py| {
        py.import("misbehaving")
            .unwrap()
            .call_method0("use_kept")
            .unwrap()
            .extract()
            .unwrap()
    });
    assert_eq!(
        answer,
        "the response is finished, or in use by another thread"
    );
}

#[test]
fn a_file_wrapper_of_a_regular_file_is_sent_whole() {
    let (r, c) = serve(&load("files:sendfile"), get("/"));
    r.unwrap();
    let expected = fs_err::read(format!("{APPS}/files.py")).unwrap();
    let (head, body) = split(&c.bytes);
    assert_eq!(
        head,
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/x-python\r\nContent-Length: {}\r\n\r\n",
            expected.len()
        )
    );
    assert_eq!(body, expected);
    let closed: bool = pyo3::Python::attach(|py| {
        let opened = py.import("files").unwrap().getattr("opened").unwrap();
        let last = opened.get_item(opened.len().unwrap() - 1).unwrap();
        last.getattr("closed").unwrap().extract().unwrap()
    });
    assert!(closed, "the wrapper's close() closed the file");
}

#[test]
fn a_file_wrapper_sends_from_where_the_file_stands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("digits");
    fs_err::write(&path, "0123456789").unwrap();
    let path = path.to_str().unwrap().as_bytes().to_vec();
    let request = request_with("GET", "/", Body::Empty, &[("FILE_PATH", &path)]);
    let (r, c) = serve(&load("files:seeked"), request);
    r.unwrap();
    assert_eq!(
        text(&c.bytes),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\n3456789"
    );
}

#[test]
fn a_file_wrapper_without_a_descriptor_is_iterated() {
    let (r, c) = serve(&load("files:no_descriptor"), get("/"));
    r.unwrap();
    let (_, body) = split(&c.bytes);
    assert_eq!(
        chunks(&body),
        [b"abcd".to_vec(), b"efgh".to_vec(), b"ij".to_vec()]
    );
}

#[test]
fn tuples_and_short_lists_are_sent_whole() {
    let (r, c) = serve(&load("shapes:tuple_body"), get("/"));
    r.unwrap();
    assert_eq!(
        text(&c.bytes),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc"
    );
    let (r, c) = serve(&load("shapes:several"), get("/"));
    r.unwrap();
    assert_eq!(
        text(&c.bytes),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\none two"
    );
}

#[test]
fn bare_bytes_are_sent_whole() {
    let (r, c) = serve(&load("shapes:bare_bytes"), get("/"));
    r.unwrap();
    assert_eq!(
        text(&c.bytes),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nraw"
    );
}

#[test]
fn big_lists_are_streamed() {
    let (r, c) = serve(&load("shapes:big_list"), get("/"));
    r.unwrap();
    let (head, body) = split(&c.bytes);
    assert_eq!(head, chunked("Content-Type: text/plain\r\n"));
    assert_eq!(chunks(&body), [vec![b'x'; 600_000], vec![b'y'; 600_000]]);
}

#[test]
fn start_response_may_come_from_the_iterable() {
    let (r, c) = serve(&load("shapes:late_start"), get("/"));
    r.unwrap();
    assert_eq!(
        text(&c.bytes),
        chunked("Content-Type: text/plain\r\n") + "4\r\nlate\r\n0\r\n\r\n"
    );
}

#[test]
fn thread_state_survives_between_requests() {
    let app = load("state:per_thread_count");
    // A fresh thread, so no other test's calls count.
    let bodies = std::thread::spawn(move || {
        (0..3)
            .map(|_| {
                let (r, c) = serve(&app, get("/"));
                r.unwrap();
                split(&c.bytes).1
            })
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    assert_eq!(bodies, [b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
}

#[test]
fn the_gil_is_not_held_after_load_nor_after_a_call() {
    let app = load("hello");
    // SAFETY: PyGILState_Check only reads this thread's state.
    assert_eq!(unsafe { pyo3::ffi::PyGILState_Check() }, 0);
    let (r, _) = serve(&app, get("/"));
    r.unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { pyo3::ffi::PyGILState_Check() }, 0);
}

#[test]
fn without_home_the_interpreter_is_the_one_built_against() {
    load("hello");
    let (prefix, executable): (String, String) = pyo3::Python::attach(|py| {
        let sys = py.import("sys").unwrap();
        (
            sys.getattr("prefix").unwrap().extract().unwrap(),
            sys.getattr("executable").unwrap().extract().unwrap(),
        )
    });
    assert_eq!(prefix, "/usr");
    assert_eq!(executable, "/usr/bin/python3");
}

#[test]
fn load_errors_name_the_option_and_value() {
    assert_eq!(
        Python::new().load(&[]).unwrap_err().0,
        "no app to load: set `module` or `wsgi-file`"
    );
    assert_eq!(
        load_with("no_such_module_here", &[]).unwrap_err(),
        "option `module`: importing `no_such_module_here` failed: ModuleNotFoundError: No module named 'no_such_module_here'"
    );
    assert_eq!(
        load_with("hello:missing", &[]).unwrap_err(),
        "option `module`: `hello:missing` has no callable `missing`"
    );
    assert_eq!(
        load_with("hello", &[("callable", "nope")]).unwrap_err(),
        "option `callable`: `hello` has no callable `nope`"
    );
    assert_eq!(
        load_with("misbehaving:closed", &[]).unwrap_err(),
        "option `module`: `closed` in `misbehaving:closed` is not callable (it is a dict)"
    );
    let missing = format!("{APPS}/does_not_exist.py");
    let e = Python::new()
        .load(&[("wsgi-file".to_string(), missing.clone())])
        .unwrap_err()
        .0;
    assert!(
        e.starts_with(&format!(
            "option `wsgi-file`: importing `{missing}` failed: FileNotFoundError"
        )),
        "{e}"
    );
    assert_eq!(
        load_with("hello", &[("env", "JUNK")]).unwrap_err(),
        "option `env`: `JUNK` is not NAME=VALUE"
    );
}

#[test]
fn env_options_reach_os_environ() {
    load_with("hello", &[("env", "LIEGE_TEST_ENV=forty two")]).unwrap();
    let got: String = pyo3::Python::attach(|py| {
        py.import("os")
            .unwrap()
            .getattr("environ")
            .unwrap()
            .get_item("LIEGE_TEST_ENV")
            .unwrap()
            .extract()
            .unwrap()
    });
    assert_eq!(got, "forty two");
}

#[test]
fn a_factory_callable_is_called_at_load() {
    let app = load_with("shapes", &[("callable", "make_app()")]).unwrap();
    let (r, c) = serve(&app, get("/"));
    r.unwrap();
    assert!(text(&c.bytes).ends_with("\r\n\r\nabc"));
    assert_eq!(
        load_with("hello", &[("callable", "make()")]).unwrap_err(),
        "option `callable`: `hello` has no callable `make`"
    );
}

#[test]
fn chdir_makes_a_relative_wsgi_file_load() {
    let app = Python::new()
        .load(&[
            ("chdir".to_string(), APPS.to_string()),
            ("wsgi-file".to_string(), "hello.py".to_string()),
        ])
        .unwrap();
    let (r, c) = serve(&app, get("/"));
    r.unwrap();
    assert!(text(&c.bytes).ends_with("Hello, World!"));
    let e = Python::new()
        .load(&[
            ("chdir".to_string(), "/nonexistent/liege".to_string()),
            ("module".to_string(), "hello".to_string()),
        ])
        .unwrap_err();
    assert_eq!(
        e.0,
        "option `chdir`: cannot change to `/nonexistent/liege`: No such file or directory (os error 2)"
    );
}
