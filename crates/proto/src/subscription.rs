//! uWSGI's subscription packets (uwsgi-reference.md 2.2; uWSGI's `core/subscription.c`): a
//! datagram with a uwsgi header of `modifier1` 224 and `modifier2` 0 (subscribe) or 1
//! (unsubscribe), whose vars name a domain (`key`) and the node that serves it (`address`).
//! The router takes them on `http-subscription-server`, a socket jails cannot reach; liege's own
//! vassals are routed by the emperor and never send them.
//!
//! Only `key`, `address`, `modifier1` and `weight` are read. The `sni_key`, `sni_crt` and
//! `sni_ca` vars would make the router load files by path on its host: they are ignored, and
//! so are signatures (`sign`, `unix`): whoever can reach the socket is trusted, as in uWSGI
//! without `subscriptions-sign-check`.

use crate::uwsgi::{self, HEADER_LEN, UwsgiError};

/// `modifier1` of a subscription packet.
pub const MODIFIER1: u8 = 224;

/// The longest `key` and `address` uWSGI accepts.
pub const MAX_FIELD: usize = 255;

/// One subscription packet, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The domain, lower case, without a port.
    pub key: String,
    /// The node: `HOST:PORT` (TCP) or a path (a unix socket).
    pub address: String,
    /// Whether it withdraws the node rather than adds (or refreshes) it.
    pub unsubscribe: bool,
    /// The uwsgi `modifier1` requests to the node should carry (0 for WSGI).
    pub modifier1: u8,
    /// Its weight (1 when absent).
    pub weight: u32,
}

/// A datagram that is no subscription the router can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// Shorter than its header says, or than a header.
    #[error("a subscription packet of {len} bytes, shorter than its header says")]
    Short {
        /// Bytes received.
        len: usize,
    },
    /// Not `modifier1` 224.
    #[error("not a subscription packet (modifier1 {modifier1})")]
    NotSubscription {
        /// The packet's modifier1.
        modifier1: u8,
    },
    /// The vars do not parse.
    #[error("a subscription packet: {0}")]
    Vars(#[from] UwsgiError),
    /// `key` or `address` is missing, empty, too long, or not text.
    #[error("a subscription packet without a usable `{0}`")]
    Missing(&'static str),
}

/// A field that is there, not empty, and not too long.
fn usable(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.is_empty() && s.len() <= MAX_FIELD)
}

/// Reads one datagram.
pub fn parse(packet: &[u8]) -> Result<Subscription, SubscriptionError> {
    let header =
        uwsgi::parse_header(packet).ok_or(SubscriptionError::Short { len: packet.len() })?;
    if header.modifier1 != MODIFIER1 {
        return Err(SubscriptionError::NotSubscription {
            modifier1: header.modifier1,
        });
    }
    let block = packet
        .get(HEADER_LEN..HEADER_LEN + usize::from(header.datasize))
        .ok_or(SubscriptionError::Short { len: packet.len() })?;
    let (mut key, mut address, mut modifier1, mut weight) = (None, None, 0u8, 1u32);
    for var in uwsgi::vars(block) {
        let (k, v) = var?;
        let text = std::str::from_utf8(v).ok();
        match k {
            b"key" => key = text,
            b"address" => address = text,
            b"modifier1" => modifier1 = text.and_then(|t| t.trim().parse().ok()).unwrap_or(0),
            b"weight" => {
                weight = text
                    .and_then(|t| t.trim().parse().ok())
                    .filter(|&w| w > 0)
                    .unwrap_or(1);
            }
            _ => {}
        }
    }
    let key = usable(key).ok_or(SubscriptionError::Missing("key"))?;
    let address = usable(address).ok_or(SubscriptionError::Missing("address"))?;
    // uWSGI keys may carry a port (`example.com:8080`); the router matches hosts without one.
    let host = match key.rsplit_once(':') {
        Some((h, port)) if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => key,
    };
    Ok(Subscription {
        key: host.trim_end_matches('.').to_ascii_lowercase(),
        address: address.to_string(),
        unsubscribe: header.modifier2 == 1,
        modifier1,
        weight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(modifier2: u8, vars: &[(&str, &str)]) -> Vec<u8> {
        let vars: Vec<(&[u8], &[u8])> = vars
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        uwsgi::encode(MODIFIER1, modifier2, &vars).unwrap()
    }

    #[test]
    fn a_subscription_names_its_domain_and_node() {
        let p = packet(
            0,
            &[
                ("key", "Example.COM:8080"),
                ("address", "127.0.0.1:3031"),
                ("modifier1", "0"),
                ("cores", "4"),
                ("weight", "3"),
                ("sni_key", "/etc/shadow"),
            ],
        );
        assert_eq!(
            parse(&p).unwrap(),
            Subscription {
                key: "example.com".into(),
                address: "127.0.0.1:3031".into(),
                unsubscribe: false,
                modifier1: 0,
                weight: 3,
            }
        );
        let p = packet(1, &[("key", "a.test"), ("address", "/run/app.sock")]);
        let s = parse(&p).unwrap();
        assert!(s.unsubscribe);
        assert_eq!(s.weight, 1);
    }

    #[test]
    fn what_is_no_usable_subscription_is_refused() {
        assert_eq!(parse(b"\xe0"), Err(SubscriptionError::Short { len: 1 }));
        let mut p = packet(0, &[("key", "a.test"), ("address", "x")]);
        p[0] = 0;
        assert!(matches!(
            parse(&p),
            Err(SubscriptionError::NotSubscription { modifier1: 0 })
        ));
        let p = packet(0, &[("address", "x")]);
        assert_eq!(parse(&p), Err(SubscriptionError::Missing("key")));
        let long = "a".repeat(300);
        let p = packet(0, &[("key", "a.test"), ("address", &long)]);
        assert_eq!(parse(&p), Err(SubscriptionError::Missing("address")));
        let mut p = packet(0, &[("key", "a.test"), ("address", "x")]);
        p.truncate(p.len() - 3);
        assert!(parse(&p).is_err());
    }
}
