//! The file actions of the hooks, run as root on paths that may cross a folder a customer can
//! write (its home, its /run). No path is ever resolved through a symlink: every one is opened
//! with `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, and the entry an action makes,
//! changes or removes is then reached from its opened folder by an `*at` call that does not
//! follow its last component either. A symlink a customer planted makes the hook fail (`ELOOP`
//! for one on the way, `EEXIST` or `ELOOP` for one in place of the last name); it never
//! redirects it.

use std::ffi::OsStr;
use std::io::{self, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Uid};
use rustix::io::Errno;

use super::parse::Owner;

/// Never a symlink, magic (`/proc/self/fd/N`) or not, in any component.
const NO_LINKS: ResolveFlags = ResolveFlags::NO_SYMLINKS.union(ResolveFlags::NO_MAGICLINKS);

/// Opens `path` (absolute, or relative to the working folder) with `flags`, never through a
/// symlink. With `O_PATH | O_NOFOLLOW` a symlink as the last component is opened itself
/// (callers check the type); otherwise it is `ELOOP`.
fn open(path: &Path, flags: OFlags, mode: u32) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat2(
        rustix::fs::CWD,
        path,
        flags | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
        NO_LINKS,
    )?)
}

/// The folder `path` is in, opened (`O_PATH`) without following a symlink, and the last name
/// of `path`, which the caller reaches with an `*at` call that does not follow it.
pub(super) fn parent(path: &Path) -> io::Result<(OwnedFd, &OsStr)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Errno::INVAL.into());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    Ok((open(dir, OFlags::PATH | OFlags::DIRECTORY, 0)?, name))
}

/// `path` itself opened `O_PATH`, refused (`ELOOP`) when it is a symlink; with its type and
/// mode.
fn node(path: &Path) -> io::Result<(OwnedFd, rustix::fs::Stat)> {
    let fd = open(path, OFlags::PATH | OFlags::NOFOLLOW, 0)?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        return Err(Errno::LOOP.into());
    }
    Ok((fd, st))
}

/// `mkdir`: a folder, mode 0777 less the umask, as uWSGI.
pub(super) fn mkdir(path: &Path) -> io::Result<()> {
    let (dir, name) = parent(path)?;
    Ok(rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o777))?)
}

/// `write`, `writen`, `append`, `appendn`, `create`: `data` written to the regular file
/// `path`, made (mode 0666 less the umask) if missing, emptied first unless `append`. A file
/// with more than one link is refused: a hard link a customer made to a file of the host is
/// not written through.
pub(super) fn write(path: &Path, data: &[u8], append: bool) -> io::Result<()> {
    let mut flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK;
    if append {
        flags |= OFlags::APPEND;
    }
    let fd = open(path, flags, 0o666)?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::other("not a regular file"));
    }
    if st.st_nlink > 1 {
        return Err(io::Error::other(format!(
            "the file has {} hard links: refused",
            st.st_nlink
        )));
    }
    if !append {
        rustix::fs::ftruncate(&fd, 0)?;
    }
    let mut file = std::fs::File::from(fd);
    file.write_all(data)
}

/// `symlink`: a symlink at `link` whose content is `target` (kept as written).
pub(super) fn symlink(target: &OsStr, link: &Path) -> io::Result<()> {
    let (dir, name) = parent(link)?;
    Ok(rustix::fs::symlinkat(target, &dir, name)?)
}

/// `unlink`: removes the name `path` (a symlink there is removed itself, not its target).
pub(super) fn unlink(path: &Path) -> io::Result<()> {
    let (dir, name) = parent(path)?;
    Ok(rustix::fs::unlinkat(&dir, name, AtFlags::empty())?)
}

/// `chmod`: the permission bits of `path` set to `mode`.
pub(super) fn chmod(path: &Path, mode: u32) -> io::Result<()> {
    let (fd, st) = node(path)?;
    set_mode(path, &fd, &st, mode)
}

/// `sticky`: the sticky bit added to the mode of `path`.
pub(super) fn sticky(path: &Path) -> io::Result<()> {
    let (fd, st) = node(path)?;
    set_mode(path, &fd, &st, (st.st_mode & 0o7777) | 0o1000)
}

/// `fchmod` does not take an `O_PATH` descriptor, and `fchmodat` has no flag against a
/// symlink. A file, folder or FIFO is opened again for reading (which, non-blocking, has no
/// effect on any of them) and checked to be the same inode; a socket or device goes through
/// the `/proc/self/fd` link of the descriptor already open, which names that very inode.
fn set_mode(path: &Path, fd: &OwnedFd, st: &rustix::fs::Stat, mode: u32) -> io::Result<()> {
    let mode = Mode::from_raw_mode(mode);
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile | FileType::Directory | FileType::Fifo => {
            let again = open(
                path,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK,
                0,
            )?;
            let st2 = rustix::fs::fstat(&again)?;
            if (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino) {
                return Err(io::Error::other(
                    "the file was replaced while being changed",
                ));
            }
            Ok(rustix::fs::fchmod(&again, mode)?)
        }
        _ => {
            let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd));
            Ok(rustix::fs::chmod(link.as_str(), mode)?)
        }
    }
}

/// `chown`, `chown2`: the owner and group of `path` (never of a symlink's target).
pub(super) fn chown(path: &Path, user: &Owner, group: &Owner) -> io::Result<()> {
    let uid = match user {
        Owner::Id(id) => *id,
        Owner::Name(name) => lookup_id(Path::new("/etc/passwd"), name, "user")?,
    };
    let gid = match group {
        Owner::Id(id) => *id,
        Owner::Name(name) => lookup_id(Path::new("/etc/group"), name, "group")?,
    };
    let (fd, _) = node(path)?;
    // fchownat on the descriptor itself (AT_EMPTY_PATH) takes an O_PATH descriptor.
    Ok(rustix::fs::chownat(
        &fd,
        "",
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::EMPTY_PATH,
    )?)
}

/// The id of `name` in `/etc/passwd` or `/etc/group` (the third field of its line) of the
/// current root, which is where uWSGI's `getpwnam` looks on a host without NSS modules.
fn lookup_id(file: &Path, name: &str, what: &str) -> io::Result<u32> {
    let fd = open(file, OFlags::RDONLY, 0)?;
    let text = io::read_to_string(std::fs::File::from(fd))?;
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(':');
            (f.next() == Some(name)).then(|| f.nth(1)).flatten()
        })
        .find_map(|id| id.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no {what} `{name}` in {}", file.display()),
            )
        })
}

/// `cd`, `chdir`: the working folder of the process (the master, and what it starts).
pub(super) fn chdir(path: &Path) -> io::Result<()> {
    let dir = open(path, OFlags::PATH | OFlags::DIRECTORY, 0)?;
    Ok(rustix::process::fchdir(&dir)?)
}

/// `hostname`.
pub(super) fn hostname(name: &str) -> io::Result<()> {
    Ok(rustix::system::sethostname(name.as_bytes())?)
}

/// The working folder, held open so that [`restore_cwd`] can come back to it.
pub(super) fn save_cwd() -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        ".",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Back to the folder [`save_cwd`] held.
pub(super) fn restore_cwd(cwd: &OwnedFd) -> io::Result<()> {
    Ok(rustix::process::fchdir(cwd.as_fd())?)
}
