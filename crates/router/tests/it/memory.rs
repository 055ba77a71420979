//! What an idle keep-alive connection costs the router: thousands of connections that each
//! made a request and then idle; the process's resident memory before and after, per
//! connection. A measurement, not a pass/fail test of the machine: run it alone,
//! `cargo test -p liege-router --release --test it memory -- --ignored --nocapture`.

use std::io::{Read, Write};
use std::time::Duration;

use crate::support::*;

/// Resident bytes of this process.
fn rss() -> u64 {
    let statm = fs_err::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split(' ').nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Opens `n` connections to `addr` that each get one answer and stay open.
fn idle_clients(addr: std::net::SocketAddr, n: usize) -> Vec<std::net::TcpStream> {
    let mut held = Vec::with_capacity(n);
    let mut buf = [0u8; 512];
    for _ in 0..n {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a.com\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"alpha") {
            let k = s.read(&mut buf).unwrap();
            assert!(k > 0);
            got.extend_from_slice(&buf[..k]);
        }
        held.push(s);
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run alone with --ignored --nocapture"]
async fn memory_per_idle_connection() {
    const N: usize = 5000;
    let mut r = Router::start().await;
    let _a = named_node(&r, "alpha");
    r.tweak(|s| s.idle_timeout_ms = 600_000).await;
    r.set_routes(vec![route("a.com", "alpha")]).await;
    let addr = r.plain;
    // Warm up (allocator arenas, runtime), then measure.
    let warm = tokio::task::spawn_blocking(move || idle_clients(addr, 500))
        .await
        .unwrap();
    drop(warm);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss();
    let held = tokio::task::spawn_blocking(move || idle_clients(addr, N))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss();
    let per = (after.saturating_sub(before)) / N as u64;
    let line = format!(
        "memory per idle keep-alive connection: {per} bytes ({N} connections, RSS {before} -> {after})\n"
    );
    std::io::stderr().write_all(line.as_bytes()).unwrap();
    drop(held);
    assert!(per <= 10 * 1024, "{line}");
}

/// Holds `n` TLS connections (each answered once) from another process, so that only the
/// router's side is in this process's memory.
const TLS_CLIENTS: &str = r#"
import socket, ssl, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
held = []
for _ in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="a.com")
    s.sendall(b"GET / HTTP/1.1\r\nHost: a.com\r\n\r\n")
    got = b""
    while not got.endswith(b"alpha"):
        got += s.recv(4096)
    held.append(s)
print("ready", flush=True)
sys.stdin.read()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run alone with --ignored --nocapture"]
async fn memory_per_idle_tls_connection() {
    use tokio::io::AsyncBufReadExt;
    const N: usize = 2000;
    let mut r = Router::start().await;
    let _a = named_node(&r, "alpha");
    r.tweak(|s| {
        s.idle_timeout_ms = 600_000;
        s.certs = vec![cert(None, &["a.com"])];
    })
    .await;
    r.set_routes(vec![route("a.com", "alpha")]).await;
    let port = r.tls.port().to_string();
    let run = |n: usize| {
        let mut child = tokio::process::Command::new("/usr/bin/python3")
            .args(["-c", TLS_CLIENTS, &port, &n.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        async move {
            let mut line = String::new();
            tokio::io::BufReader::new(out)
                .read_line(&mut line)
                .await
                .unwrap();
            assert_eq!(line, "ready\n");
            child
        }
    };
    let mut warm = run(200).await;
    drop(warm.stdin.take());
    warm.wait().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss();
    let mut held = run(N).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss();
    drop(held.stdin.take());
    held.wait().await.unwrap();
    let per = (after.saturating_sub(before)) / N as u64;
    let line = format!(
        "memory per idle keep-alive TLS connection: {per} bytes ({N} connections, RSS {before} -> {after})\n"
    );
    std::io::stderr().write_all(line.as_bytes()).unwrap();
}
