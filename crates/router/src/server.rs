//! The listening sockets: accept, count per client address (past `max_conns_per_ip` a new
//! connection is closed at once), TLS handshakes (with the certificates of the moment, within
//! the head timeout), then HTTP/1 or HTTP/2 by ALPN.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::forward::Peer;
use crate::shared::Shared;

/// How long accepting pauses when it fails (out of descriptors...).
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` until the router stops.
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, tls: bool) {
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut shutdown = shared.shutdown_rx();
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (stream, client) = match accepted {
            Ok(x) => x,
            Err(e) => {
                if !matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                ) {
                    shared.log.error(format_args!(
                        "accepting a connection on port {local_port} failed: {e}"
                    ));
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                }
                continue;
            }
        };
        let max = shared.config.load().max_conns_per_ip;
        let Some(guard) = shared.admit(client.ip(), max) else {
            // Closed at once.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let peer = Peer {
            client,
            local_port,
            tls,
        };
        let shared = shared.clone();
        // Separate tasks, so a plain connection's task is not sized for a TLS one.
        if tls {
            tokio::spawn(async move {
                let _guard = guard;
                serve_tls(shared, stream, peer).await;
            });
        } else {
            tokio::spawn(async move {
                let _guard = guard;
                crate::h1::serve(shared, stream, peer, true).await;
            });
        }
    }
}

/// Serves a TLS connection.
async fn serve_tls(shared: Arc<Shared>, stream: TcpStream, peer: Peer) {
    let (config, timeout) = {
        let cfg = shared.config.load();
        (cfg.tls.clone(), cfg.header_timeout)
    };
    let Some(config) = config else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        _ => return,
    };
    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
        Box::pin(crate::h2::serve(shared, tls, peer)).await;
    } else {
        Box::pin(crate::h1::serve(shared, tls, peer, false)).await;
    }
}
