//! Reads and writes of cgroup interface files: one `write` per value (cgroupfs takes a value per
//! write call), small reads into a caller's buffer, and parsers of the kernel's number formats
//! that work on bytes without allocating.

use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use rustix::fs::{Access, Mode, OFlags};
use rustix::io::Errno;

use crate::Error;

/// Writes `value` to the file `path` with a single `write`.
pub(crate) fn write(path: &Path, value: &str) -> Result<(), Error> {
    let err = |errno| Error::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        errno,
    };
    let fd = rustix::fs::open(
        path,
        OFlags::WRONLY | OFlags::TRUNC | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    loop {
        match rustix::io::write(&fd, value.as_bytes()) {
            Ok(n) if n == value.len() => return Ok(()),
            // cgroupfs consumes a value whole or fails: a short write is not something to resume.
            Ok(_) => return Err(err(Errno::IO)),
            Err(Errno::INTR) => {}
            Err(e) => return Err(err(e)),
        }
    }
}

/// Whether `path` exists.
pub(crate) fn exists(path: &Path) -> bool {
    rustix::fs::access(path, Access::EXISTS).is_ok()
}

/// Reads the file `path` into `buf` and returns the bytes read. The interface files read this way
/// are far smaller than `buf`; what does not fit is left unread.
///
/// One `read` is enough: a cgroup file is a seq_file, whose `read` fills the buffer with every
/// record that fits, so a read that leaves room has reached the end (so do the small regular
/// files of the tests' imitations). That saves the usual second `read` returning 0, which counts
/// when the emperor reads six files for each of 2,000 vassals.
pub(crate) fn read_into<'b>(path: &Path, buf: &'b mut [u8]) -> Result<&'b [u8], Error> {
    let err = |errno| Error::Read {
        path: path.to_path_buf(),
        errno,
    };
    let fd =
        rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(err)?;
    let mut len = 0;
    while len < buf.len() {
        match rustix::io::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    break;
                }
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(&buf[..len])
}

/// Reads the whole file `path` (for lists such as `cgroup.procs`, whose size is not bounded).
pub(crate) fn read_all(path: &Path) -> Result<Vec<u8>, Error> {
    let err = |errno| Error::Read {
        path: path.to_path_buf(),
        errno,
    };
    let fd =
        rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(err)?;
    let mut out = Vec::with_capacity(256);
    let mut chunk = [0u8; 4096];
    loop {
        match rustix::io::read(&fd, &mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(Errno::INTR) => {}
            Err(e) => return Err(err(e)),
        }
    }
}

/// Reads a file holding one unsigned number (`memory.current`, `cpuacct.usage`, ...).
pub(crate) fn read_u64(path: &Path) -> Result<u64, Error> {
    let mut buf = [0u8; 64];
    let bytes = read_into(path, &mut buf)?;
    parse_u64(trim(bytes)).ok_or_else(|| parse_error(path, bytes))
}

/// Reads a file holding a number or `max` (v2 `memory.max`, `pids.max`): `None` for `max`.
pub(crate) fn read_max(path: &Path) -> Result<Option<u64>, Error> {
    let mut buf = [0u8; 64];
    let bytes = read_into(path, &mut buf)?;
    let value = trim(bytes);
    if value == b"max" {
        return Ok(None);
    }
    parse_u64(value)
        .map(Some)
        .ok_or_else(|| parse_error(path, bytes))
}

/// Reads the number after `key` in a flat keyed file (`cpu.stat`, `memory.events`,
/// `memory.oom_control`: lines of `key value`).
pub(crate) fn read_keyed(path: &Path, key: &str) -> Result<u64, Error> {
    let mut buf = [0u8; 4096];
    let bytes = read_into(path, &mut buf)?;
    keyed(bytes, key.as_bytes()).ok_or_else(|| Error::Parse {
        path: path.to_path_buf(),
        content: format!("no `{key}` line"),
    })
}

/// The number on the line `key value` of `text`, when there is one.
pub(crate) fn keyed(text: &[u8], key: &[u8]) -> Option<u64> {
    text.split(|&b| b == b'\n').find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(b" ")?;
        parse_u64(trim(rest))
    })
}

/// A decimal unsigned number, nothing else.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// `s` without surrounding ASCII white space.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// The pids listed one a line in a `cgroup.procs` text.
pub(crate) fn pids(text: &[u8]) -> impl Iterator<Item = u32> + '_ {
    text.split(|&b| b == b'\n')
        .filter_map(|line| parse_u64(trim(line)).and_then(|n| u32::try_from(n).ok()))
}

/// The error for a file whose content could not be understood.
pub(crate) fn parse_error(path: &Path, content: &[u8]) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        content: String::from_utf8_lossy(trim(content)).into_owned(),
    }
}

/// Creates the directory `path`, then sets its mode to exactly `mode` (mkdir's mode passes
/// through the umask). An existing directory is fine and gets `mode` too, as uWSGI does.
pub(crate) fn mkdir(path: &Path, mode: u32) -> Result<(), Error> {
    match rustix::fs::mkdir(path, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(errno) => {
            return Err(Error::CreateDir {
                path: path.to_path_buf(),
                errno,
            });
        }
    }
    rustix::fs::chmod(path, Mode::from_raw_mode(mode)).map_err(|errno| Error::Chmod {
        path: path.to_path_buf(),
        mode,
        errno,
    })
}

/// Creates the directory `path` if it is missing, leaving an existing one as it is.
pub(crate) fn mkdir_if_missing(path: &Path, mode: u32) -> Result<(), Error> {
    match rustix::fs::mkdir(path, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(errno) => Err(Error::CreateDir {
            path: path.to_path_buf(),
            errno,
        }),
    }
}

/// The names of the subdirectories of `path` (child cgroups, in a cgroup directory).
pub(crate) fn subdirs(path: &Path) -> Result<Vec<String>, Error> {
    let err = |errno| Error::ListDir {
        path: path.to_path_buf(),
        errno,
    };
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    let mut dir = rustix::fs::Dir::read_from(&fd).map_err(err)?;
    let mut out = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry.map_err(err)?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            rustix::fs::FileType::Directory => true,
            rustix::fs::FileType::Unknown => {
                let child = path.join(std::ffi::OsStr::from_bytes(name));
                rustix::fs::stat(&child).is_ok_and(|st| {
                    rustix::fs::FileType::from_raw_mode(st.st_mode)
                        == rustix::fs::FileType::Directory
                })
            }
            _ => false,
        };
        if is_dir && let Ok(name) = std::str::from_utf8(name) {
            out.push(name.to_string());
        }
    }
    out.sort();
    Ok(out)
}
