//! What every connection shares: the settings and the route table (each swapped whole), the
//! node registry, the vassal folders, the per-address connection counts, the shutdown signal
//! and the log; and what every request does the same way whatever its protocol: choose a node
//! (waiting for one while its vassal starts), and count and log itself.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{Notify, watch};

use crate::backend::{self, Backend, ConnectError, Dirs};
use crate::config::{self, Config};
use crate::forward::{Peer, Req};
use crate::log::{self, Log};
use crate::routes::{Domain, Picked, Registry, Table};
use crate::tls::{CertError, Resumption};

/// How often a waiting request looks at its domain again (it also wakes on a new table).
const WAIT_POLL: Duration = Duration::from_millis(100);
/// How soon a request tries a busy node (full backlog) again.
const BUSY_POLL: Duration = Duration::from_millis(10);

/// The state shared by the router's tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ArcSwap<Config>,
    pub(crate) table: ArcSwap<Table>,
    /// Woken when a new table is in.
    routes_changed: Notify,
    pub(crate) registry: Mutex<Registry>,
    /// The parent's last route table, kept to rebuild the table when subscriptions change.
    pub(crate) routes: Mutex<Vec<liege_proto::router::Route>>,
    /// The nodes uWSGI subscription packets added.
    pub(crate) subscriptions: Mutex<crate::subscriptions::Subscriptions>,
    pub(crate) resumption: Resumption,
    dirs: Dirs,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    live: AtomicUsize,
    drained: Notify,
    shutdown: watch::Sender<bool>,
    pub(crate) log: Log,
    epoch: Instant,
}

/// A connection counted in its client's address; uncounted when dropped.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        {
            let mut m = self.shared.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = m.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.ip);
                }
            }
        }
        if self.shared.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.drained.notify_waiters();
        }
    }
}

/// A request's facts for its log line and its vassal's counters.
#[derive(Debug)]
pub(crate) struct Entry {
    started: Instant,
    client: IpAddr,
    pub(crate) domain: String,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) status: u16,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) node: Option<Arc<crate::routes::Node>>,
}

impl Entry {
    /// An entry for `req`; its method and path are kept only for an access log line.
    pub(crate) fn new(req: &Req, peer: &Peer, started: Instant, access_log: bool) -> Entry {
        let shown = |b: &[u8]| {
            if access_log {
                log::shown(b)
            } else {
                String::new()
            }
        };
        Entry {
            started,
            client: config::canonical(peer.client.ip()),
            domain: req.domain.clone(),
            method: shown(req.method()),
            path: shown(req.target()),
            status: 0,
            bytes_in: 0,
            bytes_out: 0,
            node: None,
        }
    }

    /// An entry for a request whose head was refused.
    pub(crate) fn refused(peer: &Peer, started: Instant, status: u16) -> Entry {
        Entry {
            started,
            client: config::canonical(peer.client.ip()),
            domain: String::new(),
            method: "-".into(),
            path: "-".into(),
            status,
            bytes_in: 0,
            bytes_out: 0,
            node: None,
        }
    }
}

impl Shared {
    pub(crate) fn new() -> Result<Shared, CertError> {
        Ok(Shared {
            config: ArcSwap::from_pointee(Config::default()),
            table: ArcSwap::from_pointee(Table::default()),
            routes_changed: Notify::new(),
            registry: Mutex::new(Registry::default()),
            routes: Mutex::new(Vec::new()),
            subscriptions: Mutex::new(crate::subscriptions::Subscriptions::default()),
            resumption: Resumption::new()?,
            dirs: Dirs::default(),
            per_ip: Mutex::new(HashMap::new()),
            live: AtomicUsize::new(0),
            drained: Notify::new(),
            shutdown: watch::channel(false).0,
            log: Log::start(),
            epoch: Instant::now(),
        })
    }

    /// Milliseconds since the router started.
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Builds the table again from the parent's routes, the subscriptions and `http-to`, and
    /// swaps it in.
    pub(crate) fn rebuild(&self) {
        let cfg = self.config.load();
        let routes = self
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let subs = self
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries();
        let table = self
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .table(&routes, cfg.http_to_nodes(), &subs);
        self.set_table(table);
    }

    /// Swaps in a new route table and wakes the requests waiting for a node.
    pub(crate) fn set_table(&self, table: Table) {
        self.table.store(Arc::new(table));
        self.routes_changed.notify_waiters();
    }

    /// A receiver of the shutdown signal (`true` once the router stops).
    pub(crate) fn shutdown_rx(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub(crate) fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Tells every task the router stops.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Waits until no connection is left.
    pub(crate) async fn drained(&self) {
        loop {
            let n = self.drained.notified();
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            n.await;
        }
    }

    /// Counts a new connection from `ip`; `None` when the address holds its maximum already.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<ConnGuard> {
        let ip = config::canonical(ip);
        {
            let mut m = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let n = m.entry(ip).or_insert(0);
            if max != 0 && *n >= max {
                return None;
            }
            *n += 1;
        }
        self.live.fetch_add(1, Ordering::AcqRel);
        Some(ConnGuard {
            shared: self.clone(),
            ip,
        })
    }

    /// The domain serving `domain`, else the `http-to` nodes.
    pub(crate) fn route(&self, cfg: &Config, domain: &str) -> Option<Arc<Domain>> {
        self.table
            .load()
            .lookup(domain)
            .cloned()
            .or_else(|| cfg.http_to.clone())
    }

    /// Connects to a node of `domain`: the balanced choice among those up and not taken out;
    /// a node that refuses is taken out and the next one tried; when none is left, waits
    /// (looking again at each new table, and every 100 ms) up to the connect timeout. Then
    /// 503, or 502 when some node failed otherwise than by refusing; 404 when the domain is
    /// withdrawn meanwhile.
    pub(crate) async fn connect(
        &self,
        cfg: &Config,
        domain: &str,
    ) -> Result<(Picked, Backend), u16> {
        let deadline = Instant::now() + cfg.connect_timeout;
        let mut failed = false;
        loop {
            let changed = self.routes_changed.notified();
            let mut busy = false;
            if let Some(d) = self.route(cfg, domain) {
                let mut tried = 0u64;
                for _ in 0..d.nodes.len() {
                    let Some((i, picked)) = d.pick(cfg.balance, self.now_ms(), tried) else {
                        break;
                    };
                    tried |= 1u64 << i.min(63);
                    let node = &picked.node;
                    match backend::connect(
                        &self.dirs,
                        &cfg.run_dir,
                        &node.target,
                        cfg.connect_timeout,
                    )
                    .await
                    {
                        Ok(b) => {
                            node.connected();
                            return Ok((picked, b));
                        }
                        Err(ConnectError::Busy { .. }) => busy = true,
                        Err(ConnectError::Refused { .. }) => node.refused(self.now_ms()),
                        Err(e @ ConnectError::Failed { .. }) => {
                            self.log.error(&e);
                            node.refused(self.now_ms());
                            failed = true;
                        }
                    }
                }
            } else {
                // Withdrawn while the request waited: the domain is no longer served.
                return Err(404);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(if failed { 502 } else { 503 });
            }
            let nap = if busy { BUSY_POLL } else { WAIT_POLL };
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(nap.min(deadline - now)) => {}
            }
        }
    }

    /// Counts a request in its vassal's counters and logs it.
    pub(crate) fn finish(&self, e: &Entry, access_log: bool) {
        let vassal = match &e.node {
            Some(n) => {
                if let Some(c) = &n.counters {
                    c.count(e.status, e.bytes_in, e.bytes_out);
                }
                n.vassal()
            }
            None => "-",
        };
        if access_log {
            self.log.line(access_line(e, vassal, &log::now()));
        }
    }
}

/// An access log line: time, client, domain, vassal, method, path, status, bytes sent to the
/// client, duration.
fn access_line(e: &Entry, vassal: &str, now: &str) -> String {
    format!(
        "{now} {} {} {vassal} {} {} {} {} {}ms",
        e.client,
        if e.domain.is_empty() { "-" } else { &e.domain },
        e.method,
        e.path,
        e.status,
        e.bytes_out,
        e.started.elapsed().as_millis()
    )
}

/// The reason phrase of a status the router answers itself.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// The plain page of a status the router answers itself.
pub(crate) fn page(status: u16) -> String {
    let what = match status {
        404 => "no site is served at this address",
        413 => "the request body is larger than this site accepts",
        502 => "the site failed to answer",
        503 => "the site is not available now; try again shortly",
        _ => "the request cannot be served",
    };
    format!("{status} {}: {what}\n", reason(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_lines() {
        let h = crate::head::parse(
            b"GET /a%20b?c=\x01 HTTP/1.1\r\nHost: Shop.example.com\r\n\r\n",
            8192,
            &mut crate::head::Scan::default(),
        );
        // A control byte never gets this far (the head is refused), so build the entry by hand.
        assert!(h.is_err());
        let buf = bytes::Bytes::from_static(
            b"GET /a%20b?\"x\" HTTP/1.1\r\nHost: Shop.example.com\r\n\r\n",
        );
        let h = crate::head::parse(&buf, 8192, &mut crate::head::Scan::default())
            .unwrap()
            .unwrap();
        let req = Req::from_h1(buf, h);
        let peer = Peer {
            client: "[::ffff:10.1.2.3]:5555".parse().unwrap(),
            local_port: 80,
            tls: false,
        };
        let mut e = Entry::new(&req, &peer, Instant::now(), true);
        e.status = 200;
        e.bytes_out = 1234;
        let line = access_line(&e, "shop", "2026-05-01T12:34:56.789Z");
        assert!(
            line.starts_with(
                "2026-05-01T12:34:56.789Z 10.1.2.3 shop.example.com shop GET /a%20b?\\\"x\\\" 200 1234 "
            ),
            "{line}"
        );
        assert!(line.ends_with("ms"));
        let refused = Entry::refused(&peer, Instant::now(), 400);
        assert!(access_line(&refused, "-", "T").starts_with("T 10.1.2.3 - - - - 400 0 "));
    }
}
