//! The router's options, read and checked before anything is bound: its listeners (`http`,
//! `https`), its certificates (`https`, `sni`), its fixed backends (`http-to`), the user it runs
//! as (`http-uid`) and its tunables. A bad value is an error naming its file and line.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use liege_config::registry::{self, Known};
use liege_config::{Options, Origin, is_true, parse_size};
use liege_proto::router::{Balance, Cert, Settings};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::addr::Addr;
use crate::owner;

/// The listen backlog of the router's sockets.
pub const BACKLOG: i32 = 1024;
/// The most bytes a certificate or key file may hold.
pub const MAX_PEM: u64 = 1 << 20;
/// `http-uid`'s default.
pub const DEFAULT_USER: &str = "liege-router";

/// One listening address of the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    pub addr: SocketAddr,
    /// `https`: TLS.
    pub tls: bool,
    pub origin: Origin,
}

/// A certificate and key to read: an `https` entry's (the default, `sni: None`) or an `sni`
/// entry's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The domain it answers by SNI, lower case.
    pub sni: Option<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub origin: Origin,
}

/// What the options say about the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listeners: Vec<ListenerSpec>,
    /// The default certificates (`https`), then the `sni` ones, in order.
    pub certs: Vec<CertFiles>,
    /// `http-to`, as written.
    pub http_to: Vec<String>,
    /// `http-subscription-server`: a UDP address.
    pub subscription: Option<(SocketAddr, Origin)>,
    /// `http-uid`: the user as written (default [`DEFAULT_USER`]) and its entry, if one.
    pub user: (String, Option<Origin>),
    pub connect_timeout_ms: u64,
    pub header_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub max_header_bytes: u64,
    pub max_conns_per_ip: u32,
    pub trusted_proxies: Vec<String>,
    pub balance: Balance,
    pub access_log: bool,
}

/// An option of the router that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: invalid value `{value}` for `{key}`: {why}")]
    Invalid {
        origin: Origin,
        key: String,
        value: String,
        why: String,
    },
    #[error("{origin}: `{key}`: {source}")]
    User {
        origin: Origin,
        key: String,
        source: owner::OwnerError,
    },
    #[error(
        "the router runs as `{name}` (`http-uid`'s default), but {source}\nhint: create it (scripts/setup does: useradd --system --no-create-home --shell /usr/sbin/nologin liege-router) or set `http-uid`"
    )]
    DefaultUser {
        name: String,
        source: owner::OwnerError,
    },
    #[error("{origin}: cannot read {what} `{}`: {reason}", path.display())]
    Read {
        origin: Origin,
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{origin}: cannot {step} {addr} for the router: {source}")]
    Bind {
        origin: Origin,
        step: &'static str,
        addr: SocketAddr,
        source: Errno,
    },
}

/// The options of an entry's key, by canonical name (`st` is `subscribe-to`).
fn canonical(key: &str) -> &str {
    match registry::lookup(key) {
        Known::Liege(spec) => spec.name,
        _ => key,
    }
}

fn entries<'a>(options: &'a Options, key: &'a str) -> impl Iterator<Item = &'a liege_config::Opt> {
    options.iter().filter(move |o| canonical(&o.key) == key)
}

fn last<'a>(options: &'a Options, key: &str) -> Option<&'a liege_config::Opt> {
    options.iter().rev().find(|o| canonical(&o.key) == key)
}

fn invalid(o: &liege_config::Opt, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin: o.origin.clone(),
        key: canonical(&o.key).to_owned(),
        value: o.value.clone(),
        why: why.into(),
    }
}

fn number(
    options: &Options,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(o) = last(options, key) else {
        return Ok(default);
    };
    match o.value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(
            o,
            format!("expected a whole number from {min} to {max}"),
        )),
    }
}

/// A TCP address the router listens on (uWSGI's `:80` is every IPv4 address).
fn tcp(o: &liege_config::Opt, text: &str) -> Result<SocketAddr, ConfigError> {
    match Addr::parse(text) {
        Ok(Addr::Tcp(a)) => Ok(a),
        Ok(_) => Err(invalid(
            o,
            "the router listens on a TCP address (`:80`, `127.0.0.1:8080`)",
        )),
        Err(e) => Err(invalid(o, e.to_string())),
    }
}

/// A domain as the router matches it: lower case, no trailing dot, no port; `*.` only as the
/// first label. `None` when it is no domain.
pub fn normalize_domain(text: &str) -> Option<String> {
    let d = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let bare = d.strip_prefix("*.").unwrap_or(&d);
    let ok = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(d)
}

/// `ADDR`, `ADDR/BITS`: a client address or block the router trusts.
fn check_cidr(text: &str) -> Result<(), String> {
    let (ip, bits) = match text.split_once('/') {
        Some((ip, bits)) => (ip, Some(bits)),
        None => (text, None),
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("`{ip}` is not an IP address"))?;
    if let Some(bits) = bits {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        match bits.parse::<u8>() {
            Ok(n) if n <= max => {}
            _ => return Err(format!("`/{bits}` is not a prefix length from 0 to {max}")),
        }
    }
    Ok(())
}

/// `DOMAIN,CRT,KEY` (an `sni` entry) or `ADDR,CRT,KEY[,CIPHERS]` (an `https` entry, uWSGI's
/// cipher list accepted and left to rustls): the three first fields.
fn three_fields<'a>(o: &'a liege_config::Opt, first: &str) -> Result<[&'a str; 3], ConfigError> {
    let fields: Vec<&str> = o.value.split(',').map(str::trim).collect();
    match fields.as_slice() {
        [a, c, k] | [a, c, k, _] if !a.is_empty() && !c.is_empty() && !k.is_empty() => {
            Ok([a, c, k])
        }
        [_, _, _, _, ca, ..] if !ca.is_empty() => Err(invalid(
            o,
            "client certificates (uWSGI's fifth field, a CA) are not supported: the router would accept every client",
        )),
        _ => Err(invalid(
            o,
            format!("expected `{first},CRT,KEY` (PEM files)"),
        )),
    }
}

impl Config {
    /// The router's options, or `None` when there is neither `http` nor `https`.
    /// Relative certificate paths are taken from `cwd`.
    pub fn from_options(options: &Options, cwd: &Path) -> Result<Option<Config>, ConfigError> {
        let mut listeners = Vec::new();
        let mut certs = Vec::new();
        for o in options.iter() {
            match canonical(&o.key) {
                "http" => listeners.push(ListenerSpec {
                    addr: tcp(o, &o.value)?,
                    tls: false,
                    origin: o.origin.clone(),
                }),
                "https" => {
                    let [addr, cert, key] = three_fields(o, "ADDR")?;
                    listeners.push(ListenerSpec {
                        addr: tcp(o, addr)?,
                        tls: true,
                        origin: o.origin.clone(),
                    });
                    certs.push(CertFiles {
                        sni: None,
                        cert: cwd.join(cert),
                        key: cwd.join(key),
                        origin: o.origin.clone(),
                    });
                }
                _ => {}
            }
        }
        if listeners.is_empty() {
            return Ok(None);
        }
        certs.extend(sni_entries(options, cwd)?);
        let http_to = entries(options, "http-to")
            .map(|o| {
                let v = o.value.trim();
                match Addr::parse(v) {
                    Ok(Addr::Tcp(_) | Addr::Unix(_)) => Ok(v.to_owned()),
                    Ok(Addr::Abstract(_)) => Err(invalid(o, "expected HOST:PORT or a unix path")),
                    Err(e) => Err(invalid(o, e.to_string())),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let subscription = match last(options, "http-subscription-server") {
            None => None,
            Some(o) => match Addr::parse(&o.value) {
                Ok(Addr::Tcp(a)) => Some((a, o.origin.clone())),
                Ok(_) => {
                    return Err(invalid(
                        o,
                        "the subscription server listens on a UDP address (`127.0.0.1:7000`), which jails cannot reach",
                    ));
                }
                Err(e) => return Err(invalid(o, e.to_string())),
            },
        };
        let mut trusted_proxies = Vec::new();
        for o in entries(options, "http-trusted-proxies") {
            for item in o.value.split([',', ' ', '\t']).filter(|s| !s.is_empty()) {
                check_cidr(item).map_err(|why| invalid(o, why))?;
                trusted_proxies.push(item.to_owned());
            }
        }
        let balance = match last(options, "http-balance") {
            None => Balance::LeastConn,
            Some(o) => match o.value.trim() {
                "least-conn" | "lrc" => Balance::LeastConn,
                "round-robin" | "rr" => Balance::RoundRobin,
                _ => return Err(invalid(o, "expected `least-conn` or `round-robin`")),
            },
        };
        let max_header_bytes = match last(options, "http-max-header-size") {
            None => 16 << 10,
            Some(o) => match parse_size(&o.value) {
                Some(n) if (1024..=1 << 20).contains(&n) => n,
                _ => return Err(invalid(o, "expected a size from 1k to 1m")),
            },
        };
        let user = match last(options, "http-uid") {
            Some(o) if !o.value.trim().is_empty() => {
                (o.value.trim().to_owned(), Some(o.origin.clone()))
            }
            _ => (DEFAULT_USER.to_owned(), None),
        };
        let secs = |key, default| number(options, key, default, 1, 86_400).map(|s| s * 1000);
        Ok(Some(Config {
            listeners,
            certs,
            http_to,
            subscription,
            user,
            connect_timeout_ms: secs("http-connect-timeout", 5)?,
            header_timeout_ms: secs("http-headers-timeout", 10)?,
            idle_timeout_ms: secs("http-keepalive-timeout", 60)?,
            max_header_bytes,
            max_conns_per_ip: u32::try_from(number(
                options,
                "http-max-conns-per-ip",
                256,
                1,
                1 << 20,
            )?)
            .unwrap_or(u32::MAX),
            trusted_proxies,
            balance,
            access_log: last(options, "http-access-log").is_none_or(|o| is_true(&o.value)),
        }))
    }

    /// The uid and gid of `http-uid` (its primary group), looked up in `passwd`.
    pub fn identity(&self, passwd: &Path) -> Result<(u32, u32), ConfigError> {
        let (name, origin) = &self.user;
        let err = |source| match origin {
            Some(origin) => ConfigError::User {
                origin: origin.clone(),
                key: "http-uid".into(),
                source,
            },
            None => ConfigError::DefaultUser {
                name: name.clone(),
                source,
            },
        };
        let user = owner::user_in(name, passwd).map_err(err)?;
        let gid = user.gid.ok_or_else(|| {
            err(owner::OwnerError::NoUser {
                name: format!("{name} (with a primary group)"),
                file: passwd.display().to_string(),
            })
        })?;
        Ok((user.uid, gid))
    }

    /// Reads every certificate and key with the rights of this process (the emperor's and an
    /// instance's own, as root).
    pub fn read_certs(&self) -> Result<Vec<Cert>, ConfigError> {
        self.certs
            .iter()
            .map(|c| read_cert(c, &read_pem_file, None))
            .collect()
    }

    /// The settings the router gets, with the certificates read, the run dir routes go
    /// through and the fixed backends.
    pub fn settings(&self, certs: Vec<Cert>, run_dir: &Path, http_to: Vec<String>) -> Settings {
        Settings {
            certs,
            trusted_proxies: self.trusted_proxies.clone(),
            http_to,
            run_dir: run_dir.display().to_string(),
            connect_timeout_ms: self.connect_timeout_ms,
            header_timeout_ms: self.header_timeout_ms,
            idle_timeout_ms: self.idle_timeout_ms,
            max_header_bytes: self.max_header_bytes,
            max_conns_per_ip: self.max_conns_per_ip,
            balance: self.balance,
            access_log: self.access_log,
        }
    }

    /// Binds the listeners (TCP, `SO_REUSEADDR`, listen [`BACKLOG`]) and the subscription
    /// server (UDP), non-blocking and close-on-exec: the caller keeps them for the life of
    /// the instance, so a router that is respawned loses no port.
    pub fn bind(&self) -> Result<Bound, ConfigError> {
        let mut listeners = Vec::new();
        for l in &self.listeners {
            listeners.push((bind_tcp(l.addr, &l.origin)?, l.tls));
        }
        let subscription = match &self.subscription {
            None => None,
            Some((addr, origin)) => Some(bind_udp(*addr, origin)?),
        };
        Ok(Bound {
            listeners,
            subscription,
        })
    }
}

/// The `sni` entries of a list of options (the emperor's, an instance's, or a vassal's), with
/// relative paths taken from `cwd`.
pub fn sni_entries(options: &Options, cwd: &Path) -> Result<Vec<CertFiles>, ConfigError> {
    entries(options, "sni")
        .map(|o| {
            let [domain, cert, key] = three_fields(o, "DOMAIN")?;
            let sni = normalize_domain(domain)
                .ok_or_else(|| invalid(o, format!("`{domain}` is not a domain")))?;
            Ok(CertFiles {
                sni: Some(sni),
                cert: cwd.join(cert),
                key: cwd.join(key),
                origin: o.origin.clone(),
            })
        })
        .collect()
}

/// Reads a PEM file whole, with the rights of this process: a regular file of at most
/// [`MAX_PEM`] bytes.
pub fn read_pem_file(path: &Path) -> Result<Vec<u8>, String> {
    let meta = fs_err::metadata(path).map_err(|e| e.kind().to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_PEM {
        return Err(format!("{} bytes, more than {MAX_PEM}", meta.len()));
    }
    fs_err::read(path).map_err(|e| e.kind().to_string())
}

/// Reads one certificate and its key through `read` (which reads a file with the right
/// rights: root's, or a vassal's), and checks they look like PEM.
pub fn read_cert(
    c: &CertFiles,
    read: &dyn Fn(&Path) -> Result<Vec<u8>, String>,
    vassal: Option<&str>,
) -> Result<Cert, ConfigError> {
    let pem = |path: &Path, what: &'static str, marker: &str| {
        let err = |reason: String| ConfigError::Read {
            origin: c.origin.clone(),
            what,
            path: path.to_path_buf(),
            reason,
        };
        let bytes = read(path).map_err(err)?;
        let text = String::from_utf8(bytes).map_err(|_| err("not PEM (not text)".into()))?;
        if !text.contains("-----BEGIN ") || !text.contains(marker) {
            return Err(err(format!("not PEM (no `{marker}` block)")));
        }
        Ok(text)
    };
    Ok(Cert {
        sni: c.sni.clone(),
        cert_pem: pem(&c.cert, "the certificate", "CERTIFICATE-----")?,
        key_pem: pem(&c.key, "the key", "PRIVATE KEY-----")?,
        vassal: vassal.map(str::to_owned),
    })
}

/// The router's bound sockets, held by its parent.
#[derive(Debug)]
pub struct Bound {
    /// The listening sockets, and whether each speaks TLS.
    pub listeners: Vec<(OwnedFd, bool)>,
    /// The subscription server's UDP socket.
    pub subscription: Option<OwnedFd>,
}

impl Bound {
    /// The port each listener is bound to (with `:0`, the one the kernel chose).
    pub fn local_addrs(&self) -> Vec<Option<SocketAddr>> {
        self.listeners
            .iter()
            .map(|(fd, _)| local_addr(fd.as_fd()))
            .collect()
    }
}

/// The address a socket is bound to.
pub fn local_addr(fd: std::os::fd::BorrowedFd<'_>) -> Option<SocketAddr> {
    let any = rustix::net::getsockname(fd).ok()?;
    std::net::SocketAddr::try_from(any).ok()
}

fn family(addr: SocketAddr) -> AddressFamily {
    if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    }
}

fn bind_tcp(addr: SocketAddr, origin: &Origin) -> Result<OwnedFd, ConfigError> {
    let err = |step| {
        move |source| ConfigError::Bind {
            origin: origin.clone(),
            step,
            addr,
            source,
        }
    };
    let fd = rustix::net::socket_with(
        family(addr),
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(err("create a socket for"))?;
    rustix::net::sockopt::set_socket_reuseaddr(&fd, true).map_err(err("set SO_REUSEADDR on"))?;
    rustix::net::bind(&fd, &addr).map_err(err("bind"))?;
    rustix::net::listen(&fd, BACKLOG).map_err(err("listen on"))?;
    Ok(fd)
}

fn bind_udp(addr: SocketAddr, origin: &Origin) -> Result<OwnedFd, ConfigError> {
    let err = |step| {
        move |source| ConfigError::Bind {
            origin: origin.clone(),
            step,
            addr,
            source,
        }
    };
    let fd = rustix::net::socket_with(
        family(addr),
        SocketType::DGRAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(err("create a socket for"))?;
    rustix::net::sockopt::set_socket_reuseaddr(&fd, true).map_err(err("set SO_REUSEADDR on"))?;
    rustix::net::bind(&fd, &addr).map_err(err("bind"))?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn opts(lines: &[(&str, &str)]) -> Options {
        let path: Arc<str> = Arc::from("/etc/liege/emperor.ini");
        let mut o = Options::new();
        for (i, (k, v)) in lines.iter().enumerate() {
            o.push(*k, *v, Origin::file(&path, u32::try_from(i).unwrap() + 2));
        }
        o
    }

    fn config(lines: &[(&str, &str)]) -> Result<Option<Config>, ConfigError> {
        Config::from_options(&opts(lines), Path::new("/etc/liege"))
    }

    #[test]
    fn no_listener_no_router() {
        assert_eq!(config(&[("http-to", "127.0.0.1:9000")]).unwrap(), None);
    }

    #[test]
    fn listeners_certificates_and_defaults() {
        let c = config(&[
            ("http", ":8080"),
            ("https", "127.0.0.1:8443,tls/a.crt,/k/a.key,HIGH"),
            ("sni", "Shop.Example.COM.,s.crt,s.key"),
            ("http-to", "/run/app.sock"),
            ("http-trusted-proxies", "10.0.0.0/8, ::1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            c.listeners,
            vec![
                ListenerSpec {
                    addr: "0.0.0.0:8080".parse().unwrap(),
                    tls: false,
                    origin: opts(&[("x", "")]).iter().next().unwrap().origin.clone(),
                },
                ListenerSpec {
                    addr: "127.0.0.1:8443".parse().unwrap(),
                    tls: true,
                    origin: Origin::file(&Arc::from("/etc/liege/emperor.ini"), 3),
                },
            ]
        );
        assert_eq!(c.certs.len(), 2);
        assert_eq!(c.certs[0].sni, None);
        assert_eq!(c.certs[0].cert, Path::new("/etc/liege/tls/a.crt"));
        assert_eq!(c.certs[0].key, Path::new("/k/a.key"));
        assert_eq!(c.certs[1].sni.as_deref(), Some("shop.example.com"));
        assert_eq!(c.http_to, ["/run/app.sock"]);
        assert_eq!(c.trusted_proxies, ["10.0.0.0/8", "::1"]);
        assert_eq!(c.user, (DEFAULT_USER.to_owned(), None));
        assert_eq!(
            (c.connect_timeout_ms, c.header_timeout_ms, c.idle_timeout_ms),
            (5000, 10_000, 60_000)
        );
        assert_eq!((c.max_header_bytes, c.max_conns_per_ip), (16384, 256));
        assert_eq!(c.balance, Balance::LeastConn);
        assert!(c.access_log);
        let s = c.settings(Vec::new(), Path::new("/run/liege"), c.http_to.clone());
        assert_eq!(s.run_dir, "/run/liege");
        assert_eq!(s.idle_timeout_ms, 60_000);
    }

    #[test]
    fn tunables_and_aliases() {
        let c = config(&[
            ("http", "[::1]:80"),
            ("http-connect-timeout", "2"),
            ("http-headers-timeout", "3"),
            ("http-keepalive-timeout", "4"),
            ("http-max-header-size", "32k"),
            ("http-max-conns-per-ip", "9"),
            ("http-balance", "round-robin"),
            ("http-access-log", "false"),
            ("http-uid", "www-data"),
            ("http-subscription-server", "127.0.0.1:7000"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (c.connect_timeout_ms, c.header_timeout_ms, c.idle_timeout_ms),
            (2000, 3000, 4000)
        );
        assert_eq!((c.max_header_bytes, c.max_conns_per_ip), (32768, 9));
        assert_eq!(c.balance, Balance::RoundRobin);
        assert!(!c.access_log);
        assert_eq!(c.user.0, "www-data");
        assert_eq!(c.subscription.unwrap().0, "127.0.0.1:7000".parse().unwrap());
    }

    #[test]
    fn bad_values_name_file_and_line() {
        let e = |lines: &[(&str, &str)]| config(lines).unwrap_err().to_string();
        assert_eq!(
            e(&[("http", "/run/a.sock")]),
            "/etc/liege/emperor.ini:2: invalid value `/run/a.sock` for `http`: the router listens on a TCP address (`:80`, `127.0.0.1:8080`)"
        );
        assert_eq!(
            e(&[("https", ":443,a.crt")]),
            "/etc/liege/emperor.ini:2: invalid value `:443,a.crt` for `https`: expected `ADDR,CRT,KEY` (PEM files)"
        );
        assert!(e(&[("https", ":443,a.crt,a.key,HIGH,ca.pem")]).contains("client certificates"));
        assert_eq!(
            e(&[("http", ":80"), ("sni", "bad domain,a.crt,a.key")]),
            "/etc/liege/emperor.ini:3: invalid value `bad domain,a.crt,a.key` for `sni`: `bad domain` is not a domain"
        );
        assert_eq!(
            e(&[("http", ":80"), ("http-trusted-proxies", "10.0.0.0/33")]),
            "/etc/liege/emperor.ini:3: invalid value `10.0.0.0/33` for `http-trusted-proxies`: `/33` is not a prefix length from 0 to 32"
        );
        assert!(
            e(&[("http", ":80"), ("http-balance", "wrr")])
                .contains("`least-conn` or `round-robin`")
        );
        assert!(e(&[("http", ":80"), ("http-connect-timeout", "0")]).contains(":3:"));
        assert!(e(&[("http", ":80"), ("http-subscription-server", "/tmp/s")]).contains("UDP"));
    }

    #[test]
    fn domains_are_normalized_or_refused() {
        assert_eq!(
            normalize_domain("Example.COM.").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            normalize_domain("*.example.com").as_deref(),
            Some("*.example.com")
        );
        assert_eq!(normalize_domain("localhost").as_deref(), Some("localhost"));
        for bad in [
            "", "*", "a..b", "-a.com", "a b", "a.*.com", "ex:80", "*.*.a",
        ] {
            assert_eq!(normalize_domain(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_user_by_name_or_number() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        fs_err::write(&passwd, "liege-router:x:999:995::/:/usr/sbin/nologin\n").unwrap();
        let c = config(&[("http", ":80")]).unwrap().unwrap();
        assert_eq!(c.identity(&passwd).unwrap(), (999, 995));
        let c = config(&[("http", ":80"), ("http-uid", "nobody")])
            .unwrap()
            .unwrap();
        assert_eq!(
            c.identity(&passwd).unwrap_err().to_string(),
            format!(
                "/etc/liege/emperor.ini:3: `http-uid`: no user `nobody` in {}",
                passwd.display()
            )
        );
        fs_err::write(&passwd, "").unwrap();
        let c = config(&[("http", ":80")]).unwrap().unwrap();
        assert!(c.identity(&passwd).unwrap_err().to_string().starts_with(
            "the router runs as `liege-router` (`http-uid`'s default), but no user `liege-router`"
        ));
    }

    #[test]
    fn certificates_must_be_pem() {
        let dir = tempfile::tempdir().unwrap();
        let crt = dir.path().join("a.crt");
        let key = dir.path().join("a.key");
        fs_err::write(
            &crt,
            "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        fs_err::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let value = format!(":443,{},{}", crt.display(), key.display());
        let c = config(&[("https", &value)]).unwrap().unwrap();
        let certs = c.read_certs().unwrap();
        assert_eq!(certs.len(), 1);
        assert!(certs[0].key_pem.contains("PRIVATE KEY"));
        fs_err::write(&key, "hello").unwrap();
        assert_eq!(
            c.read_certs().unwrap_err().to_string(),
            format!(
                "/etc/liege/emperor.ini:2: cannot read the key `{}`: not PEM (no `PRIVATE KEY-----` block)",
                key.display()
            )
        );
        fs_err::remove_file(&crt).unwrap();
        assert!(
            c.read_certs()
                .unwrap_err()
                .to_string()
                .contains("entity not found")
        );
    }

    #[test]
    fn bind_listens_and_keeps_the_chosen_port() {
        let c = config(&[
            ("http", "127.0.0.1:0"),
            ("http-subscription-server", "127.0.0.1:0"),
        ])
        .unwrap()
        .unwrap();
        let b = c.bind().unwrap();
        let addr = b.local_addrs()[0].unwrap();
        assert_ne!(addr.port(), 0);
        std::net::TcpStream::connect(addr).unwrap();
        assert!(b.subscription.is_some());
    }
}
