//! What a node is told: the uwsgi vars of nginx's `uwsgi_pass`, the addresses and scheme the
//! router sets, and nothing a client made up to pass for them.

use crate::support::*;

const SPOOFED: &str = "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nx_forwarded_for: 7.7.7.7\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nUWSGI-File: /etc/passwd\r\nuwsgi_script: evil\r\nProxy: http://evil:1\r\nHTTPS: on\r\n";

async fn vars_for(r: &Router, extra: &str) -> std::collections::HashMap<String, String> {
    let resp = http(
        r.plain,
        &format!("POST /a%20b/c?x=1&y=2 HTTP/1.1\r\nHost: Shop.Example.com:{}\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nUser-Agent: t\r\nAccept: a\r\nAccept: b\r\n{extra}Connection: close\r\n\r\nhello", r.plain.port()),
    )
    .await;
    assert_eq!(resp.status, 200);
    resp.vars()
}

#[tokio::test]
async fn uwsgi_vars_and_spoofed_headers() {
    let mut r = Router::start().await;
    let dir = r.vassal_dir("shop");
    let _n = echo_vars_node(&dir.join("app.sock"));
    r.set_routes(vec![route("shop.example.com", "shop")]).await;
    let v = vars_for(&r, SPOOFED).await;
    let port = r.plain.port().to_string();
    let want = [
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", "/a%20b/c?x=1&y=2"),
        ("PATH_INFO", "/a b/c"),
        ("QUERY_STRING", "x=1&y=2"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("CONTENT_TYPE", "text/plain"),
        ("CONTENT_LENGTH", "5"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("SERVER_NAME", "shop.example.com"),
        ("SERVER_PORT", port.as_str()),
        ("HTTP_USER_AGENT", "t"),
        ("HTTP_ACCEPT", "a, b"),
        ("HTTP_X_FORWARDED_FOR", "127.0.0.1"),
        ("HTTP_X_FORWARDED_PROTO", "http"),
        ("BODY", "hello"),
    ];
    for (k, val) in want {
        assert_eq!(v.get(k).map(String::as_str), Some(val), "{k}");
    }
    assert!(
        v.get("HTTP_HOST")
            .unwrap()
            .eq_ignore_ascii_case(&format!("shop.example.com:{port}"))
    );
    assert!(v.contains_key("REMOTE_PORT"));
    for k in [
        "HTTPS",
        "UWSGI_SCHEME",
        "HTTP_X_FORWARDED_HOST",
        "HTTP_FORWARDED",
        "HTTP_X_REAL_IP",
        "HTTP_UWSGI_FILE",
        "HTTP_UWSGI_SCRIPT",
        "HTTP_PROXY",
        "HTTP_HTTPS",
        "UWSGI_FILE",
        "UWSGI_SCRIPT",
    ] {
        assert!(!v.contains_key(k), "{k} passed on: {:?}", v.get(k));
    }
}

#[tokio::test]
async fn a_trusted_proxy_is_believed() {
    let mut r = Router::start().await;
    let dir = r.vassal_dir("shop");
    let _n = echo_vars_node(&dir.join("app.sock"));
    r.set_routes(vec![route("shop.example.com", "shop")]).await;
    r.tweak(|s| s.trusted_proxies = vec!["10.0.0.0/8".into(), "127.0.0.0/8".into()])
        .await;
    let v = vars_for(&r, SPOOFED).await;
    assert_eq!(v["HTTP_X_FORWARDED_FOR"], "6.6.6.6, 127.0.0.1");
    assert_eq!(v["HTTP_X_FORWARDED_PROTO"], "https");
    assert_eq!(v["HTTPS"], "on");
    assert_eq!(v["UWSGI_SCHEME"], "https");
    assert_eq!(v["HTTP_X_REAL_IP"], "6.6.6.6");
    assert_eq!(v["REMOTE_ADDR"], "127.0.0.1");
    // Still never: httpoxy, and names with `_`.
    assert!(!v.contains_key("HTTP_PROXY"));
    assert!(!v.contains_key("HTTP_UWSGI_SCRIPT"));
    // A bad CIDR is refused and the old settings stay.
    let mut s = r.settings.clone();
    s.trusted_proxies = vec!["10.0.0.0/33".into()];
    let err = r.apply(s).await.unwrap();
    assert_eq!(
        err,
        "trusted proxy `10.0.0.0/33` is not an address or a CIDR block (`10.0.0.0/8`, `::1`)"
    );
    let v = vars_for(&r, SPOOFED).await;
    assert_eq!(v["HTTP_X_FORWARDED_FOR"], "6.6.6.6, 127.0.0.1");
}

#[tokio::test]
async fn chunked_bodies_reach_a_uwsgi_node_with_their_length() {
    let mut r = Router::start().await;
    let dir = r.vassal_dir("shop");
    let _n = echo_vars_node(&dir.join("app.sock"));
    let mut rt = route("shop.com", "shop");
    rt.limit_post = Some(20);
    r.set_routes(vec![rt]).await;
    let resp = http(r.plain, "POST / HTTP/1.1\r\nHost: shop.com\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n").await;
    let v = resp.vars();
    assert_eq!(v["CONTENT_LENGTH"], "11");
    assert_eq!(v["BODY"], "hello world");
    // Past the vassal's limit-post: 413, before anything reaches the node.
    let mut c = Client::connect(r.plain).await;
    c.send(b"POST / HTTP/1.1\r\nHost: shop.com\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n").await;
    let resp = c.response().await.unwrap();
    assert_eq!(resp.status, 413);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(c.closed().await);
    // Expect: 100-continue is answered before the body is read.
    let mut c = Client::connect(r.plain).await;
    c.send(
        b"POST / HTTP/1.1\r\nHost: shop.com\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut c.r, &mut line)
        .await
        .unwrap();
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    line.clear();
    tokio::io::AsyncBufReadExt::read_line(&mut c.r, &mut line)
        .await
        .unwrap();
    c.send(b"abc").await;
    let resp = c.response().await.unwrap();
    assert_eq!(resp.vars()["BODY"], "abc");
}

#[tokio::test]
async fn head_and_no_content_answers_carry_no_body() {
    let mut r = Router::start().await;
    let dir = r.vassal_dir("shop");
    let _n = uwsgi_node(&dir.join("app.sock"), |req| match req.var("PATH_INFO") {
        Some("/204") => b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n".to_vec(),
        // An app that answers HEAD with a body anyway, and closes.
        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
    });
    r.set_routes(vec![route("shop.com", "shop")]).await;
    let mut c = Client::connect(r.plain).await;
    c.send(b"HEAD / HTTP/1.1\r\nHost: shop.com\r\n\r\n").await;
    let resp = read_response(&mut c.r, true).await.unwrap();
    assert_eq!(resp.header("content-length"), Some("5"));
    c.send(b"GET /204 HTTP/1.1\r\nHost: shop.com\r\n\r\n").await;
    let resp = c.response().await.unwrap();
    assert_eq!((resp.status, resp.header("x-a")), (204, Some("1")));
    // Both answers were framed right: the connection still serves.
    c.send(b"GET / HTTP/1.1\r\nHost: shop.com\r\n\r\n").await;
    assert_eq!(c.response().await.unwrap().text(), "hello");
}

#[tokio::test]
async fn a_node_that_answers_before_reading_the_body_is_heard() {
    let mut r = Router::start().await;
    let dir = r.vassal_dir("shop");
    let _n = serve_unix(&dir.join("app.sock"), |mut s| async move {
        read_uwsgi_vars(&mut s).await;
        let mut some = [0u8; 10];
        tokio::io::AsyncReadExt::read_exact(&mut s, &mut some)
            .await
            .unwrap();
        let _ = tokio::io::AsyncWriteExt::write_all(
            &mut s,
            b"HTTP/1.1 413 Too Big\r\nContent-Length: 3\r\n\r\nbig",
        )
        .await;
    });
    r.set_routes(vec![route("shop.com", "shop")]).await;
    let c = Client::connect(r.plain).await;
    let (mut rd, mut w) = (c.r, c.w);
    let size = 20 << 20;
    tokio::io::AsyncWriteExt::write_all(
        &mut w,
        format!("POST / HTTP/1.1\r\nHost: shop.com\r\nContent-Length: {size}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let writer = tokio::spawn(async move {
        let piece = vec![b'x'; 65536];
        let mut sent = 0;
        while sent < size {
            if tokio::io::AsyncWriteExt::write_all(&mut w, &piece)
                .await
                .is_err()
            {
                break;
            }
            sent += piece.len();
        }
    });
    let resp = read_response(&mut rd, false).await.unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (413, "big"));
    assert_eq!(resp.header("connection"), Some("close"));
    writer.await.unwrap();
}
