//! Working in a folder someone else can write (a vassal's run dir, ARCHITECTURE.md decision 4)
//! without trusting any path in it: open folders without following links, connect to a unix
//! socket through the inode that was opened rather than through its name, check who listens,
//! and remove a tree with `unlinkat`, never following a link the folder's owner planted.
//!
//! The customer owns the folder: it can put symlinks, hard links, FIFOs, files and folders
//! there, and swap them at any moment. So:
//!
//! - every path is resolved relative to a descriptor of the folder, with `openat2`
//!   `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS` (no component may be a
//!   symlink, nothing may lead out) or `O_NOFOLLOW` for a single component;
//! - a socket is opened `O_PATH`, checked with `fstat` to be a socket, and connected to through
//!   `/proc/self/fd/N`, which names the inode that was checked: a swap after the check changes
//!   nothing;
//! - [`connect_vassal`] checks the listener's uid (`SO_PEERCRED`), so a socket of another
//!   vassal reached some other way (a hard link) is refused too;
//! - [`remove_tree_beneath`] unlinks entries (which never follows a link) and opens subfolders
//!   `O_NOFOLLOW`, to a bounded depth.
//!
//! Everything here is safe rustix; no `unsafe`.

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

/// How deep [`remove_tree_beneath`] goes: a deeper tree is refused (each level holds a
/// descriptor while its entries are removed).
pub const MAX_DEPTH: usize = 64;

/// How many times [`remove_tree_beneath`] empties a folder that its owner keeps filling before
/// it gives up.
const MAX_ROUNDS: usize = 8;

/// What a file is, in words, for messages.
fn kind_of(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "regular file",
        FileType::Directory => "folder",
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "file of unknown type",
    }
}

/// Why something beneath a folder was refused or failed. Each message names the entry (its
/// path relative to the folder); the caller names the folder.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    #[error(
        "`{name}` is not a name beneath the folder (it is empty, absolute, holds `..` or a NUL byte)"
    )]
    Name { name: String },
    #[error("`{name}` is not one path component (it is empty, `.`, `..` or holds `/`)")]
    Component { name: String },
    #[error("`{name}` is a symbolic link, which is never followed")]
    Symlink { name: String },
    #[error("a folder on the path `{name}` is a symbolic link, which is never followed")]
    SymlinkOnPath { name: String },
    #[error("`{name}` leads out of the folder")]
    Escapes { name: String },
    #[error("`{name}` is a {kind}, not a socket")]
    NotASocket { name: String, kind: &'static str },
    #[error("`{name}` is a {kind}, not a folder")]
    NotAFolder { name: String, kind: &'static str },
    #[error("cannot open `{name}`: {source}")]
    Open { name: String, source: io::Error },
    #[error("cannot connect to `{name}`: {source}")]
    Connect { name: String, source: io::Error },
    #[error("cannot read the credentials of the listener of `{name}`: {source}")]
    PeerCred { name: String, source: io::Error },
    #[error("the listener of `{name}` runs as uid {peer}, not as the vassal's uid {expected}")]
    PeerUid {
        name: String,
        peer: u32,
        expected: u32,
    },
    #[error("cannot remove `{name}`: {source}")]
    Remove { name: String, source: io::Error },
    #[error("cannot remove `{name}`: it is more than {MAX_DEPTH} folders deep")]
    TooDeep { name: String },
    #[error("cannot remove `{name}`: something keeps filling it")]
    KeepsFilling { name: String },
}

impl BeneathError {
    /// The kind of [`io::Error`] this becomes.
    fn io_kind(&self) -> io::ErrorKind {
        match self {
            BeneathError::Name { .. } | BeneathError::Component { .. } => {
                io::ErrorKind::InvalidInput
            }
            BeneathError::Symlink { .. }
            | BeneathError::SymlinkOnPath { .. }
            | BeneathError::NotAFolder { .. } => io::ErrorKind::NotADirectory,
            BeneathError::Escapes { .. } | BeneathError::PeerUid { .. } => {
                io::ErrorKind::PermissionDenied
            }
            BeneathError::NotASocket { .. } => io::ErrorKind::InvalidInput,
            BeneathError::Open { source, .. }
            | BeneathError::Connect { source, .. }
            | BeneathError::PeerCred { source, .. }
            | BeneathError::Remove { source, .. } => source.kind(),
            BeneathError::TooDeep { .. } | BeneathError::KeepsFilling { .. } => {
                io::ErrorKind::Other
            }
        }
    }
}

impl From<BeneathError> for io::Error {
    fn from(e: BeneathError) -> io::Error {
        io::Error::new(e.io_kind(), e)
    }
}

/// Checks that `name` is one path component: not empty, `.` or `..`, without `/` or NUL.
fn component(name: &str) -> Result<&str, BeneathError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(BeneathError::Component {
            name: name.to_owned(),
        });
    }
    Ok(name)
}

/// Checks that `name` is a relative path that stays beneath its folder on its face: not empty,
/// not absolute, no `..` component, no NUL (`openat2` enforces the rest).
fn relative(name: &str) -> Result<&str, BeneathError> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains('\0')
        || name.split('/').any(|c| c == "..");
    if bad {
        return Err(BeneathError::Name {
            name: name.to_owned(),
        });
    }
    Ok(name)
}

/// Opens the folder `name` (one component) of `parent` as `O_PATH | O_DIRECTORY | O_NOFOLLOW |
/// O_CLOEXEC`: a symlink there is refused, never followed, as is anything but a folder. The
/// errors are [`io::Error`]s holding a [`BeneathError`] (`get_ref` and `downcast_ref` find it)
/// that names the entry; `NotADirectory` for a symlink or a non-folder.
pub fn open_dir_nofollow(parent: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    let name = component(name)?;
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(parent, name, flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        // O_PATH | O_NOFOLLOW opens a symlink itself, and O_DIRECTORY then refuses it with
        // ENOTDIR, like any other non-folder: say which it was (the answer is only for the
        // message; nothing is opened through it).
        Err(Errno::NOTDIR) => {
            let kind = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .map(|st| FileType::from_raw_mode(st.st_mode));
            Err(match kind {
                Ok(FileType::Symlink) => BeneathError::Symlink {
                    name: name.to_owned(),
                },
                Ok(t) => BeneathError::NotAFolder {
                    name: name.to_owned(),
                    kind: kind_of(t),
                },
                Err(e) => BeneathError::Open {
                    name: name.to_owned(),
                    source: e.into(),
                },
            }
            .into())
        }
        Err(e) => Err(BeneathError::Open {
            name: name.to_owned(),
            source: e.into(),
        }
        .into()),
    }
}

/// Opens `name` beneath `dir` as `O_PATH` with no symlink anywhere on its path and nothing
/// leading out, and checks it is a socket.
fn open_socket_beneath(dir: BorrowedFd<'_>, name: &str) -> Result<OwnedFd, BeneathError> {
    let name = relative(name)?;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd =
        rustix::fs::openat2(dir, name, flags, Mode::empty(), resolve).map_err(|e| match e {
            // With O_PATH | O_NOFOLLOW a trailing symlink is opened itself (fstat says so below);
            // ELOOP means one on the way.
            Errno::LOOP => BeneathError::SymlinkOnPath {
                name: name.to_owned(),
            },
            Errno::XDEV => BeneathError::Escapes {
                name: name.to_owned(),
            },
            e => BeneathError::Open {
                name: name.to_owned(),
                source: e.into(),
            },
        })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| BeneathError::Open {
        name: name.to_owned(),
        source: e.into(),
    })?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Socket => Ok(fd),
        FileType::Symlink => Err(BeneathError::Symlink {
            name: name.to_owned(),
        }),
        t => Err(BeneathError::NotASocket {
            name: name.to_owned(),
            kind: kind_of(t),
        }),
    }
}

/// Connects a unix stream socket to `name` beneath `dir` without following any link: `name` is
/// opened with `openat2` (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`,
/// `O_PATH | O_NOFOLLOW`), must be a socket (a symlink, FIFO, regular file or folder is refused,
/// naming it), and the connection goes to that very inode through `/proc/self/fd/N` (so /proc
/// must be mounted), not to whatever the name holds by then. `name` may have several
/// components (`sub/app.sock`); none may be a symlink or `..`.
///
/// The connect blocks while the listener's backlog is full, as any unix stream connect does.
pub fn connect_unix_beneath(dir: BorrowedFd<'_>, name: &str) -> Result<UnixStream, BeneathError> {
    connect_beneath(dir, name, SocketFlags::CLOEXEC)
}

/// [`connect_unix_beneath`] with a socket made with `flags`.
fn connect_beneath(
    dir: BorrowedFd<'_>,
    name: &str,
    flags: SocketFlags,
) -> Result<UnixStream, BeneathError> {
    let target = open_socket_beneath(dir, name)?;
    connect_via(target.as_fd(), name, flags)
}

/// Connects a socket made with `flags` to the socket inode `target` (an `O_PATH` descriptor)
/// through `/proc/self/fd/N`; `name` is for messages.
fn connect_via(
    target: BorrowedFd<'_>,
    name: &str,
    flags: SocketFlags,
) -> Result<UnixStream, BeneathError> {
    let connect = |source: io::Error| BeneathError::Connect {
        name: name.to_owned(),
        source,
    };
    let sock = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None)
        .map_err(|e| connect(e.into()))?;
    let via = format!("/proc/self/fd/{}", target.as_raw_fd());
    let addr = SocketAddrUnix::new(via.as_str()).map_err(|e| connect(e.into()))?;
    rustix::net::connect(&sock, &addr).map_err(|e| connect(e.into()))?;
    Ok(UnixStream::from(sock))
}

/// Opens the unix socket `name` beneath `dir` as `O_PATH`, as [`connect_unix_beneath`] does
/// (no symlink anywhere on its path, nothing leading out, a socket), to connect to later with
/// [`connect_opened_nonblocking`] without opening it again. The descriptor names that inode for
/// good: a listener that goes away leaves it refusing connections (open the name again then).
pub fn open_socket_nofollow(dir: BorrowedFd<'_>, name: &str) -> Result<OwnedFd, BeneathError> {
    open_socket_beneath(dir, name)
}

/// [`connect_vassal_nonblocking`] to a socket opened by [`open_socket_nofollow`]; `name` is
/// for messages.
pub fn connect_opened_nonblocking(
    socket: BorrowedFd<'_>,
    name: &str,
    expected_uid: u32,
) -> Result<UnixStream, BeneathError> {
    let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
    check_peer(connect_via(socket, name, flags)?, name, expected_uid)
}

/// [`connect_unix_beneath`], then checks that the listener's uid (`SO_PEERCRED`: the
/// credentials the kernel recorded at its `listen`) is `expected_uid`, refusing the
/// connection, naming both uids, when it is not.
pub fn connect_vassal(
    dir: BorrowedFd<'_>,
    name: &str,
    expected_uid: u32,
) -> Result<UnixStream, BeneathError> {
    check_peer(connect_unix_beneath(dir, name)?, name, expected_uid)
}

/// [`connect_vassal`] with a non-blocking socket (for an event loop): the connect never waits.
/// A listener whose backlog is full fails with `Connect` holding `EAGAIN`
/// ([`io::ErrorKind::WouldBlock`]): try again later. The stream returned is non-blocking.
pub fn connect_vassal_nonblocking(
    dir: BorrowedFd<'_>,
    name: &str,
    expected_uid: u32,
) -> Result<UnixStream, BeneathError> {
    let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
    check_peer(connect_beneath(dir, name, flags)?, name, expected_uid)
}

/// Checks that the listener of `stream` (connected to `name`) runs as `expected_uid`.
fn check_peer(
    stream: UnixStream,
    name: &str,
    expected_uid: u32,
) -> Result<UnixStream, BeneathError> {
    let cred = crate::sock::peer_cred(&stream).map_err(|source| BeneathError::PeerCred {
        name: name.to_owned(),
        source,
    })?;
    if cred.uid != expected_uid {
        return Err(BeneathError::PeerUid {
            name: name.to_owned(),
            peer: cred.uid,
            expected: expected_uid,
        });
    }
    Ok(stream)
}

/// A path relative to the folder given to [`remove_tree_beneath`], for messages.
struct Shown<'a> {
    parent: Option<&'a Shown<'a>>,
    name: &'a CStr,
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.parent {
            write!(f, "{p}/")?;
        }
        write!(f, "{}", self.name.to_string_lossy())
    }
}

/// Removes `name` (one component) of `parent` and, when it is a folder, everything in it, with
/// `unlinkat`: a symlink is removed, never followed; subfolders are opened `O_NOFOLLOW` (one
/// that became a symlink meanwhile is removed as a link). A name that is not there is fine
/// (nothing to remove). Refuses a tree more than [`MAX_DEPTH`] folders deep, and gives up on a
/// folder that is still not empty after a few rounds (someone keeps filling it).
pub fn remove_tree_beneath(parent: BorrowedFd<'_>, name: &str) -> Result<(), BeneathError> {
    let name = component(name)?;
    let c = CString::new(name).map_err(|_| BeneathError::Component {
        name: name.to_owned(),
    })?;
    let shown = Shown {
        parent: None,
        name: &c,
    };
    remove_entry(parent, &shown, 0)
}

fn remove_error(shown: &Shown<'_>, e: Errno) -> BeneathError {
    BeneathError::Remove {
        name: shown.to_string(),
        source: e.into(),
    }
}

/// Removes one entry of `parent`: anything but a folder by unlinking it; a folder by emptying
/// it first.
fn remove_entry(
    parent: BorrowedFd<'_>,
    shown: &Shown<'_>,
    depth: usize,
) -> Result<(), BeneathError> {
    let name = shown.name;
    for _ in 0..MAX_ROUNDS {
        match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => return Ok(()),
            // A folder: emptied first, below.
            Err(Errno::ISDIR) => {}
            Err(e) => return Err(remove_error(shown, e)),
        }
        if depth >= MAX_DEPTH {
            return Err(BeneathError::TooDeep {
                name: shown.to_string(),
            });
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(parent, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(()),
            // It was swapped for a symlink or a file since the unlink: unlink that.
            Err(Errno::LOOP | Errno::NOTDIR) => continue,
            Err(e) => return Err(remove_error(shown, e)),
        };
        let mut dir = Dir::new(fd).map_err(|e| remove_error(shown, e))?;
        for _ in 0..MAX_ROUNDS {
            empty(&mut dir, shown, depth)?;
            match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => return Ok(()),
                Err(Errno::NOTEMPTY | Errno::EXIST) => {}
                // Swapped for something else than a folder: the outer loop unlinks it.
                Err(Errno::NOTDIR) => break,
                Err(e) => return Err(remove_error(shown, e)),
            }
        }
    }
    Err(BeneathError::KeepsFilling {
        name: shown.to_string(),
    })
}

/// Removes every entry of the open folder `dir` (named `shown`).
fn empty(dir: &mut Dir, shown: &Shown<'_>, depth: usize) -> Result<(), BeneathError> {
    dir.rewind();
    let mut names = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry.map_err(|e| remove_error(shown, e))?;
        let n = entry.file_name();
        if n != c"." && n != c".." {
            names.push(n.to_owned());
        }
    }
    let fd = dir.fd().map_err(|e| remove_error(shown, e))?;
    for n in &names {
        let child = Shown {
            parent: Some(shown),
            name: n,
        };
        remove_entry(fd.as_fd(), &child, depth + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::net::UnixListener;
    use std::path::Path;

    const NOBODY: u32 = 65534;

    fn open(path: &Path) -> OwnedFd {
        rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    fn assert_root() {
        assert!(
            rustix::process::geteuid().is_root(),
            "this test needs root (it switches a thread's ids to a plain user's); CI runs as root"
        );
    }

    /// A temporary folder everyone may enter.
    fn open_tempdir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        dir
    }

    fn set_mode(path: &Path, mode: u32) {
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Runs `f` on a thread whose effective ids are nobody's (the process stays root).
    fn as_nobody<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                let id = rustix::process::Gid::from_raw(NOBODY);
                rustix::thread::set_thread_groups(&[id]).unwrap();
                rustix::thread::set_thread_res_gid(None, id, None).unwrap();
                rustix::thread::set_thread_res_uid(
                    None,
                    rustix::process::Uid::from_raw(NOBODY),
                    None,
                )
                .unwrap();
                assert_eq!(rustix::process::geteuid().as_raw(), NOBODY);
                f()
            })
            .join()
            .unwrap()
        })
    }

    /// A listener that answers each connection with `answer` and closes it.
    fn serve(listener: UnixListener, answer: &'static [u8]) {
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { return };
                let _ = c.write_all(answer);
            }
        });
    }

    fn read_all(mut s: UnixStream) -> Vec<u8> {
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn a_real_socket_connects() {
        let tmp = tempfile::tempdir().unwrap();
        serve(
            UnixListener::bind(tmp.path().join("app.sock")).unwrap(),
            b"hi",
        );
        mkdir(&tmp.path().join("sub"));
        serve(
            UnixListener::bind(tmp.path().join("sub/deep.sock")).unwrap(),
            b"deep",
        );
        let dir = open(tmp.path());
        assert_eq!(
            read_all(connect_unix_beneath(dir.as_fd(), "app.sock").unwrap()),
            b"hi"
        );
        assert_eq!(
            read_all(connect_unix_beneath(dir.as_fd(), "sub/deep.sock").unwrap()),
            b"deep"
        );
    }

    fn mkdir(path: &Path) {
        fs_err::create_dir(path).unwrap();
    }

    #[test]
    fn a_symlink_to_a_socket_elsewhere_is_refused() {
        let elsewhere = tempfile::tempdir().unwrap();
        let other = elsewhere.path().join("other.sock");
        serve(UnixListener::bind(&other).unwrap(), b"other");
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&other, tmp.path().join("app.sock")).unwrap();
        // A relative link too, and one to a socket in the same folder.
        std::os::unix::fs::symlink("../../x.sock", tmp.path().join("rel.sock")).unwrap();
        let dir = open(tmp.path());
        let e = connect_unix_beneath(dir.as_fd(), "app.sock").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`app.sock` is a symbolic link, which is never followed"
        );
        assert!(matches!(
            connect_unix_beneath(dir.as_fd(), "rel.sock"),
            Err(BeneathError::Symlink { .. })
        ));
        // The same through connect_vassal, whatever uid is expected.
        assert!(matches!(
            connect_vassal(dir.as_fd(), "app.sock", 0),
            Err(BeneathError::Symlink { .. })
        ));
    }

    #[test]
    fn a_symlinked_folder_on_the_path_is_refused() {
        let elsewhere = tempfile::tempdir().unwrap();
        serve(
            UnixListener::bind(elsewhere.path().join("app.sock")).unwrap(),
            b"other",
        );
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), tmp.path().join("sub")).unwrap();
        let dir = open(tmp.path());
        let e = connect_unix_beneath(dir.as_fd(), "sub/app.sock").unwrap_err();
        assert_eq!(
            e.to_string(),
            "a folder on the path `sub/app.sock` is a symbolic link, which is never followed"
        );
        // As a folder to open, the link is refused as well.
        let e = open_dir_nofollow(dir.as_fd(), "sub").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotADirectory);
        assert_eq!(
            e.to_string(),
            "`sub` is a symbolic link, which is never followed"
        );
        assert!(matches!(
            e.get_ref().and_then(|i| i.downcast_ref::<BeneathError>()),
            Some(BeneathError::Symlink { .. })
        ));
    }

    #[test]
    fn a_fifo_a_file_or_a_folder_is_not_a_socket() {
        let tmp = tempfile::tempdir().unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tmp.path().join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        fs_err::File::create_new(tmp.path().join("file")).unwrap();
        mkdir(&tmp.path().join("folder"));
        let dir = open(tmp.path());
        for (name, kind) in [
            ("fifo", "FIFO"),
            ("file", "regular file"),
            ("folder", "folder"),
        ] {
            let e = connect_unix_beneath(dir.as_fd(), name).unwrap_err();
            assert_eq!(e.to_string(), format!("`{name}` is a {kind}, not a socket"));
        }
        let e = open_dir_nofollow(dir.as_fd(), "fifo").unwrap_err();
        assert_eq!(e.to_string(), "`fifo` is a FIFO, not a folder");
        assert!(open_dir_nofollow(dir.as_fd(), "folder").is_ok());
    }

    #[test]
    fn names_that_lead_out_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        mkdir(&tmp.path().join("sub"));
        let dir = open(tmp.path());
        for name in ["", "/etc/passwd", "../x.sock", "sub/../../x.sock"] {
            assert!(
                matches!(
                    connect_unix_beneath(dir.as_fd(), name),
                    Err(BeneathError::Name { .. })
                ),
                "{name}"
            );
        }
        for name in ["", ".", "..", "/", "a/b"] {
            let e = open_dir_nofollow(dir.as_fd(), name).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name}");
            assert!(matches!(
                remove_tree_beneath(dir.as_fd(), name),
                Err(BeneathError::Component { .. })
            ));
        }
        let e = connect_unix_beneath(dir.as_fd(), "none.sock").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot open `none.sock`: No such file or directory"),
            "{e}"
        );
    }

    #[test]
    fn a_socket_no_one_listens_on_refuses_the_connection() {
        let tmp = tempfile::tempdir().unwrap();
        drop(UnixListener::bind(tmp.path().join("dead.sock")).unwrap());
        let dir = open(tmp.path());
        let e = connect_unix_beneath(dir.as_fd(), "dead.sock").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot connect to `dead.sock`: Connection refused"),
            "{e}"
        );
    }

    #[test]
    fn the_connection_goes_to_the_inode_that_was_checked() {
        // Swapping the name for a symlink after the open changes nothing: the connect goes
        // through the descriptor.
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        serve(
            UnixListener::bind(tmp.path().join("app.sock")).unwrap(),
            b"mine",
        );
        serve(
            UnixListener::bind(elsewhere.path().join("x.sock")).unwrap(),
            b"other",
        );
        let dir = open(tmp.path());
        let target = open_socket_beneath(dir.as_fd(), "app.sock").unwrap();
        fs_err::rename(tmp.path().join("app.sock"), tmp.path().join("moved.sock")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join("x.sock"), tmp.path().join("app.sock"))
            .unwrap();
        let sock = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let via = format!("/proc/self/fd/{}", target.as_raw_fd());
        rustix::net::connect(&sock, &SocketAddrUnix::new(via.as_str()).unwrap()).unwrap();
        assert_eq!(read_all(UnixStream::from(sock)), b"mine");
    }

    #[test]
    fn an_opened_socket_connects_until_its_listener_goes() {
        let tmp = tempfile::tempdir().unwrap();
        let me = rustix::process::geteuid().as_raw();
        // A listener that answers two connections, then goes.
        let first = UnixListener::bind(tmp.path().join("app.sock")).unwrap();
        let served = std::thread::spawn(move || {
            for conn in first.incoming().take(2) {
                let _ = conn.unwrap().write_all(b"first");
            }
        });
        let dir = open(tmp.path());
        let opened = open_socket_nofollow(dir.as_fd(), "app.sock").unwrap();
        for _ in 0..2 {
            let s = connect_opened_nonblocking(opened.as_fd(), "app.sock", me).unwrap();
            s.set_nonblocking(false).unwrap();
            assert_eq!(read_all(s), b"first");
        }
        served.join().unwrap();
        // A new listener under the name is a new inode: the old descriptor refuses, the name
        // opened again connects.
        fs_err::remove_file(tmp.path().join("app.sock")).unwrap();
        let dead = UnixListener::bind(tmp.path().join("app.sock")).unwrap();
        serve(dead, b"second");
        let e = connect_opened_nonblocking(opened.as_fd(), "app.sock", me).unwrap_err();
        assert!(
            matches!(&e, BeneathError::Connect { source, .. } if source.kind() == io::ErrorKind::ConnectionRefused),
            "{e}"
        );
        let again = open_socket_nofollow(dir.as_fd(), "app.sock").unwrap();
        let s = connect_opened_nonblocking(again.as_fd(), "app.sock", me).unwrap();
        s.set_nonblocking(false).unwrap();
        assert_eq!(read_all(s), b"second");
        let e = connect_opened_nonblocking(again.as_fd(), "app.sock", me + 1).unwrap_err();
        assert!(matches!(e, BeneathError::PeerUid { .. }), "{e}");
        std::os::unix::fs::symlink(tmp.path().join("app.sock"), tmp.path().join("link.sock"))
            .unwrap();
        assert!(matches!(
            open_socket_nofollow(dir.as_fd(), "link.sock"),
            Err(BeneathError::Symlink { .. })
        ));
    }

    #[test]
    fn the_listener_uid_must_be_the_vassal_uid() {
        assert_root();
        let tmp = open_tempdir();
        let run = tmp.path().join("run");
        mkdir(&run);
        std::os::unix::fs::chown(&run, Some(NOBODY), Some(NOBODY)).unwrap();
        // The "vassal" binds and listens as nobody in its own folder.
        let listener = as_nobody(|| UnixListener::bind(run.join("app.sock")).unwrap());
        serve(listener, b"vassal");
        let dir = open(&run);
        let ok = connect_vassal(dir.as_fd(), "app.sock", NOBODY).unwrap();
        assert_eq!(read_all(ok), b"vassal");
        let e = connect_vassal(dir.as_fd(), "app.sock", 1000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the listener of `app.sock` runs as uid 65534, not as the vassal's uid 1000"
        );
        // A root listener in the vassal's folder (one it hard-linked or got some other way)
        // is not the vassal's either.
        serve(UnixListener::bind(run.join("root.sock")).unwrap(), b"root");
        let e = connect_vassal(dir.as_fd(), "root.sock", NOBODY).unwrap_err();
        assert!(matches!(
            e,
            BeneathError::PeerUid {
                peer: 0,
                expected: NOBODY,
                ..
            }
        ));
    }

    #[test]
    fn as_a_plain_user_links_are_refused_and_real_sockets_connect() {
        assert_root();
        let tmp = open_tempdir();
        let elsewhere = open_tempdir();
        let other = elsewhere.path().join("other.sock");
        serve(UnixListener::bind(&other).unwrap(), b"other");
        set_mode(&other, 0o777);
        let mine = tmp.path().join("app.sock");
        serve(UnixListener::bind(&mine).unwrap(), b"mine");
        set_mode(&mine, 0o777);
        std::os::unix::fs::symlink(&other, tmp.path().join("link.sock")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), tmp.path().join("sub")).unwrap();
        let dir = open(tmp.path());
        let (ok, link, sub) = as_nobody(|| {
            (
                connect_vassal(dir.as_fd(), "app.sock", 0).map(read_all),
                connect_unix_beneath(dir.as_fd(), "link.sock").map(read_all),
                connect_unix_beneath(dir.as_fd(), "sub/other.sock").map(read_all),
            )
        });
        assert_eq!(ok.unwrap(), b"mine");
        assert!(
            matches!(link, Err(BeneathError::Symlink { .. })),
            "{link:?}"
        );
        assert!(
            matches!(sub, Err(BeneathError::SymlinkOnPath { .. })),
            "{sub:?}"
        );
        // Without the right to write the socket, a plain user gets EACCES, like connect(2).
        set_mode(&mine, 0o700);
        let denied = as_nobody(|| connect_unix_beneath(dir.as_fd(), "app.sock").map(read_all));
        assert!(
            matches!(&denied, Err(BeneathError::Connect { source, .. })
                if source.kind() == io::ErrorKind::PermissionDenied),
            "{denied:?}"
        );
    }

    #[test]
    fn removing_a_tree_removes_links_and_leaves_what_they_point_to() {
        let outside = tempfile::tempdir().unwrap();
        fs_err::write(outside.path().join("precious"), "keep me").unwrap();
        mkdir(&outside.path().join("deeper"));
        fs_err::write(outside.path().join("deeper/also"), "keep me too").unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("vassal");
        mkdir(&top);
        // Links to the outside folder and file, at the top and further down; a hard link, a
        // FIFO, a socket, a folder without rights, nested folders.
        std::os::unix::fs::symlink(outside.path(), top.join("out")).unwrap();
        mkdir(&top.join("a"));
        mkdir(&top.join("a/b"));
        std::os::unix::fs::symlink(outside.path(), top.join("a/b/out")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("precious"), top.join("a/p")).unwrap();
        fs_err::hard_link(outside.path().join("precious"), top.join("a/hard")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            top.join("a/fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        drop(UnixListener::bind(top.join("a/b/app.sock")).unwrap());
        let parent = open(tmp.path());
        remove_tree_beneath(parent.as_fd(), "vassal").unwrap();
        assert!(!top.exists());
        assert!(fs_err::symlink_metadata(&top).is_err());
        assert_eq!(
            fs_err::read_to_string(outside.path().join("precious")).unwrap(),
            "keep me"
        );
        assert_eq!(
            fs_err::read_to_string(outside.path().join("deeper/also")).unwrap(),
            "keep me too"
        );
        // Nothing there is fine; a symlink as the top entry is removed, not followed.
        remove_tree_beneath(parent.as_fd(), "vassal").unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("vassal")).unwrap();
        remove_tree_beneath(parent.as_fd(), "vassal").unwrap();
        assert!(fs_err::symlink_metadata(&top).is_err());
        assert!(outside.path().join("precious").exists());
        assert!(outside.path().join("deeper/also").exists());
    }

    #[test]
    fn root_removes_a_folder_its_owner_locked() {
        assert_root();
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("vassal");
        fs_err::create_dir_all(top.join("locked/inner")).unwrap();
        fs_err::write(top.join("locked/inner/x"), "x").unwrap();
        set_mode(&top.join("locked/inner"), 0o000);
        set_mode(&top.join("locked"), 0o000);
        let parent = open(tmp.path());
        remove_tree_beneath(parent.as_fd(), "vassal").unwrap();
        assert!(fs_err::symlink_metadata(&top).is_err());
    }

    #[test]
    fn a_tree_deeper_than_the_bound_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut p = tmp.path().join("v");
        mkdir(&p);
        for _ in 0..=MAX_DEPTH {
            p.push("d");
            mkdir(&p);
        }
        let parent = open(tmp.path());
        let e = remove_tree_beneath(parent.as_fd(), "v").unwrap_err();
        assert!(matches!(e, BeneathError::TooDeep { .. }), "{e}");
        let shown = e.to_string();
        assert!(shown.starts_with("cannot remove `v/d/d/"), "{shown}");
        assert!(
            shown.ends_with(&format!("it is more than {MAX_DEPTH} folders deep")),
            "{shown}"
        );
    }
}
