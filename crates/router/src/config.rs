//! The settings as the router uses them: parsed once per settings message (certificates,
//! trusted proxies, `http-to` targets) and swapped in whole.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use liege_proto::router::{Balance, Settings};
use rustls::ServerConfig;

use crate::routes::{Domain, Registry, Target};
use crate::tls::{self, CertError, Resumption};

/// Defaults before the first settings message arrives (the parent normally sends its own at
/// once): the connect wait, in ms.
pub(crate) const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// The head timeout before any settings, in ms.
pub(crate) const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
/// The idle keep-alive timeout before any settings, in ms.
pub(crate) const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// The head limit before any settings (and for a setting of 0), in bytes.
pub(crate) const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// The connections one address may hold before any settings.
pub(crate) const DEFAULT_MAX_CONNS_PER_IP: u32 = 256;
/// The smallest head limit honoured (a smaller setting is raised to it).
pub(crate) const MIN_HEADER_BYTES: usize = 256;
/// The largest head limit honoured (a larger setting is lowered to it).
pub(crate) const MAX_HEADER_BYTES: usize = 1 << 20;

/// A settings message that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("trusted proxy `{0}` is not an address or a CIDR block (`10.0.0.0/8`, `::1`)")]
    Cidr(String),
    #[error("http-to `{0}` is not a socket path (with a `/`) nor an address with a port")]
    HttpTo(String),
}

/// An address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr` or `addr/prefix`.
    pub(crate) fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                p.parse::<u8>().ok().filter(|p| *p <= max)?
            }
            None => max,
        };
        Some(Cidr {
            net: canonical(net),
            prefix,
        })
    }

    /// Whether `ip` is in the block.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The settings in use.
#[derive(Debug)]
pub(crate) struct Config {
    /// The TLS configuration (`None` before any settings: TLS handshakes fail).
    pub(crate) tls: Option<Arc<ServerConfig>>,
    pub(crate) trusted: Vec<Cidr>,
    /// The `http-to` nodes, as one domain.
    pub(crate) http_to: Option<Arc<Domain>>,
    pub(crate) run_dir: PathBuf,
    pub(crate) connect_timeout: Duration,
    pub(crate) header_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_header_bytes: usize,
    /// 0: no limit.
    pub(crate) max_conns_per_ip: u32,
    pub(crate) balance: Balance,
    pub(crate) access_log: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tls: None,
            trusted: Vec::new(),
            http_to: None,
            run_dir: PathBuf::new(),
            connect_timeout: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
            header_timeout: Duration::from_millis(DEFAULT_HEADER_TIMEOUT_MS),
            idle_timeout: Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_conns_per_ip: DEFAULT_MAX_CONNS_PER_IP,
            balance: Balance::LeastConn,
            access_log: false,
        }
    }
}

impl Config {
    /// Whether `ip` is a trusted proxy.
    pub(crate) fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The `http-to` nodes (for the registry to keep their runtimes).
    pub(crate) fn http_to_nodes(&self) -> &[Arc<crate::routes::Node>] {
        self.http_to.as_ref().map_or(&[], |d| &d.nodes)
    }
}

/// Parses an `http-to` target.
async fn http_to_target(s: &str) -> Result<Target, SettingsError> {
    if s.contains('/') {
        return Ok(Target::Unix(PathBuf::from(s)));
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(Target::Tcp(a));
    }
    match tokio::net::lookup_host(s).await {
        Ok(mut addrs) => addrs
            .next()
            .map(Target::Tcp)
            .ok_or_else(|| SettingsError::HttpTo(s.to_owned())),
        Err(_) => Err(SettingsError::HttpTo(s.to_owned())),
    }
}

/// A duration in ms, 0 meaning the default.
fn ms(v: u64, default: u64) -> Duration {
    Duration::from_millis(if v == 0 { default } else { v })
}

/// Builds the configuration of `s`.
pub(crate) async fn build(
    s: &Settings,
    registry: &std::sync::Mutex<Registry>,
    resumption: &Resumption,
) -> Result<Config, SettingsError> {
    let certs = tls::certs(&s.certs)?;
    let tls = tls::server_config(certs, resumption)?;
    let trusted = s
        .trusted_proxies
        .iter()
        .map(|t| Cidr::parse(t).ok_or_else(|| SettingsError::Cidr(t.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut targets = Vec::with_capacity(s.http_to.len());
    for t in &s.http_to {
        targets.push(http_to_target(t).await?);
    }
    let http_to = if targets.is_empty() {
        None
    } else {
        let mut reg = registry.lock().unwrap_or_else(|e| e.into_inner());
        let nodes: Vec<_> = targets.into_iter().map(|t| reg.http_to(t)).collect();
        let limits = vec![None; nodes.len()];
        Some(Arc::new(Domain::new(nodes, &limits)))
    };
    let max_header_bytes = usize::try_from(s.max_header_bytes)
        .unwrap_or(MAX_HEADER_BYTES)
        .clamp(MIN_HEADER_BYTES, MAX_HEADER_BYTES);
    Ok(Config {
        tls: Some(tls),
        trusted,
        http_to,
        run_dir: PathBuf::from(&s.run_dir),
        connect_timeout: ms(s.connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS),
        header_timeout: ms(s.header_timeout_ms, DEFAULT_HEADER_TIMEOUT_MS),
        idle_timeout: ms(s.idle_timeout_ms, DEFAULT_IDLE_TIMEOUT_MS),
        max_header_bytes: if s.max_header_bytes == 0 {
            DEFAULT_MAX_HEADER_BYTES
        } else {
            max_header_bytes
        },
        max_conns_per_ip: s.max_conns_per_ip,
        balance: s.balance,
        access_log: s.access_log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let c = Cidr::parse("::1").unwrap();
        assert!(c.contains("::1".parse().unwrap()));
        assert!(!c.contains("::2".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("1.2.3.4".parse().unwrap())
        );
        assert!(
            Cidr::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "example.com",
            "::1/129",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }
}
