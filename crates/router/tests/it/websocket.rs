//! Websockets: an upgrade to an HTTP node (`http-to` or an `http-socket` vassal) is forwarded
//! with its Upgrade headers and, on 101, both sides are spliced; a node that answers anything
//! else leaves the connection in HTTP.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::support::*;

const UPGRADE: &str = "GET /chat HTTP/1.1\r\nHost: ws.com\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// An echo server behind `http-to`: answers an upgrade with 101 and then echoes raw bytes
/// until the client closes; anything else gets a 200.
async fn echo_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let (rd, mut wr) = s.into_split();
                let mut rd = BufReader::new(rd);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if rd.read_line(&mut line).await.unwrap() == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let lower = head.to_ascii_lowercase();
                if !(lower.contains("upgrade: websocket\r\n")
                    && lower.contains("connection: upgrade\r\n")
                    && lower.contains("sec-websocket-key: dghlihnhbxbszsbub25jzq==\r\n"))
                    || head.starts_with("GET /plain")
                {
                    let _ = wr
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain")
                        .await;
                    return;
                }
                wr.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n").await.unwrap();
                // Echo until the client closes its side, then close ours.
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
                let _ = wr.shutdown().await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn websockets_are_spliced_both_ways() {
    let mut r = Router::start().await;
    let (addr, _server) = echo_server().await;
    r.tweak(|s| s.http_to = vec![addr.to_string()]).await;
    let mut c = Client::connect(r.plain).await;
    // Frame bytes sent right behind the head travel too.
    let mut first = UPGRADE.as_bytes().to_vec();
    first.extend_from_slice(b"\x81\x05hello");
    c.send(&first).await;
    let resp = c.response().await.unwrap();
    assert_eq!(resp.status, 101);
    assert_eq!(resp.header("upgrade"), Some("websocket"));
    assert_eq!(resp.header("connection"), Some("Upgrade"));
    assert_eq!(
        resp.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    let mut got = [0u8; 7];
    c.r.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"\x81\x05hello");
    // Large frames both ways at once.
    let big: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let sent = big.clone();
    let mut w = c.w;
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w
    });
    let mut back = vec![0u8; big.len()];
    c.r.read_exact(&mut back).await.unwrap();
    assert!(back == big);
    // Closing our side ends the splice: the echo server closes, so does the router.
    let mut w = writer.await.unwrap();
    w.shutdown().await.unwrap();
    let mut rest = Vec::new();
    c.r.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn a_node_that_refuses_the_upgrade_leaves_http() {
    let mut r = Router::start().await;
    let (addr, _server) = echo_server().await;
    r.tweak(|s| s.http_to = vec![addr.to_string()]).await;
    let mut c = Client::connect(r.plain).await;
    // The node answers 200 to this upgrade; what follows is parsed as HTTP, not passed raw.
    c.send(UPGRADE.replace("GET /chat", "GET /plain").as_bytes())
        .await;
    let resp = c.response().await.unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "plain"));
    c.send(b"GET /plain HTTP/1.1\r\nHost: ws.com\r\n\r\n").await;
    assert_eq!(c.response().await.unwrap().text(), "plain");
    // Bytes that are not HTTP get a 400, not a tunnel.
    c.send(b"\x81\x05hello\r\n\r\n").await;
    assert_eq!(c.response().await.unwrap().status, 400);
}
