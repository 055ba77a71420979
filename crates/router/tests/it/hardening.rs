//! Hardening, from raw sockets: smuggling refused (400, connection closed, nothing reaches the
//! node), head limits (414, 431), slow heads and idle connections closed, a per-address
//! connection limit, `limit-post` (413 at once).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

use crate::support::*;

async fn router_with_node() -> (Router, Node) {
    let mut r = Router::start().await;
    let n = named_node(&r, "app");
    r.set_routes(vec![route("app.com", "app")]).await;
    (r, n)
}

/// Sends `raw`, expects one answer of `status`, then the connection closed.
async fn refused(addr: SocketAddr, raw: &[u8], status: u16) {
    let mut c = Client::connect(addr).await;
    c.send(raw).await;
    let resp = c
        .response()
        .await
        .unwrap_or_else(|| panic!("no answer to {:?}", String::from_utf8_lossy(raw)));
    assert_eq!(resp.status, status, "{:?}", String::from_utf8_lossy(raw));
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(
        c.closed().await,
        "still open after {:?}",
        String::from_utf8_lossy(raw)
    );
}

#[tokio::test]
async fn smuggling_is_refused() {
    let (r, node) = router_with_node().await;
    let cases: &[&str] = &[
        // CL with TE, in both orders.
        "POST / HTTP/1.1\r\nHost: app.com\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.com\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: app.com\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\n",
        // Two Content-Lengths, same or not; lists; signs; hex; overflow.
        "POST / HTTP/1.1\r\nHost: app.com\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "POST / HTTP/1.1\r\nHost: app.com\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: app.com\r\nContent-Length: 3, 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: app.com\r\nContent-Length: +3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: app.com\r\nContent-Length: 0x3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: app.com\r\nContent-Length: 99999999999999999999999\r\n\r\nabc",
        // Transfer-Encoding variants.
        "POST / HTTP/1.1\r\nHost: app.com\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: app.com\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: app.com\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: app.com\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.0\r\nHost: app.com\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        // Bad chunk sizes.
        "POST / HTTP/1.1\r\nHost: app.com\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: app.com\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: app.com\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: app.com\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: app.com\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: app.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        // Obsolete line folding, bare LF and CR, white space before the colon, NUL.
        "GET / HTTP/1.1\r\nHost: app.com\r\nX-A: 1\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\nHost: app.com\n\n",
        "GET / HTTP/1.1\r\nHost: app.com\r\nX-A: 1\rX-B: 2\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: app.com\r\nX-A : 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: app.com\r\nX-A: 1\x002\r\n\r\n",
        // Hosts: none, two, bad, or not the absolute target's.
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: app.com\r\nHost: other.com\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: app.com/x\r\n\r\n",
        "GET http://other.com/ HTTP/1.1\r\nHost: app.com\r\n\r\n",
        // A path that decodes to NUL.
        "GET /a%00b HTTP/1.1\r\nHost: app.com\r\n\r\n",
    ];
    for raw in cases {
        refused(r.plain, raw.as_bytes(), 400).await;
    }
    refused(r.plain, b"GET / HTTP/1.2\r\nHost: app.com\r\n\r\n", 505).await;
    refused(
        r.plain,
        b"CONNECT app.com:443 HTTP/1.1\r\nHost: app.com\r\n\r\n",
        405,
    )
    .await;
    refused(
        r.plain,
        b"GET / HTTP/1.1\r\nHost: app.com\r\nExpect: magic\r\n\r\n",
        417,
    )
    .await;
    assert_eq!(node.hits(), 0, "a refused request reached the node");
}

#[tokio::test]
async fn a_refused_head_ends_a_pipeline() {
    let (r, node) = router_with_node().await;
    let mut c = Client::connect(r.plain).await;
    c.send(b"GET / HTTP/1.1\r\nHost: app.com\r\n\r\nGET / HTTP/1.1\r\nHost: app.com\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxxGET / HTTP/1.1\r\nHost: app.com\r\n\r\n").await;
    assert_eq!(c.response().await.unwrap().status, 200);
    assert_eq!(c.response().await.unwrap().status, 400);
    assert!(c.closed().await);
    assert_eq!(node.hits(), 1);
}

#[tokio::test]
async fn head_limits() {
    let (mut r, node) = router_with_node().await;
    r.tweak(|s| s.max_header_bytes = 1024).await;
    let long_line = format!(
        "GET /{} HTTP/1.1\r\nHost: app.com\r\n\r\n",
        "a".repeat(2000)
    );
    refused(r.plain, long_line.as_bytes(), 414).await;
    let long_head = format!(
        "GET / HTTP/1.1\r\nHost: app.com\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2000)
    );
    refused(r.plain, long_head.as_bytes(), 431).await;
    let many: String = (0..101).map(|i| format!("X-{i}: 1\r\n")).collect();
    r.tweak(|s| s.max_header_bytes = 65536).await;
    refused(
        r.plain,
        format!("GET / HTTP/1.1\r\nHost: app.com\r\n{many}\r\n").as_bytes(),
        431,
    )
    .await;
    let hundred: String = (0..99).map(|i| format!("X-{i}: 1\r\n")).collect();
    let resp = http(
        r.plain,
        &format!("GET / HTTP/1.1\r\nHost: app.com\r\n{hundred}\r\n"),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(node.hits(), 1);
}

#[tokio::test]
async fn limit_post_answers_413_before_the_body() {
    let mut r = Router::start().await;
    let node = named_node(&r, "app");
    let mut rt = route("app.com", "app");
    rt.limit_post = Some(1000);
    r.set_routes(vec![rt]).await;
    let mut c = Client::connect(r.plain).await;
    // Only the head is sent: the answer comes without the body.
    c.send(b"POST / HTTP/1.1\r\nHost: app.com\r\nContent-Length: 1000000000\r\n\r\n")
        .await;
    let resp = c.response().await.unwrap();
    assert_eq!(resp.status, 413);
    assert!(c.closed().await);
    assert_eq!(node.hits(), 0);
    let resp = http(
        r.plain,
        &format!(
            "POST / HTTP/1.1\r\nHost: app.com\r\nContent-Length: 1000\r\n\r\n{}",
            "a".repeat(1000)
        ),
    )
    .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn slow_heads_and_idle_connections_are_closed() {
    let (mut r, node) = router_with_node().await;
    r.tweak(|s| {
        s.header_timeout_ms = 300;
        s.idle_timeout_ms = 400;
    })
    .await;
    // Slowloris: a byte now and then, never a whole head.
    let mut slow = Client::connect(r.plain).await;
    let plain = r.plain;
    let trickle = tokio::spawn(async move {
        for b in b"GET / HTTP/1.1\r\nHost: app.com\r\nX-A: 1" {
            if slow.w.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        slow
    });
    // Others are served meanwhile.
    for _ in 0..5 {
        assert_eq!(get(plain, "app.com").await.status, 200);
    }
    let mut slow = trickle.await.unwrap();
    let resp = slow.response().await;
    assert_eq!(resp.map(|r| r.status), Some(408));
    assert!(slow.closed().await);
    // A connection that never sends anything.
    let mut mute = Client::connect(r.plain).await;
    assert!(mute.closed().await);
    // An idle keep-alive connection.
    let mut idle = Client::connect(r.plain).await;
    idle.send(b"GET / HTTP/1.1\r\nHost: app.com\r\n\r\n").await;
    assert_eq!(idle.response().await.unwrap().status, 200);
    assert!(idle.closed().await);
    assert_eq!(node.hits(), 6);
}

async fn connect_from(ip: &str, to: SocketAddr) -> Client {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    let s = s.connect(to).await.unwrap();
    let (r, w) = s.into_split();
    Client {
        r: tokio::io::BufReader::new(r),
        w,
    }
}

#[tokio::test]
async fn connections_per_address_are_limited() {
    let (mut r, _node) = router_with_node().await;
    r.tweak(|s| s.max_conns_per_ip = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = connect_from("127.0.0.3", r.plain).await;
        c.send(b"GET / HTTP/1.1\r\nHost: app.com\r\n\r\n").await;
        assert_eq!(c.response().await.unwrap().status, 200);
        held.push(c);
    }
    // A fourth from the same address is closed at once.
    let mut extra = connect_from("127.0.0.3", r.plain).await;
    let _ = extra
        .w
        .write_all(b"GET / HTTP/1.1\r\nHost: app.com\r\n\r\n")
        .await;
    assert!(extra.response().await.is_none());
    // Another address is served.
    let mut other = connect_from("127.0.0.4", r.plain).await;
    other.send(b"GET / HTTP/1.1\r\nHost: app.com\r\n\r\n").await;
    assert_eq!(other.response().await.unwrap().status, 200);
    // Once one leaves, a new one is let in (after the router saw it leave).
    drop(held.pop());
    let mut tries = 0;
    loop {
        let mut c = connect_from("127.0.0.3", r.plain).await;
        let _ =
            c.w.write_all(b"GET / HTTP/1.1\r\nHost: app.com\r\n\r\n")
                .await;
        if let Some(resp) = c.response().await {
            assert_eq!(resp.status, 200);
            break;
        }
        tries += 1;
        assert!(tries < 100, "the freed slot never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_chunked_body_streamed_past_limit_post_is_cut() {
    let mut r = Router::start().await;
    let dir = r.vassal_dir("web");
    // An HTTP node that reads whatever comes and never answers.
    let node = serve_unix(&dir.join("http.sock"), |mut s| async move {
        let mut sink = vec![0u8; 4096];
        while matches!(tokio::io::AsyncReadExt::read(&mut s, &mut sink).await, Ok(n) if n > 0) {}
    });
    let mut rt = route("web.com", "web");
    rt.socket = "http.sock".into();
    rt.proto = liege_proto::router::NodeProto::Http;
    rt.limit_post = Some(100);
    r.set_routes(vec![rt]).await;
    let mut c = Client::connect(r.plain).await;
    c.send(b"POST / HTTP/1.1\r\nHost: web.com\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n")
        .await;
    c.send(&[b'a'; 80]).await;
    c.send(b"\r\n50\r\n").await;
    c.send(&[b'b'; 80]).await;
    c.send(b"\r\n0\r\n\r\n").await;
    let resp = c.response().await.unwrap();
    assert_eq!(resp.status, 413);
    assert!(c.closed().await);
    assert_eq!(node.hits(), 1);
}

#[tokio::test]
async fn slow_bodies_and_slow_readers_are_cut() {
    let mut r = Router::start().await;
    r.tweak(|s| s.idle_timeout_ms = 300).await;
    let dir = r.vassal_dir("app");
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<()>();
    let failed_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(failed_tx)));
    let _n = serve_unix(&dir.join("app.sock"), move |mut s| {
        let failed_tx = failed_tx.clone();
        async move {
            let req = read_uwsgi_vars(&mut s).await;
            if req.iter().any(|(k, v)| k == "PATH_INFO" && v == "/big") {
                let tx = failed_tx.lock().unwrap().take();
                // 50 MB to a client that never reads: the router gives up, so does this write.
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 50 << 20);
                let mut result = s.write_all(head.as_bytes()).await;
                let piece = vec![0u8; 65536];
                for _ in 0..800 {
                    if result.is_err() {
                        break;
                    }
                    result = s.write_all(&piece).await;
                }
                if result.is_err()
                    && let Some(tx) = tx
                {
                    let _ = tx.send(());
                }
            } else {
                // Wait for a body that does not come.
                let mut sink = [0u8; 4096];
                while matches!(tokio::io::AsyncReadExt::read(&mut s, &mut sink).await, Ok(n) if n > 0)
                {
                }
            }
        }
    });
    r.set_routes(vec![route("app.com", "app")]).await;
    // A body that stalls: 408, closed.
    let mut c = Client::connect(r.plain).await;
    c.send(b"POST / HTTP/1.1\r\nHost: app.com\r\nContent-Length: 10000000\r\n\r\nx")
        .await;
    let resp = c.response().await.unwrap();
    assert_eq!(resp.status, 408);
    assert!(c.closed().await);
    // A reader that stalls: the router stops writing, closes, and the node is released.
    let mut c = Client::small(r.plain).await;
    c.send(b"GET /big HTTP/1.1\r\nHost: app.com\r\n\r\n").await;
    tokio::time::timeout(Duration::from_secs(60), failed_rx)
        .await
        .expect("the node is still writing to a client that does not read")
        .unwrap();
    drop(c);
}
