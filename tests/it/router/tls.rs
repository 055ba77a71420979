//! TLS, HTTP/2 and websockets through the emperor's router: certificates chosen by SNI (a
//! default one from `https`, one from `sni` in the emperor's options, one from `sni` in a
//! vassal's file), checked by curl against each certificate; HTTP/2 by ALPN with curl and
//! h2load; h2c on the plain listener; websockets to an echo server behind `http-to`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::emperor::guard::Emperor;

use super::support::{
    LONG, ROUTER, UnixServer, certificate, customer_vassal, header_of, ok_response, read_frame,
    read_request, router_app, write_frame, ws_accept,
};

/// The TLS listener in the emperor's namespace.
const TLS: &str = "127.0.0.1:8443";

/// What curl saw of `https://HOST:8443/PATH` (HTTP/2 asked for, the certificate checked
/// against `ca`).
#[derive(Debug)]
struct Seen {
    ok: bool,
    body: String,
    version: String,
    subject: String,
    stderr: String,
}

fn curl_https(e: &Emperor, host: &str, path: &str, ca: &Path) -> Seen {
    let out = e
        .command_in_netns("curl")
        .args([
            "-sSv",
            "--http2",
            "--max-time",
            "20",
            "-w",
            "\n%{http_version}",
        ])
        .args(["--resolve", &format!("{host}:8443:127.0.0.1")])
        .arg("--cacert")
        .arg(ca)
        .arg(format!("https://{host}:8443{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, version) = text.rsplit_once('\n').unwrap_or((&text, ""));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let subject = stderr
        .lines()
        .find_map(|l| l.trim_start_matches("* ").trim().strip_prefix("subject: "))
        .unwrap_or_default()
        .to_owned();
    Seen {
        ok: out.status.success(),
        body: body.to_owned(),
        version: version.to_owned(),
        subject,
        stderr,
    }
}

/// The websocket echo server behind `http-to`: after the handshake it says `welcome` (a text
/// frame of its own), then echoes each text and binary frame, answers a ping, and answers a
/// close with a close. A request that is no upgrade gets a plain 200.
fn echo_server(path: &Path) -> UnixServer {
    UnixServer::start(path, |conn: UnixStream| {
        let mut w = conn.try_clone().expect("dup");
        let mut r = BufReader::new(conn);
        let Ok((head, _)) = read_request(&mut r) else {
            return;
        };
        let Some(key) = header_of(&head, "sec-websocket-key").filter(|_| {
            header_of(&head, "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
        }) else {
            let _ = w.write_all(&ok_response("echo server"));
            return;
        };
        let hello = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            ws_accept(key)
        );
        if w.write_all(hello.as_bytes()).is_err()
            || write_frame(&mut w, 1, b"welcome", None).is_err()
        {
            return;
        }
        while let Ok(f) = read_frame(&mut r) {
            let answer = match f.opcode {
                1 | 2 => f.opcode,
                9 => 10,
                8 => {
                    let _ = write_frame(&mut w, 8, &f.payload, None);
                    return;
                }
                _ => continue,
            };
            if write_frame(&mut w, answer, &f.payload, None).is_err() {
                return;
            }
        }
    })
}

#[test]
fn certificates_by_sni_http2_h2c_and_websockets() {
    let tls = tempfile::Builder::new()
        .prefix("liege-router-tls-")
        .tempdir_in("/tmp")
        .unwrap();
    fs_err::set_permissions(tls.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (default_crt, default_key) = certificate(tls.path(), "default.test");
    let (a_crt, a_key) = certificate(tls.path(), "a.test");
    // b's certificate is its customer's: the emperor reads it as uid 10002.
    let (b_crt, b_key) = certificate(tls.path(), "b.test");
    for f in [&b_crt, &b_key] {
        std::os::unix::fs::chown(f, Some(10002), Some(10002)).unwrap();
        fs_err::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let ws = echo_server(&tls.path().join("ws.sock"));
    let e = Emperor::start(&[
        "--https",
        &format!("{TLS},{},{}", default_crt.display(), default_key.display()),
        "--sni",
        &format!("a.test,{},{}", a_crt.display(), a_key.display()),
        "--http",
        &ROUTER.to_string(),
        "--http-to",
        &ws.path().display().to_string(),
    ]);
    let app = router_app(&e);
    customer_vassal(
        &e,
        "a",
        10001,
        &format!(
            "[uwsgi]\nhttp-socket = {}\nwsgi-file = {}\nprocesses = 2\nenv = WHO=a\ndomain = a.test\n",
            e.run.join("vassals/a/app.sock").display(),
            app.display()
        ),
    );
    customer_vassal(
        &e,
        "b",
        10002,
        &format!(
            "[uwsgi]\nsocket = {}\nwsgi-file = {}\nprocesses = 1\nenv = WHO=b\ndomain = b.test\nsni = b.test,{},{}\n",
            e.run.join("vassals/b/app.sock").display(),
            app.display(),
            b_crt.display(),
            b_key.display()
        ),
    );
    e.eventually(LONG, "a.test over TLS", || {
        curl_https(&e, "a.test", "/", &a_crt).body == "a"
    });
    e.eventually(LONG, "b.test over TLS with b's certificate", || {
        curl_https(&e, "b.test", "/", &b_crt).body == "b"
    });

    // Each name gets its certificate (curl checks it against that one alone), over HTTP/2;
    // the app knows the request came over TLS.
    for (host, ca, who) in [("a.test", &a_crt, "a"), ("b.test", &b_crt, "b")] {
        let seen = curl_https(&e, host, "/env", ca);
        assert!(seen.ok, "{host}: {}", seen.stderr);
        assert_eq!(seen.subject, format!("CN={host}"), "{}", seen.stderr);
        assert_eq!(seen.version, "2", "{}", seen.stderr);
        let env: serde_json::Value = serde_json::from_str(&seen.body).expect("router_app's JSON");
        assert_eq!(env["@who"], who);
        assert_eq!(env["HTTP_X_FORWARDED_PROTO"], "https", "{env}");
        assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1", "{env}");
        if host == "b.test" {
            // Over the uwsgi protocol the router sets the CGI variables themselves. (Over HTTP
            // to an `http-socket`, the worker's own view stands: wsgi.url_scheme `http` and
            // an empty REMOTE_ADDR on a unix socket; only the X-Forwarded-* headers tell.)
            assert_eq!(env["wsgi.url_scheme"], "https", "{env}");
            assert_eq!(env["HTTPS"], "on", "{env}");
            assert_eq!(env["REMOTE_ADDR"], "127.0.0.1", "{env}");
        }
    }
    // b's certificate is not a's: checked against a's, b.test fails.
    assert!(!curl_https(&e, "b.test", "/", &a_crt).ok);
    // A name no certificate is for gets the default one (and http-to answers it).
    let seen = curl_https(&e, "other.test", "/", &default_crt);
    assert_eq!(seen.subject, "CN=default.test", "{}", seen.stderr);
    let out = e
        .command_in_netns("curl")
        .args(["-sSk", "--http2", "--max-time", "20"])
        .args(["--resolve", "other.test:8443:127.0.0.1"])
        .arg("https://other.test:8443/")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "echo server");

    // h2load: 2,000 requests over 10 HTTP/2 connections, 10 streams each at once.
    let out = e
        .command_in_netns("h2load")
        .args([
            "-n",
            "2000",
            "-c",
            "10",
            "-m",
            "10",
            "--connect-to=127.0.0.1:8443",
        ])
        .arg("https://a.test:8443/")
        .output()
        .expect("h2load");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Application protocol: h2"), "{text}");
    let requests = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        requests.contains("2000 succeeded, 0 failed, 0 errored, 0 timeout"),
        "{requests}"
    );

    // h2c by prior knowledge on the plain listener.
    let out = e
        .command_in_netns("curl")
        .args(["-sS", "--http2-prior-knowledge", "--max-time", "20"])
        .args(["-w", "\n%{http_version}"])
        .args(["--resolve", "a.test:8080:127.0.0.1"])
        .arg("http://a.test:8080/")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "a\n2",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A websocket through the router (plain listener) to the echo server behind http-to.
    let s = e.connect(ROUTER).unwrap();
    websocket_session(s);
    let _ = ws;
}

/// A websocket session on `s`: the handshake, a frame from the server, text and binary frames
/// both ways, a 1 MiB frame, a ping, and the close handshake.
fn websocket_session(s: TcpStream) {
    let key = "bGllZ2Ugcm91dGVyIHRlc3Q=";
    let mut w = s.try_clone().unwrap();
    write!(
        w,
        "GET /chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 101"), "{status:?}");
    let mut head = String::from(status.as_str());
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    assert_eq!(
        header_of(&head, "sec-websocket-accept"),
        Some(ws_accept(key).as_str()),
        "{head}"
    );
    let mask = Some([0x37, 0xfa, 0x21, 0x3d]);
    // The server speaks first.
    let f = read_frame(&mut r).unwrap();
    assert_eq!((f.opcode, f.payload.as_slice()), (1, b"welcome".as_slice()));
    // Text and binary, both ways.
    write_frame(&mut w, 1, "héllo".as_bytes(), mask).unwrap();
    let f = read_frame(&mut r).unwrap();
    assert_eq!(
        (f.fin, f.opcode, f.payload.as_slice()),
        (true, 1, "héllo".as_bytes())
    );
    write_frame(&mut w, 2, &[0, 1, 2, 0xff, 0xfe], mask).unwrap();
    let f = read_frame(&mut r).unwrap();
    assert_eq!(
        (f.opcode, f.payload.as_slice()),
        (2, [0, 1, 2, 0xff, 0xfe].as_slice())
    );
    // A 1 MiB frame (a 64-bit length), written while the echo comes back.
    let big: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    let mut w2 = w.try_clone().unwrap();
    let sent = big.clone();
    let writer = std::thread::spawn(move || write_frame(&mut w2, 2, &sent, mask));
    let f = read_frame(&mut r).unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(f.opcode, 2);
    assert!(
        f.payload == big,
        "the 1 MiB frame came back altered ({} bytes)",
        f.payload.len()
    );
    // A ping gets its pong.
    write_frame(&mut w, 9, b"are you there", mask).unwrap();
    let f = read_frame(&mut r).unwrap();
    assert_eq!(
        (f.opcode, f.payload.as_slice()),
        (10, b"are you there".as_slice())
    );
    // The close handshake: the server's close comes back, then the connection ends.
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    write_frame(&mut w, 8, &close, mask).unwrap();
    let f = read_frame(&mut r).unwrap();
    assert_eq!((f.opcode, f.payload), (8, close));
    let mut rest = Vec::new();
    let end = std::io::Read::read_to_end(&mut r, &mut rest);
    assert!(matches!(end, Ok(0)), "after the close: {end:?} {rest:?}");
}
