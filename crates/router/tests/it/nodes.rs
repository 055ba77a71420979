//! Nodes: balancing, failover to another node when one refuses, waiting while a vassal starts,
//! 503 when none comes up, 502 when one fails mid-request, and the sockets refused for safety
//! (a symlink, another uid, a socket swapped after use), and requests sent again to a node that
//! reset the connection before answering.

use std::time::Duration;

use liege_proto::router::{Balance, NodeProto, NodeState};
use tokio::io::AsyncWriteExt;

use crate::support::*;

/// Two vassals' routes for one domain (both `app.sock`).
fn pair(domain: &str) -> Vec<liege_proto::router::Route> {
    vec![route(domain, "one"), route(domain, "two")]
}

#[tokio::test]
async fn round_robin_and_least_connections() {
    let mut r = Router::start().await;
    let one = named_node(&r, "one");
    let two = named_node(&r, "two");
    r.tweak(|s| s.balance = Balance::RoundRobin).await;
    r.set_routes(pair("shared.com")).await;
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(get(r.plain, "shared.com").await.text());
    }
    assert_eq!(one.hits(), 5);
    assert_eq!(two.hits(), 5);
    assert!(seen.windows(2).all(|w| w[0] != w[1]), "{seen:?}");

    // Least connections: while `one` holds a request, the others go to `two`.
    r.tweak(|s| s.balance = Balance::LeastConn).await;
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let held = std::sync::Mutex::new(Some(held));
    let dir = r.vassal_dir("one");
    drop(one);
    let slow = serve_unix(&dir.join("app.sock"), move |mut s| {
        let wait = held.lock().unwrap().take();
        async move {
            read_uwsgi(&mut s).await;
            if let Some(w) = wait {
                let _ = w.await;
            }
            let _ = s.write_all(&ok(b"one")).await;
        }
    });
    // Take `one` first: least connections with a tie picks in turn, so try until it is held.
    let plain = r.plain;
    let mut first = tokio::spawn(async move { get(plain, "shared.com").await });
    loop {
        tokio::select! {
            done = &mut first => {
                // It went to `two`: try again.
                assert_eq!(done.unwrap().text(), "two");
                first = tokio::spawn(async move { get(plain, "shared.com").await });
            }
            () = tokio::time::sleep(Duration::from_millis(5)) => {
                if slow.hits() == 1 {
                    break;
                }
            }
        }
    }
    let before = two.hits();
    for _ in 0..5 {
        assert_eq!(get(r.plain, "shared.com").await.text(), "two");
    }
    assert_eq!(two.hits(), before + 5);
    release.send(()).unwrap();
    assert_eq!(first.await.unwrap().text(), "one");
}

#[tokio::test]
async fn a_refusing_node_is_skipped_and_retried_later() {
    let mut r = Router::start().await;
    let two = named_node(&r, "two");
    // `one` has a folder but nothing listens: its socket is missing.
    r.vassal_dir("one");
    r.tweak(|s| s.balance = Balance::RoundRobin).await;
    r.set_routes(pair("shared.com")).await;
    for _ in 0..6 {
        let resp = get(r.plain, "shared.com").await;
        assert_eq!((resp.status, resp.text().as_str()), (200, "two"));
    }
    assert_eq!(two.hits(), 6);
    // A socket file nobody listens on (ECONNREFUSED) is skipped the same way.
    let dir = r.vassal_dir("one");
    let stale = std::os::unix::net::UnixListener::bind(dir.join("app.sock")).unwrap();
    drop(stale);
    for _ in 0..4 {
        assert_eq!(get(r.plain, "shared.com").await.text(), "two");
    }
    // Once `one` listens, it is taken back after its back-off (1 s, then 2 s...).
    fs_err::remove_file(dir.join("app.sock")).unwrap();
    let one = named_node(&r, "one");
    let mut n = 0;
    while one.hits() == 0 {
        get(r.plain, "shared.com").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        n += 1;
        assert!(n < 200, "`one` never taken back");
    }
}

#[tokio::test]
async fn requests_wait_while_a_vassal_starts() {
    let mut r = Router::start().await;
    r.tweak(|s| s.connect_timeout_ms = 10_000).await;
    let mut starting = route("app.com", "app");
    starting.state = NodeState::Starting;
    r.set_routes(vec![starting.clone()]).await;
    let plain = r.plain;
    let waiting = tokio::spawn(async move { get(plain, "app.com").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished());
    let node = named_node(&r, "app");
    let mut up = starting;
    up.state = NodeState::Up;
    r.set_routes(vec![up]).await;
    let resp = waiting.await.unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "app"));
    assert_eq!(node.hits(), 1);
}

#[tokio::test]
async fn requests_wait_for_a_socket_that_comes_up() {
    let mut r = Router::start().await;
    r.tweak(|s| s.connect_timeout_ms = 10_000).await;
    r.set_routes(vec![route("app.com", "app")]).await;
    let plain = r.plain;
    let waiting = tokio::spawn(async move { get(plain, "app.com").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let node = named_node(&r, "app");
    let resp = waiting.await.unwrap();
    assert_eq!(resp.text(), "app");
    assert_eq!(node.hits(), 1);
}

#[tokio::test]
async fn no_node_alive_is_503_a_failing_node_502() {
    let mut r = Router::start().await;
    r.tweak(|s| s.connect_timeout_ms = 300).await;
    let mut starting = route("starting.com", "s");
    starting.state = NodeState::Starting;
    r.vassal_dir("down");
    let dir = r.vassal_dir("broken");
    // A node that closes without answering, one that answers garbage, one that dies mid-body.
    let _broken = serve_unix(&dir.join("app.sock"), |mut s| async move {
        let req = read_uwsgi(&mut s).await;
        match req.var("PATH_INFO") {
            Some("/garbage") => {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n").await;
            }
            Some("/mid") => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                    .await;
            }
            _ => {}
        }
    });
    r.set_routes(vec![
        starting,
        route("down.com", "down"),
        route("broken.com", "broken"),
    ])
    .await;
    let resp = get(r.plain, "starting.com").await;
    assert_eq!(resp.status, 503);
    assert!(resp.text().starts_with("503 Service Unavailable"));
    assert_eq!(get(r.plain, "down.com").await.status, 503);
    assert_eq!(get(r.plain, "broken.com").await.status, 502);
    let resp = http(r.plain, "GET /garbage HTTP/1.1\r\nHost: broken.com\r\n\r\n").await;
    assert_eq!(resp.status, 502);
    // Dying mid-body: the head was relayed, so the client's connection is cut short.
    let mut c = Client::connect(r.plain).await;
    c.send(b"GET /mid HTTP/1.1\r\nHost: broken.com\r\n\r\n")
        .await;
    assert!(c.response().await.is_none());
    // The router goes on.
    let _ok = named_node(&r, "fine");
    let mut rs = r.routes.clone();
    rs.push(route("fine.com", "fine"));
    r.set_routes(rs).await;
    assert_eq!(get(r.plain, "fine.com").await.status, 200);
}

#[tokio::test]
async fn a_symlinked_socket_or_folder_is_refused() {
    let mut r = Router::start().await;
    r.tweak(|s| s.connect_timeout_ms = 300).await;
    let victim = named_node(&r, "victim");
    // The attacker's socket is a symlink to the victim's.
    let evil = r.vassal_dir("evil");
    std::os::unix::fs::symlink(&victim.path, evil.join("app.sock")).unwrap();
    // Another attacker's whole folder is a symlink to the victim's.
    std::os::unix::fs::symlink(r.vassal_dir("victim"), r.run.path().join("vassals/evil2")).unwrap();
    r.set_routes(vec![
        route("evil.com", "evil"),
        route("evil2.com", "evil2"),
        route("victim.com", "victim"),
    ])
    .await;
    assert_eq!(get(r.plain, "evil.com").await.status, 502);
    assert_eq!(get(r.plain, "evil2.com").await.status, 502);
    assert_eq!(victim.hits(), 0);
    assert_eq!(get(r.plain, "victim.com").await.text(), "victim");
}

#[tokio::test]
async fn a_socket_of_another_uid_is_refused() {
    let mut r = Router::start().await;
    r.tweak(|s| s.connect_timeout_ms = 300).await;
    let dir = r.vassal_dir("app");
    // Counts the bytes it is sent: the kernel accepts the connection, the router sends nothing.
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let g = got.clone();
    let node = serve_unix(&dir.join("app.sock"), move |mut s| {
        let g = g.clone();
        async move {
            let mut buf = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf).await;
            g.fetch_add(buf.len(), std::sync::atomic::Ordering::SeqCst);
        }
    });
    let mut wrong = route("app.com", "app");
    wrong.uid = my_uid() + 4242;
    r.set_routes(vec![wrong]).await;
    assert_eq!(get(r.plain, "app.com").await.status, 502);
    r.stop().await.unwrap();
    assert!(node.hits() >= 1);
    assert_eq!(got.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_http_socket_vassal_is_spoken_to_in_http() {
    let mut r = Router::start().await;
    let dir = r.vassal_dir("web");
    let _n = serve_unix(&dir.join("http.sock"), |s| async move {
        let (rd, mut wr) = s.into_split();
        let mut rd = tokio::io::BufReader::new(rd);
        let mut line = String::new();
        tokio::io::AsyncBufReadExt::read_line(&mut rd, &mut line)
            .await
            .unwrap();
        let body = format!("http node got {}", line.trim_end());
        let _ = wr.write_all(format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).as_bytes()).await;
    });
    let mut rt = route("web.com", "web");
    rt.socket = "http.sock".into();
    rt.proto = NodeProto::Http;
    r.set_routes(vec![rt]).await;
    let resp = http(r.plain, "GET /x?y HTTP/1.1\r\nHost: web.com\r\n\r\n").await;
    assert_eq!(resp.text(), "http node got GET /x?y HTTP/1.1");
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    // An HTTP/1.0 client gets the body up to the close.
    let resp = http(r.plain, "GET /x HTTP/1.0\r\nHost: web.com\r\n\r\n").await;
    assert_eq!(resp.text(), "http node got GET /x HTTP/1.1");
    assert_eq!(resp.header("connection"), Some("close"));
}

#[tokio::test]
async fn a_socket_swapped_for_a_symlink_after_use_is_refused() {
    let mut r = Router::start().await;
    r.tweak(|s| s.connect_timeout_ms = 300).await;
    let victim = named_node(&r, "victim");
    let evil = named_node(&r, "evil");
    r.set_routes(vec![
        route("evil.com", "evil"),
        route("victim.com", "victim"),
    ])
    .await;
    // Served once: the router keeps the socket it opened.
    assert_eq!(get(r.plain, "evil.com").await.text(), "evil");
    // Then the name is made a symlink to the victim's socket; evil's listener still runs.
    fs_err::remove_file(&evil.path).unwrap();
    std::os::unix::fs::symlink(&victim.path, &evil.path).unwrap();
    // 502, then 503 while the node is taken out.
    for _ in 0..3 {
        let status = get(r.plain, "evil.com").await.status;
        assert!(status == 502 || status == 503, "{status}");
    }
    assert_eq!(victim.hits(), 0);
    assert_eq!(
        evil.hits(),
        1,
        "the kept socket was used after its name changed"
    );
    assert_eq!(get(r.plain, "victim.com").await.text(), "victim");
}

#[tokio::test]
async fn a_node_that_resets_before_answering_gets_an_idempotent_request_again() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut r = Router::start().await;
    let dir = r.vassal_dir("app");
    // The next `resets` connections are dropped unread once the request is there: the
    // kernel resets them, as it does those left in a closing listener's backlog.
    let resets = Arc::new(AtomicUsize::new(2));
    let left = resets.clone();
    let node = serve_unix(&dir.join("app.sock"), move |mut s| {
        let reset = left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        async move {
            if reset {
                let _ = s.readable().await;
                return;
            }
            let req = read_uwsgi(&mut s).await;
            let _ = s
                .write_all(&ok(format!(
                    "{} {}",
                    req.var("REQUEST_METHOD").unwrap(),
                    req.body.len()
                )
                .as_bytes()))
                .await;
        }
    });
    r.set_routes(vec![route("app.com", "app")]).await;
    let got = get(r.plain, "app.com").await;
    assert_eq!((got.status, got.text()), (200, "GET 0".to_owned()));
    assert_eq!(node.hits(), 3, "two resets, then the answer");

    // A GET with a body held whole is sent again too; a POST never is.
    resets.store(1, Ordering::SeqCst);
    let put = "PUT / HTTP/1.1\r\nHost: app.com\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
    assert_eq!(http(r.plain, put).await.text(), "PUT 2");
    assert_eq!(node.hits(), 5);
    resets.store(1, Ordering::SeqCst);
    let post =
        "POST / HTTP/1.1\r\nHost: app.com\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
    assert_eq!(http(r.plain, post).await.status, 502);
    assert_eq!(node.hits(), 6);

    // At most three times again: a node that resets every time gets 502.
    resets.store(10, Ordering::SeqCst);
    assert_eq!(get(r.plain, "app.com").await.status, 502);
    assert_eq!(node.hits(), 10, "one try and three more");
}
