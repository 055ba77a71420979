//! The emperor's run dir (`emperor-run-dir`, default /run/liege) and the vassals' folders in it
//! (ARCHITECTURE.md decision 4):
//!
//! - `RUN/emperor`: the control sockets, state files and log FIFOs; a folder of the emperor's
//!   uid (root), mode 0700, checked through a descriptor opened without following links;
//! - `RUN/vassals`: the emperor's (root's) folder, writable by no one else, holding
//! - `RUN/vassals/NAME`: one folder per vassal, given to the vassal's uid (the jail binds it at
//!   the vassal's /run, where it binds its sockets). The customer can write it, so the emperor
//!   touches it only through descriptors: made with `mkdirat` in `RUN/vassals`, opened
//!   `O_NOFOLLOW`, chowned and chmodded through the descriptor, removed with
//!   [`liege_sys::beneath::remove_tree_beneath`].

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use liege_sys::beneath::{self, BeneathError};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Uid};
use rustix::io::Errno;

/// The mode of a vassal's folder: its owner writes, the host side (the router, nginx) enters.
pub(crate) const VASSAL_DIR_MODE: u32 = 0o755;

/// A folder of the run dir that is not what the emperor needs.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error(
        "{} is owned by uid {uid} with mode {mode:04o}: it must be a folder of uid {expected} that {rule}",
        path.display()
    )]
    Unsafe {
        path: PathBuf,
        uid: u32,
        mode: u32,
        expected: u32,
        rule: &'static str,
    },
    #[error("cannot remove {}, which was {was}: {source}", path.display())]
    Replace {
        path: PathBuf,
        was: String,
        source: BeneathError,
    },
    #[error("cannot make {}: {source}", path.display())]
    Make { path: PathBuf, source: io::Error },
    #[error("cannot give {} to uid {uid}: {source}", path.display())]
    Chown {
        path: PathBuf,
        uid: u32,
        source: io::Error,
    },
    #[error("cannot set the mode of {}: {source}", path.display())]
    Chmod { path: PathBuf, source: io::Error },
    #[error("cannot remove {}: {source}", path.display())]
    Remove { path: PathBuf, source: BeneathError },
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Opens the folder `name` of the run dir `run` (shown as `path`) without following links and
/// checks it belongs to the emperor's uid and that none of the `forbidden` mode bits is set
/// (`rule` says which in words).
fn open_own(
    run: BorrowedFd<'_>,
    name: &str,
    path: &Path,
    forbidden: u32,
    rule: &'static str,
) -> Result<OwnedFd, RunDirError> {
    let fd = beneath::open_dir_nofollow(run, name).map_err(|source| RunDirError::Open {
        path: path.to_owned(),
        source,
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| RunDirError::Open {
        path: path.to_owned(),
        source: e.into(),
    })?;
    let mode = st.st_mode & 0o7777;
    if st.st_uid != euid() || mode & forbidden != 0 {
        return Err(RunDirError::Unsafe {
            path: path.to_owned(),
            uid: st.st_uid,
            mode,
            expected: euid(),
            rule,
        });
    }
    Ok(fd)
}

/// Checks that the run dir `run` (shown as `path`) is the emperor's own and that no one else
/// may write it: whoever could would rename `RUN/emperor` away and put their own in its place.
pub(crate) fn check_run_dir(run: BorrowedFd<'_>, path: &Path) -> Result<(), RunDirError> {
    let st = rustix::fs::fstat(run).map_err(|e| RunDirError::Open {
        path: path.to_owned(),
        source: e.into(),
    })?;
    let mode = st.st_mode & 0o7777;
    if st.st_uid != euid() || mode & 0o022 != 0 {
        return Err(RunDirError::Unsafe {
            path: path.to_owned(),
            uid: st.st_uid,
            mode,
            expected: euid(),
            rule: "no one else may write (no group or other write bit)",
        });
    }
    Ok(())
}

/// `RUN/emperor`, checked: the emperor's own folder that no one else may enter (0700).
pub(crate) fn open_control_dir(run: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, RunDirError> {
    open_own(
        run,
        "emperor",
        path,
        0o077,
        "no one else may enter (mode 0700)",
    )
}

/// `RUN/vassals`, checked: the emperor's own folder that no one else may write.
pub(crate) fn open_vassals_dir(run: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, RunDirError> {
    open_own(
        run,
        "vassals",
        path,
        0o022,
        "no one else may write (no group or other write bit)",
    )
}

/// What [`prepare`] found in place of the vassal's folder and removed, for the log.
fn describe(st: &rustix::fs::Stat) -> String {
    let t = FileType::from_raw_mode(st.st_mode);
    match t {
        FileType::Directory => format!("a folder of uid {}", st.st_uid),
        FileType::Symlink => "a symbolic link".to_owned(),
        FileType::Fifo => "a FIFO".to_owned(),
        FileType::Socket => "a socket".to_owned(),
        FileType::RegularFile => "a regular file".to_owned(),
        _ => format!("a file of mode {:o}", st.st_mode),
    }
}

/// The vassal's folder, ready: its descriptor, and what was there before and was removed.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// An `O_PATH | O_DIRECTORY` descriptor of it, close-on-exec.
    pub(crate) fd: OwnedFd,
    /// What stood in its place (not a folder of the vassal's uid) and was removed.
    pub(crate) replaced: Option<String>,
}

/// Makes the folder `name` of `vassals` (`RUN/vassals`, shown as `path` = `RUN/vassals/NAME`)
/// for a vassal running as `uid` (`gid` when given), without following any link: an existing
/// folder of `uid` is kept with what it holds; anything else in its place (a symlink, a file,
/// a folder of another uid) is removed with `remove_tree_beneath` and the folder made again
/// with `mkdirat`; then it is opened `O_NOFOLLOW`, chowned and chmodded
/// ([`VASSAL_DIR_MODE`]) through that descriptor.
pub(crate) fn prepare(
    vassals: BorrowedFd<'_>,
    name: &str,
    path: &Path,
    uid: u32,
    gid: Option<u32>,
) -> Result<Prepared, RunDirError> {
    let make = || {
        rustix::fs::mkdirat(vassals, name, Mode::from_raw_mode(0o700)).map_err(|e| {
            RunDirError::Make {
                path: path.to_owned(),
                source: e.into(),
            }
        })
    };
    let mut replaced = None;
    match rustix::fs::statat(vassals, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st)
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory && st.st_uid == uid => {}
        Ok(st) => {
            let was = describe(&st);
            beneath::remove_tree_beneath(vassals, name).map_err(|source| RunDirError::Replace {
                path: path.to_owned(),
                was: was.clone(),
                source,
            })?;
            make()?;
            replaced = Some(was);
        }
        Err(Errno::NOENT) => make()?,
        Err(e) => {
            return Err(RunDirError::Open {
                path: path.to_owned(),
                source: e.into(),
            });
        }
    }
    let open_error = |e: Errno| RunDirError::Open {
        path: path.to_owned(),
        source: e.into(),
    };
    // Readable, for fchown and fchmod (an O_PATH descriptor allows neither).
    let dir = rustix::fs::openat(
        vassals,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(open_error)?;
    rustix::fs::fchown(&dir, Some(Uid::from_raw(uid)), gid.map(Gid::from_raw)).map_err(|e| {
        RunDirError::Chown {
            path: path.to_owned(),
            uid,
            source: e.into(),
        }
    })?;
    rustix::fs::fchmod(&dir, Mode::from_raw_mode(VASSAL_DIR_MODE)).map_err(|e| {
        RunDirError::Chmod {
            path: path.to_owned(),
            source: e.into(),
        }
    })?;
    let fd = rustix::fs::openat(
        dir.as_fd(),
        ".",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(open_error)?;
    Ok(Prepared { fd, replaced })
}

/// Removes the vassal's folder `name` of `vassals` (shown as `path`) and everything in it,
/// following no link its owner planted there.
pub(crate) fn remove(vassals: BorrowedFd<'_>, name: &str, path: &Path) -> Result<(), RunDirError> {
    beneath::remove_tree_beneath(vassals, name).map_err(|source| RunDirError::Remove {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::tests::{NOBODY, assert_root, open_tempdir};
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    fn open(path: &Path) -> OwnedFd {
        rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    fn mkdir(path: &Path, mode: u32) {
        fs_err::create_dir(path).unwrap();
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_control_folder_must_be_the_emperors_alone() {
        let tmp = open_tempdir();
        let run = open(tmp.path());
        let path = tmp.path().join("emperor");
        mkdir(&path, 0o700);
        assert!(open_control_dir(run.as_fd(), &path).is_ok());
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o750)).unwrap();
        let e = open_control_dir(run.as_fd(), &path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} is owned by uid {u} with mode 0750: it must be a folder of uid {u} that no one else may enter (mode 0700)",
                path.display(),
                u = euid()
            )
        );
        // A symlink to a folder that would pass is refused, not followed.
        fs_err::remove_dir(&path).unwrap();
        let real = tmp.path().join("real");
        mkdir(&real, 0o700);
        std::os::unix::fs::symlink(&real, &path).unwrap();
        let e = open_control_dir(run.as_fd(), &path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cannot open {}: `emperor` is a symbolic link, which is never followed",
                path.display()
            )
        );
    }

    #[test]
    fn the_run_dir_must_not_be_writable_by_others() {
        let tmp = open_tempdir();
        let run = open(tmp.path());
        assert!(check_run_dir(run.as_fd(), tmp.path()).is_ok());
        fs_err::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_run_dir(run.as_fd(), tmp.path()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} is owned by uid {u} with mode 0777: it must be a folder of uid {u} that no one else may write (no group or other write bit)",
                tmp.path().display(),
                u = euid()
            )
        );
    }

    #[test]
    fn the_vassals_folder_must_not_be_writable_by_others() {
        let tmp = open_tempdir();
        let run = open(tmp.path());
        let path = tmp.path().join("vassals");
        mkdir(&path, 0o755);
        assert!(open_vassals_dir(run.as_fd(), &path).is_ok());
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(matches!(
            open_vassals_dir(run.as_fd(), &path),
            Err(RunDirError::Unsafe { mode: 0o1777, .. })
        ));
    }

    #[test]
    fn a_vassal_folder_is_made_for_its_uid_and_an_impostor_is_replaced() {
        assert_root();
        let tmp = open_tempdir();
        let vassals_path = tmp.path().join("vassals");
        mkdir(&vassals_path, 0o755);
        let outside = tmp.path().join("outside");
        mkdir(&outside, 0o755);
        fs_err::write(outside.join("precious"), "keep me").unwrap();
        let vassals = open(&vassals_path);
        let path = vassals_path.join("app");

        // Made fresh.
        let p = prepare(vassals.as_fd(), "app", &path, NOBODY, Some(NOBODY)).unwrap();
        assert!(p.replaced.is_none());
        let md = fs_err::symlink_metadata(&path).unwrap();
        assert!(md.is_dir());
        assert_eq!(
            (md.uid(), md.gid(), md.mode() & 0o7777),
            (NOBODY, NOBODY, 0o755)
        );
        // The descriptor is the folder, O_PATH.
        let st = rustix::fs::fstat(&p.fd).unwrap();
        assert_eq!((st.st_ino, st.st_dev), (md.ino(), md.dev()));
        let fl = rustix::fs::fcntl_getfl(&p.fd).unwrap();
        assert!(fl.contains(OFlags::PATH), "{fl:?}");

        // Kept, with what it holds, when it is already the vassal's folder (its mode fixed).
        fs_err::write(path.join("kept"), "").unwrap();
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
        let p = prepare(vassals.as_fd(), "app", &path, NOBODY, Some(NOBODY)).unwrap();
        assert!(p.replaced.is_none());
        assert!(path.join("kept").exists());
        let md = fs_err::symlink_metadata(&path).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o755);

        // Another uid's folder (the vassal's uid changed): removed and made again.
        let p = prepare(vassals.as_fd(), "app", &path, 1000, None).unwrap();
        assert_eq!(
            p.replaced.as_deref(),
            Some(format!("a folder of uid {NOBODY}").as_str())
        );
        assert!(!path.join("kept").exists());
        assert_eq!(fs_err::symlink_metadata(&path).unwrap().uid(), 1000);

        // A symlink to an outside folder: the link goes, the outside folder stays as it was,
        // and is given to no one.
        fs_err::remove_dir(&path).unwrap();
        std::os::unix::fs::symlink(&outside, &path).unwrap();
        let p = prepare(vassals.as_fd(), "app", &path, NOBODY, Some(NOBODY)).unwrap();
        assert_eq!(p.replaced.as_deref(), Some("a symbolic link"));
        let md = fs_err::symlink_metadata(&path).unwrap();
        assert!(md.is_dir() && md.uid() == NOBODY);
        let out = fs_err::metadata(&outside).unwrap();
        assert_eq!((out.uid(), out.mode() & 0o7777), (0, 0o755));
        assert_eq!(
            fs_err::read_to_string(outside.join("precious")).unwrap(),
            "keep me"
        );

        // Removal through the descriptor: a planted symlink is removed, not followed.
        std::os::unix::fs::symlink(&outside, path.join("out")).unwrap();
        remove(vassals.as_fd(), "app", &path).unwrap();
        assert!(fs_err::symlink_metadata(&path).is_err());
        assert!(outside.join("precious").exists());
    }
}
