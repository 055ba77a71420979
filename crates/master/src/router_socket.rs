//! The socket a master run by hand makes for its own router (`http` without `http-to`): an
//! HTTP socket file, `TMPDIR/liege-router-PID/http.sock`, in a folder that only the router's
//! group may search (`0710`, owned by the master's user), the socket itself `0660` to that
//! group. Other local users cannot reach the workers through it, as they could a port on
//! loopback; and a unix connect per request costs far less than a TCP one (the router does
//! one per request).
//!
//! The path depends on the master's pid alone, so a reload makes the same plan.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use rustix::fs::{Gid, Mode};

use crate::owner::Owner;
use crate::sockets::FileSetup;

/// The socket's name in [`dir`].
pub(crate) const FILE: &str = "http.sock";

/// The folder of this master's router socket.
pub(crate) fn dir() -> PathBuf {
    std::env::temp_dir().join(format!("liege-router-{}", std::process::id()))
}

/// The folder, while it exists: dropping it removes the socket and the folder.
#[derive(Debug)]
pub(crate) struct Dir {
    path: PathBuf,
}

impl Drop for Dir {
    fn drop(&mut self) {
        let sock = self.path.join(FILE);
        if fs_err::symlink_metadata(&sock).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = fs_err::remove_file(&sock);
        }
        let _ = fs_err::remove_dir(&self.path);
    }
}

/// Makes [`dir`], searchable by `router_gid` (when the router runs as a user of its own). A
/// folder of that name left by an earlier master of this pid is taken over if it is this
/// user's and no one else may write in it; anything else there is refused.
pub(crate) fn make_dir(router_gid: Option<u32>) -> io::Result<Dir> {
    let path = dir();
    match rustix::fs::mkdir(&path, Mode::from_raw_mode(0o700)) {
        Ok(()) => {}
        Err(rustix::io::Errno::EXIST) => {
            let m = fs_err::symlink_metadata(&path)?;
            let euid = rustix::process::geteuid().as_raw();
            if !m.file_type().is_dir() || m.uid() != euid || m.mode() & 0o022 != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "`{}` exists and is not a folder of uid {euid} that only it may write: remove it",
                        path.display()
                    ),
                ));
            }
        }
        Err(e) => {
            return Err(io::Error::new(
                io::Error::from(e).kind(),
                format!("cannot make `{}`: {e}", path.display()),
            ));
        }
    }
    let dir = Dir { path };
    if let Some(gid) = router_gid {
        // Opened without following a link: /tmp is everyone's.
        let fd = rustix::fs::open(
            &dir.path,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::NOFOLLOW
                | rustix::fs::OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        rustix::fs::fchown(&fd, None, Some(Gid::from_raw(gid)))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o710))?;
    }
    Ok(dir)
}

/// How the socket file is set up: read and written by the router's group, or by this user
/// alone when the router runs as this user.
pub(crate) fn file_setup(router_gid: Option<u32>) -> FileSetup {
    match router_gid {
        Some(gid) => FileSetup {
            mode: Some(0o660),
            owner: Some(Owner {
                uid: None,
                gid: Some(gid),
            }),
        },
        None => FileSetup {
            mode: Some(0o600),
            owner: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_is_made_for_the_routers_group_and_removed() {
        let gid = 4242;
        let d = make_dir(Some(gid)).unwrap();
        let m = fs_err::symlink_metadata(dir()).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o710);
        assert_eq!(m.gid(), gid);
        // A socket file in it goes with it.
        std::os::unix::net::UnixListener::bind(dir().join(FILE)).unwrap();
        // A second master of this pid (a reload) takes it over.
        let again = make_dir(Some(gid)).unwrap();
        std::mem::forget(again);
        drop(d);
        assert!(fs_err::symlink_metadata(dir()).is_err());
    }
}
