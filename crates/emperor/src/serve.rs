//! The emperor's two little servers, `emperor-stats` (a JSON document to whoever connects) and
//! `emperor-metrics` (Prometheus text for `GET /metrics`), answered from the emperor's loop
//! without blocking it: each client is a small state machine fed by epoll.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use rustix::io::Errno;
use rustix::net::{SendFlags, SocketFlags};

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Stats,
    Metrics,
}

/// A bound listener.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) service: Service,
    pub(crate) fd: OwnedFd,
    /// The socket file to remove on exit, for a unix listener.
    pub(crate) path: Option<PathBuf>,
}

/// Why a listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on `{addr}` for {what}: {source}")]
pub struct ListenError {
    addr: String,
    what: &'static str,
    source: std::io::Error,
}

impl Listener {
    /// Binds `addr` (`HOST:PORT`, or a unix path, made 0600: the stats name every customer).
    pub(crate) fn bind(service: Service, addr: &str) -> Result<Listener, ListenError> {
        let what = match service {
            Service::Stats => "emperor-stats",
            Service::Metrics => "emperor-metrics",
        };
        let err = |source| ListenError {
            addr: addr.to_owned(),
            what,
            source,
        };
        let unix = addr.starts_with('/') || addr.starts_with('.') || !addr.contains(':');
        if unix {
            let path = PathBuf::from(addr);
            match fs_err::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_socket_like() => {
                    let _ = fs_err::remove_file(&path);
                }
                _ => {}
            }
            let l = std::os::unix::net::UnixListener::bind(&path).map_err(err)?;
            fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
            l.set_nonblocking(true).map_err(err)?;
            Ok(Listener {
                service,
                fd: l.into(),
                path: Some(path),
            })
        } else {
            let l = std::net::TcpListener::bind(addr).map_err(err)?;
            l.set_nonblocking(true).map_err(err)?;
            Ok(Listener {
                service,
                fd: l.into(),
                path: None,
            })
        }
    }

    /// Accepts one waiting client.
    pub(crate) fn accept(&self) -> Option<OwnedFd> {
        loop {
            match rustix::net::accept_with(&self.fd, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK) {
                Ok(c) => return Some(c),
                Err(Errno::INTR) => {}
                Err(_) => return None,
            }
        }
    }
}

trait SocketLike {
    fn is_socket_like(&self) -> bool;
}

impl SocketLike for std::fs::FileType {
    fn is_socket_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt as _;
        self.is_socket()
    }
}

/// One client being answered.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) fd: OwnedFd,
    pub(crate) service: Service,
    /// The request read so far (metrics only).
    request: Vec<u8>,
    /// The answer, once known, and how much of it went out.
    answer: Option<(Vec<u8>, usize)>,
    pub(crate) since: std::time::Instant,
}

/// What a client needs next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Its request is complete: compute the answer and [`Client::answer`] it.
    Answer,
    /// Wait for the socket.
    Wait,
    /// Close it.
    Done,
}

impl Client {
    pub(crate) fn new(fd: OwnedFd, service: Service) -> Client {
        Client {
            fd,
            service,
            request: Vec::new(),
            answer: None,
            since: std::time::Instant::now(),
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Reads the request (metrics), or says the answer is due at once (stats).
    pub(crate) fn readable(&mut self) -> Next {
        if self.answer.is_some() {
            return self.writable();
        }
        if self.service == Service::Stats {
            return Next::Answer;
        }
        let mut buf = [0u8; 2048];
        loop {
            match rustix::io::read(&self.fd, &mut buf) {
                Ok(0) => return Next::Done,
                Ok(n) => {
                    self.request.extend_from_slice(&buf[..n]);
                    if self.request.len() > 16 * 1024 {
                        return Next::Done;
                    }
                    if self.request.windows(4).any(|w| w == b"\r\n\r\n")
                        || self.request.windows(2).any(|w| w == b"\n\n")
                    {
                        return Next::Answer;
                    }
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Next::Wait,
                Err(_) => return Next::Done,
            }
        }
    }

    /// The request line's path (metrics).
    pub(crate) fn path(&self) -> &str {
        let line = self
            .request
            .split(|b| *b == b'\n')
            .next()
            .unwrap_or_default();
        let line = std::str::from_utf8(line).unwrap_or_default();
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some("GET"), Some(p)) => p,
            _ => "",
        }
    }

    /// Sets the answer and starts sending it.
    pub(crate) fn answer(&mut self, bytes: Vec<u8>) -> Next {
        self.answer = Some((bytes, 0));
        self.writable()
    }

    /// Sends what the socket takes.
    pub(crate) fn writable(&mut self) -> Next {
        let Some((bytes, sent)) = &mut self.answer else {
            return Next::Wait;
        };
        while *sent < bytes.len() {
            match rustix::net::send(&self.fd, &bytes[*sent..], SendFlags::NOSIGNAL) {
                Ok(n) => *sent += n,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Next::Wait,
                Err(_) => return Next::Done,
            }
        }
        let _ = rustix::net::shutdown(&self.fd, rustix::net::Shutdown::Write);
        Next::Done
    }
}

/// An HTTP/1.0 answer with a body.
pub(crate) fn http(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
