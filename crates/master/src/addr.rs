//! Socket addresses as uWSGI writes them: `HOST:PORT` (`:8000` is every IPv4 address,
//! `[::1]:8000` IPv6, `localhost:8000` a name resolved once), a unix path, or `@name` for an
//! abstract unix socket. Parsing happens while the options are checked, before anything binds.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// Where a socket listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket file.
    Unix(PathBuf),
    /// An abstract unix socket (`@name`): no file, gone with the last descriptor.
    Abstract(String),
}

/// Why an address could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddrError {
    #[error("an empty address")]
    Empty,
    #[error("`{0}` is not a port (0 to 65535)")]
    Port(String),
    #[error("`{0}` is not an IPv6 address")]
    Ipv6(String),
    #[error("cannot resolve the host name `{host}`: {reason}")]
    Resolve { host: String, reason: String },
}

impl Addr {
    /// Reads `text`: `@name` is abstract; a value starting with `/` or `.`, or without `:`, is
    /// a unix path; anything else is `HOST:PORT`.
    pub fn parse(text: &str) -> Result<Addr, AddrError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AddrError::Empty);
        }
        if let Some(name) = text.strip_prefix('@') {
            return Ok(Addr::Abstract(name.to_string()));
        }
        if text.starts_with('/') || text.starts_with('.') {
            return Ok(Addr::Unix(PathBuf::from(text)));
        }
        let Some((host, port)) = text.rsplit_once(':') else {
            return Ok(Addr::Unix(PathBuf::from(text)));
        };
        let port: u16 = port
            .parse()
            .map_err(|_| AddrError::Port(port.to_string()))?;
        if host.is_empty() || host == "*" {
            return Ok(Addr::Tcp(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port,
            )));
        }
        if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            let ip = v6
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| AddrError::Ipv6(v6.to_string()))?;
            return Ok(Addr::Tcp(SocketAddr::new(IpAddr::V6(ip), port)));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Addr::Tcp(SocketAddr::new(ip, port)));
        }
        // A name: resolved once, as uWSGI does; an IPv4 address is preferred, as uWSGI's
        // gethostbyname gives only those.
        let resolved: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| AddrError::Resolve {
                host: host.to_string(),
                reason: e.to_string(),
            })?
            .collect();
        resolved
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| resolved.first())
            .copied()
            .map(Addr::Tcp)
            .ok_or_else(|| AddrError::Resolve {
                host: host.to_string(),
                reason: "no address".into(),
            })
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "TCP address {a}"),
            Addr::Unix(p) => write!(f, "UNIX address {}", p.display()),
            Addr::Abstract(n) => write!(f, "abstract UNIX address @{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn reads_every_form_uwsgi_accepts() {
        assert_eq!(
            Addr::parse(":8000").unwrap(),
            Addr::Tcp(tcp("0.0.0.0:8000"))
        );
        assert_eq!(
            Addr::parse("127.0.0.1:9").unwrap(),
            Addr::Tcp(tcp("127.0.0.1:9"))
        );
        assert_eq!(
            Addr::parse("[::1]:8000").unwrap(),
            Addr::Tcp(tcp("[::1]:8000"))
        );
        assert_eq!(
            Addr::parse("localhost:8000").unwrap(),
            Addr::Tcp(tcp("127.0.0.1:8000"))
        );
        assert_eq!(
            Addr::parse("/run/app.sock").unwrap(),
            Addr::Unix("/run/app.sock".into())
        );
        assert_eq!(
            Addr::parse("app.sock").unwrap(),
            Addr::Unix("app.sock".into())
        );
        assert_eq!(
            Addr::parse("./a:b.sock").unwrap(),
            Addr::Unix("./a:b.sock".into())
        );
        assert_eq!(
            Addr::parse("@liege").unwrap(),
            Addr::Abstract("liege".into())
        );
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        assert_eq!(
            Addr::parse("127.0.0.1:99999").unwrap_err().to_string(),
            "`99999` is not a port (0 to 65535)"
        );
        assert_eq!(
            Addr::parse("[zz]:80").unwrap_err().to_string(),
            "`zz` is not an IPv6 address"
        );
        assert_eq!(Addr::parse("  ").unwrap_err(), AddrError::Empty);
    }
}
