//! The mount primitives of the jail. Every target is a descriptor opened without following a
//! symlink in any component of its path, and every mount goes onto that descriptor
//! (`move_mount`), never onto a path the kernel would resolve again: a customer who plants a
//! symlink in a folder it can write (its home, its /run) makes the mount fail, and never
//! redirects it. New filesystems come from `fsopen`/`fsmount` and binds from `open_tree`, both
//! detached ([`Detached`]) until they are attached where they belong, with their flags
//! (`MOUNT_ATTR_*`) set first.

use std::fmt;
use std::io;
use std::ops::BitOr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};

use liege_sys::mount::{self as sys, Propagation};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountPropagationFlags, MoveMountFlags,
    OpenTreeFlags, UnmountFlags,
};

/// A mount step failed: what it was doing, and the kernel's answer.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct MountError {
    /// What was being done, with the paths involved (`mounting tmpfs on /tmp`).
    pub what: String,
    /// Why it failed.
    pub source: io::Error,
}

impl MountError {
    pub(crate) fn new(what: impl Into<String>, source: impl Into<io::Error>) -> MountError {
        MountError {
            what: what.into(),
            source: source.into(),
        }
    }

    /// Whether the failure was a symlink met on the way (`ELOOP`), which the jail refuses to
    /// follow.
    pub fn is_symlink(&self) -> bool {
        self.source.raw_os_error() == Some(libc::ELOOP)
    }
}

/// Mount flags (`MOUNT_ATTR_*`), combined with `|`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attr(u64);

impl Attr {
    /// No flag.
    pub const NONE: Attr = Attr(0);
    /// Read-only.
    pub const RDONLY: Attr = Attr(sys::ATTR_RDONLY);
    /// setuid and setgid bits and file capabilities ignored.
    pub const NOSUID: Attr = Attr(sys::ATTR_NOSUID);
    /// Device files cannot be opened.
    pub const NODEV: Attr = Attr(sys::ATTR_NODEV);
    /// Nothing can be executed.
    pub const NOEXEC: Attr = Attr(sys::ATTR_NOEXEC);
    /// Access times are not updated.
    pub const NOATIME: Attr = Attr(sys::ATTR_NOATIME);

    /// Whether every flag of `other` is set here.
    pub fn contains(self, other: Attr) -> bool {
        self.0 & other.0 == other.0
    }

    fn raw(self) -> u64 {
        self.0
    }

    /// The flags to clear when `set` is set: the atime field is one value of several, which
    /// the kernel takes only with the whole field cleared.
    fn for_set(self, set: Attr) -> u64 {
        if set.contains(Attr::NOATIME) {
            self.0 | sys::ATTR_ATIME_MASK
        } else {
            self.0
        }
    }

    fn for_fsmount(self) -> MountAttrFlags {
        let mut f = MountAttrFlags::empty();
        for (attr, flag) in [
            (Attr::RDONLY, MountAttrFlags::MOUNT_ATTR_RDONLY),
            (Attr::NOSUID, MountAttrFlags::MOUNT_ATTR_NOSUID),
            (Attr::NODEV, MountAttrFlags::MOUNT_ATTR_NODEV),
            (Attr::NOEXEC, MountAttrFlags::MOUNT_ATTR_NOEXEC),
            (Attr::NOATIME, MountAttrFlags::MOUNT_ATTR_NOATIME),
        ] {
            if self.contains(attr) {
                f |= flag;
            }
        }
        f
    }
}

impl BitOr for Attr {
    type Output = Attr;
    fn bitor(self, rhs: Attr) -> Attr {
        Attr(self.0 | rhs.0)
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (Attr::RDONLY, "ro"),
            (Attr::NOSUID, "nosuid"),
            (Attr::NODEV, "nodev"),
            (Attr::NOEXEC, "noexec"),
            (Attr::NOATIME, "noatime"),
        ]
        .into_iter()
        .filter(|(a, _)| self.contains(*a))
        .map(|(_, n)| n)
        .collect();
        if names.is_empty() {
            f.write_str("rw")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// Flags for a path opened as a mount target or source: a descriptor of the inode itself
/// (`O_PATH`), never a symlink's target.
const OPEN_PATH: OFlags = OFlags::PATH.union(OFlags::CLOEXEC).union(OFlags::NOFOLLOW);

/// Opens `path` (absolute, or relative to the working folder) as an `O_PATH` descriptor,
/// refusing a symlink in any of its components (`ELOOP`), the last one included.
pub fn open_nofollow(path: &Path) -> Result<OwnedFd, MountError> {
    rustix::fs::openat2(
        rustix::fs::CWD,
        path,
        OPEN_PATH,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| MountError::new(format!("opening {}", path.display()), e))
}

/// Opens `path`, relative to the folder `dir` and never leaving it (no `..` above it, no
/// absolute path, no symlink anywhere), as an `O_PATH` descriptor.
pub fn open_beneath(dir: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, MountError> {
    rustix::fs::openat2(
        dir,
        relative(path),
        OPEN_PATH,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| MountError::new(format!("opening {}", path.display()), e))
}

/// `path` without its leading `/`: paths inside the jail's root are written absolute.
fn relative(path: &Path) -> &Path {
    path.strip_prefix("/").unwrap_or(path)
}

/// Makes every folder of `path` below `dir` that is missing (mode `mode`), never following a
/// symlink, and returns an `O_PATH` descriptor of the last.
pub fn mkdir_beneath(dir: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd, MountError> {
    let what = || format!("making the folder {}", path.display());
    let mut current =
        rustix::io::fcntl_dupfd_cloexec(dir, 0).map_err(|e| MountError::new(what(), e))?;
    for component in relative(path).components() {
        let Component::Normal(name) = component else {
            return Err(MountError::new(what(), Errno::INVAL));
        };
        match rustix::fs::mkdirat(&current, name, Mode::from_raw_mode(mode)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(MountError::new(what(), e)),
        }
        current = open_beneath(current.as_fd(), Path::new(name))
            .map_err(|e| MountError::new(what(), e.source))?;
    }
    Ok(current)
}

/// The folder that will hold `path` (below `dir`, made if missing, never through a symlink),
/// opened for real (an `O_PATH` descriptor cannot create), and the last name of `path`.
fn parent_beneath<'p>(
    dir: BorrowedFd<'_>,
    path: &'p Path,
    what: &dyn Fn() -> String,
) -> Result<(OwnedFd, OwnedFd, &'p std::ffi::OsStr), MountError> {
    let rel = relative(path);
    let (parent, name) = match (rel.parent(), rel.file_name()) {
        (Some(p), Some(n)) => (p, n),
        _ => return Err(MountError::new(what(), Errno::INVAL)),
    };
    let parent = mkdir_beneath(dir, parent, 0o755)?;
    let real = rustix::fs::openat(
        &parent,
        ".",
        OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
        Mode::empty(),
    )
    .map_err(|e| MountError::new(what(), e))?;
    Ok((parent, real, name))
}

/// Makes an empty file at `path` below `dir` (its folders too), the mount point of a file bind,
/// and returns an `O_PATH` descriptor of it; never follows a symlink.
pub fn file_beneath(dir: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd, MountError> {
    let what = || format!("making the file {}", path.display());
    let (parent, real, name) = parent_beneath(dir, path, &what)?;
    rustix::fs::openat(
        &real,
        name,
        OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )
    .map_err(|e| MountError::new(what(), e))?;
    open_beneath(parent.as_fd(), Path::new(name))
}

/// Makes the symlink `link` (below `dir`) pointing to `target`, which is kept as written.
pub fn symlink_beneath(dir: BorrowedFd<'_>, target: &str, link: &Path) -> Result<(), MountError> {
    let what = || format!("making the symlink {} -> {target}", link.display());
    let (_, real, name) = parent_beneath(dir, link, &what)?;
    rustix::fs::symlinkat(target, &real, name).map_err(|e| MountError::new(what(), e))
}

/// A mount attached nowhere yet: a clone of a tree (`open_tree`) or a new filesystem
/// (`fsmount`). Dropped unattached, it goes away.
#[derive(Debug)]
pub struct Detached {
    fd: OwnedFd,
    /// What it is, for messages (`tmpfs`, `/usr`).
    name: String,
}

impl Detached {
    /// Sets the `set` flags and clears the `clear` ones, on every mount of the tree when
    /// `recursive`.
    pub fn set_attrs(&self, set: Attr, clear: Attr, recursive: bool) -> Result<(), MountError> {
        sys::mount_setattr(
            self.fd.as_fd(),
            recursive,
            set.raw(),
            clear.for_set(set),
            None,
        )
        .map_err(|e| MountError::new(format!("setting {set} on {}", self.name), e))
    }

    /// Attaches the mount onto the folder (or file) `target` refers to.
    pub fn attach(self, target: BorrowedFd<'_>, shown: &Path) -> Result<(), MountError> {
        rustix::mount::move_mount(
            &self.fd,
            "",
            target,
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .map_err(|e| MountError::new(format!("mounting {} on {}", self.name, shown.display()), e))
    }

    /// The descriptor of the mount's root.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A bind of the folder (or file) `source` (the tree below it too when `recursive`),
/// detached. `source` is opened without following a symlink anywhere in its path.
pub fn bind_nofollow(source: &Path, recursive: bool) -> Result<Detached, MountError> {
    let fd = open_nofollow(source)?;
    bind_fd(fd.as_fd(), recursive, &source.display().to_string())
}

/// A bind of the folder (or file) `source` (the tree below it too when `recursive`),
/// detached, `source` resolved as usual (symlinks followed): for the paths of the host that
/// only root can change (`/usr`, `/etc`, a distro root, `jail-opt`).
pub fn bind_path(source: &Path, recursive: bool) -> Result<Detached, MountError> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let fd = rustix::mount::open_tree(rustix::fs::CWD, source, flags)
        .map_err(|e| MountError::new(format!("binding {}", source.display()), e))?;
    Ok(Detached {
        fd,
        name: source.display().to_string(),
    })
}

/// A bind of what `source` refers to (an `O_PATH` descriptor is enough), detached; `name`
/// names it in messages.
pub fn bind_fd(
    source: BorrowedFd<'_>,
    recursive: bool,
    name: &str,
) -> Result<Detached, MountError> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_EMPTY_PATH;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let fd = rustix::mount::open_tree(source, "", flags)
        .map_err(|e| MountError::new(format!("binding {name}"), e))?;
    Ok(Detached {
        fd,
        name: name.to_string(),
    })
}

/// A new filesystem of type `fstype` (`tmpfs`, `proc`, `devpts`, `mqueue`...), configured with
/// `options` (`("size", Some("64m"))`, `("newinstance", None)` for a flag), mounted detached
/// with the flags `attrs`.
pub fn new_fs(
    fstype: &str,
    source: Option<&str>,
    options: &[(&str, Option<&str>)],
    attrs: Attr,
) -> Result<Detached, MountError> {
    let what = || format!("making a {fstype} filesystem");
    let fs = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| MountError::new(what(), e))?;
    if let Some(source) = source {
        rustix::mount::fsconfig_set_string(&fs, "source", source)
            .map_err(|e| MountError::new(format!("{}: source {source}", what()), e))?;
    }
    for (key, value) in options {
        match value {
            Some(v) => rustix::mount::fsconfig_set_string(&fs, *key, *v),
            None => rustix::mount::fsconfig_set_flag(&fs, *key),
        }
        .map_err(|e| {
            let shown = value.map_or_else(|| key.to_string(), |v| format!("{key}={v}"));
            MountError::new(format!("{}: option {shown}", what()), e)
        })?;
    }
    rustix::mount::fsconfig_create(&fs).map_err(|e| MountError::new(what(), e))?;
    let fd = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs.for_fsmount())
        .map_err(|e| MountError::new(what(), e))?;
    Ok(Detached {
        fd,
        name: fstype.to_string(),
    })
}

/// Sets and clears flags of the attached mount whose root `target` refers to (the tree below
/// it too when `recursive`), and its propagation when given.
pub fn set_attrs_at(
    target: BorrowedFd<'_>,
    shown: &Path,
    set: Attr,
    clear: Attr,
    propagation: Option<Propagation>,
    recursive: bool,
) -> Result<(), MountError> {
    sys::mount_setattr(
        target,
        recursive,
        set.raw(),
        clear.for_set(set),
        propagation,
    )
    .map_err(|e| MountError::new(format!("setting {set} on {}", shown.display()), e))
}

/// Makes every mount of this mount namespace private (`MS_REC | MS_PRIVATE`), so that
/// nothing the jail mounts or unmounts propagates to the host, nor the host's to the jail:
/// the jail's first mount step.
pub fn make_rprivate() -> Result<(), MountError> {
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| MountError::new("making / recursively private", e))
}

/// Makes the mount `new_root` refers to the root of this mount namespace and of the process,
/// with the old root unmounted (lazily) and gone from view: `pivot_root(".", ".")` from inside
/// the new root, then the old root, stacked on top, is detached.
pub fn pivot_to(new_root: BorrowedFd<'_>) -> Result<(), MountError> {
    rustix::process::fchdir(new_root).map_err(|e| MountError::new("entering the new root", e))?;
    rustix::process::pivot_root(".", ".").map_err(|e| MountError::new("pivot_root", e))?;
    // The old root now sits on top of the new one, at ".": detach it (and everything under
    // it; the namespace's mounts are private, so nothing of this reaches the host).
    rustix::mount::unmount(".", UnmountFlags::DETACH)
        .map_err(|e| MountError::new("unmounting the old root", e))?;
    rustix::process::chdir("/").map_err(|e| MountError::new("changing to /", e))
}
