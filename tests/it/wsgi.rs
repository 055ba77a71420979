//! Serving WSGI apps through the real `liege` master and `liege-python` workers (issue 3):
//! keep-alive, pipelining, limits, bad input, the uwsgi protocol, and the Python options. The
//! request matrix runs for every language in `languages::matrix`.

use std::io::{BufReader, Write};
use std::time::Duration;

use crate::server::{Addr, Instance, app, free_port, get, read_response, request};

/// An instance of the Python matrix app on a TCP http-socket, with extra options.
pub(crate) fn matrix(extra: &[&str]) -> (Instance, Addr) {
    crate::languages::matrix(crate::languages::Lang::Python, extra)
}

#[test]
fn keep_alive_pipelining_and_expect_continue() {
    let (_inst, addr) = matrix(&[]);
    let mut s = addr.connect().unwrap();
    // Three pipelined requests in one write, answered in order.
    s.write_all(
        b"GET /path/1 HTTP/1.1\r\nHost: t\r\n\r\nGET /path/2 HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /path/3 HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s);
    for i in 1..=3 {
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!(resp.text(), format!("/path/{i}?"));
        assert_eq!(resp.header("connection"), None, "kept alive");
    }
    // The same connection goes on, with Expect: 100-continue.
    let s = r.get_mut();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let cont = read_response(&mut r, false).unwrap();
    assert_eq!(cont.status, 100);
    r.get_mut().write_all(b"abc").unwrap();
    let resp = read_response(&mut r, false).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "abc"));
    // HTTP/1.0 closes unless asked to keep alive.
    let resp = request(&addr, b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
}

#[test]
fn limits_and_malformed_requests_get_4xx_and_the_worker_goes_on() {
    let (inst, addr) = matrix(&["--buffer-size", "1024", "--limit-post", "100"]);
    let pid_before = get(&addr, "/pid").unwrap().text();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2000)
    );
    assert_eq!(request(&addr, big.as_bytes()).unwrap().status, 431);
    let post = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n";
    assert_eq!(request(&addr, post).unwrap().status, 413);
    let chunked = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n{}\r\n0\r\n\r\n",
        "b".repeat(101)
    );
    assert_eq!(request(&addr, chunked.as_bytes()).unwrap().status, 413);
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET /%zz HTTP/1.1\r\nHost: t\r\n\r\n",
    ] {
        let r = request(&addr, bad).unwrap();
        assert_eq!(r.status, 400, "for {:?}", String::from_utf8_lossy(bad));
    }
    assert_eq!(
        get(&addr, "/pid").unwrap().text(),
        pid_before,
        "the same worker serves on"
    );
    drop(inst);
}

#[test]
fn a_slow_client_times_out_without_holding_the_worker() {
    let (_inst, addr) = matrix(&["--socket-timeout", "1", "--processes", "1"]);
    let mut slow = addr.connect().unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost:").unwrap();
    // Meanwhile the only worker serves others.
    for _ in 0..5 {
        assert_eq!(get(&addr, "/").unwrap().status, 200);
    }
    let r = read_response(&mut BufReader::new(slow), false).unwrap();
    assert_eq!(r.status, 408);
}

#[test]
fn the_uwsgi_protocol_is_served_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("app.sock");
    let file = app("it_matrix.py");
    let mut inst = Instance::start_in(
        dir,
        // `--chmod-socket 660` would make `660` a config file: the value of an option with an
        // optional value must be attached, as in uWSGI.
        &[
            "--socket",
            sock.to_str().unwrap(),
            "--wsgi-file",
            &file,
            "--chmod-socket=660",
        ],
    );
    let start = std::time::Instant::now();
    while !sock.exists() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mode = fs_err::metadata(&sock).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o660
    );
    let vars: &[(&[u8], &[u8])] = &[
        (b"REQUEST_METHOD", b"POST"),
        (b"REQUEST_URI", b"/echo"),
        (b"PATH_INFO", b"/echo"),
        (b"QUERY_STRING", b""),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"CONTENT_LENGTH", b"4"),
        (b"SERVER_NAME", b"test"),
        (b"SERVER_PORT", b"80"),
        (b"REMOTE_ADDR", b"10.1.2.3"),
        (b"HTTP_HOST", b"test"),
    ];
    let mut packet = liege_proto_encode(vars);
    packet.extend_from_slice(b"ping");
    let addr = Addr::Unix(sock.clone());
    let mut tries = 0;
    let r = loop {
        match request(&addr, &packet) {
            Ok(r) => break r,
            Err(e) if tries < 100 => {
                tries += 1;
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("{e}\n{}", inst.log_text()),
        }
    };
    assert_eq!((r.status, r.text().as_str()), (200, "ping"));
    inst.signal(rustix::process::Signal::INT);
    assert!(inst.wait_exit(Duration::from_secs(10)).is_some());
}

/// A uwsgi request packet (modifier1 0), written out here rather than with liege's own encoder,
/// so the test does not trust the code under test.
fn liege_proto_encode(vars: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        block.extend_from_slice(&u16::try_from(k.len()).unwrap().to_le_bytes());
        block.extend_from_slice(k);
        block.extend_from_slice(&u16::try_from(v.len()).unwrap().to_le_bytes());
        block.extend_from_slice(v);
    }
    let mut p = vec![0u8];
    p.extend_from_slice(&u16::try_from(block.len()).unwrap().to_le_bytes());
    p.push(0);
    p.extend_from_slice(&block);
    p
}

#[test]
fn module_pythonpath_callable_env_chdir_and_threads() {
    let port = free_port();
    let sock = format!("127.0.0.1:{port}");
    let pkg = crate::common::repo().join("tests/apps/python/pkg");
    let cwd = tempfile::tempdir().unwrap();
    let cwd_path = cwd.path().canonicalize().unwrap();
    let mut inst = Instance::start(&[
        "--http-socket",
        &sock,
        "--pythonpath",
        pkg.to_str().unwrap(),
        "--module",
        "greeter:entry",
        "--env",
        "LIEGE_T_GREETING=bonjour",
        "--chdir",
        cwd_path.to_str().unwrap(),
        "--processes",
        "1",
        "--threads",
        "4",
    ]);
    let addr = Addr::Tcp(sock.parse().unwrap());
    inst.wait_ready(&addr, "/", Duration::from_secs(30));
    assert_eq!(
        get(&addr, "/").unwrap().text(),
        format!("bonjour {}", cwd_path.display())
    );
    // Eight slow requests at once on one worker of four threads: several threads serve them.
    let idents: std::collections::BTreeSet<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| get(&addr, "/thread").unwrap().text()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(idents.len() >= 2, "one thread served all: {idents:?}");
}
