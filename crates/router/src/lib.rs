//! The HTTP router (ARCHITECTURE.md decisions 4, 5, 6): a process of its own that faces the
//! clients, matches each request's Host to a vassal (routes from the emperor, over the control
//! channel of `liege_proto::router`), and forwards it to the vassal's socket over the uwsgi
//! protocol or HTTP, reached through the vassal's run directory without following a link.
//!
//! - [`serve`] runs it on a tokio runtime: listening sockets (bound by root, handed over), a
//!   control stream. [`run`] builds the runtime and blocks in [`serve`].
//! - HTTP/1.1 with keep-alive ([`h1`]'s strict head parser is [`head`]), HTTP/2 over TLS by
//!   ALPN and h2c by prior knowledge (hyper), TLS with SNI (rustls, ring), websockets spliced.
//! - Routing, balancing and back-off: `routes`; reaching vassals: `backend`; what a node is
//!   sent: `forward`; its answer: `response`.
//!
//! docs/router.md describes what it does, its limits and what it refuses.

mod backend;
pub mod chunked;
mod config;
mod control;
mod forward;
mod h1;
mod h2;
pub mod head;
mod log;
mod response;
mod routes;
mod server;
mod shared;
mod subscriptions;
mod tls;

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

pub use config::SettingsError;
pub use tls::CertError;

/// How long in-flight requests may go on after the router is told to stop.
pub const DRAIN: Duration = Duration::from_secs(10);

/// A listening socket, bound and listening already (by root).
#[derive(Debug)]
pub struct Listener {
    /// The socket.
    pub fd: OwnedFd,
    /// Whether it speaks TLS.
    pub tls: bool,
}

/// Why the router stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("cannot start the router's runtime: {0}")]
    Runtime(std::io::Error),
    #[error("listening socket {fd} cannot be used: {source}")]
    Listener { fd: i32, source: std::io::Error },
    #[error("the router's control channel failed: {0}")]
    Control(std::io::Error),
    #[error("the subscription socket cannot be used: {0}")]
    Subscription(std::io::Error),
    #[error(transparent)]
    Frame(#[from] liege_proto::router::FrameError),
    #[error("the router's TLS state cannot be made: {0}")]
    Tls(#[from] CertError),
}

/// Serves `listeners` with the settings and routes that arrive on `control`, until `control`
/// closes (the parent is gone or asks the router to stop): then it stops accepting, closes idle
/// connections, lets requests in flight finish (up to [`DRAIN`]) and returns.
pub async fn serve(
    listeners: Vec<Listener>,
    control: tokio::net::UnixStream,
    subscription: Option<OwnedFd>,
) -> Result<(), RouterError> {
    let shared = Arc::new(shared::Shared::new()?);
    if let Some(fd) = subscription {
        let std = std::net::UdpSocket::from(fd);
        std.set_nonblocking(true)
            .map_err(RouterError::Subscription)?;
        let socket = tokio::net::UdpSocket::from_std(std).map_err(RouterError::Subscription)?;
        tokio::spawn(subscriptions::run(shared.clone(), socket));
    }
    let mut accepting = Vec::with_capacity(listeners.len());
    let mut sockets = Vec::with_capacity(listeners.len());
    for l in listeners {
        use std::os::fd::AsRawFd;
        let fd = l.fd.as_raw_fd();
        let err = |source| RouterError::Listener { fd, source };
        let std = std::net::TcpListener::from(l.fd);
        std.set_nonblocking(true).map_err(err)?;
        sockets.push((tokio::net::TcpListener::from_std(std).map_err(err)?, l.tls));
    }
    for (socket, tls) in sockets {
        accepting.push(tokio::spawn(server::accept_loop(
            shared.clone(),
            socket,
            tls,
        )));
    }
    let result = control::run(shared.clone(), control).await;
    shared.begin_shutdown();
    for a in accepting {
        let _ = a.await;
    }
    if tokio::time::timeout(DRAIN, shared.drained()).await.is_err() {
        shared
            .log
            .error("requests still in flight after the drain time were cut");
    }
    result
}

/// Builds a multi-thread runtime (a worker thread per core) and runs [`serve`] on it.
pub fn run(
    listeners: Vec<Listener>,
    control: std::os::unix::net::UnixStream,
    subscription: Option<OwnedFd>,
) -> Result<(), RouterError> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("liege-router")
        .enable_all()
        .build()
        .map_err(RouterError::Runtime)?;
    control
        .set_nonblocking(true)
        .map_err(RouterError::Control)?;
    let result = rt.block_on(async {
        let control = tokio::net::UnixStream::from_std(control).map_err(RouterError::Control)?;
        serve(listeners, control, subscription).await
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}
