//! The router's hardening, with raw sockets, against a master run by hand with `--http` in a
//! network namespace of its own (the router on 127.0.0.1:8080 there, in front of the master's
//! workers or of a test server given by `http-to`). Each test names the item of
//! ../shared/security-checklist.md section 5 it covers.

use std::io::{BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use crate::emperor::guard::Emperor;
use crate::server::Resp;

use super::support::{
    LONG, Master, ROUTER, Recorder, closed_by_peer, connect_from, customer_vassal, header_of,
    in_netns, ok_response, read_one, router_app, test_app,
};

/// A master with router_app.py (one worker, so its log is in request order) and `extra`.
fn master(extra: &[&str]) -> Master {
    let app = test_app("router_app.py");
    let mut args = vec!["--wsgi-file", app.to_str().unwrap(), "--processes", "1"];
    args.extend_from_slice(extra);
    let mut m = Master::start(&args);
    m.wait_ready();
    m
}

/// Sends `raw` on a new connection: the response, and whether the router then closed the
/// connection (EOF rather than a read timeout).
fn probe(m: &Master, raw: &[u8]) -> (Resp, bool) {
    let s = m.connect();
    let mut w = s.try_clone().unwrap();
    // The router may close before it read everything: that is its right.
    let _ = w.write_all(raw);
    let mut r = BufReader::new(s);
    let resp = read_one(&mut r).unwrap_or_else(|e| {
        panic!(
            "no response to {:?}: {e}\n{}",
            String::from_utf8_lossy(raw),
            m.log_text()
        )
    });
    let closed = closed_by_peer(&mut r);
    (resp, closed)
}

/// Whether the app (its worker's request log line, `[pid: ...] ... GET /path =>`) saw a
/// request whose line holds `needle`.
fn app_saw(m: &Master, needle: &str) -> bool {
    m.log_text()
        .lines()
        .any(|l| l.starts_with("[pid:") && l.contains(needle))
}

/// Whether the response is one of the router's own pages (not the app's).
fn routers_page(r: &Resp) -> bool {
    r.header("content-type") == Some("text/plain; charset=utf-8")
}

#[test]
fn smuggling_attempts_are_refused_with_400_and_never_reach_the_app() {
    let m = master(&[]);
    // Each is followed by a second request: if the router read the first one another way than
    // a server behind it could, the second would be where a smuggled request hides.
    let heads: &[(&str, &str)] = &[
        // Section 5 item 5: Content-Length with Transfer-Encoding, either order.
        (
            "CL+TE",
            "POST /probe-a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "TE+CL",
            "POST /probe-b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        ),
        // Item 6: Content-Length twice (even equal), or a list.
        (
            "two equal CLs",
            "POST /probe-c HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "two CLs",
            "POST /probe-d HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ),
        (
            "a CL list",
            "POST /probe-e HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello",
        ),
        // Item 8: Transfer-Encoding variants.
        (
            "xchunked",
            "POST /probe-g HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "gzip, chunked",
            "POST /probe-h HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "two TEs",
            "POST /probe-i HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "TE in HTTP/1.0",
            "POST /probe-j HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        // Item 9: Content-Length syntax.
        (
            "CL +5",
            "POST /probe-k HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello",
        ),
        (
            "CL -1",
            "POST /probe-l HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
        ),
        (
            "CL 0x10",
            "POST /probe-m HTTP/1.1\r\nHost: t\r\nContent-Length: 0x10\r\n\r\n0123456789abcdef",
        ),
        (
            "CL of 20 digits",
            "POST /probe-n HTTP/1.1\r\nHost: t\r\nContent-Length: 18446744073709551621\r\n\r\nhello",
        ),
        (
            "CL 0_0",
            "POST /probe-o HTTP/1.1\r\nHost: t\r\nContent-Length: 0_0\r\n\r\n",
        ),
        // Item 7: obs-fold, white space before the colon, NUL, bare LF, bare CR.
        (
            "obs-fold",
            "GET /probe-p HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
        ),
        (
            "space before the colon",
            "GET /probe-q HTTP/1.1\r\nHost : t\r\n\r\n",
        ),
        (
            "NUL in a value",
            "GET /probe-r HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n",
        ),
        (
            "NUL in a name",
            "GET /probe-s HTTP/1.1\r\nHost: t\r\nX\0A: a\r\n\r\n",
        ),
        ("bare LF", "GET /probe-t HTTP/1.1\nHost: t\n\n"),
        (
            "bare LF after a header",
            "GET /probe-u HTTP/1.1\r\nHost: t\nX-A: a\r\n\r\n",
        ),
        (
            "bare CR",
            "GET /probe-v HTTP/1.1\r\nHost: t\rX-A: a\r\n\r\n",
        ),
        // Item 12: no Host in HTTP/1.1; two Hosts.
        ("no Host", "GET /probe-w HTTP/1.1\r\nX-A: a\r\n\r\n"),
        (
            "two Hosts",
            "GET /probe-x HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n",
        ),
    ];
    for (what, head) in heads {
        let raw = format!("{head}GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n");
        let (r, closed) = probe(&m, raw.as_bytes());
        assert_eq!(r.status, 400, "{what}: {} {}", r.status, r.text());
        assert!(routers_page(&r), "{what}: not the router's page");
        assert_eq!(r.header("connection"), Some("close"), "{what}");
        assert!(closed, "{what}: the connection stayed open");
    }
    // Item 9: bad chunk sizes and chunk framing, in a head that is itself fine.
    let chunks: &[(&str, &str)] = &[
        ("size +5", "+5\r\nhello\r\n0\r\n\r\n"),
        ("size 0x5", "0x5\r\nhello\r\n0\r\n\r\n"),
        ("size -1", "-1\r\nhello\r\n0\r\n\r\n"),
        (
            "a size of 21 digits",
            "100000000000000000000\r\nhello\r\n0\r\n\r\n",
        ),
        ("a bare LF after the size", "5\nhello\r\n0\r\n\r\n"),
        ("an extension with a bare LF", "5;a=b\nhello\r\n0\r\n\r\n"),
        ("no CRLF after the data", "5\r\nhelloX\r\n0\r\n\r\n"),
    ];
    for (what, body) in chunks {
        let raw = format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{body}GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
        );
        let (r, closed) = probe(&m, raw.as_bytes());
        assert_eq!(r.status, 400, "chunks, {what}: {} {}", r.status, r.text());
        assert!(routers_page(&r), "chunks, {what}: not the router's page");
        assert!(closed, "chunks, {what}: the connection stayed open");
    }
    // A request after them all is the app's; no probe and no smuggled request reached it.
    assert_eq!(m.get("t", "/after-the-probes").unwrap().status, 200);
    let start = Instant::now();
    while !app_saw(&m, "GET /after-the-probes") {
        assert!(start.elapsed() < LONG, "{}", m.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!app_saw(&m, "/probe-"), "{}", m.log_text());
    assert!(!app_saw(&m, "/smuggled"), "{}", m.log_text());
}

#[test]
fn huge_request_lines_and_heads_are_refused() {
    // Section 5 item 4 (size limits), with the default `http-max-header-size` (16k); the
    // worker's own limit (`buffer-size`) above it, so that what is refused is the router's doing.
    let m = master(&["--buffer-size", "65536"]);
    let long_target = format!("/{}", "a".repeat(20_000));
    let (r, closed) = probe(
        &m,
        format!("GET {long_target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 414, "{}", r.text());
    assert!(routers_page(&r));
    assert!(closed);
    // One header past the limit; many headers past it together; more than 100 headers.
    let big = format!("X-Big: {}\r\n", "b".repeat(20_000));
    let many: String = (0..40)
        .map(|i| format!("X-H{i}: {}\r\n", "c".repeat(500)))
        .collect();
    let count: String = (0..150).map(|i| format!("X-N{i}: n\r\n")).collect();
    for (what, headers) in [("one big", big), ("many", many), ("150", count)] {
        let (r, closed) = probe(
            &m,
            format!("GET /probe-huge HTTP/1.1\r\nHost: t\r\n{headers}\r\n").as_bytes(),
        );
        assert_eq!(r.status, 431, "{what} headers: {}", r.text());
        assert!(routers_page(&r), "{what} headers");
        assert!(closed, "{what} headers: the connection stayed open");
    }
    // Just under the limit is served.
    let fits = format!("X-Fits: {}\r\n", "d".repeat(12_000));
    let (r, _) = probe(
        &m,
        format!("GET / HTTP/1.1\r\nHost: t\r\n{fits}Connection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert!(!app_saw(&m, "/probe-huge"), "{}", m.log_text());
}

#[test]
fn pipelined_requests_are_answered_in_order_and_chunked_bodies_arrive_whole() {
    let m = master(&[]);
    // Section 5 item 10: three requests in one write, a POST with a body among them.
    let mut s = m.connect();
    s.write_all(
        b"GET /env HTTP/1.1\r\nHost: one.test\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: two.test\r\nContent-Length: 11\r\n\r\nhello world\
          GET /stream?n=3&ms=0 HTTP/1.1\r\nHost: three.test\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let first = read_one(&mut r).unwrap();
    let env: serde_json::Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(env["HTTP_HOST"], "one.test");
    let second = read_one(&mut r).unwrap();
    let echo: serde_json::Value = serde_json::from_slice(&second.body).unwrap();
    assert_eq!(echo["length"], 11, "{echo}");
    assert_eq!(echo["content_length"], "11", "{echo}");
    let third = read_one(&mut r).unwrap();
    assert_eq!(third.text(), "line 0\nline 1\nline 2\n");

    // Item 15: a chunked body reaches the app de-chunked, whole, with its length (chunk
    // extensions, chunks of every size, trailers).
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut at = 0;
    for (i, size) in [1usize, 10, 4096, 65_536, 100_000]
        .iter()
        .cycle()
        .enumerate()
    {
        if at == data.len() {
            break;
        }
        let n = (*size).min(data.len() - at);
        raw.extend_from_slice(
            format!("{n:x}{}\r\n", if i % 2 == 0 { ";x=y" } else { "" }).as_bytes(),
        );
        raw.extend_from_slice(&data[at..at + n]);
        raw.extend_from_slice(b"\r\n");
        at += n;
    }
    raw.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    let s = r.into_inner();
    let mut w = s.try_clone().unwrap();
    w.write_all(&raw).unwrap();
    let mut r = BufReader::new(s);
    let resp = read_one(&mut r).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echo: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["length"], data.len(), "{echo}");
    assert_eq!(echo["sha256"], sha256_hex(&data), "{echo}");
    // And the connection goes on.
    w.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_one(&mut r).unwrap().status, 200);
}

/// The sha256 of `data`, hex, by the system's sha256sum.
fn sha256_hex(data: &[u8]) -> String {
    let mut c = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    c.stdin.take().unwrap().write_all(data).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn slow_heads_and_idle_keep_alive_connections_are_closed_by_their_timeouts() {
    // Section 5 item 1 (slowloris): `http-headers-timeout 2`; and idle keep-alive connections
    // closed after `http-keepalive-timeout 2`.
    let m = master(&[
        "--http-headers-timeout",
        "2",
        "--http-keepalive-timeout",
        "2",
    ]);
    // 300 connections from three addresses (each under the per-address limit), each sending
    // one byte of a head a second.
    let head = b"GET /slow HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut slow: Vec<(TcpStream, bool, Vec<u8>)> = in_netns(&m.netns(), || {
        (0..300)
            .map(|i: u16| {
                let from = Ipv4Addr::new(127, 0, 2, 1 + u8::try_from(i % 3).unwrap());
                let s = connect_from(from, ROUTER).expect("connect");
                s.set_nonblocking(true).unwrap();
                (s, false, Vec::new())
            })
            .collect()
    });
    let start = Instant::now();
    let mut served_meanwhile = 0;
    for step in 0.. {
        let mut open = 0;
        for (s, closed, got) in &mut slow {
            if *closed {
                continue;
            }
            let _ = s.write(&head[step % head.len()..=step % head.len()]);
            let mut buf = [0u8; 1024];
            match s.read(&mut buf) {
                Ok(0) => *closed = true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
                Err(_) => *closed = true,
            }
        }
        if open == 0 {
            break;
        }
        // A normal client is served while they hang on.
        let r = m.get("t", "/").unwrap();
        assert_eq!(r.status, 200);
        served_meanwhile += 1;
        assert!(
            start.elapsed() < LONG,
            "{open} slow connections still open\n{}",
            m.log_text()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(served_meanwhile > 0);
    // Each got the router's 408 (or nothing) before the close, never the app's answer.
    for (_, _, got) in &slow {
        let text = String::from_utf8_lossy(got);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408 "),
            "a slow connection got {text:?}"
        );
    }
    assert!(!app_saw(&m, "/slow"), "{}", m.log_text());

    // An idle keep-alive connection: served, then closed by the router.
    let mut s = m.connect();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(read_one(&mut r).unwrap().status, 200);
    let mut rest = Vec::new();
    let n = r.read_to_end(&mut rest);
    assert!(
        matches!(n, Ok(0)),
        "the idle connection was not closed: {n:?}"
    );
}

#[test]
fn one_address_may_hold_only_so_many_connections() {
    // Section 5 item 25: `http-max-conns-per-ip 5`.
    let m = master(&["--http-max-conns-per-ip", "5"]);
    let ns = m.netns();
    let keep_alive = |from: Ipv4Addr| {
        let mut s = in_netns(&ns, move || connect_from(from, ROUTER)).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")?;
        let mut r = BufReader::new(s);
        let status = read_one(&mut r)?.status;
        Ok::<_, std::io::Error>((r.into_inner(), status))
    };
    let a = Ipv4Addr::new(127, 0, 3, 1);
    let mut held: Vec<TcpStream> = (0..5)
        .map(|_| {
            let (s, status) = keep_alive(a).unwrap();
            assert_eq!(status, 200);
            s
        })
        .collect();
    // The sixth from the same address is closed at once, unanswered.
    let mut sixth = m.connect_from(a);
    let _ = sixth.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut got = Vec::new();
    let r = sixth.read_to_end(&mut got);
    assert!(
        got.is_empty()
            && (r.is_ok()
                || r.as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset)),
        "the sixth connection: {r:?} {:?}",
        String::from_utf8_lossy(&got)
    );
    // Another address is served meanwhile.
    let (_other, status) = keep_alive(Ipv4Addr::new(127, 0, 3, 2)).unwrap();
    assert_eq!(status, 200);
    // One of the five closed: the address may connect again.
    drop(held.pop());
    let start = Instant::now();
    loop {
        if keep_alive(a).is_ok_and(|(_, s)| s == 200) {
            break;
        }
        assert!(start.elapsed() < LONG, "{}", m.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A master whose router sends every request to a [`Recorder`] (`http-to`, a unix socket in
/// the master's folder) answering with `answer`.
fn behind_http_to(
    answer: impl Fn(&str, &[u8]) -> Vec<u8> + Send + Sync + 'static,
) -> (Master, Recorder) {
    let dir = tempfile::Builder::new()
        .prefix("liege-router-it-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let backend = Recorder::start(&dir.path().join("backend.sock"), answer);
    let sock = backend.server.path().display().to_string();
    let mut m = Master::start_in(dir, &["--http-to", &sock, "--http-socket", "127.0.0.1:0"]);
    m.wait_ready();
    (m, backend)
}

/// The request's path.
fn path_of(head: &str) -> &str {
    head.split_whitespace().nth(1).unwrap_or_default()
}

#[test]
fn an_upgrade_the_backend_declines_is_not_passed_through() {
    // Section 5 item 11 (premature Upgrade): a backend (`http-to`) that answers 200 to a
    // websocket upgrade. The router must not splice the connection: the next request on it is
    // read as HTTP and forwarded as a request of its own (with the router's headers).
    let (m, backend) = behind_http_to(|head, _| {
        if header_of(head, "upgrade").is_some() {
            ok_response("not upgraded")
        } else {
            // Section 5 item 14: header values with CR, LF or NUL, and a bad status line.
            match path_of(head) {
                "/bad-cr" => {
                    b"HTTP/1.1 200 OK\r\nX-Bad: a\rSet-Cookie: x=1\r\nContent-Length: 2\r\n\r\nok"
                        .to_vec()
                }
                "/bad-lf" => {
                    b"HTTP/1.1 200 OK\r\nX-Bad: a\nSet-Cookie: x=1\r\nContent-Length: 2\r\n\r\nok"
                        .to_vec()
                }
                "/bad-nul" => {
                    b"HTTP/1.1 200 OK\r\nX-Bad: a\0b\r\nContent-Length: 2\r\n\r\nok".to_vec()
                }
                "/bad-status" => b"HTTP/1.1 two hundred OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
                path => ok_response(path),
            }
        }
    });
    let mut s = m.connect();
    s.write_all(
        b"GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let first = read_one(&mut r).unwrap();
    assert_eq!((first.status, first.text().as_str()), (200, "not upgraded"));
    // The next bytes on the connection: a request, read as one by the router.
    r.get_mut()
        .write_all(b"GET /second HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
        .unwrap();
    let second = read_one(&mut r).unwrap();
    assert_eq!((second.status, second.text().as_str()), (200, "/second"));
    let conns = backend.connections();
    let upgrade = conns
        .iter()
        .find(|c| c.starts_with("GET /upgrade "))
        .expect("the upgrade request reached the backend");
    assert!(
        !upgrade.contains("/second"),
        "the next request went down the upgraded connection: {upgrade:?}"
    );
    let again = conns
        .iter()
        .find(|c| c.starts_with("GET /second "))
        .expect("the second request, forwarded on a connection of its own");
    assert_eq!(
        header_of(again, "x-forwarded-for"),
        Some("127.0.0.1"),
        "{again}"
    );

    // Section 5 item 14: a response the router cannot pass on safely is a 502 of its own.
    for path in ["/bad-cr", "/bad-lf", "/bad-nul", "/bad-status"] {
        let r = m.get("t", path).unwrap();
        assert_eq!(r.status, 502, "{path}: {:?} {}", r.headers, r.text());
        assert!(routers_page(&r), "{path}");
        assert!(r.header("set-cookie").is_none(), "{path}");
    }
    // The router goes on.
    assert_eq!(m.get("t", "/fine").unwrap().text(), "/fine");
}

#[test]
fn a_transfer_encoding_with_trailing_white_space_is_read_one_way_only() {
    // Section 5 item 8, `Transfer-Encoding: chunked<TAB>`: "rejected, or handled by strictly
    // one rule, and never forwarded as received". The tab is optional white space around a
    // field value (RFC 9110 5.5); a router that reads the body as chunked must then forward it
    // framed its own way, so no server behind it can read it another way.
    let (m, backend) = behind_http_to(|head, body| {
        ok_response(&format!(
            "{} {}",
            path_of(head),
            String::from_utf8_lossy(body)
        ))
    });
    let mut s = m.connect();
    s.write_all(
        b"POST /te-tab HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\t\r\n\r\n5\r\nhello\r\n0\r\n\r\n\
          GET /after-te-tab HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let first = read_one(&mut r).unwrap();
    if first.status == 400 {
        // Rejected: closed, and nothing of it reached the backend.
        assert!(closed_by_peer(&mut r));
        assert!(
            !backend.all_text().contains("te-tab"),
            "{}",
            backend.all_text()
        );
        return;
    }
    // Read as chunked: the body is `hello`, the next request is a request of its own.
    assert_eq!(
        (first.status, first.text().as_str()),
        (200, "/te-tab hello")
    );
    let second = read_one(&mut r).unwrap();
    assert_eq!(
        (second.status, second.text().as_str()),
        (200, "/after-te-tab ")
    );
    let conns = backend.connections();
    let sent = conns
        .iter()
        .find(|c| c.starts_with("POST /te-tab "))
        .expect("the POST reached the backend");
    assert!(!sent.contains('\t'), "forwarded as received: {sent:?}");
    assert!(!sent.contains("after-te-tab"), "{sent:?}");
    let framing = (
        header_of(sent, "transfer-encoding"),
        header_of(sent, "content-length"),
    );
    assert!(
        matches!(framing, (Some("chunked"), None) | (None, Some("5"))),
        "{sent:?}"
    );
}

#[test]
fn limit_post_is_enforced_by_the_router_before_the_body_reaches_the_vassal() {
    // Section 5 item 4 (body over the tenant limit: 413 without reading it all), with an
    // emperor: `limit-post` is each vassal's, and the router enforces it. And item 15 over
    // the uwsgi protocol: a chunked body under the limit arrives with its length.
    let e = Emperor::start(&["--http", &ROUTER.to_string()]);
    customer_vassal(
        &e,
        "small",
        10001,
        &format!(
            "[uwsgi]\nsocket = {}\nwsgi-file = {}\nprocesses = 1\nlimit-post = 1k\ndomain = small.test\n",
            e.run.join("vassals/small/app.sock").display(),
            router_app(&e).display()
        ),
    );
    e.eventually(LONG, "small.test served", || {
        e.request_in_netns(ROUTER, "small.test", "/")
            .is_ok_and(|r| r.status == 200)
    });
    // Content-Length over the limit: 413 at once, the body never sent (nor waited for).
    let mut s = e.connect(ROUTER).unwrap();
    s.write_all(b"POST /echo?big HTTP/1.1\r\nHost: small.test\r\nContent-Length: 1048576\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let resp = read_one(&mut r).unwrap();
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert!(routers_page(&resp));
    // Chunked, past the limit.
    let mut s = e.connect(ROUTER).unwrap();
    let mut raw =
        b"POST /echo?chunked-big HTTP/1.1\r\nHost: small.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        raw.extend_from_slice(format!("200\r\n{}\r\n", "x".repeat(512)).as_bytes());
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let _ = s.write_all(&raw);
    let resp = read_one(&mut BufReader::new(s)).unwrap();
    assert_eq!(resp.status, 413, "{}", resp.text());
    // Chunked, under the limit: de-chunked, with its length, over the uwsgi protocol.
    let mut s = e.connect(ROUTER).unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: small.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n",
    )
    .unwrap();
    let resp = read_one(&mut BufReader::new(s)).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echo: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["content_length"], "11", "{echo}");
    assert_eq!(echo["length"], 11, "{echo}");
    assert_eq!(echo["sha256"], sha256_hex(b"hello world"), "{echo}");
    // The vassal saw neither refused request.
    let log = e.vassal_log("small");
    assert!(
        !log.contains("?big") && !log.contains("chunked-big"),
        "{log}"
    );
}

#[test]
fn ten_thousand_idle_keep_alive_connections_are_held_while_others_are_served() {
    // Section 5 items 1 and 25 (the router's descriptors stay bounded; other clients served):
    // 10,000 keep-alive connections, 100 from each of 100 addresses of 127.0.0.0/8.
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.expect("a finite RLIMIT_NOFILE");
    assert!(hard >= 12_000, "RLIMIT_NOFILE's hard limit is {hard}");
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        },
    )
    .unwrap();
    let m = master(&["--processes", "2"]);
    let ns = m.netns();
    let router = m.router_pid().expect("the router process");
    let fds = |pid: i32| {
        fs_err::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    // Four threads in the namespace, 25 addresses each.
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let ns = ns.clone();
            std::thread::spawn(move || {
                in_netns(&ns, move || {
                    let mut held = Vec::with_capacity(2500);
                    for a in 0..25u8 {
                        let from = Ipv4Addr::new(127, 1, t, a + 1);
                        for _ in 0..100 {
                            let mut s = connect_from(from, ROUTER).expect("connect");
                            s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                            let mut r = BufReader::new(s);
                            let resp = read_one(&mut r).expect("a response");
                            assert_eq!(resp.status, 200);
                            held.push(r.into_inner());
                        }
                    }
                    held
                })
            })
        })
        .collect();
    let held: Vec<TcpStream> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a client thread"))
        .collect();
    assert_eq!(held.len(), 10_000);
    // The router holds them (a descriptor each).
    let open = fds(router);
    assert!(open >= 10_000, "the router has {open} descriptors");
    // Other clients are served meanwhile.
    for i in 0..200 {
        let r = m.get("t", &format!("/pid?{i}")).unwrap();
        assert_eq!(r.status, 200);
    }
    // None of the 10,000 was dropped.
    for s in &held {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let r = (&*s).read(&mut b);
        assert!(
            r.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
            "a held connection: {r:?}"
        );
    }
    // Closed by the clients: the router lets go of them.
    drop(held);
    let start = Instant::now();
    while fds(router) > 1_000 {
        assert!(
            start.elapsed() < LONG,
            "the router keeps {} descriptors",
            fds(router)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(m.get("t", "/").unwrap().status, 200);
    assert_eq!(m.router_pid(), Some(router), "the router was restarted");
}
