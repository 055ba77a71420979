//! Reading what a vassal file pulls in with the rights of the file's owner.
//!
//! [`OwnerAccess`] is the [`FileAccess`] the emperor resolves a vassal file through: every
//! filesystem call (read, exists, is_file, is_dir, glob, file facts) runs with the effective
//! uid and gid of the file's owner (supplementary groups: that gid alone), and the emperor
//! becomes root again right after; `exec://` and every `scheme://` form are refused.
//!
//! The ids are switched per thread (setresuid/setresgid/setgroups as system calls, not the
//! libc wrappers that switch every thread). The emperor is single-threaded, so they are the
//! process's; the real and saved uid stay 0, which is what lets it switch back.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use liege_config::access::FileFacts;
use liege_config::{AccessError, FileAccess, HostAccess};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use crate::source::Stamp;

/// Runs with the given effective ids until dropped, then switches back to the saved ones.
#[derive(Debug)]
struct Switched {
    euid: Uid,
    egid: Gid,
    groups: Vec<Gid>,
}

impl Switched {
    /// Takes `uid`/`gid` as effective ids and `[gid]` as the supplementary groups.
    fn to(uid: u32, gid: u32) -> std::io::Result<Switched> {
        let saved = Switched {
            euid: rustix::process::geteuid(),
            egid: rustix::process::getegid(),
            groups: rustix::process::getgroups()?,
        };
        let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
        rustix::thread::set_thread_groups(&[gid])?;
        // From here on, dropping `saved` restores what was changed.
        rustix::thread::set_thread_res_gid(None, gid, None)?;
        rustix::thread::set_thread_res_uid(None, uid, None)?;
        Ok(saved)
    }
}

impl Drop for Switched {
    fn drop(&mut self) {
        // The uid first: changing the gid and groups takes root's rights back.
        let back = rustix::thread::set_thread_res_uid(None, self.euid, None)
            .and_then(|()| rustix::thread::set_thread_res_gid(None, self.egid, None))
            .and_then(|()| rustix::thread::set_thread_groups(&self.groups));
        if let Err(e) = back {
            // The real and saved uid are still root, so this cannot happen; if it did, going
            // on with a customer's ids would break every later step in confusing ways.
            panic!("cannot switch back to uid {}: {e}", self.euid.as_raw());
        }
    }
}

/// Reads a regular file whole, refusing anything else (a FIFO would block the emperor, a
/// device may act when opened) and, with `refuse_proc`, files of /proc (the emperor's own
/// `/proc/self/environ` must not be readable through a customer's file). Returns the bytes and
/// the stamp of the open file.
pub fn read_regular(
    path: &Path,
    shown: &str,
    limit: u64,
    refuse_proc: bool,
) -> Result<(Vec<u8>, Stamp), AccessError> {
    let err = |source: std::io::Error| AccessError::Read {
        path: shown.to_owned(),
        source,
    };
    // Checked before opening too: opening a device or a FIFO is an action of its own.
    let before = rustix::fs::stat(path).map_err(|e| err(e.into()))?;
    if FileType::from_raw_mode(before.st_mode) != FileType::RegularFile {
        return Err(AccessError::NotAFile {
            path: shown.to_owned(),
        });
    }
    let fd = rustix::fs::open(path, READ, Mode::empty()).map_err(|e| err(e.into()))?;
    read_open(fd, shown, limit, refuse_proc)
}

/// How files are opened for reading: never blocking (a FIFO), never taking a terminal.
const READ: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY);

/// Reads an open file whole; see [`read_regular`].
fn read_open(
    fd: OwnedFd,
    shown: &str,
    limit: u64,
    refuse_proc: bool,
) -> Result<(Vec<u8>, Stamp), AccessError> {
    let err = |source: std::io::Error| AccessError::Read {
        path: shown.to_owned(),
        source,
    };
    if refuse_proc {
        let fs = rustix::fs::fstatfs(&fd).map_err(|e| err(e.into()))?;
        if fs.f_type == rustix::fs::PROC_SUPER_MAGIC {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "files under /proc are not read for vassal files",
            )));
        }
    }
    let file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(err)?;
    if !meta.is_file() {
        return Err(AccessError::NotAFile {
            path: shown.to_owned(),
        });
    }
    let data = liege_config::access::read_limited(&file, Some(meta.len()), shown, limit)?;
    Ok((data, Stamp::of(&meta)))
}

/// Reads a vassal file of a watched folder. A symbolic link is followed (as in uWSGI) with
/// root's rights only when root made it; a link someone else made is followed with that
/// owner's ids, and the file counts as the link owner's: a customer who can write into a
/// vassal folder must not get another customer's (or root's) file read for them, nor run
/// with its owner's rights. The link is read once (readlink on the link itself), so it
/// cannot be swapped between the check and the open.
pub fn read_vassal_file(
    path: &Path,
    shown: &str,
    limit: u64,
) -> Result<(Vec<u8>, Stamp), AccessError> {
    let err = |source: std::io::Error| AccessError::Read {
        path: shown.to_owned(),
        source,
    };
    let link = match rustix::fs::open(path, READ | OFlags::NOFOLLOW, Mode::empty()) {
        Ok(fd) => return read_open(fd, shown, limit, true),
        Err(Errno::LOOP) => rustix::fs::open(
            path,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(e.into()))?,
        Err(e) => return Err(err(e.into())),
    };
    let st = rustix::fs::fstat(&link).map_err(|e| err(e.into()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
        return Err(err(std::io::Error::other("it changed while it was read")));
    }
    let target = rustix::fs::readlinkat(&link, "", Vec::new()).map_err(|e| err(e.into()))?;
    let target = Path::new(std::ffi::OsStr::from_bytes(target.as_bytes()));
    let full = path.parent().unwrap_or(Path::new("/")).join(target);
    if st.st_uid == 0 {
        return read_regular(&full, shown, limit, true);
    }
    let guard = Switched::to(st.st_uid, st.st_gid).map_err(err)?;
    let read = read_regular(&full, shown, limit, true);
    drop(guard);
    let (data, mut stamp) = read?;
    stamp.uid = st.st_uid;
    stamp.gid = st.st_gid;
    Ok((data, stamp))
}

/// fs_err's error without the path its message adds, for messages that name it already
/// (fs_err keeps the original error to itself, so only its kind is left).
pub(crate) fn strip_path(e: &std::io::Error) -> std::io::Error {
    std::io::Error::from(e.kind())
}

/// Whether a name is written as a URL (`exec://`, `http://`...).
fn is_url(path: &str) -> bool {
    path.contains("://")
}

/// Filesystem access with the rights of a vassal file's owner; see the module.
#[derive(Debug)]
pub struct OwnerAccess {
    uid: u32,
    gid: u32,
    cwd: PathBuf,
    host: HostAccess,
    /// For each file read (by the name it was asked by), its stamp: the first one that was not
    /// trusted (owned by root and not writable by group or other), else the last one.
    reads: RefCell<BTreeMap<String, Stamp>>,
}

impl OwnerAccess {
    /// Access as `uid`/`gid`, with relative paths taken from `cwd`.
    pub fn new(uid: u32, gid: u32, cwd: PathBuf) -> Self {
        OwnerAccess {
            uid,
            gid,
            host: HostAccess::without_exec(cwd.clone()),
            cwd,
            reads: RefCell::new(BTreeMap::new()),
        }
    }

    /// The owner's uid.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The owner's gid.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// Whether the file read under `path` (the name the loader asked for, which is the path of
    /// the options' origins) was owned by root and not writable by group or other each time
    /// it was read; `None` when it was never read.
    pub fn was_trusted(&self, path: &str) -> Option<bool> {
        self.read_stamp(path).map(|s| s.is_trusted())
    }

    /// The stamp of the file read under `path`: the first one that was not trusted, if any.
    pub fn read_stamp(&self, path: &str) -> Option<Stamp> {
        self.reads.borrow().get(path).copied()
    }

    /// Runs `f` with the owner's ids (without switching when they are the current ones).
    fn as_owner<T>(&self, f: impl FnOnce() -> T) -> std::io::Result<T> {
        let current = rustix::process::geteuid().as_raw() == self.uid
            && rustix::process::getegid().as_raw() == self.gid;
        if current {
            return Ok(f());
        }
        let guard = Switched::to(self.uid, self.gid)?;
        let out = f();
        drop(guard);
        Ok(out)
    }

    fn read_as_owner(&self, path: &str, limit: u64) -> Result<Vec<u8>, AccessError> {
        let full = self.cwd.join(path);
        let refuse_proc = self.uid != 0;
        let (data, stamp) = self
            .as_owner(|| read_regular(&full, path, limit, refuse_proc))
            .map_err(|source| AccessError::Read {
                path: path.to_owned(),
                source,
            })??;
        let mut reads = self.reads.borrow_mut();
        match reads.get_mut(path) {
            Some(seen) if !seen.is_trusted() => {}
            Some(seen) => *seen = stamp,
            None => {
                reads.insert(path.to_owned(), stamp);
            }
        }
        Ok(data)
    }
}

impl FileAccess for OwnerAccess {
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, AccessError> {
        if let Some((scheme, _)) = path.split_once("://") {
            return Err(AccessError::Scheme {
                scheme: scheme.to_owned(),
            });
        }
        self.read_as_owner(path, limit)
    }

    fn exec(&self, command: &str, _limit: u64) -> Result<Vec<u8>, AccessError> {
        Err(AccessError::ExecRefused {
            command: command.to_owned(),
        })
    }

    fn exists(&self, path: &str) -> bool {
        !is_url(path) && self.as_owner(|| self.host.exists(path)).unwrap_or(false)
    }

    fn is_file(&self, path: &str) -> bool {
        !is_url(path) && self.as_owner(|| self.host.is_file(path)).unwrap_or(false)
    }

    fn is_dir(&self, path: &str) -> bool {
        !is_url(path) && self.as_owner(|| self.host.is_dir(path)).unwrap_or(false)
    }

    fn glob(&self, pattern: &str) -> Vec<String> {
        if is_url(pattern) {
            return vec![pattern.to_owned()];
        }
        self.as_owner(|| self.host.glob(pattern))
            .unwrap_or_else(|_| vec![pattern.to_owned()])
    }

    fn file_facts(&self, path: &str) -> Option<FileFacts> {
        if is_url(path) {
            return None;
        }
        self.as_owner(|| self.host.file_facts(path)).ok().flatten()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    use liege_config::{Context, HostFacts, Loader, Origin};

    pub(crate) const NOBODY: u32 = 65534;

    pub(crate) fn assert_root() {
        assert!(
            rustix::process::geteuid().is_root(),
            "this test needs root (it changes file owners and switches ids); CI runs as root"
        );
    }

    /// A temporary folder others can enter (tempfile makes them 0700).
    pub(crate) fn open_tempdir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs_err::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    pub(crate) fn write(path: &Path, text: &str, mode: u32, uid: u32, gid: u32) {
        fs_err::write(path, text).unwrap();
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }

    fn euid() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    fn resolve(access: &dyn FileAccess, file: &str) -> Result<liege_config::Options, String> {
        let ctx = Context {
            access,
            env: &|_| None,
            host: HostFacts::for_tests("/"),
            is_reload: false,
        };
        let mut loader = Loader::new(&ctx);
        loader
            .load_file(file, &Origin::Builtin)
            .map_err(|e| e.to_string())?;
        loader
            .finish()
            .map(|r| r.options)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_root_only_file_is_hidden_from_a_file_owned_by_nobody() {
        assert_root();
        let dir = open_tempdir();
        let d = dir.path();
        write(&d.join("secret"), "s3cret\n", 0o600, 0, 0);
        write(&d.join("public"), "hello\n", 0o644, 0, 0);
        fs_err::create_dir(d.join("private")).unwrap();
        fs_err::set_permissions(d.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
        write(&d.join("private/there"), "", 0o644, 0, 0);
        let vassal = d.join("v.ini");
        let text = "[uwsgi]\n\
            pub = @(public)\n\
            if-exists = private/there\n\
            hidden = yes\n\
            endif =\n\
            if-exists = public\n\
            seen = yes\n\
            endif =\n";
        write(&vassal, text, 0o644, NOBODY, NOBODY);
        let access = OwnerAccess::new(NOBODY, NOBODY, d.to_path_buf());
        let opts = resolve(&access, vassal.to_str().unwrap()).unwrap();
        assert_eq!(euid(), 0);
        assert_eq!(opts.last("pub").unwrap().value, "hello");
        assert!(opts.last("hidden").is_none());
        assert_eq!(opts.last("seen").unwrap().value, "yes");
        assert_eq!(access.was_trusted("public"), Some(true));
        assert_eq!(access.was_trusted(vassal.to_str().unwrap()), Some(false));

        // The 0600 file cannot be `@()`-read, nor included.
        write(
            &vassal,
            "[uwsgi]\nleak = @(secret)\n",
            0o644,
            NOBODY,
            NOBODY,
        );
        let err = resolve(&access, vassal.to_str().unwrap()).unwrap_err();
        assert_eq!(euid(), 0);
        assert!(
            err.ends_with("cannot read `secret`: Permission denied (os error 13)"),
            "{err}"
        );
        write(
            &vassal,
            "[uwsgi]\ninclude = secret.ini\n",
            0o644,
            NOBODY,
            NOBODY,
        );
        write(&d.join("secret.ini"), "[uwsgi]\nx = 1\n", 0o600, 0, 0);
        let err = resolve(&access, vassal.to_str().unwrap()).unwrap_err();
        assert!(
            err.contains("cannot read `secret.ini`: Permission denied"),
            "{err}"
        );
        assert_eq!(euid(), 0);

        // Root reads both.
        let root = OwnerAccess::new(0, 0, d.to_path_buf());
        write(&vassal, "[uwsgi]\nleak = @(secret)\n", 0o644, 0, 0);
        let opts = resolve(&root, vassal.to_str().unwrap()).unwrap();
        assert_eq!(opts.last("leak").unwrap().value, "s3cret");
    }

    #[test]
    fn each_call_runs_as_the_owner_and_root_comes_back() {
        assert_root();
        let dir = open_tempdir();
        let d = dir.path();
        fs_err::create_dir(d.join("private")).unwrap();
        fs_err::set_permissions(d.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
        write(&d.join("private/f.ini"), "", 0o644, 0, 0);
        write(&d.join("open.ini"), "", 0o644, 0, 0);
        let a = OwnerAccess::new(NOBODY, NOBODY, d.to_path_buf());
        assert!(!a.exists("private/f.ini"));
        assert_eq!(euid(), 0);
        assert!(!a.is_file("private/f.ini"));
        assert!(!a.is_dir("private/."));
        assert!(a.is_dir("private"));
        assert!(a.is_file("open.ini"));
        assert_eq!(a.glob("private/*"), ["private/*"]);
        assert_eq!(a.glob("*.ini"), ["open.ini"]);
        assert!(a.file_facts("private/f.ini").is_none());
        assert!(a.file_facts("open.ini").is_some());
        assert_eq!(euid(), 0);
        assert_eq!(rustix::process::getegid().as_raw(), 0);
        let root = OwnerAccess::new(0, 0, d.to_path_buf());
        assert!(root.exists("private/f.ini"));
        assert_eq!(root.glob("private/*"), ["private/f.ini"]);
    }

    #[test]
    fn exec_and_urls_are_refused() {
        let root = OwnerAccess::new(0, 0, PathBuf::from("/"));
        assert!(matches!(
            root.exec("id", 100),
            Err(AccessError::ExecRefused { .. })
        ));
        assert!(matches!(
            root.read("http://example.com/x.ini", 100),
            Err(AccessError::Scheme { scheme }) if scheme == "http"
        ));
        assert!(!root.exists("file:///etc/passwd"));
        assert!(!root.is_file("file:///etc/passwd"));
        assert!(root.file_facts("file:///etc/passwd").is_none());
        let dir = open_tempdir();
        let v = dir.path().join("v.ini");
        write(&v, "[uwsgi]\nx = @(exec://id)\n", 0o644, 0, 0);
        let err = resolve(&root, v.to_str().unwrap()).unwrap_err();
        assert!(
            err.ends_with("`exec://` is not allowed here (`id`)"),
            "{err}"
        );
        write(&v, "[uwsgi]\nini = exec://echo\n", 0o644, 0, 0);
        let err = resolve(&root, v.to_str().unwrap()).unwrap_err();
        assert!(
            err.ends_with("`exec://` is not allowed here (`echo`)"),
            "{err}"
        );
        write(&v, "[uwsgi]\nini = http://example.com/a.ini\n", 0o644, 0, 0);
        let err = resolve(&root, v.to_str().unwrap()).unwrap_err();
        assert!(
            err.ends_with("the `http://` scheme is not supported"),
            "{err}"
        );
    }

    #[test]
    fn fifos_devices_and_proc_are_not_read() {
        assert_root();
        let dir = open_tempdir();
        let fifo = dir.path().join("f.ini");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o666),
            0,
        )
        .unwrap();
        let a = OwnerAccess::new(NOBODY, NOBODY, dir.path().to_path_buf());
        assert!(matches!(
            a.read("f.ini", 100),
            Err(AccessError::NotAFile { .. })
        ));
        assert!(matches!(
            a.read("/dev/null", 100),
            Err(AccessError::NotAFile { .. })
        ));
        // World-readable, but the emperor's own: refused by where it is.
        let err = a.read("/proc/self/status", 1 << 20).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read `/proc/self/status`: files under /proc are not read for vassal files"
        );
        assert!(a.read("/proc/self/environ", 1 << 20).is_err());
        // Root's own files may (a trusted file, read as root).
        let root = OwnerAccess::new(0, 0, dir.path().to_path_buf());
        assert!(root.read("/proc/self/status", 1 << 20).is_ok());
        assert_eq!(euid(), 0);
    }
}
