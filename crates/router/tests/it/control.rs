//! The control channel: settings and certificates swapped while requests and connections run
//! (nothing is dropped), counters reported, and stopping (in-flight requests finish, idle
//! connections close, nothing new is accepted).

use std::time::Duration;

use liege_proto::router::{Counters, FromRouter};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

use crate::support::*;
use crate::tls::tls_connect;

/// A node whose answers wait for `release`.
fn held_node(r: &Router, name: &str) -> (Node, tokio::sync::mpsc::UnboundedSender<()>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    let dir = r.vassal_dir(name);
    let node = serve_unix(&dir.join("app.sock"), move |mut s| {
        let rx = rx.clone();
        async move {
            read_uwsgi(&mut s).await;
            rx.lock().await.recv().await;
            let _ = s.write_all(&ok(b"released")).await;
        }
    });
    (node, tx)
}

async fn wait_hits(n: &Node, want: usize) {
    while n.hits() < want {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn settings_and_certificates_swap_under_running_requests() {
    let mut r = Router::start().await;
    let (node, release) = held_node(&r, "app");
    let first = cert(None, &["first"]);
    let f = first.clone();
    r.tweak(|s| s.certs = vec![f]).await;
    r.set_routes(vec![route("app.com", "app")]).await;
    // A plain request in flight, a TLS connection open.
    let plain = r.plain;
    let inflight = tokio::spawn(async move { get(plain, "app.com").await });
    wait_hits(&node, 1).await;
    let tls = tls_connect(&r, "app.com", &[b"http/1.1"]).await;
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    // New settings, new certificates, a new table.
    let second = cert(None, &["second"]);
    let s2 = second.clone();
    r.tweak(|s| {
        s.certs = vec![s2];
        s.idle_timeout_ms = 30_000;
        s.trusted_proxies = vec!["192.168.0.0/16".into()];
    })
    .await;
    r.set_routes(vec![route("app.com", "app"), route("other.com", "app")])
        .await;
    release.send(()).unwrap();
    let resp = inflight.await.unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "released"));
    // The open TLS connection still serves, on its old certificate.
    let (rd, mut wr) = tokio::io::split(tls);
    wr.write_all(b"GET / HTTP/1.1\r\nHost: app.com\r\n\r\n")
        .await
        .unwrap();
    release.send(()).unwrap();
    let resp = read_response(&mut BufReader::new(rd), false).await.unwrap();
    assert_eq!(resp.text(), "released");
    assert_eq!(
        presented.as_ref(),
        rustls_pem_der(&first.cert_pem).as_slice()
    );
    // New handshakes get the new certificate.
    let again = tls_connect(&r, "app.com", &[]).await;
    assert_eq!(
        again.get_ref().1.peer_certificates().unwrap()[0].as_ref(),
        rustls_pem_der(&second.cert_pem).as_slice()
    );
}

fn rustls_pem_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn counters_are_reported_while_they_change() {
    let mut r = Router::start().await;
    let _a = named_node(&r, "alpha");
    r.tweak(|s| s.connect_timeout_ms = 100).await;
    r.vassal_dir("down");
    r.set_routes(vec![route("a.com", "alpha"), route("down.com", "down")])
        .await;
    for _ in 0..3 {
        assert_eq!(get(r.plain, "a.com").await.status, 200);
    }
    assert_eq!(get(r.plain, "down.com").await.status, 503);
    assert_eq!(get(r.plain, "nope.com").await.status, 404);
    let resp = http(
        r.plain,
        "POST / HTTP/1.1\r\nHost: a.com\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody",
    )
    .await;
    assert_eq!(resp.status, 200);
    let want_alpha = |c: &Counters| {
        c.vassal == "alpha" && c.requests == 4 && c.status_4xx == 0 && c.status_5xx == 0
    };
    let counters = loop {
        if let FromRouter::Counters(c) = r.recv().await
            && c.iter().any(want_alpha)
        {
            break c;
        }
    };
    let alpha = counters.iter().find(|c| c.vassal == "alpha").unwrap();
    // bytes_in: the four uwsgi packets and the body; bytes_out: the four answers.
    assert!(
        alpha.bytes_in > 4 * 100 && alpha.bytes_out > 4 * 50,
        "{alpha:?}"
    );
    let down = counters.iter().find(|c| c.vassal == "down").unwrap();
    assert_eq!((down.requests, down.status_5xx), (1, 1));
    // Unchanged counters are not sent again: the next message comes only after a request.
    let before = tokio::time::timeout(Duration::from_millis(2500), r.recv()).await;
    assert!(before.is_err(), "counters sent while unchanged: {before:?}");
    get(r.plain, "a.com").await;
    loop {
        let FromRouter::Counters(c) = r.recv().await else {
            panic!()
        };
        let n = c.iter().find(|c| c.vassal == "alpha").unwrap().requests;
        assert!(n == 4 || n == 5, "{n}");
        if n == 5 {
            break;
        }
    }
}

#[tokio::test]
async fn stopping_lets_requests_finish_and_closes_the_rest() {
    let mut r = Router::start().await;
    let (node, release) = held_node(&r, "app");
    let _quick = named_node(&r, "quick");
    r.set_routes(vec![route("app.com", "app"), route("quick.com", "quick")])
        .await;
    let plain = r.plain;
    let inflight =
        tokio::spawn(async move { http(plain, "GET / HTTP/1.1\r\nHost: app.com\r\n\r\n").await });
    wait_hits(&node, 1).await;
    let mut idle = Client::connect(r.plain).await;
    idle.send(b"GET / HTTP/1.1\r\nHost: quick.com\r\n\r\n")
        .await;
    assert_eq!(idle.response().await.unwrap().status, 200);
    let stopping = tokio::spawn(r.stop());
    // The idle keep-alive connection is closed.
    let mut rest = Vec::new();
    idle.r.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    // The request in flight finishes, told the connection closes.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!stopping.is_finished());
    release.send(()).unwrap();
    let resp = inflight.await.unwrap();
    assert_eq!(
        (resp.status, resp.header("connection")),
        (200, Some("close"))
    );
    stopping.await.unwrap().unwrap();
    // Nothing is accepted any more.
    assert!(tokio::net::TcpStream::connect(plain).await.is_err());
}

#[test]
fn run_serves_on_a_thread_per_core_and_stops() {
    use liege_proto::router::{ToRouter, encode};
    use std::io::{Read, Write};
    let run_dir = tempfile::tempdir().unwrap();
    fs_err::create_dir_all(run_dir.path().join("vassals/app")).unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let router = std::thread::spawn(move || {
        liege_router::run(
            vec![liege_router::Listener {
                fd: std::os::fd::OwnedFd::from(l),
                tls: false,
            }],
            theirs,
            None,
        )
    });
    // A uwsgi node on a runtime of the test's own.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sock = run_dir.path().join("vassals/app/app.sock");
    let _node = rt.block_on(async { uwsgi_node(&sock, |_| ok(b"threads")) });
    let (done, until) = tokio::sync::oneshot::channel::<()>();
    let node_thread = std::thread::spawn(move || {
        rt.block_on(async {
            let _ = until.await;
        })
    });
    let mut settings = Router::test_settings(run_dir.path());
    settings.max_conns_per_ip = 0;
    // The routes first: the settings' acknowledgement, read below, then says both are in (the
    // router reads its control channel in order). Sent the other way round, early clients could
    // get a 404 and wait for an answer that never comes.
    ours.write_all(&encode(&ToRouter::Routes(vec![route("app.com", "app")])))
        .unwrap();
    ours.write_all(&encode(&ToRouter::Settings(settings)))
        .unwrap();
    let mut frame = [0u8; 4];
    ours.read_exact(&mut frame).unwrap();
    let mut body = vec![0u8; u32::from_le_bytes(frame) as usize];
    ours.read_exact(&mut body).unwrap();
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"{"applied":{"error":null}}"#
    );
    // Many connections at once: every one is answered, whichever thread took it.
    let clients: Vec<_> = (0..40)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                let mut out = Vec::new();
                for _ in 0..5 {
                    s.write_all(b"GET / HTTP/1.1\r\nHost: app.com\r\n\r\n")
                        .unwrap();
                    let mut got = Vec::new();
                    let mut buf = [0u8; 512];
                    while !got.ends_with(b"threads") {
                        let n = s.read(&mut buf).unwrap();
                        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
                        got.extend_from_slice(&buf[..n]);
                    }
                    out.push(got);
                }
                out
            })
        })
        .collect();
    for c in clients {
        for got in c.join().unwrap() {
            assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
        }
    }
    drop(ours);
    router.join().unwrap().unwrap();
    assert!(std::net::TcpStream::connect(addr).is_err());
    done.send(()).unwrap();
    node_thread.join().unwrap();
}
