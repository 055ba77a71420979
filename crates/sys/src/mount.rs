//! `mount_setattr(2)`, which rustix does not wrap: change the flags (read-only, nosuid, nodev,
//! noexec) and the propagation of a mount, attached or not (a tree from `open_tree` or
//! `fsmount`), through a descriptor.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `MOUNT_ATTR_RDONLY`.
pub const ATTR_RDONLY: u64 = 0x1;
/// `MOUNT_ATTR_NOSUID`.
pub const ATTR_NOSUID: u64 = 0x2;
/// `MOUNT_ATTR_NODEV`.
pub const ATTR_NODEV: u64 = 0x4;
/// `MOUNT_ATTR_NOEXEC`.
pub const ATTR_NOEXEC: u64 = 0x8;
/// `MOUNT_ATTR_NOATIME` (one value of the atime field, `MOUNT_ATTR__ATIME`).
pub const ATTR_NOATIME: u64 = 0x10;
/// `MOUNT_ATTR__ATIME`: the mask of the atime field, to clear before setting one of its values.
pub const ATTR_ATIME_MASK: u64 = 0x70;

/// The propagation `mount_setattr` gives a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// `MS_PRIVATE`.
    Private,
    /// `MS_SHARED`.
    Shared,
    /// `MS_SLAVE`.
    Slave,
    /// `MS_UNBINDABLE`.
    Unbindable,
}

impl Propagation {
    fn raw(self) -> libc::c_ulong {
        match self {
            Propagation::Private => libc::MS_PRIVATE,
            Propagation::Shared => libc::MS_SHARED,
            Propagation::Slave => libc::MS_SLAVE,
            Propagation::Unbindable => libc::MS_UNBINDABLE,
        }
    }
}

/// `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Sets the `set` flags and clears the `clear` flags (`ATTR_*`) of the mount `fd` refers to,
/// and of every mount below it when `recursive`; `propagation` changes it too when given.
pub fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clear: u64,
    propagation: Option<Propagation>,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: propagation.map_or(0, Propagation::raw),
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: the path is a NUL-terminated empty string that outlives the call; `attr` is a
    // live `struct mount_attr` of the size passed; `fd` is a descriptor borrowed for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &raw const attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
