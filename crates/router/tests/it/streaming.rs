//! Bodies stream: 50 MB up to a node that reads slowly and 50 MB down to a client that reads
//! slowly never sit in the router (what is in flight, counted at both ends, stays a few MB:
//! the small socket buffers of the harness and the router's own small buffers), and a chunked
//! body echoed by an HTTP node streams both ways at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use liege_proto::router::NodeProto;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use crate::support::*;

const SIZE: u64 = 50 << 20;
/// What may be in flight between the two ends: kernel buffers (the client's and the router's
/// TCP buffers are [`SOCKET_BUFFER`], doubled by the kernel; a unix socket's ~200 KB each way)
/// and the router's buffers. A router that buffered bodies would go far past it.
const IN_FLIGHT: u64 = 8 << 20;

fn byte(i: u64) -> u8 {
    (i % 251) as u8
}

#[tokio::test]
async fn a_large_upload_streams_to_a_slow_node() {
    let mut r = Router::start().await;
    let dir = r.vassal_dir("sink");
    let written = Arc::new(AtomicU64::new(0));
    let worst = Arc::new(AtomicU64::new(0));
    let (w2, worst2) = (written.clone(), worst.clone());
    let _n = serve_unix(&dir.join("app.sock"), move |mut s| {
        let (written, worst) = (w2.clone(), worst2.clone());
        async move {
            let vars = read_uwsgi_vars(&mut s).await;
            let len: u64 = vars
                .iter()
                .find(|(k, _)| k == "CONTENT_LENGTH")
                .unwrap()
                .1
                .parse()
                .unwrap();
            let mut read = 0u64;
            let mut ok = true;
            let mut buf = vec![0u8; 256 * 1024];
            while read < len {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0);
                ok &= buf[..n]
                    .iter()
                    .enumerate()
                    .all(|(i, b)| *b == byte(read + i as u64));
                read += n as u64;
                let ahead = written.load(Ordering::SeqCst).saturating_sub(read);
                worst.fetch_max(ahead, Ordering::SeqCst);
                // Slow: the client could race far ahead if the router took it all.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let body = format!("{read} {ok}");
            let _ = s.write_all(&ok_reply(&body)).await;
        }
    });
    r.set_routes(vec![route("sink.com", "sink")]).await;
    let mut c = Client::small(r.plain).await;
    c.send(
        format!("POST / HTTP/1.1\r\nHost: sink.com\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes(),
    )
    .await;
    let mut piece = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < SIZE {
        for (i, b) in piece.iter_mut().enumerate() {
            *b = byte(sent + i as u64);
        }
        c.w.write_all(&piece).await.unwrap();
        sent += piece.len() as u64;
        written.store(sent, Ordering::SeqCst);
    }
    let resp = c.response().await.unwrap();
    assert_eq!(resp.text(), format!("{SIZE} true"));
    let worst = worst.load(Ordering::SeqCst);
    assert!(worst < IN_FLIGHT, "{worst} bytes were in flight");
}

fn ok_reply(body: &str) -> Vec<u8> {
    ok(body.as_bytes())
}

#[tokio::test]
async fn a_large_download_streams_to_a_slow_client() {
    let mut r = Router::start().await;
    let dir = r.vassal_dir("source");
    let read = Arc::new(AtomicU64::new(0));
    let worst = Arc::new(AtomicU64::new(0));
    let (r2, worst2) = (read.clone(), worst.clone());
    let _n = serve_unix(&dir.join("app.sock"), move |mut s| {
        let (read, worst) = (r2.clone(), worst2.clone());
        async move {
            read_uwsgi(&mut s).await;
            // No Content-Length: the body runs to the close (the router chunks it).
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
                .await
                .unwrap();
            let mut piece = vec![0u8; 64 * 1024];
            let mut sent = 0u64;
            while sent < SIZE {
                for (i, b) in piece.iter_mut().enumerate() {
                    *b = byte(sent + i as u64);
                }
                s.write_all(&piece).await.unwrap();
                sent += piece.len() as u64;
                let ahead = sent.saturating_sub(read.load(Ordering::SeqCst));
                worst.fetch_max(ahead, Ordering::SeqCst);
            }
        }
    });
    r.set_routes(vec![route("source.com", "source")]).await;
    let mut c = Client::small(r.plain).await;
    c.send(b"GET / HTTP/1.1\r\nHost: source.com\r\n\r\n").await;
    let mut line = String::new();
    loop {
        line.clear();
        c.r.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
        if line.to_ascii_lowercase().starts_with("transfer-encoding") {
            assert_eq!(line.trim_end(), "Transfer-Encoding: chunked");
        }
    }
    let mut got = 0u64;
    let mut ok = true;
    loop {
        line.clear();
        c.r.read_line(&mut line).await.unwrap();
        let n = usize::from_str_radix(line.trim_end(), 16).unwrap();
        let mut chunk = vec![0u8; n + 2];
        c.r.read_exact(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        ok &= chunk[..n]
            .iter()
            .enumerate()
            .all(|(i, b)| *b == byte(got + i as u64));
        got += n as u64;
        read.store(got, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    assert_eq!(got, SIZE);
    assert!(ok);
    let worst = worst.load(Ordering::SeqCst);
    assert!(worst < IN_FLIGHT, "{worst} bytes were in flight");
}

#[tokio::test]
async fn a_chunked_body_streams_both_ways_through_an_http_node() {
    let mut r = Router::start().await;
    let dir = r.vassal_dir("echo");
    // An HTTP node echoing a chunked body as it comes, chunked.
    let _n = serve_unix(&dir.join("http.sock"), |s| async move {
        let (rd, mut wr) = s.into_split();
        let mut rd = tokio::io::BufReader::new(rd);
        let mut line = String::new();
        loop {
            line.clear();
            rd.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
        }
        wr.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        loop {
            line.clear();
            rd.read_line(&mut line).await.unwrap();
            let n = usize::from_str_radix(line.trim_end(), 16).unwrap();
            let mut chunk = vec![0u8; n + 2];
            rd.read_exact(&mut chunk).await.unwrap();
            wr.write_all(format!("{n:x}\r\n").as_bytes()).await.unwrap();
            wr.write_all(&chunk).await.unwrap();
            if n == 0 {
                return;
            }
        }
    });
    let mut rt = route("echo.com", "echo");
    rt.socket = "http.sock".into();
    rt.proto = NodeProto::Http;
    r.set_routes(vec![rt]).await;
    let c = Client::small(r.plain).await;
    let (mut rd, mut w) = (c.r, c.w);
    w.write_all(b"POST / HTTP/1.1\r\nHost: echo.com\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let writer = tokio::spawn(async move {
        let mut sent = 0u64;
        let mut piece = vec![0u8; 100_000];
        while sent < SIZE {
            let n = usize::try_from((SIZE - sent).min(piece.len() as u64)).unwrap();
            for (i, b) in piece[..n].iter_mut().enumerate() {
                *b = byte(sent + i as u64);
            }
            w.write_all(format!("{n:x}\r\n").as_bytes()).await.unwrap();
            w.write_all(&piece[..n]).await.unwrap();
            w.write_all(b"\r\n").await.unwrap();
            sent += n as u64;
        }
        w.write_all(b"0\r\n\r\n").await.unwrap();
        w
    });
    let resp = read_response(&mut rd, false).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len() as u64, SIZE);
    assert!(
        resp.body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == byte(i as u64))
    );
    writer.await.unwrap();
}
