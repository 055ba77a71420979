//! The listening sockets. The master binds every one before it spawns a worker, keeps them open
//! for the life of the instance (so no connection is refused during a reload: the listen queue
//! outlives every worker), and hands them to each worker it execs. They stay close-on-exec in
//! the master; the spawn clears that flag only around the exec of a worker.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Gid, Mode, Uid};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::addr::Addr;
use crate::owner::Owner;

/// A bound, listening socket.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) addr: Addr,
    pub(crate) fd: OwnedFd,
    /// The socket file this master created, to remove with `vacuum`.
    pub(crate) created: Option<PathBuf>,
}

/// A socket could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot create a socket for {addr}: {source}")]
    Create { addr: Addr, source: Errno },
    #[error("cannot bind to {addr}: {source}")]
    Bind { addr: Addr, source: Errno },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: Addr, source: Errno },
    #[error("`{path}` exists and is not a socket: refusing to replace it")]
    NotASocket { path: PathBuf },
    #[error("cannot remove the old socket `{path}`: {source}")]
    Unlink {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot change the mode of `{path}` to {mode:o}: {source}")]
    Chmod {
        path: PathBuf,
        mode: u32,
        source: Errno,
    },
    #[error("cannot change the owner of `{path}`: {source}")]
    Chown { path: PathBuf, source: Errno },
}

/// How unix socket files are set up.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FileSetup {
    pub(crate) mode: Option<u32>,
    pub(crate) owner: Option<Owner>,
}

/// Binds `addr` and listens with `backlog`. A TCP socket gets `SO_REUSEADDR`; a unix socket
/// file left by an earlier run (a socket, nothing else) is removed first, and the new one gets
/// `setup`'s mode and owner.
pub(crate) fn bind(addr: &Addr, backlog: i32, setup: FileSetup) -> Result<Bound, BindError> {
    let create = |family| {
        rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None).map_err(
            |source| BindError::Create {
                addr: addr.clone(),
                source,
            },
        )
    };
    let bind_err = |source| BindError::Bind {
        addr: addr.clone(),
        source,
    };
    let (fd, created) = match addr {
        Addr::Tcp(sa) => {
            let family = if sa.is_ipv4() {
                AddressFamily::INET
            } else {
                AddressFamily::INET6
            };
            let fd = create(family)?;
            rustix::net::sockopt::set_socket_reuseaddr(&fd, true).map_err(bind_err)?;
            rustix::net::bind(&fd, sa).map_err(bind_err)?;
            (fd, None)
        }
        Addr::Unix(path) => {
            remove_stale(path)?;
            let fd = create(AddressFamily::UNIX)?;
            let ua = SocketAddrUnix::new(path.as_path()).map_err(bind_err)?;
            rustix::net::bind(&fd, &ua).map_err(bind_err)?;
            (fd, Some(path.clone()))
        }
        Addr::Abstract(name) => {
            let fd = create(AddressFamily::UNIX)?;
            let ua = SocketAddrUnix::new_abstract_name(name.as_bytes()).map_err(bind_err)?;
            rustix::net::bind(&fd, &ua).map_err(bind_err)?;
            (fd, None)
        }
    };
    let bound = Bound {
        addr: addr.clone(),
        fd,
        created,
    };
    if let Some(path) = &bound.created {
        // From here on the file is ours: remove it again if its setup fails.
        if let Err(e) = set_up_file(path, setup) {
            vacuum(std::slice::from_ref(&bound));
            return Err(e);
        }
    }
    if let Err(source) = rustix::net::listen(&bound.fd, backlog) {
        vacuum(std::slice::from_ref(&bound));
        return Err(BindError::Listen {
            addr: addr.clone(),
            source,
        });
    }
    Ok(bound)
}

/// Removes a socket file an earlier run left; anything else at `path` is an error.
fn remove_stale(path: &Path) -> Result<(), BindError> {
    match fs_err::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            fs_err::remove_file(path).map_err(|source| BindError::Unlink {
                path: path.to_path_buf(),
                source,
            })
        }
        Ok(_) => Err(BindError::NotASocket {
            path: path.to_path_buf(),
        }),
        Err(_) => Ok(()),
    }
}

fn set_up_file(path: &Path, setup: FileSetup) -> Result<(), BindError> {
    if let Some(mode) = setup.mode {
        rustix::fs::chmod(path, Mode::from_raw_mode(mode)).map_err(|source| BindError::Chmod {
            path: path.to_path_buf(),
            mode,
            source,
        })?;
    }
    if let Some(owner) = setup.owner {
        rustix::fs::chown(
            path,
            owner.uid.map(Uid::from_raw),
            owner.gid.map(Gid::from_raw),
        )
        .map_err(|source| BindError::Chown {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// Removes the socket files the master created (`vacuum`), if they are still sockets.
pub(crate) fn vacuum(bound: &[Bound]) {
    for path in bound.iter().filter_map(|b| b.created.as_ref()) {
        if fs_err::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = fs_err::remove_file(path);
        }
    }
}

/// How many connections wait in the accept queue of a TCP socket, and its size; `(0, 0)` for
/// a unix socket (the kernel does not say).
pub(crate) fn queue(bound: &Bound, backlog: i32) -> (u64, u64) {
    match bound.addr {
        Addr::Tcp(_) => liege_sys::sock::listen_queue(bound.fd.as_fd())
            .map_or((0, 0), |q| (u64::from(q.len), u64::from(q.max))),
        _ => (0, u64::try_from(backlog).unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn unix_socket_gets_its_mode_replaces_a_stale_one_and_is_vacuumed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let addr = Addr::Unix(path.clone());
        let setup = FileSetup {
            mode: Some(0o660),
            owner: Some(Owner {
                uid: None,
                gid: Some(0),
            }),
        };
        let first = bind(&addr, 16, setup).unwrap();
        let mode = fs_err::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        drop(first);
        // The file stays after the descriptor is closed; a new bind replaces it.
        let second = bind(&addr, 16, FileSetup::default()).unwrap();
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        vacuum(std::slice::from_ref(&second));
        assert!(fs_err::symlink_metadata(&path).is_err());
    }

    #[test]
    fn a_file_that_is_no_socket_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        fs_err::write(&path, "keep me").unwrap();
        let e = bind(&Addr::Unix(path.clone()), 16, FileSetup::default()).unwrap_err();
        assert!(matches!(e, BindError::NotASocket { .. }), "{e}");
        assert_eq!(fs_err::read_to_string(&path).unwrap(), "keep me");
    }

    #[test]
    fn tcp_socket_listens_with_its_backlog() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sa = free.local_addr().unwrap();
        drop(free);
        let b = bind(&Addr::Tcp(sa), 7, FileSetup::default()).unwrap();
        let flags = rustix::io::fcntl_getfd(&b.fd).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
        let _c = std::net::TcpStream::connect(sa).unwrap();
        let (len, max) = queue(&b, 7);
        assert_eq!((len, max), (1, 7));
        // Bound: a second bind of the same port fails.
        assert!(matches!(
            bind(&Addr::Tcp(sa), 7, FileSetup::default()),
            Err(BindError::Bind { .. })
        ));
    }
}
