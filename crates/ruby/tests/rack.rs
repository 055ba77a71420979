//! The worker against real Rack apps (tests/apps), in this process's one Ruby: each test builds a
//! request by hand, calls the app, and checks the exact bytes the response sent.
//!
//! Ruby may only be called from the thread that started it, so this is its own `main` running
//! the tests one after the other on the main thread (no libtest threads). Arguments that do not
//! start with `-` filter the tests by name, as libtest's do.

#![allow(
    clippy::print_stdout,
    clippy::exit,
    reason = "a test harness of its own: it reports and sets the exit status"
)]

use std::io::{self, Write};
use std::sync::OnceLock;

use liege_ruby::{RackApp, Ruby};
use liege_worker::response::{Framing, MemoryOutput};
use liege_worker::{App, AppError, Body, Language, Request, Response, Vars};

const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps");

const HTTP11: Framing = Framing::HTTP11;

fn load_with(file: &str, extra: &[(&str, &str)]) -> Result<RackApp, String> {
    let mut options = vec![("rack".to_string(), format!("{APPS}/{file}"))];
    options.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Ruby::new().load(&options).map_err(|e| e.0)
}

/// The apps, each loaded once (a second load would start over with fresh globals).
fn matrix() -> &'static RackApp {
    static APP: OnceLock<RackApp> = OnceLock::new();
    APP.get_or_init(|| load_with("matrix.ru", &[]).unwrap())
}

fn raw() -> &'static RackApp {
    static APP: OnceLock<RackApp> = OnceLock::new();
    APP.get_or_init(|| load_with("raw.ru", &[]).unwrap())
}

/// The CGI variables the runtime gives an HTTP/1.1 request.
fn request_with(method: &str, uri: &str, body: Body, extra: &[(&str, &[u8])]) -> Request {
    Request::http11(method, uri, body, extra)
}

fn get(uri: &str) -> Request {
    request_with("GET", uri, Body::Empty, &[])
}

/// Calls the app and finishes the response as the runtime does when the call succeeded.
fn serve_with(
    app: &RackApp,
    request: Request,
    framing: Framing,
) -> (Result<(), AppError>, MemoryOutput) {
    liege_worker::app::call_into_memory(app, request, framing)
}

fn serve(app: &RackApp, request: Request) -> (Result<(), AppError>, MemoryOutput) {
    serve_with(app, request, HTTP11)
}

/// The head (as text) and the body of a response.
fn split(bytes: &[u8]) -> (String, Vec<u8>) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    (
        String::from_utf8_lossy(&bytes[..end + 2]).into_owned(),
        bytes[end + 4..].to_vec(),
    )
}

/// The chunks of a chunked body (without the last, empty one).
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

/// A successful call's head and body (its chunks joined when chunked: Rack::Lint makes every
/// body an `each` body).
fn ok(app: &RackApp, request: Request) -> (String, Vec<u8>) {
    let (result, c) = serve(app, request);
    result.unwrap();
    let (head, body) = split(&c.bytes);
    if head.contains("Transfer-Encoding: chunked\r\n") {
        (head, chunks(&body).concat())
    } else {
        (head, body)
    }
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

/// How many bodies an app has closed so far (its `/closed`).
fn closed(app: &RackApp) -> u64 {
    let (_, body) = ok(app, get("/closed"));
    String::from_utf8(body).unwrap().parse().unwrap()
}

fn env_has_the_spec_keys() {
    let (head, body) = ok(
        matrix(),
        request_with("GET", "/env?a=b", Body::Empty, &[("HTTP_X_CUSTOM", b"yes")]),
    );
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let v = json(&body);
    let cgi = &v["cgi"];
    assert_eq!(cgi["REQUEST_METHOD"], "GET");
    assert_eq!(cgi["SCRIPT_NAME"], "");
    assert_eq!(cgi["PATH_INFO"], "/env");
    assert_eq!(cgi["QUERY_STRING"], "a=b");
    assert_eq!(cgi["SERVER_NAME"], "localhost");
    assert_eq!(cgi["SERVER_PORT"], "8080");
    assert_eq!(cgi["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(cgi["HTTP_HOST"], "localhost:8080");
    assert_eq!(cgi["HTTP_X_CUSTOM"], "yes");
    assert_eq!(cgi["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(v["version"], serde_json::json!([1, 3]));
    assert_eq!(v["url_scheme"], "http");
    assert_eq!(v["multithread"], false);
    assert_eq!(v["multiprocess"], true);
    assert_eq!(v["run_once"], false);
    assert_eq!(v["hijack"], false);
    assert_eq!(v["encodings"], serde_json::json!(["ASCII-8BIT"]));
    assert_eq!(v["keys_frozen"], true);
    assert_eq!(v["errors"], true);
}

fn https_and_path_rules() {
    let mut r = request_with("GET", "/env", Body::Empty, &[]);
    r.scheme = "https";
    let v = json(&ok(matrix(), r).1);
    assert_eq!(v["url_scheme"], "https");

    // SCRIPT_NAME "/" and PATH_INFO "" (and an empty SERVER_PORT, a unix socket's) are what
    // Lint refuses: they must reach the app as "", "/" and no SERVER_PORT.
    let mut vars = Vars::new();
    vars.push(b"REQUEST_METHOD", b"GET");
    vars.push(b"SCRIPT_NAME", b"/");
    vars.push(b"PATH_INFO", b"");
    vars.push(b"SERVER_NAME", b"localhost");
    vars.push(b"SERVER_PORT", b"");
    vars.push_header(b"Host", b"localhost");
    let (head, body) = ok(
        matrix(),
        Request {
            vars,
            body: Body::Empty,
            scheme: "http",
        },
    );
    // Lint accepted the env (no 500): its rules on SCRIPT_NAME, PATH_INFO, QUERY_STRING and
    // SERVER_PORT held; "/" is not a path the app knows.
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
    assert_eq!(body, b"not found");
}

fn input_semantics(body: Body) {
    let (_, out) = ok(matrix(), request_with("POST", "/input", body, &[]));
    let v = json(&out);
    assert_eq!(v["gets"], "one\n");
    assert_eq!(v["read2"], "tw");
    assert_eq!(v["read3buf"], serde_json::json!(["o\nt", "o\nt", true]));
    assert_eq!(v["rest"], "hree");
    assert_eq!(v["eof_read"], "");
    assert_eq!(v["eof_read1"], serde_json::Value::Null);
    assert_eq!(v["eof_gets"], serde_json::Value::Null);
    assert_eq!(v["each"], serde_json::json!(["one\n", "two\n", "three"]));
    assert_eq!(v["all"], "one\ntwo\nthree");
    assert_eq!(v["binary"], true);
}

const INPUT: &[u8] = b"one\ntwo\nthree";

fn input_in_memory() {
    input_semantics(Body::Memory(INPUT.to_vec()));
}

fn input_in_a_file() {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(INPUT).unwrap();
    input_semantics(Body::File {
        file: f,
        len: INPUT.len() as u64,
    });
}

fn empty_input_reads_as_empty() {
    // Lint checks rack.input's answers at the end of the stream on an empty body too.
    let (_, out) = ok(matrix(), request_with("POST", "/input", Body::Empty, &[]));
    let v = json(&out);
    assert_eq!(v["gets"], serde_json::Value::Null);
    assert_eq!(v["read2"], serde_json::Value::Null);
    assert_eq!(v["all"], "");
    assert_eq!(v["binary"], true);
}

fn each_bodies_stream_one_chunk_per_part_and_close() {
    let before = closed(matrix());
    let (result, c) = serve(matrix(), get("/each"));
    result.unwrap();
    let (head, body) = split(&c.bytes);
    assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
    assert_eq!(
        chunks(&body),
        [b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]
    );
    assert_eq!(c.flushes, 3, "each part is flushed as it is yielded");
    assert_eq!(closed(matrix()), before + 1);
}

fn to_path_goes_out_with_send_file() {
    // Rack 2.2's Lint hides `to_path` (its body only has `each`): this is the app without it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.txt");
    fs_err::write(&path, b"file contents").unwrap();
    let before = closed(raw());
    let (result, c) = serve(raw(), get(&format!("/file?{}", path.display())));
    result.unwrap();
    assert_eq!(c.flushes, 0, "each was not called");
    assert_eq!(
        String::from_utf8_lossy(&c.bytes),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nfile contents"
    );
    assert_eq!(closed(raw()), before + 1);

    // A path that cannot be opened: the body's each answers.
    let (_, body) = ok(raw(), get(&format!("/file?{}/none", dir.path().display())));
    assert_eq!(body, b"sent by each");
}

fn multi_line_header_values_are_several_headers() {
    let (head, body) = ok(matrix(), get("/multi"));
    assert!(
        head.contains("Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n"),
        "{head}"
    );
    assert_eq!(body, b"ok");
}

fn rack_errors_and_head_requests() {
    let (head, body) = ok(matrix(), get("/errors"));
    assert!(head.starts_with("HTTP/1.1 204 No Content\r\n"), "{head}");
    assert!(body.is_empty());
    let framing = Framing {
        head_only: true,
        ..HTTP11
    };
    let (result, c) = serve_with(
        matrix(),
        request_with("HEAD", "/head", Body::Empty, &[]),
        framing,
    );
    result.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&c.bytes),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
    );
}

fn an_exception_is_an_error_before_the_head() {
    let (result, c) = serve(matrix(), get("/raise"));
    let e = result.unwrap_err();
    assert_eq!(e.0, "ArgumentError: boom from the app");
    assert!(
        c.bytes.is_empty(),
        "nothing was sent: the runtime answers 500"
    );
}

fn bad_statuses_are_refused_and_bodies_closed() {
    let app = raw();
    let cases = [
        (
            "/status-42",
            "the response status 42 is not an HTTP status (100 to 999)",
        ),
        (
            "/status-word",
            "the response status 0 is not an HTTP status (100 to 999)",
        ),
        (
            "/status-symbol",
            "TypeError: the response status is a Symbol, not an Integer",
        ),
    ];
    for (path, message) in cases {
        let before = closed(app);
        let (result, c) = serve(app, get(path));
        assert_eq!(result.unwrap_err().0, message, "{path}");
        assert!(c.bytes.is_empty(), "{path}");
        assert_eq!(
            closed(app),
            before + 1,
            "{path}: close is called on error too"
        );
    }
    // Rack 2: a status is what `to_i` makes of it.
    let (head, body) = ok(app, get("/status-string"));
    assert!(head.starts_with("HTTP/1.1 201 Created\r\n"), "{head}");
    assert_eq!(body, b"made");
}

fn bad_headers_and_bodies_are_errors_and_bodies_closed() {
    let app = raw();
    let cases = [
        (
            "/bad-header",
            "the response head is refused: header name `Bad Name` is not a token",
        ),
        (
            "/header-symbol",
            "TypeError: the value of response header `X-A` is a Symbol, not a String",
        ),
        ("/each-raises", "IOError: each failed after 1 parts"),
        (
            "/not-a-string",
            "TypeError: the response body yielded a Integer, not a String",
        ),
        ("/close-raises", "RuntimeError: close failed"),
    ];
    for (path, message) in cases {
        let before = closed(app);
        let (result, _) = serve(app, get(path));
        assert_eq!(result.unwrap_err().0, message, "{path}");
        assert_eq!(
            closed(app),
            before + 1,
            "{path}: close is called on error too"
        );
    }
    let (result, _) = serve(app, get("/not-a-triple"));
    assert_eq!(
        result.unwrap_err().0,
        "TypeError: the app returned a String, not [status, headers, body]"
    );
    // An error after the head went out: what was sent stays, the runtime closes the connection.
    let (result, c) = serve(app, get("/each-raises"));
    assert!(result.is_err());
    let (head, body) = split(&c.bytes);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(body.starts_with(b"1\r\na\r\n"));
}

fn array_bodies_are_sent_whole() {
    let (result, c) = serve(raw(), get("/array-body"));
    result.unwrap();
    assert_eq!(c.flushes, 0);
    assert_eq!(
        String::from_utf8_lossy(&c.bytes),
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
    );
}

fn a_client_gone_is_an_error_and_the_body_closed() {
    struct Gone;
    impl liege_worker::Output for Gone {
        fn send(&mut self, _: &[u8]) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn send_file(&mut self, _: std::fs::File, _: u64, _: u64) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }
    let before = closed(matrix());
    let mut out = Gone;
    let mut r = Response::new(&mut out, HTTP11);
    let e = matrix().call(get("/each"), &mut r).unwrap_err();
    assert!(e.0.starts_with("sending the response failed: "), "{}", e.0);
    drop(r);
    assert_eq!(closed(matrix()), before + 1);
}

fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.ru");
    fs_err::write(&bad, "run ->(env) { [200, {}, [\"x\"]\n").unwrap();
    let e = Ruby::new()
        .load(&[("rack".into(), bad.display().to_string())])
        .unwrap_err()
        .0;
    assert!(
        e.starts_with(&format!(
            "option `rack`: loading `{}` failed: SyntaxError: {}:",
            bad.display(),
            bad.display()
        )),
        "{e}"
    );
    assert!(e.contains("syntax error"), "{e}");

    let none = dir.path().join("none.ru");
    let e = Ruby::new()
        .load(&[("rack".into(), none.display().to_string())])
        .unwrap_err()
        .0;
    assert_eq!(
        e,
        format!(
            "option `rack`: failed to open file `{}`: No such file or directory (os error 2)",
            none.display()
        )
    );

    let e = load_with("hello.ru", &[("rbrequire", "no/such/library")]).unwrap_err();
    assert_eq!(
        e,
        "option `rbrequire`: requiring `no/such/library` failed: LoadError: cannot load such file -- no/such/library"
    );

    let raises = dir.path().join("raises.ru");
    fs_err::write(&raises, "raise 'not today'\n").unwrap();
    let e = Ruby::new()
        .load(&[("rack".into(), raises.display().to_string())])
        .unwrap_err()
        .0;
    assert_eq!(
        e,
        format!(
            "option `rack`: loading `{}` failed: RuntimeError: not today",
            raises.display()
        )
    );
}

fn options_env_chdir_and_rbrequire() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(
        dir.path().join("lib.rb"),
        "LIB_LOADED = ENV.fetch('LIEGE_TEST_VAR')\n",
    )
    .unwrap();
    fs_err::write(
        dir.path().join("config.ru"),
        "pwd = Dir.pwd\nrun ->(env) { [200, {}, [LIB_LOADED, ' ', pwd]] }\n",
    )
    .unwrap();
    let here = std::env::current_dir().unwrap();
    let app = Ruby::new()
        .load(&[
            ("chdir".into(), dir.path().display().to_string()),
            ("env".into(), "LIEGE_TEST_VAR=from-env".into()),
            ("rbrequire".into(), "./lib.rb".into()),
            ("rack".into(), "config.ru".into()),
        ])
        .unwrap();
    std::env::set_current_dir(here).unwrap();
    let (_, body) = ok(&app, get("/"));
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!("from-env {}", dir.path().canonicalize().unwrap().display())
    );
}

fn gc_every_request_and_compaction_keep_the_server_s_objects() {
    let dir = tempfile::tempdir().unwrap();
    let ru = dir.path().join("gc.ru");
    fs_err::write(
        &ru,
        "run(lambda do |env|\n  \
         GC.compact if env['PATH_INFO'] == '/compact'\n  \
         [200, {}, [\"#{GC.count} #{env['rack.version'].inspect} #{env['PATH_INFO']}\"]]\n\
         end)\n",
    )
    .unwrap();
    let e = Ruby::new()
        .load(&[
            ("rack".into(), ru.display().to_string()),
            ("rb-gc-freq".into(), "often".into()),
        ])
        .unwrap_err();
    assert_eq!(e.0, "option `rb-gc-freq`: `often` is not a whole number");
    let app = Ruby::new()
        .load(&[
            ("rack".into(), ru.display().to_string()),
            ("rb-gc-freq".into(), "1".into()),
        ])
        .unwrap();
    let count = |path: &str| -> u64 {
        let (_, body) = ok(&app, get(path));
        let text = String::from_utf8(body).unwrap();
        let mut words = text.split(' ');
        let n = words.next().unwrap().parse().unwrap();
        assert_eq!(words.collect::<Vec<_>>(), ["[1,", "3]", path], "{text}");
        n
    };
    let first = count("/a");
    let second = count("/b");
    assert!(
        second > first,
        "a GC after each request: {first} then {second}"
    );
    // Objects move; the ones the server keeps (keys, rack.version, the app) are pinned.
    count("/compact");
    count("/after");
    let (_, body) = ok(matrix(), get("/env"));
    assert_eq!(json(&body)["version"], serde_json::json!([1, 3]));
}

fn main() {
    let tests: &[(&str, fn())] = &[
        ("env_has_the_spec_keys", env_has_the_spec_keys),
        ("https_and_path_rules", https_and_path_rules),
        ("input_in_memory", input_in_memory),
        ("input_in_a_file", input_in_a_file),
        ("empty_input_reads_as_empty", empty_input_reads_as_empty),
        (
            "each_bodies_stream_one_chunk_per_part_and_close",
            each_bodies_stream_one_chunk_per_part_and_close,
        ),
        (
            "to_path_goes_out_with_send_file",
            to_path_goes_out_with_send_file,
        ),
        (
            "multi_line_header_values_are_several_headers",
            multi_line_header_values_are_several_headers,
        ),
        (
            "rack_errors_and_head_requests",
            rack_errors_and_head_requests,
        ),
        (
            "an_exception_is_an_error_before_the_head",
            an_exception_is_an_error_before_the_head,
        ),
        (
            "bad_statuses_are_refused_and_bodies_closed",
            bad_statuses_are_refused_and_bodies_closed,
        ),
        (
            "bad_headers_and_bodies_are_errors_and_bodies_closed",
            bad_headers_and_bodies_are_errors_and_bodies_closed,
        ),
        ("array_bodies_are_sent_whole", array_bodies_are_sent_whole),
        (
            "a_client_gone_is_an_error_and_the_body_closed",
            a_client_gone_is_an_error_and_the_body_closed,
        ),
        ("load_errors_name_the_file", load_errors_name_the_file),
        (
            "options_env_chdir_and_rbrequire",
            options_env_chdir_and_rbrequire,
        ),
        (
            "gc_every_request_and_compaction_keep_the_server_s_objects",
            gc_every_request_and_compaction_keep_the_server_s_objects,
        ),
    ];
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, test) in tests {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        let outcome = std::panic::catch_unwind(test);
        let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
        println!("test {name} ... {verdict}");
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        println!("failures: {failed:?}");
        std::process::exit(1);
    }
}
