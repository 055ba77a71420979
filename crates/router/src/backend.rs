//! Reaching a node: a vassal's socket through its run directory, never following a link, with
//! the listener's uid checked; or an `http-to` target. And the connection to it as one stream
//! type, split in halves for streaming both ways.
//!
//! `RUN/vassals` is opened once (per run dir), each `RUN/vassals/NAME` once (`O_NOFOLLOW`) and
//! kept; a vassal folder that was replaced (its socket is not found through the kept
//! descriptor) is opened again once. A kept socket is used only while its name still names
//! it (one `fstatat` without following links per connect): a socket swapped for a symlink or
//! for another file is opened again, and so refused. The connect is non-blocking: a vassal whose backlog is
//! full makes the request wait and try again, never a router thread block.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use liege_sys::beneath::{self, BeneathError};
use rustix::fs::{Mode, OFlags};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream, tcp, unix};

use crate::routes::Target;

/// Why a node could not be reached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// Nobody listens (ECONNREFUSED), or the socket or its folder is not there (ENOENT): the
    /// node is taken out for a while, and the request may wait for it.
    #[error("node `{node}` refuses connections: {reason}")]
    Refused { node: String, reason: String },
    /// The listener's backlog is full: try again shortly.
    #[error("node `{node}` is busy (its backlog is full)")]
    Busy { node: String },
    /// Anything else, refusals for safety included (a symlink, another uid): 502.
    #[error("node `{node}` cannot be reached: {reason}")]
    Failed { node: String, reason: String },
}

/// The descriptors of `RUN/vassals`, of each vassal's folder in it, and of the sockets in them
/// (`O_PATH`, checked once: a connect through one needs no lookup by name).
#[derive(Debug, Default)]
pub(crate) struct Dirs {
    inner: Mutex<DirsInner>,
}

#[derive(Debug, Default)]
struct DirsInner {
    run_dir: PathBuf,
    vassals: Option<Arc<OwnedFd>>,
    folders: HashMap<Arc<str>, Folder>,
}

#[derive(Debug)]
struct Folder {
    dir: Arc<OwnedFd>,
    sockets: HashMap<Box<str>, Kept>,
}

/// A socket opened before, and the inode it was.
#[derive(Debug, Clone)]
struct Kept {
    fd: Arc<OwnedFd>,
    dev: u64,
    ino: u64,
}

impl Kept {
    /// Whether `name` in `dir` is still this socket (not a link, not another file).
    fn still_named(&self, dir: &OwnedFd, name: &str) -> bool {
        rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket
                && st.st_dev == self.dev
                && st.st_ino == self.ino
        })
    }
}

/// A socket that cannot be opened.
enum OpenError {
    Folder(io::Error),
    Socket(BeneathError),
}

impl Dirs {
    /// The folder of `vassal` (kept, or opened now), and the socket `socket` in it if kept.
    fn folder(
        &self,
        run_dir: &Path,
        vassal: &Arc<str>,
        socket: &str,
    ) -> io::Result<(Arc<OwnedFd>, Option<Kept>)> {
        let mut d = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if d.run_dir != run_dir {
            d.run_dir = run_dir.to_owned();
            d.vassals = None;
            d.folders.clear();
        }
        if let Some(f) = d.folders.get(vassal) {
            return Ok((f.dir.clone(), f.sockets.get(socket).cloned()));
        }
        let vassals = match &d.vassals {
            Some(v) => v.clone(),
            None => {
                // RUN is root's; only what lies beneath `vassals` is the customers'. O_PATH: the
                // router (a plain user) needs to search the folders, not to read them.
                let path = run_dir.join("vassals");
                let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
                let fd = rustix::fs::open(&path, flags, Mode::empty()).map_err(|e| {
                    io::Error::new(
                        io::Error::from(e).kind(),
                        format!("cannot open `{}`: {e}", path.display()),
                    )
                })?;
                let fd = Arc::new(fd);
                d.vassals = Some(fd.clone());
                fd
            }
        };
        let dir = Arc::new(beneath::open_dir_nofollow(vassals.as_fd(), vassal)?);
        d.folders.insert(
            vassal.clone(),
            Folder {
                dir: dir.clone(),
                sockets: HashMap::new(),
            },
        );
        Ok((dir, None))
    }

    /// The socket `socket` of `vassal`, opened (`O_PATH`, checked) now or before; whether it
    /// was kept from before.
    fn socket(
        &self,
        run_dir: &Path,
        vassal: &Arc<str>,
        socket: &str,
    ) -> Result<(Arc<OwnedFd>, bool), OpenError> {
        let (dir, kept) = self
            .folder(run_dir, vassal, socket)
            .map_err(OpenError::Folder)?;
        if let Some(k) = kept {
            if k.still_named(&dir, socket) {
                return Ok((k.fd, true));
            }
            self.forget(vassal);
            return self.socket(run_dir, vassal, socket);
        }
        let opened =
            beneath::open_socket_nofollow(dir.as_fd(), socket).map_err(OpenError::Socket)?;
        let st = rustix::fs::fstat(&opened).map_err(|e| {
            OpenError::Folder(io::Error::new(
                io::Error::from(e).kind(),
                format!("cannot stat `{socket}`: {e}"),
            ))
        })?;
        let kept = Kept {
            fd: Arc::new(opened),
            dev: st.st_dev,
            ino: st.st_ino,
        };
        let mut d = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = d.folders.get_mut(vassal)
            && Arc::ptr_eq(&f.dir, &dir)
        {
            f.sockets.insert(socket.into(), kept.clone());
        }
        Ok((kept.fd, false))
    }

    /// Forgets the folder of `vassal` and its sockets (they are opened again next time).
    fn forget(&self, vassal: &str) {
        let mut d = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        d.folders.remove(vassal);
    }
}

/// Whether an error means nobody listens there (now).
fn refused_kind(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
    )
}

/// Classifies a failed vassal connect.
fn vassal_error(node: &str, e: &BeneathError) -> ConnectError {
    let node = node.to_owned();
    match e {
        BeneathError::Connect { source, .. } if source.kind() == io::ErrorKind::WouldBlock => {
            ConnectError::Busy { node }
        }
        BeneathError::Connect { source, .. } | BeneathError::Open { source, .. }
            if refused_kind(source) =>
        {
            ConnectError::Refused {
                node,
                reason: e.to_string(),
            }
        }
        _ => ConnectError::Failed {
            node,
            reason: e.to_string(),
        },
    }
}

/// Connects to a vassal's socket (synchronous system calls, none of which waits). A socket
/// kept from before that fails (its vassal restarted: a new socket under the name) is opened
/// again, once.
fn connect_vassal(
    dirs: &Dirs,
    run_dir: &Path,
    vassal: &Arc<str>,
    socket: &str,
    uid: u32,
) -> Result<std::os::unix::net::UnixStream, ConnectError> {
    let node = format!("{vassal}/{socket}");
    loop {
        let (opened, kept) = match dirs.socket(run_dir, vassal, socket) {
            Ok(x) => x,
            Err(OpenError::Folder(e)) => {
                let reason = e.to_string();
                return Err(if refused_kind(&e) {
                    ConnectError::Refused { node, reason }
                } else {
                    ConnectError::Failed { node, reason }
                });
            }
            Err(OpenError::Socket(e)) => {
                dirs.forget(vassal);
                return Err(vassal_error(&node, &e));
            }
        };
        match beneath::connect_opened_nonblocking(opened.as_fd(), socket, uid) {
            Ok(s) => return Ok(s),
            Err(e) => {
                let err = vassal_error(&node, &e);
                if matches!(err, ConnectError::Busy { .. }) {
                    return Err(err);
                }
                dirs.forget(vassal);
                if !kept {
                    return Err(err);
                }
            }
        }
    }
}

/// Connects to `target`.
pub(crate) async fn connect(
    dirs: &Dirs,
    run_dir: &Path,
    target: &Target,
    timeout: Duration,
) -> Result<Backend, ConnectError> {
    let io_err = |e: io::Error| {
        let node = target.to_string();
        if refused_kind(&e) {
            ConnectError::Refused {
                node,
                reason: e.to_string(),
            }
        } else if e.kind() == io::ErrorKind::WouldBlock {
            ConnectError::Busy { node }
        } else {
            ConnectError::Failed {
                node,
                reason: e.to_string(),
            }
        }
    };
    match target {
        Target::Vassal {
            vassal,
            socket,
            uid,
        } => {
            let s = connect_vassal(dirs, run_dir, vassal, socket, *uid)?;
            Ok(Backend::Unix(UnixStream::from_std(s).map_err(io_err)?))
        }
        Target::Unix(path) => Ok(Backend::Unix(
            UnixStream::connect(path).await.map_err(io_err)?,
        )),
        Target::Tcp(addr) => match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                Ok(Backend::Tcp(s))
            }
            Ok(Err(e)) => Err(io_err(e)),
            Err(_) => Err(ConnectError::Failed {
                node: target.to_string(),
                reason: "the connection timed out".into(),
            }),
        },
    }
}

/// A connection to a node.
#[derive(Debug)]
pub(crate) enum Backend {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Backend {
    /// Splits into halves that can be used at once by two tasks.
    pub(crate) fn split(self) -> (BackendRead, BackendWrite) {
        match self {
            Backend::Unix(s) => {
                let (r, w) = s.into_split();
                (BackendRead::Unix(r), BackendWrite::Unix(w))
            }
            Backend::Tcp(s) => {
                let (r, w) = s.into_split();
                (BackendRead::Tcp(r), BackendWrite::Tcp(w))
            }
        }
    }

    /// Joins halves made by [`Backend::split`].
    pub(crate) fn reunite(r: BackendRead, w: BackendWrite) -> Option<Backend> {
        match (r, w) {
            (BackendRead::Unix(r), BackendWrite::Unix(w)) => r.reunite(w).ok().map(Backend::Unix),
            (BackendRead::Tcp(r), BackendWrite::Tcp(w)) => r.reunite(w).ok().map(Backend::Tcp),
            _ => None,
        }
    }
}

macro_rules! delegate_read {
    ($t:ty) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
                    Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
                }
            }
        }
    };
}

macro_rules! delegate_write {
    ($t:ty) => {
        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
                    Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
                }
            }
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    Self::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                    Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                }
            }
            fn is_write_vectored(&self) -> bool {
                true
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Unix(s) => Pin::new(s).poll_flush(cx),
                    Self::Tcp(s) => Pin::new(s).poll_flush(cx),
                }
            }
            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
                    Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
                }
            }
        }
    };
}

/// The read half of a [`Backend`].
#[derive(Debug)]
pub(crate) enum BackendRead {
    Unix(unix::OwnedReadHalf),
    Tcp(tcp::OwnedReadHalf),
}

/// The write half of a [`Backend`].
#[derive(Debug)]
pub(crate) enum BackendWrite {
    Unix(unix::OwnedWriteHalf),
    Tcp(tcp::OwnedWriteHalf),
}

impl BackendWrite {
    /// Drops this half without shutting the stream's write side: the node sees no end of the
    /// request (a uwsgi node reads its body by length) while its answer is read.
    pub(crate) fn forget(self) {
        match self {
            BackendWrite::Unix(w) => w.forget(),
            BackendWrite::Tcp(w) => w.forget(),
        }
    }
}

delegate_read!(Backend);
delegate_write!(Backend);
delegate_read!(BackendRead);
delegate_write!(BackendWrite);
