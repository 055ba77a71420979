//! The route table: which nodes serve a domain, how one is chosen, and which are taken out for
//! a while because they refused a connection.
//!
//! Matching: a Host is lower-cased and loses its port and a trailing dot. An exact domain wins;
//! else the most specific wildcard: `*.example.com` matches `a.example.com` and, as in nginx,
//! deeper names (`b.a.example.com`) too, unless `*.a.example.com` is in the table. A wildcard
//! does not match its own base (`example.com`).
//!
//! The table is rebuilt whole from each routes message and swapped in; what must outlive a
//! swap (requests in flight per node, a node's back-off, per-vassal counters) lives in
//! [`Registry`], keyed by what the node is, and is shared by the old and the new table.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use liege_proto::router::{Balance, Counters, NodeProto, NodeState, Route};

/// The first time (ms) a refusing node is taken out for; each refusal in a row doubles it.
pub(crate) const BACKOFF_FIRST_MS: u64 = 1000;
/// The longest time (ms) a refusing node is taken out for.
pub(crate) const BACKOFF_MAX_MS: u64 = 30_000;

/// Where a node is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// A vassal's socket, `RUN/vassals/VASSAL/SOCKET`, listened on by `uid`.
    Vassal {
        vassal: Arc<str>,
        socket: Box<str>,
        uid: u32,
    },
    /// An `http-to` unix socket (configured by root: its path is followed).
    Unix(PathBuf),
    /// An `http-to` TCP address.
    Tcp(SocketAddr),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Vassal { vassal, socket, .. } => write!(f, "{vassal}/{socket}"),
            Target::Unix(p) => write!(f, "{}", p.display()),
            Target::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// What must outlive a table: a node's requests in flight and its back-off.
#[derive(Debug, Default)]
pub(crate) struct NodeRuntime {
    /// Requests in flight.
    inflight: AtomicUsize,
    /// Until when (ms since the router's start) the node is out; 0 when it is in.
    down_until: AtomicU64,
    /// How long it was out last time (ms); 0 after a success.
    backoff: AtomicU64,
}

/// A vassal's counters.
#[derive(Debug, Default)]
pub(crate) struct VassalCounters {
    pub(crate) requests: AtomicU64,
    pub(crate) status_4xx: AtomicU64,
    pub(crate) status_5xx: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
}

impl VassalCounters {
    /// Counts one answered request.
    pub(crate) fn count(&self, status: u16, bytes_in: u64, bytes_out: u64) {
        if (400..500).contains(&status) {
            self.status_4xx.fetch_add(1, Ordering::Relaxed);
        } else if status >= 500 {
            self.status_5xx.fetch_add(1, Ordering::Relaxed);
        }
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        // Last: a snapshot that sees a request sees the rest of it.
        self.requests.fetch_add(1, Ordering::Release);
    }

    fn snapshot(&self, vassal: &str) -> Counters {
        let requests = self.requests.load(Ordering::Acquire);
        Counters {
            vassal: vassal.to_owned(),
            requests,
            status_4xx: self.status_4xx.load(Ordering::Relaxed),
            status_5xx: self.status_5xx.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
    }
}

/// One node of a domain.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) target: Target,
    pub(crate) proto: NodeProto,
    /// The vassal is (re)starting: not chosen yet.
    pub(crate) starting: bool,
    rt: Arc<NodeRuntime>,
    /// The vassal's counters (none for `http-to`).
    pub(crate) counters: Option<Arc<VassalCounters>>,
}

impl Node {
    /// The vassal's name, or `-` for `http-to`.
    pub(crate) fn vassal(&self) -> &str {
        match &self.target {
            Target::Vassal { vassal, .. } => vassal,
            _ => "-",
        }
    }

    fn available(&self, now_ms: u64) -> bool {
        !self.starting && self.rt.down_until.load(Ordering::Relaxed) <= now_ms
    }

    /// Takes the node out after a refused connection, for 1 s, then twice as long as the last
    /// time, up to 30 s.
    pub(crate) fn refused(&self, now_ms: u64) {
        let (first, max) = (BACKOFF_FIRST_MS, BACKOFF_MAX_MS);
        let last = self.rt.backoff.load(Ordering::Relaxed);
        let next = if last == 0 {
            first
        } else {
            (last * 2).min(max)
        };
        self.rt.backoff.store(next, Ordering::Relaxed);
        self.rt.down_until.store(now_ms + next, Ordering::Relaxed);
    }

    /// Puts the node back in after a connection that worked.
    pub(crate) fn connected(&self) {
        if self.rt.backoff.load(Ordering::Relaxed) != 0 {
            self.rt.backoff.store(0, Ordering::Relaxed);
            self.rt.down_until.store(0, Ordering::Relaxed);
        }
    }

    /// For tests: how long the node was last taken out for (ms).
    #[cfg(test)]
    fn backoff_ms(&self) -> u64 {
        self.rt.backoff.load(Ordering::Relaxed)
    }
}

/// A node chosen for a request: its in-flight count drops when this does.
#[derive(Debug)]
pub(crate) struct Picked {
    pub(crate) node: Arc<Node>,
}

impl Drop for Picked {
    fn drop(&mut self) {
        self.node.rt.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The nodes of one domain (or of `http-to`).
#[derive(Debug)]
pub(crate) struct Domain {
    pub(crate) nodes: Vec<Arc<Node>>,
    /// The smallest `limit-post` of its nodes (`None`: none has one).
    pub(crate) limit_post: Option<u64>,
    /// Some node speaks uwsgi (a body must have a known length).
    pub(crate) needs_length: bool,
    rr: AtomicUsize,
}

impl Domain {
    pub(crate) fn new(nodes: Vec<Arc<Node>>, limits: &[Option<u64>]) -> Domain {
        let limit_post = limits.iter().flatten().copied().min();
        Domain {
            needs_length: nodes.iter().any(|n| n.proto == NodeProto::Uwsgi),
            nodes,
            limit_post,
            rr: AtomicUsize::new(0),
        }
    }

    /// Chooses an available node not in `tried` (indexes into `nodes`): the one with the fewest
    /// requests in flight (ties: in turn), or the next in turn.
    pub(crate) fn pick(
        &self,
        balance: Balance,
        now_ms: u64,
        tried: u64,
    ) -> Option<(usize, Picked)> {
        let n = self.nodes.len();
        if n == 0 {
            return None;
        }
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(usize, usize)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if i < 64 && tried & (1 << i) != 0 {
                continue;
            }
            let node = &self.nodes[i];
            if !node.available(now_ms) {
                continue;
            }
            let load = node.rt.inflight.load(Ordering::Relaxed);
            match balance {
                Balance::RoundRobin => {
                    best = Some((i, load));
                    break;
                }
                Balance::LeastConn => {
                    if best.is_none_or(|(_, l)| load < l) {
                        best = Some((i, load));
                    }
                }
            }
        }
        let (i, _) = best?;
        let node = self.nodes[i].clone();
        node.rt.inflight.fetch_add(1, Ordering::Relaxed);
        Some((i, Picked { node }))
    }
}

/// The routes, by domain.
#[derive(Debug, Default)]
pub(crate) struct Table {
    exact: HashMap<Box<str>, Arc<Domain>>,
    /// `*.example.com` is kept as `example.com`.
    wildcard: HashMap<Box<str>, Arc<Domain>>,
}

impl Table {
    /// The domain serving `host` (already lower case, without port or trailing dot).
    pub(crate) fn lookup(&self, host: &str) -> Option<&Arc<Domain>> {
        if let Some(d) = self.exact.get(host) {
            return Some(d);
        }
        if self.wildcard.is_empty() {
            return None;
        }
        let mut rest = host;
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if let Some(d) = self.wildcard.get(rest) {
                return Some(d);
            }
        }
        None
    }

    /// How many domains (exact and wildcard).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }
}

/// What outlives tables: node runtimes and vassal counters.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    nodes: HashMap<(Target, bool), Arc<NodeRuntime>>,
    counters: HashMap<Arc<str>, Arc<VassalCounters>>,
}

impl Registry {
    fn runtime(&mut self, target: &Target, proto: NodeProto) -> Arc<NodeRuntime> {
        self.nodes
            .entry((target.clone(), proto == NodeProto::Http))
            .or_default()
            .clone()
    }

    fn counters(&mut self, vassal: &Arc<str>) -> Arc<VassalCounters> {
        self.counters.entry(vassal.clone()).or_default().clone()
    }

    /// A node for an `http-to` target (HTTP, no counters).
    pub(crate) fn http_to(&mut self, target: Target) -> Arc<Node> {
        let rt = self.runtime(&target, NodeProto::Http);
        Arc::new(Node {
            target,
            proto: NodeProto::Http,
            starting: false,
            rt,
            counters: None,
        })
    }

    /// Builds the table of `routes`, sharing runtimes with the previous ones; runtimes of nodes
    /// no longer routed (and not `http-to`, which the caller passes in `keep`) are forgotten.
    ///
    /// `subs` are the nodes of uWSGI subscription packets: each serves its domain only when no
    /// route names that domain (a domain of the emperor's vassals is never taken over).
    pub(crate) fn table(
        &mut self,
        routes: &[Route],
        keep: &[Arc<Node>],
        subs: &[(String, Target)],
    ) -> Table {
        type Nodes = (Vec<Arc<Node>>, Vec<Option<u64>>);
        let mut by_domain: HashMap<String, Nodes> = HashMap::new();
        let mut names: HashMap<&str, Arc<str>> = HashMap::new();
        let mut live: Vec<(Target, bool)> = Vec::new();
        for r in routes {
            let vassal = names
                .entry(&r.vassal)
                .or_insert_with(|| Arc::from(r.vassal.as_str()))
                .clone();
            let target = Target::Vassal {
                vassal: vassal.clone(),
                socket: r.socket.clone().into_boxed_str(),
                uid: r.uid,
            };
            let rt = self.runtime(&target, r.proto);
            live.push((target.clone(), r.proto == NodeProto::Http));
            let node = Arc::new(Node {
                target,
                proto: r.proto,
                starting: r.state == NodeState::Starting,
                rt,
                counters: Some(self.counters(&vassal)),
            });
            let e = by_domain.entry(r.domain.clone()).or_default();
            e.0.push(node);
            e.1.push(r.limit_post);
        }
        let routed: std::collections::HashSet<String> = by_domain.keys().cloned().collect();
        for (domain, target) in subs {
            if routed.contains(domain) {
                continue;
            }
            let rt = self.runtime(target, NodeProto::Uwsgi);
            live.push((target.clone(), false));
            let node = Arc::new(Node {
                target: target.clone(),
                proto: NodeProto::Uwsgi,
                starting: false,
                rt,
                counters: None,
            });
            let e = by_domain.entry(domain.clone()).or_default();
            e.0.push(node);
            e.1.push(None);
        }
        live.extend(
            keep.iter()
                .map(|n| (n.target.clone(), n.proto == NodeProto::Http)),
        );
        self.nodes.retain(|k, _| live.contains(k));
        let mut table = Table::default();
        for (domain, (nodes, limits)) in by_domain {
            let d = Arc::new(Domain::new(nodes, &limits));
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            match domain.strip_prefix("*.") {
                Some(base) => table.wildcard.insert(base.into(), d),
                None => table.exact.insert(domain.into(), d),
            };
        }
        table
    }

    /// Every vassal's counters.
    pub(crate) fn counters_snapshot(&self) -> Vec<Counters> {
        let mut v: Vec<Counters> = self
            .counters
            .iter()
            .map(|(name, c)| c.snapshot(name))
            .collect();
        v.sort_by(|a, b| a.vassal.cmp(&b.vassal));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(domain: &str, vassal: &str) -> Route {
        Route {
            domain: domain.into(),
            vassal: vassal.into(),
            uid: 1000,
            socket: "app.sock".into(),
            proto: NodeProto::Uwsgi,
            limit_post: None,
            state: NodeState::Up,
        }
    }

    fn vassal_of(t: &Table, host: &str) -> Option<String> {
        t.lookup(host).map(|d| d.nodes[0].vassal().to_owned())
    }

    #[test]
    fn exact_then_most_specific_wildcard() {
        let mut reg = Registry::default();
        let t = reg.table(
            &[
                route("example.com", "a"),
                route("*.example.com", "b"),
                route("*.deep.example.com", "c"),
                route("Shop.Example.COM", "d"),
            ],
            &[],
            &[],
        );
        assert_eq!(vassal_of(&t, "example.com").as_deref(), Some("a"));
        assert_eq!(vassal_of(&t, "www.example.com").as_deref(), Some("b"));
        assert_eq!(vassal_of(&t, "x.www.example.com").as_deref(), Some("b"));
        assert_eq!(vassal_of(&t, "x.deep.example.com").as_deref(), Some("c"));
        assert_eq!(vassal_of(&t, "deep.example.com").as_deref(), Some("b"));
        assert_eq!(vassal_of(&t, "shop.example.com").as_deref(), Some("d"));
        assert_eq!(vassal_of(&t, "example.org"), None);
        assert_eq!(vassal_of(&t, "com"), None);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn balancing_and_backoff() {
        let mut reg = Registry::default();
        let mut r2 = route("a.com", "two");
        r2.socket = "b.sock".into();
        let t = reg.table(&[route("a.com", "one"), r2.clone()], &[], &[]);
        let d = t.lookup("a.com").unwrap();
        // Least connections: while one is busy, the other is chosen.
        let (i, busy) = d.pick(Balance::LeastConn, 0, 0).unwrap();
        for _ in 0..4 {
            let (j, _p) = d.pick(Balance::LeastConn, 0, 0).unwrap();
            assert_ne!(i, j);
        }
        drop(busy);
        // Round robin alternates.
        let picks: Vec<usize> = (0..4)
            .map(|_| d.pick(Balance::RoundRobin, 0, 0).unwrap().0)
            .collect();
        assert_ne!(picks[0], picks[1]);
        assert_eq!(picks[0], picks[2]);
        // A refusing node is out for 1 s, then 2, 4, ... 30.
        let n = &d.nodes[0];
        n.refused(0);
        assert_eq!(n.backoff_ms(), 1000);
        for _ in 0..10 {
            let (j, _p) = d.pick(Balance::LeastConn, 999, 0).unwrap();
            assert_eq!(j, 1);
        }
        assert!(d.pick(Balance::LeastConn, 999, 0b10).is_none());
        assert!(d.pick(Balance::LeastConn, 1000, 0b10).is_some());
        for _ in 0..10 {
            n.refused(0);
        }
        assert_eq!(n.backoff_ms(), 30_000);
        // The back-off outlives a new table with the same node.
        let t2 = reg.table(&[route("a.com", "one"), r2], &[], &[]);
        let n2 = t2
            .lookup("a.com")
            .unwrap()
            .nodes
            .iter()
            .find(|n| n.vassal() == "one")
            .unwrap();
        assert_eq!(n2.backoff_ms(), 30_000);
        n2.connected();
        assert_eq!(n.backoff_ms(), 0);
    }

    #[test]
    fn starting_nodes_are_not_chosen() {
        let mut reg = Registry::default();
        let mut r = route("a.com", "one");
        r.state = NodeState::Starting;
        let t = reg.table(&[r], &[], &[]);
        assert!(
            t.lookup("a.com")
                .unwrap()
                .pick(Balance::LeastConn, 0, 0)
                .is_none()
        );
    }

    #[test]
    fn limit_post_is_the_smallest() {
        let mut reg = Registry::default();
        let mut a = route("a.com", "one");
        a.limit_post = Some(10);
        let mut b = route("a.com", "two");
        b.limit_post = Some(5);
        let t = reg.table(&[a, b], &[], &[]);
        assert_eq!(t.lookup("a.com").unwrap().limit_post, Some(5));
    }
}
