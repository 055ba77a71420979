//! The HTTP router (ARCHITECTURE.md decisions 4, 5, 6): a process of its own that faces the
//! clients, matches each request's Host to a vassal (routes from the emperor, over the control
//! channel of `liege_proto::router`), and forwards it to the vassal's socket over the uwsgi
//! protocol or HTTP, reached through the vassal's run directory without following a link.
//!
//! - [`serve`] runs it on the tokio runtime it is called on: listening sockets (bound by root,
//!   handed over), a control stream. [`run`] runs it on a thread per core, each with a
//!   single-threaded runtime that keeps the connections it accepts (measured: about a quarter
//!   less CPU per request than one multi-thread runtime on this 2-core machine).
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

/// The listening sockets as std listeners, non-blocking.
fn std_listeners(
    listeners: Vec<Listener>,
) -> Result<Vec<(std::net::TcpListener, bool)>, RouterError> {
    listeners
        .into_iter()
        .map(|l| {
            use std::os::fd::AsRawFd;
            let fd = l.fd.as_raw_fd();
            let std = std::net::TcpListener::from(l.fd);
            std.set_nonblocking(true)
                .map_err(|source| RouterError::Listener { fd, source })?;
            Ok((std, l.tls))
        })
        .collect()
}

/// Accepts on `sockets` (on the runtime this runs on) until the router stops, then waits for
/// the connections of every thread to finish, up to [`DRAIN`].
async fn accept_until_stopped(
    shared: Arc<shared::Shared>,
    sockets: Vec<(std::net::TcpListener, bool)>,
) -> Result<(), RouterError> {
    let mut accepting = Vec::with_capacity(sockets.len());
    for (std, tls) in sockets {
        use std::os::fd::AsRawFd;
        let fd = std.as_raw_fd();
        let socket = tokio::net::TcpListener::from_std(std)
            .map_err(|source| RouterError::Listener { fd, source })?;
        accepting.push(tokio::spawn(server::accept_loop(
            shared.clone(),
            socket,
            tls,
        )));
    }
    for a in accepting {
        let _ = a.await;
    }
    if tokio::time::timeout(DRAIN, shared.drained()).await.is_err() {
        shared
            .log
            .error("requests still in flight after the drain time were cut");
    }
    Ok(())
}

/// Listens for uWSGI subscription packets on `socket` (a UDP socket, bound already), on the
/// runtime this is called on.
fn listen_for_subscriptions(
    shared: &Arc<shared::Shared>,
    socket: OwnedFd,
) -> Result<(), RouterError> {
    let std = std::net::UdpSocket::from(socket);
    std.set_nonblocking(true)
        .map_err(RouterError::Subscription)?;
    let socket = tokio::net::UdpSocket::from_std(std).map_err(RouterError::Subscription)?;
    tokio::spawn(subscriptions::run(shared.clone(), socket));
    Ok(())
}

/// Serves `listeners` with the settings and routes that arrive on `control`, on the runtime it
/// is called on, until `control` closes (the parent is gone or asks the router to stop): then
/// it stops accepting, closes idle connections, lets requests in flight finish (up to
/// [`DRAIN`]) and returns.
pub async fn serve(
    listeners: Vec<Listener>,
    control: tokio::net::UnixStream,
    subscription: Option<OwnedFd>,
) -> Result<(), RouterError> {
    let shared = Arc::new(shared::Shared::new()?);
    let sockets = std_listeners(listeners)?;
    if let Some(socket) = subscription {
        listen_for_subscriptions(&shared, socket)?;
    }
    let accepting = tokio::spawn(accept_until_stopped(shared.clone(), sockets));
    let result = control::run(shared.clone(), control).await;
    shared.begin_shutdown();
    if let Ok(r) = accepting.await {
        r?;
    }
    result
}

/// Runs the router with a thread per core, each with a single-threaded runtime of its own
/// that accepts on every listener and keeps the connections it accepted (no work stealing, so
/// no connection moves between cores; settings, routes, nodes and counters are shared). The
/// first thread also reads the control channel and the subscription packets. Returns as [`serve`] does.
pub fn run(
    listeners: Vec<Listener>,
    control: std::os::unix::net::UnixStream,
    subscription: Option<OwnedFd>,
) -> Result<(), RouterError> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let shared = Arc::new(shared::Shared::new()?);
    let sockets = std_listeners(listeners)?;
    control
        .set_nonblocking(true)
        .map_err(RouterError::Control)?;
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(RouterError::Runtime)
    };
    let mut others = Vec::with_capacity(threads.saturating_sub(1));
    for i in 1..threads {
        let copies = sockets
            .iter()
            .map(|(l, tls)| {
                use std::os::fd::AsRawFd;
                let fd = l.as_raw_fd();
                l.try_clone()
                    .map(|c| (c, *tls))
                    .map_err(|source| RouterError::Listener { fd, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rt = runtime()?;
        let shared = shared.clone();
        let t = std::thread::Builder::new()
            .name(format!("liege-router-{i}"))
            .spawn(move || rt.block_on(accept_until_stopped(shared, copies)))
            .map_err(RouterError::Runtime)?;
        others.push(t);
    }
    let rt = runtime()?;
    let result = rt.block_on(async {
        let control = tokio::net::UnixStream::from_std(control).map_err(RouterError::Control)?;
        if let Some(socket) = subscription {
            listen_for_subscriptions(&shared, socket)?;
        }
        let accepting = tokio::spawn(accept_until_stopped(shared.clone(), sockets));
        let result = control::run(shared.clone(), control).await;
        shared.begin_shutdown();
        if let Ok(r) = accepting.await {
            r?;
        }
        result
    });
    // A thread that cannot be joined panicked: its connections are gone already.
    for t in others {
        let _ = t.join();
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}
