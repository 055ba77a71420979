//! The worker against real apps (tests/apps), in this process's one Perl interpreter: each test
//! builds a request by hand, calls the app, and checks the exact bytes the response sent.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::OnceLock;

use liege_worker::response::Framing;
use liege_worker::{AppError, Body, Language, Request, Vars};

use crate::{Perl, PsgiApp};

const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps");

const HTTP11: Framing = Framing::HTTP11;

fn load_with(file: &str, extra: &[(&str, &str)]) -> Result<PsgiApp, String> {
    let mut options = vec![("psgi".to_string(), format!("{APPS}/{file}"))];
    options.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Perl::new().load(&options).map_err(|e| e.0)
}

/// Each app is loaded once for the whole test process (a load runs the file again, which
/// resets its globals).
fn app(file: &'static str) -> &'static PsgiApp {
    static APPS_LOADED: OnceLock<std::sync::Mutex<BTreeMap<&'static str, &'static PsgiApp>>> =
        OnceLock::new();
    let map = APPS_LOADED.get_or_init(Default::default);
    let mut map = map.lock().unwrap();
    map.entry(file)
        .or_insert_with(|| Box::leak(Box::new(load_with(file, &[]).unwrap())))
}

/// The CGI variables the runtime gives an HTTP/1.1 request.
fn request_with(method: &str, uri: &str, body: Body, extra: &[(&str, &[u8])]) -> Request {
    Request::http11(method, uri, body, extra)
}

fn get(uri: &str) -> Request {
    request_with("GET", uri, Body::Empty, &[])
}

/// Calls the app and finishes the response as the runtime does when the call succeeded.
fn serve(app: &PsgiApp, request: Request) -> (Result<(), AppError>, String) {
    let (result, out) = liege_worker::app::call_into_memory(app, request, HTTP11);
    (result, String::from_utf8_lossy(&out.bytes).into_owned())
}

/// The answer of a call that must succeed.
fn ok(app: &PsgiApp, request: Request) -> String {
    let (result, text) = serve(app, request);
    result.unwrap();
    text
}

fn body(text: &str) -> &str {
    text.split_once("\r\n\r\n").expect("a head").1
}

#[test]
fn a_relative_path_is_loaded_from_the_working_folder() {
    // cargo runs unit tests in the crate's folder.
    let app = Perl::new()
        .load(&[("psgi".into(), "tests/apps/hello.psgi".into())])
        .unwrap();
    assert!(ok(&app, get("/")).ends_with("\r\n\r\nHello, World!"));
}

#[test]
fn hello_world_gets_a_length() {
    assert_eq!(
        ok(app("hello.psgi"), get("/")),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
    );
}

fn env_of(request: Request) -> BTreeMap<String, String> {
    let text = ok(app("env.psgi"), request);
    body(&text)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_env_has_every_psgi_key() {
    let env = env_of(request_with(
        "POST",
        "/a%20b/c?x=1&y=2",
        Body::Memory(b"abc".to_vec()),
        &[("HTTP_X_CUSTOM", b"yes")],
    ));
    let want = [
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", "/a%20b/c?x=1&y=2"),
        ("PATH_INFO", "/a%20b/c"),
        ("QUERY_STRING", "x=1&y=2"),
        ("SCRIPT_NAME", ""),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "8080"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("CONTENT_LENGTH", "3"),
        ("CONTENT_TYPE", "application/octet-stream"),
        ("HTTP_HOST", "localhost:8080"),
        ("HTTP_X_CUSTOM", "yes"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "40000"),
        ("psgi.version", "ARRAY:1,1"),
        ("psgi.url_scheme", "http"),
        ("psgi.input", "REF:Liege::Input"),
        ("psgi.errors", "REF:Liege::Errors"),
        ("psgi.multithread", ""),
        ("psgi.multiprocess", "1"),
        ("psgi.run_once", ""),
        ("psgi.nonblocking", ""),
        ("psgi.streaming", "1"),
        ("psgix.input.buffered", "1"),
        ("psgix.harakiri", "1"),
    ];
    for (k, v) in want {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "env key {k}");
    }
}

#[test]
fn missing_cgi_names_are_empty_and_https_is_the_scheme() {
    let mut vars = Vars::new();
    vars.push(b"REQUEST_METHOD", b"GET");
    vars.push(b"SERVER_NAME", b"h");
    vars.push(b"SERVER_PORT", b"443");
    let env = env_of(Request {
        vars,
        body: Body::Empty,
        scheme: "https",
    });
    assert_eq!(env["SCRIPT_NAME"], "");
    assert_eq!(env["PATH_INFO"], "");
    assert_eq!(env["QUERY_STRING"], "");
    assert_eq!(env["psgi.url_scheme"], "https");
}

#[test]
fn input_reads_with_offsets_padding_eof_and_seek_from_memory_and_file() {
    let data = b"0123456789";
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(data).unwrap();
    for body_of in [
        Body::Memory(data.to_vec()),
        Body::File {
            file,
            len: data.len() as u64,
        },
    ] {
        let text = ok(app("input.psgi"), request_with("POST", "/", body_of, &[]));
        assert_eq!(
            body(&text),
            "read4=4:0123\noffset2=3:01456\npad5=2:xy00078\nrest=1:9\neof=0:0\n\
             again=10:0123456789\ntail=3:012345678789\n"
        );
    }
}

#[test]
fn array_bodies_are_joined_with_a_length_and_repeated_headers_kept() {
    let text = ok(app("shapes.psgi"), get("/array"));
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Multi: a\r\nX-Multi: b\r\n\
         Content-Length: 9\r\n\r\none two 3"
    );
    assert_eq!(
        ok(app("shapes.psgi"), get("/empty")),
        "HTTP/1.1 204 No Content\r\n\r\n"
    );
    let text = ok(app("shapes.psgi"), get("/length"));
    assert!(text.ends_with("Content-Length: 5\r\n\r\nhello"), "{text}");
}

fn chunks(text: &str) -> Vec<String> {
    let mut rest = body(text);
    let mut out = Vec::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size");
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            assert_eq!(after, "\r\n");
            return out;
        }
        out.push(after[..size].to_string());
        rest = &after[size + 2..];
    }
}

#[test]
fn handle_bodies_stream_lines_or_go_out_with_sendfile_and_are_closed() {
    let shapes = app("shapes.psgi");
    let closed = |app| -> u64 {
        let text = ok(app, get("/closed"));
        body(&text)
            .strip_prefix("closed=")
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = closed(shapes);
    let text = ok(shapes, get("/lines"));
    assert!(text.contains("Transfer-Encoding: chunked"), "{text}");
    assert_eq!(chunks(&text), ["a\n", "bb\n", "ccc"]);
    // An in-memory handle (no descriptor) is read 64 KiB at a time.
    let text = ok(shapes, get("/memfh"));
    let got = chunks(&text);
    assert_eq!(
        got.iter().map(String::len).collect::<Vec<_>>(),
        [65536, 4464]
    );
    // A real file handle: sendfile from where the app left it (after its first line).
    let source = fs_err::read_to_string(format!("{APPS}/shapes.psgi")).unwrap();
    let rest = source.split_once('\n').unwrap().1;
    let text = ok(shapes, get("/file"));
    assert!(
        text.contains(&format!("Content-Length: {}\r\n", rest.len())),
        "{text}"
    );
    assert_eq!(body(&text), rest);
    // An object that names its path: the whole file, getline never called.
    let text = ok(shapes, get("/path"));
    assert_eq!(body(&text), source);
    assert_eq!(
        closed(shapes),
        before + 2,
        "the two objects (lines, path) were closed"
    );
}

#[test]
fn delayed_and_streaming_responses() {
    let shapes = app("shapes.psgi");
    assert_eq!(
        ok(shapes, get("/delayed")),
        "HTTP/1.1 201 Created\r\nX-Delayed: 1\r\nContent-Length: 5\r\n\r\nlater"
    );
    let text = ok(shapes, get("/stream"));
    assert!(
        text.starts_with(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        "{text}"
    );
    assert_eq!(chunks(&text), ["first ", "second"]);
}

/// A call that must fail: its one-line error.
fn failure(app: &PsgiApp, uri: &str) -> (String, String) {
    let (result, text) = serve(app, get(uri));
    (result.expect_err(uri).0, text)
}

#[test]
fn a_die_is_an_error_with_perls_message() {
    let shapes = app("shapes.psgi");
    let (e, text) = failure(shapes, "/die");
    assert_eq!(e, "the app broke");
    assert_eq!(text, "", "nothing sent: the runtime answers 500");
    let (e, text) = failure(shapes, "/die-later");
    assert_eq!(e, "mid-stream");
    assert_eq!(chunks(&format!("{text}0\r\n\r\n")), ["part"]);
    let (e, _) = failure(shapes, "/write-after-close");
    assert!(e.contains("the PSGI writer used after"), "{e}");
    let (e, _) = failure(shapes, "/no-responder");
    assert_eq!(
        e,
        "the delayed response returned without calling its responder"
    );
    let (e, _) = failure(shapes, "/twice");
    assert!(e.contains("the responder was called twice"), "{e}");
    // The interpreter serves on after each failure.
    assert!(ok(shapes, get("/array")).ends_with("one two 3"));
}

#[test]
fn bad_statuses_headers_and_bodies_are_refused() {
    let shapes = app("shapes.psgi");
    let cases = [
        ("/bad-status", "status 42 is not an HTTP status code"),
        (
            "/text-status",
            "the response status `200 OK` is not a number",
        ),
        ("/bad-header", "header `X-Bad` has a control character"),
        ("/hop", "header `Connection` is hop-by-hop"),
        (
            "/odd",
            "the response headers have an odd number of elements (1)",
        ),
        ("/not-array", "the app's response is not an array reference"),
        ("/two", "the app's response has 2 elements, not 3"),
        (
            "/bad-body",
            "the response body is neither an array reference nor a filehandle",
        ),
        ("/wide", "Wide character"),
    ];
    for (uri, want) in cases {
        let (e, text) = failure(shapes, uri);
        assert!(e.contains(want), "{uri}: {e}");
        assert_eq!(text, "", "{uri}: nothing sent");
    }
}

#[test]
fn load_errors_name_the_file_and_perls_message() {
    let e = load_with("broken.psgi", &[]).unwrap_err();
    assert!(
        e.starts_with(&format!(
            "option `psgi`: loading `{APPS}/broken.psgi` failed: "
        )),
        "{e}"
    );
    assert!(e.contains("Missing right curly"), "{e}");
    let e = load_with("notcode.psgi", &[]).unwrap_err();
    assert!(
        e.contains("its last statement is not a code reference (it is `HASH("),
        "{e}"
    );
    let e = load_with("missing.psgi", &[]).unwrap_err();
    assert!(e.contains("No such file or directory"), "{e}");
    let e = load_with("hello.psgi", &[("threads", "2")]).unwrap_err();
    assert!(
        e.starts_with("option `threads` = 2: liege-perl runs one Perl interpreter"),
        "{e}"
    );
    let e = Perl::new().load(&[]).unwrap_err().0;
    assert_eq!(e, "no app to load: set `psgi`");
}

#[test]
fn args_env_and_local_lib_reach_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib/perl5/Liege");
    fs_err::create_dir_all(&lib).unwrap();
    fs_err::write(
        lib.join("LocalTest.pm"),
        "package Liege::LocalTest; sub hi { 'from local lib' } 1;\n",
    )
    .unwrap();
    let file = dir.path().join("app.psgi");
    fs_err::write(
        &file,
        // @ARGV is read at load: other tests load apps (each setting @ARGV) in this process.
        "use Liege::LocalTest; my @args = @ARGV;\n\
         sub { [200, [], [Liege::LocalTest::hi(), ' ', \"@args\", ' ', $ENV{LIEGE_TEST_ENV}]] };\n",
    )
    .unwrap();
    let app = Perl::new()
        .load(&[
            ("psgi".into(), file.display().to_string()),
            ("perl-local-lib".into(), dir.path().display().to_string()),
            ("perl-args".into(), "-a b".into()),
            ("perl-arg".into(), "c d".into()),
            ("env".into(), "LIEGE_TEST_ENV=it's set".into()),
        ])
        .unwrap();
    let text = ok(&app, get("/"));
    assert_eq!(body(&text), "from local lib -a b c d it's set");
}
