//! The request matrix, for each language: paths and queries, streamed and file bodies, request
//! bodies read in pieces (10 MiB, chunked), errors, HEAD, 204, and the env its spec defines. Each
//! app runs inside its language's validator, which turns any spec violation into a failure.

use super::{Lang, each_language, matrix};
use crate::server::{get, request};

each_language!(
    hello_world_with_two_workers,
    request_matrix,
    large_and_chunked_bodies
);

fn hello_world_with_two_workers(lang: Lang) {
    let (inst, addr) = super::serve(lang, "hello", &["--processes", "2"]);
    let r = get(&addr, "/").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "Hello, World!"));
    // A one-item body goes out whole, with its length (keep-alive needs no chunking).
    assert_eq!(r.header("content-length"), Some("13"));
    assert_eq!(
        inst.children().len(),
        2,
        "two workers:\n{}",
        inst.log_text()
    );
    // The workers are this language's.
    for pid in inst.children() {
        let comm = fs_err::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(comm.trim(), lang.worker());
    }
}

fn request_matrix(lang: Lang) {
    let (inst, addr) = matrix(lang, &["--processes", "1"]);
    // Path and query: PATH_INFO is percent-decoded in every language (as uWSGI does, for
    // Rack too), and the query is as sent.
    let r = get(&addr, "/path/a%20b?x=1&y=%20").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "/path/a b?x=1&y=%20"));
    // A streamed response is chunked.
    let r = get(&addr, "/stream").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), "chunk0;chunk1;chunk2;chunk3;chunk4;");
    // A file body (file_wrapper, a handle with a path, to_path) sends the real file.
    let r = get(&addr, "/file").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, fs_err::read(lang.app("it_matrix")).unwrap());
    // A body of two pieces, 1 MiB.
    let r = get(&addr, "/big").unwrap();
    assert_eq!((r.status, r.body.len()), (200, 1 << 20));
    assert!(r.body.iter().all(|&b| b == b'x'));
    // An app that raises gets a 500, its message is logged, and the worker goes on.
    let r = get(&addr, "/raise").unwrap();
    assert_eq!(r.status, 500);
    assert!(
        inst.log_text().contains("the app raised on purpose"),
        "{}",
        inst.log_text()
    );
    // Empty body.
    let r = get(&addr, "/empty").unwrap();
    assert_eq!((r.status, r.body.len()), (204, 0));
    // HEAD: the head only, with the length.
    let r = request(
        &addr,
        b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!((r.status, r.body.len()), (200, 0));
    // POST with a body, read in pieces.
    let r = request(
        &addr,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    // Lines over the body.
    let r = request(
        &addr,
        b"POST /lines HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\nConnection: close\r\n\r\na\nbb\nccc",
    )
    .unwrap();
    assert_eq!(r.text(), "3 a|bb|ccc");
    // The env.
    let r = request(
        &addr,
        b"GET /environ?q=1 HTTP/1.1\r\nHost: example.org\r\nX-Test: yes\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let env: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["PATH_INFO"], "/environ");
    assert_eq!(env["QUERY_STRING"], "q=1");
    assert_eq!(env["SCRIPT_NAME"], "");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(env["HTTP_HOST"], "example.org");
    assert_eq!(env["HTTP_X_TEST"], "yes");
    assert_eq!(env[lang.key("url_scheme")], "http");
    assert_eq!(env[lang.key("multithread")], false);
    assert_eq!(env[lang.key("multiprocess")], true);
    assert_eq!(env[lang.key("run_once")], false);
    let version = match lang {
        Lang::Python => serde_json::json!([1, 0]),
        Lang::Perl => serde_json::json!([1, 1]),
        Lang::Ruby => serde_json::json!([1, 3]),
    };
    assert_eq!(env[lang.key("version")], version);
    match lang {
        Lang::Python => {
            // exc_info replaces the status before anything was sent.
            let r = get(&addr, "/exc_info").unwrap();
            assert_eq!((r.status, r.text().as_str()), (500, "handled"));
        }
        Lang::Perl => {
            for (k, v) in [
                ("psgi.nonblocking", false),
                ("psgi.streaming", true),
                ("psgix.input.buffered", true),
            ] {
                assert_eq!(env[k], v, "{k}");
            }
            // A delayed response given whole, and a body object read with getline.
            assert_eq!(get(&addr, "/delayed").unwrap().text(), "delayed");
            assert_eq!(get(&addr, "/getline").unwrap().text(), "part0;part1;part2;");
        }
        Lang::Ruby => {}
    }
    // What the app writes to its error stream reaches the log (not Python's: it has none here).
    if lang != Lang::Python {
        let said = format!("{} reached the log", lang.key("errors"));
        assert!(inst.log_text().contains(&said), "{}", inst.log_text());
    }
    // The validator found nothing to say (a violation would also have failed its request).
    let log = inst.log_text();
    for complaint in [
        "Warning",
        "LintError",
        "Invalid env",
        "Response needs to be",
    ] {
        assert!(!log.contains(complaint), "{log}");
    }
}

fn large_and_chunked_bodies(lang: Lang) {
    let (_inst, addr) = matrix(lang, &["--post-buffering", "65536"]);
    let body: Vec<u8> = (0..10 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut raw = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let r = request(&addr, &raw).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.body == body,
        "a 10 MiB body came back different ({} bytes)",
        r.body.len()
    );
    // Chunked, with an extension and a trailer.
    let r = request(
        &addr,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    )
    .unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
}
