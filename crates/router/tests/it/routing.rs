//! Host matching: exact, wildcards at any depth (the most specific wins), case, port and a
//! trailing dot ignored; unknown hosts get a plain 404; `http-to` takes what no route matches.

use crate::support::*;

#[tokio::test]
async fn hosts_route_to_their_vassals() {
    let mut r = Router::start().await;
    let _a = named_node(&r, "alpha");
    let _b = named_node(&r, "beta");
    let _c = named_node(&r, "gamma");
    r.set_routes(vec![
        route("example.com", "alpha"),
        route("www.example.com", "alpha"),
        route("*.example.com", "beta"),
        route("*.deep.example.com", "gamma"),
        route("other.org", "gamma"),
    ])
    .await;
    let cases = [
        ("example.com", Some("alpha")),
        ("EXAMPLE.com", Some("alpha")),
        ("example.com:8080", Some("alpha")),
        ("example.com.", Some("alpha")),
        ("www.example.com", Some("alpha")),
        ("shop.example.com", Some("beta")),
        ("a.b.example.com", Some("beta")),
        ("Shop.Example.Com:443", Some("beta")),
        ("deep.example.com", Some("beta")),
        ("x.deep.example.com", Some("gamma")),
        ("other.org", Some("gamma")),
        ("www.other.org", None),
        ("example.org", None),
        ("127.0.0.1", None),
    ];
    for (host, want) in cases {
        let resp = get(r.plain, host).await;
        match want {
            Some(v) => {
                assert_eq!(resp.status, 200, "{host}");
                assert_eq!(resp.text(), v, "{host}");
            }
            None => {
                assert_eq!(resp.status, 404, "{host}");
                assert_eq!(
                    resp.header("content-type"),
                    Some("text/plain; charset=utf-8")
                );
                assert!(resp.text().starts_with("404 Not Found"), "{}", resp.text());
            }
        }
    }
    // The absolute form names the host too.
    let resp = http(r.plain, "GET http://Shop.Example.com/x HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n").await;
    assert_eq!(resp.text(), "beta");
    r.stop().await.unwrap();
}

#[tokio::test]
async fn keep_alive_switches_hosts_per_request() {
    let mut r = Router::start().await;
    let _a = named_node(&r, "alpha");
    let _b = named_node(&r, "beta");
    r.set_routes(vec![route("a.com", "alpha"), route("b.com", "beta")])
        .await;
    let mut c = Client::connect(r.plain).await;
    for host in ["a.com", "b.com", "nope.com", "a.com"] {
        c.send(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await;
        let resp = c.response().await.unwrap();
        match host {
            "a.com" => assert_eq!(resp.text(), "alpha"),
            "b.com" => assert_eq!(resp.text(), "beta"),
            _ => assert_eq!(resp.status, 404),
        }
        assert_eq!(resp.header("connection"), None);
    }
    // Three pipelined requests in one write come back in order.
    c.send(b"GET / HTTP/1.1\r\nHost: b.com\r\n\r\nGET / HTTP/1.1\r\nHost: a.com\r\n\r\nGET / HTTP/1.1\r\nHost: b.com\r\nConnection: close\r\n\r\n").await;
    let got: Vec<String> = [
        c.response().await.unwrap(),
        c.response().await.unwrap(),
        c.response().await.unwrap(),
    ]
    .iter()
    .map(Resp::text)
    .collect();
    assert_eq!(got, ["beta", "alpha", "beta"]);
    assert!(c.closed().await);
}

#[tokio::test]
async fn http_to_takes_unrouted_hosts() {
    let mut r = Router::start().await;
    let _a = named_node(&r, "alpha");
    // An HTTP node on a unix socket for http-to.
    let dir = tempfile::tempdir().unwrap();
    let fixed = serve_unix(&dir.path().join("fixed.sock"), |s| async move {
        let (rd, mut wr) = s.into_split();
        let mut rd = tokio::io::BufReader::new(rd);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            tokio::io::AsyncBufReadExt::read_line(&mut rd, &mut line)
                .await
                .unwrap();
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let body = format!("fixed saw:\n{head}");
        let _ = tokio::io::AsyncWriteExt::write_all(
            &mut wr,
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await;
    });
    r.set_routes(vec![route("a.com", "alpha")]).await;
    let path = fixed.path.to_str().unwrap().to_owned();
    r.tweak(|s| s.http_to = vec![path]).await;
    assert_eq!(get(r.plain, "a.com").await.text(), "alpha");
    let resp = get(r.plain, "unknown.net").await;
    assert_eq!(resp.status, 200);
    let text = resp.text();
    assert!(
        text.starts_with("fixed saw:\nGET / HTTP/1.1\r\nHost: unknown.net\r\n"),
        "{text}"
    );
    assert!(text.contains("X-Forwarded-For: 127.0.0.1\r\n"), "{text}");
    assert!(text.contains("X-Forwarded-Proto: http\r\n"), "{text}");
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert_eq!(fixed.hits(), 1);
}
