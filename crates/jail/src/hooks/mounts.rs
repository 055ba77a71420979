//! The `mount` and `umount` hooks, on the primitives of [`crate::mount`]: every target and
//! source is opened without following a symlink in any component (a symlink as the last one
//! is refused too), and the mount goes onto that descriptor.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use liege_sys::mount::{
    self as sys, ATTR_ATIME_MASK, ATTR_NOATIME, ATTR_NODEV, ATTR_NOEXEC, ATTR_NOSUID, ATTR_RDONLY,
    Propagation,
};
use rustix::fs::FileType;
use rustix::io::Errno;
use rustix::mount::{FsPickFlags, MoveMountFlags, UnmountFlags};

use super::files;
use super::parse::{Mount, MountWhat, Umount};
use crate::mount::{Attr, MountError, bind_fd, new_fs, open_nofollow};

/// `path` opened `O_PATH` without following a symlink anywhere, refused (`ELOOP`) when it is
/// itself a symlink: a mount never goes onto, nor comes from, a customer's link.
fn open_node(path: &Path) -> Result<OwnedFd, MountError> {
    let fd = open_nofollow(path)?;
    let st = rustix::fs::fstat(&fd)
        .map_err(|e| MountError::new(format!("opening {}", path.display()), e))?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        return Err(MountError::new(
            format!("opening {}", path.display()),
            Errno::LOOP,
        ));
    }
    Ok(fd)
}

/// The flag names of `attrs`, for messages.
fn names(attrs: u64) -> String {
    let names: Vec<&str> = [
        (ATTR_RDONLY, "ro"),
        (ATTR_NOSUID, "nosuid"),
        (ATTR_NODEV, "nodev"),
        (ATTR_NOEXEC, "noexec"),
        (ATTR_NOATIME, "noatime"),
    ]
    .into_iter()
    .filter(|(a, _)| attrs & a != 0)
    .map(|(_, n)| n)
    .collect();
    if names.is_empty() {
        "rw".to_string()
    } else {
        names.join(",")
    }
}

/// `mount_setattr` on the mount `fd` is the root of: sets `set`, clears `clear`. Setting
/// `noatime` clears the other atime modes first, as the kernel requires.
fn set_attrs(
    fd: BorrowedFd<'_>,
    shown: &str,
    set: u64,
    mut clear: u64,
    propagation: Option<Propagation>,
    recursive: bool,
) -> Result<(), MountError> {
    if set & ATTR_NOATIME != 0 {
        clear |= ATTR_ATIME_MASK;
    }
    sys::mount_setattr(fd, recursive, set, clear, propagation).map_err(|e| {
        let what = match propagation {
            Some(p) => format!("setting {} and {p:?} propagation on {shown}", names(set)),
            None => format!("setting {} on {shown}", names(set)),
        };
        MountError::new(what, e)
    })
}

/// The same flags as [`Attr`], for a new filesystem.
fn attr(bits: u64) -> Attr {
    [
        (ATTR_RDONLY, Attr::RDONLY),
        (ATTR_NOSUID, Attr::NOSUID),
        (ATTR_NODEV, Attr::NODEV),
        (ATTR_NOEXEC, Attr::NOEXEC),
        (ATTR_NOATIME, Attr::NOATIME),
    ]
    .into_iter()
    .filter(|(b, _)| bits & b != 0)
    .fold(Attr::NONE, |acc, (_, a)| acc | a)
}

/// Runs a `mount` hook.
pub(super) fn mount(m: &Mount) -> Result<(), MountError> {
    let shown = m.target.display().to_string();
    let target = open_node(&m.target)?;
    match &m.what {
        MountWhat::New { fstype, source } => {
            let options: Vec<(&str, Option<&str>)> = m
                .options
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref()))
                .collect();
            let fs = new_fs(fstype, source.as_deref(), &options, attr(m.attrs))?;
            fs.attach(target.as_fd(), &m.target)?;
            propagate_attached(m)
        }
        MountWhat::Bind { source } => {
            let from = open_node(source)?;
            let tree = bind_fd(from.as_fd(), m.recursive, &source.display().to_string())?;
            // The flags go on the detached tree, before anyone can see it writable: unlike
            // mount(2), whose first bind ignores them.
            if m.attrs != 0 {
                set_attrs(
                    tree.as_fd(),
                    &source.display().to_string(),
                    m.attrs,
                    0,
                    None,
                    m.recursive,
                )?;
            }
            tree.attach(target.as_fd(), &m.target)?;
            propagate_attached(m)
        }
        MountWhat::Remount => {
            if !m.options.is_empty() {
                reconfigure(target.as_fd(), &shown, &m.options)?;
            }
            // Read-only is set or cleared; nosuid, nodev, noexec are only ever added.
            let clear = if m.attrs & ATTR_RDONLY == 0 {
                ATTR_RDONLY
            } else {
                0
            };
            set_attrs(
                target.as_fd(),
                &shown,
                m.attrs,
                clear,
                m.propagation,
                m.recursive,
            )
        }
        MountWhat::Move { source } => {
            let from = open_node(source)?;
            rustix::mount::move_mount(
                &from,
                "",
                &target,
                "",
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
            )
            .map_err(|e| MountError::new(format!("moving {} to {shown}", source.display()), e))
        }
        MountWhat::Propagation => set_attrs(
            target.as_fd(),
            &shown,
            m.attrs,
            0,
            m.propagation,
            m.recursive,
        ),
    }
}

/// The propagation flag of a new mount or bind, set once it is attached (the kernel changes
/// the propagation of attached mounts only): the target, opened again, is its root now.
fn propagate_attached(m: &Mount) -> Result<(), MountError> {
    let Some(p) = m.propagation else {
        return Ok(());
    };
    let root = open_node(&m.target)?;
    set_attrs(
        root.as_fd(),
        &m.target.display().to_string(),
        0,
        0,
        Some(p),
        m.recursive,
    )
}

/// A remount's DATA: the filesystem's options changed (`fspick` + `fsconfig`).
fn reconfigure(
    target: BorrowedFd<'_>,
    shown: &str,
    options: &[(String, Option<String>)],
) -> Result<(), MountError> {
    let what = || format!("reconfiguring the filesystem of {shown}");
    let fs = rustix::mount::fspick(
        target,
        "",
        FsPickFlags::FSPICK_EMPTY_PATH | FsPickFlags::FSPICK_CLOEXEC,
    )
    .map_err(|e| MountError::new(what(), e))?;
    for (key, value) in options {
        match value {
            Some(v) => rustix::mount::fsconfig_set_string(&fs, key.as_str(), v.as_str()),
            None => rustix::mount::fsconfig_set_flag(&fs, key.as_str()),
        }
        .map_err(|e| {
            let o = value
                .as_ref()
                .map_or_else(|| key.clone(), |v| format!("{key}={v}"));
            MountError::new(format!("{}: option {o}", what()), e)
        })?;
    }
    rustix::mount::fsconfig_reconfigure(&fs).map_err(|e| MountError::new(what(), e))
}

/// Runs an `umount` hook: from the target's folder, opened without following a symlink, the
/// last name is unmounted with `UMOUNT_NOFOLLOW`. umount2 takes no descriptor, so the working
/// folder is moved there for the call and back after it (the master is single-threaded).
pub(super) fn umount(u: &Umount) -> Result<(), MountError> {
    let what = || format!("unmounting {}", u.target.display());
    let fail = |e: io::Error| MountError::new(what(), e);
    let (dir, name) = files::parent(&u.target).map_err(fail)?;
    let mut flags = UnmountFlags::NOFOLLOW;
    if u.detach {
        flags |= UnmountFlags::DETACH;
    }
    if u.force {
        flags |= UnmountFlags::FORCE;
    }
    let cwd = files::save_cwd().map_err(fail)?;
    rustix::process::fchdir(&dir).map_err(|e| fail(e.into()))?;
    let result = rustix::mount::unmount(name, flags);
    files::restore_cwd(&cwd)
        .map_err(|e| MountError::new(format!("{}: going back to the working folder", what()), e))?;
    result.map_err(|e| fail(e.into()))
}
