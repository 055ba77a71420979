//! uWSGI subscription packets on `http-subscription-server` (a UDP socket the parent bound, on
//! an address jails cannot reach: their network namespaces are their own). A packet names a
//! domain (`key`) and the node that serves it (`address`: `HOST:PORT`, or a unix socket's path,
//! followed as given: whoever can reach the socket is trusted, as in uWSGI without signed
//! subscriptions). Nodes are spoken to over the uwsgi protocol; one not refreshed within
//! [`TOLERANCE`] (uWSGI's `subscription-tolerance`, 17 s) is dropped, and an unsubscribe
//! packet drops it at once.
//!
//! The emperor's routes come first: a domain any vassal serves is never taken over by a
//! subscription (a domain belongs to a customer); subscriptions serve only domains no route
//! names.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use liege_proto::subscription::{self, Subscription};
use tokio::net::UdpSocket;

use crate::routes::Target;
use crate::shared::Shared;

/// How long a node lives without a refresh.
pub(crate) const TOLERANCE: Duration = Duration::from_secs(17);

/// The subscribed nodes, by domain.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    nodes: HashMap<String, Vec<(Target, Instant)>>,
}

/// The node an address names.
fn target(address: &str) -> Target {
    match address.parse::<SocketAddr>() {
        Ok(a) => Target::Tcp(a),
        Err(_) => Target::Unix(PathBuf::from(address)),
    }
}

impl Subscriptions {
    /// Applies one packet; whether the nodes changed (a refresh changes nothing).
    pub(crate) fn apply(&mut self, s: &Subscription, now: Instant) -> bool {
        let t = target(&s.address);
        let nodes = self.nodes.entry(s.key.clone()).or_default();
        let at = nodes.iter().position(|(n, _)| *n == t);
        let changed = match (s.unsubscribe, at) {
            (true, Some(i)) => {
                nodes.remove(i);
                true
            }
            (true, None) => false,
            (false, Some(i)) => {
                nodes[i].1 = now;
                false
            }
            (false, None) => {
                nodes.push((t, now));
                true
            }
        };
        self.nodes.retain(|_, v| !v.is_empty());
        changed
    }

    /// Drops the nodes not refreshed within [`TOLERANCE`]; whether any was.
    pub(crate) fn expire(&mut self, now: Instant) -> bool {
        let before: usize = self.nodes.values().map(Vec::len).sum();
        for v in self.nodes.values_mut() {
            v.retain(|(_, seen)| now.duration_since(*seen) <= TOLERANCE);
        }
        self.nodes.retain(|_, v| !v.is_empty());
        before != self.nodes.values().map(Vec::len).sum::<usize>()
    }

    /// Every (domain, node).
    pub(crate) fn entries(&self) -> Vec<(String, Target)> {
        self.nodes
            .iter()
            .flat_map(|(d, v)| v.iter().map(move |(t, _)| (d.clone(), t.clone())))
            .collect()
    }
}

/// Reads subscription packets until the router stops.
pub(crate) async fn run(shared: Arc<Shared>, socket: UdpSocket) {
    let mut buf = vec![0u8; 4096];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut stop = shared.shutdown_rx();
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                match subscription::parse(&buf[..n]) {
                    Ok(s) => {
                        let changed = shared
                            .subscriptions
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .apply(&s, Instant::now());
                        if changed {
                            shared.log.error(format_args!(
                                "subscription from {from}: {} {} {}",
                                if s.unsubscribe { "removed" } else { "added" },
                                s.key,
                                s.address
                            ));
                            shared.rebuild();
                        }
                    }
                    Err(e) => shared.log.error(format_args!("subscription from {from}: {e}")),
                }
            }
            _ = tick.tick() => {
                let expired = shared
                    .subscriptions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .expire(Instant::now());
                if expired {
                    shared.rebuild();
                }
            }
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(key: &str, address: &str, unsubscribe: bool) -> Subscription {
        Subscription {
            key: key.into(),
            address: address.into(),
            unsubscribe,
            modifier1: 0,
            weight: 1,
        }
    }

    #[test]
    fn nodes_come_refresh_go_and_expire() {
        let mut s = Subscriptions::default();
        let t0 = Instant::now();
        assert!(s.apply(&sub("a.test", "127.0.0.1:3031", false), t0));
        assert!(!s.apply(&sub("a.test", "127.0.0.1:3031", false), t0));
        assert!(s.apply(&sub("a.test", "/run/x.sock", false), t0));
        assert_eq!(s.entries().len(), 2);
        assert!(s.apply(&sub("a.test", "/run/x.sock", true), t0));
        assert_eq!(
            s.entries(),
            vec![(
                "a.test".to_string(),
                Target::Tcp("127.0.0.1:3031".parse().unwrap())
            )]
        );
        assert!(!s.expire(t0 + Duration::from_secs(10)));
        assert!(s.expire(t0 + Duration::from_secs(18)));
        assert!(s.entries().is_empty());
    }
}
