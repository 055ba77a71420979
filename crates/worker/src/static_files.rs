//! Static files, served by the worker itself before the app runs (uWSGI's `static-map`,
//! `static-map2`, `static-index`, `static-expires`, `static-safe`; `core/static.c`), so they go
//! out with sendfile and never cost interpreter time (ARCHITECTURE.md decisions 6 and 9).
//!
//! # Which requests
//! Only GET and HEAD. `static-map /mount=/dir` takes a PATH_INFO that starts with `/mount` on a
//! path-segment boundary (`/mount` or `/mount/...`, never `/mountain`: uWSGI compares plain
//! prefixes) and looks for `dir` + what follows the mount; `static-map2` looks for `dir` + the
//! whole PATH_INFO. Maps are tried in order and the first one whose file exists answers; when
//! none does, the app gets the request, as in uWSGI. A map whose target is a file (uWSGI's
//! `static-map /favicon.ico=/srv/favicon.ico`) answers for exactly its mount. A directory is
//! answered by the first `static-index` name found inside it, without a redirect (as uWSGI);
//! with none, the app gets the request. Files that are not regular (FIFOs, sockets, devices) are
//! left to the app too.
//!
//! # Confinement
//! The jail runs customer code and a mapped folder may be writable by it (or by an upload form
//! of the customer's app), so the file served must be inside the map's folder, or inside one of
//! the `static-safe` folders, whatever symlinks the folder holds:
//! - A PATH_INFO (already percent-decoded by the runtime, so `%2e%2e` arrives as `..`) with a
//!   `..` segment or a NUL byte is refused with 403 as soon as a map's mount matches it: no
//!   client sends one in a normal request, and answering 403 makes the attempt visible in the
//!   request log instead of quietly handing it to the app.
//! - The file is opened first and checked afterwards, on the open descriptor, so nothing can
//!   swap a symlink between the check and the open. The map's folder is opened (`O_PATH`) on
//!   each request, so a folder replaced by a deploy is seen at once and no descriptor to an old
//!   release is held. The path inside it is opened with `openat2(RESOLVE_BENEATH)` relative to
//!   that descriptor: the kernel itself refuses any resolution (`..` from a symlink target, an
//!   absolute symlink) that would leave the folder, and it needs no `/proc`. This is the path
//!   every ordinary request takes.
//! - When the kernel refuses (`EXDEV`: an absolute symlink, or one leading out of the folder),
//!   or `openat2` is unavailable (`ENOSYS`, or `EPERM` from a seccomp filter; then it is not
//!   tried again), the path is opened again following symlinks, with `O_PATH` (so opening it has
//!   no side effect, even on a device), and the real path of what was opened is read from
//!   `/proc/self/fd/N`. It must lie under the folder's real path (read the same way from the
//!   folder's descriptor) or under a `static-safe` folder's real path (resolved once, in
//!   [`StaticFiles::new`]), compared component by component: `/srv/www-x` is not under
//!   `/srv/www` (uWSGI compares strings, so it is there). Only then is the file reopened for
//!   reading through that same descriptor. A file outside is refused with 403. This path needs
//!   `/proc` mounted (the jail mounts it); without it, such a request is an I/O error.
//! - A file or folder the worker may not read (`EACCES`) is answered 403 too, except a folder
//!   that can be searched but not listed (mode 711), which still gets its index.
//! - Regular files are opened `O_NONBLOCK` (cleared once the file is known to be regular), so a
//!   FIFO planted in the folder cannot block the worker.
//!
//! A hard link inside the folder to a file outside it is not detected (no path check can see it;
//! Linux's `protected_hardlinks`, on by default, only lets a user link files they own or may
//! write). Dot files are served like any other, as in uWSGI.
//!
//! # The answer
//! `Content-Type` from the extension of the name asked for (`application/octet-stream` when it
//! has none that is known: uWSGI sends no type then, which lets browsers sniff), `Content-Length`,
//! `Last-Modified`, `Accept-Ranges: bytes`, and `Expires` (now + seconds) from the first
//! `static-expires` regex matching the file's real path. `If-Modified-Since` at or after the
//! modification time answers 304 (ignored when `If-None-Match` is present, as RFC 9110 says; we
//! send no ETag, so none can match). One `Range` (`bytes=a-b`, `a-`, `-n`) answers 206 with that
//! slice (also when the slice is the whole file, like nginx; uWSGI answers 200 then); a range
//! starting past the end answers 416; several ranges or a malformed one are ignored (200 with the
//! whole file, as RFC 9110 allows). `If-Range` with anything but the exact `Last-Modified` date
//! answers the whole file. A HEAD request gets the same head and no body.
//!
//! After [`StaticFiles::serve`] answered, [`Response::status_code`] and
//! [`Response::body_bytes`] tell the runtime what to log.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use regex::bytes::Regex;
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use crate::request::Vars;
use crate::response::Response;
use crate::settings::Settings;

/// A static-files option that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    /// A `static-expires` regex that does not compile.
    #[error("static-expires: regex `{regex}` does not compile: {source}")]
    ExpiresRegex {
        regex: String,
        source: Box<regex::Error>,
    },
    /// A `static-index` name with `..`, or naming the folder itself.
    #[error("static-index: `{0}` is not a file name inside the folder")]
    IndexName(String),
}

#[derive(Debug)]
struct Map {
    /// The mount without trailing slashes (`/` becomes empty: it matches every path).
    mount: Vec<u8>,
    dir: PathBuf,
    keep_mount: bool,
}

impl Map {
    /// What follows the mount, when `path` starts with it on a segment boundary.
    fn rest<'p>(&self, path: &'p [u8]) -> Option<&'p [u8]> {
        let rest = path.strip_prefix(self.mount.as_slice())?;
        (rest.is_empty() || rest[0] == b'/').then_some(rest)
    }
}

/// The static maps and their options, ready to answer requests.
#[derive(Debug)]
pub struct StaticFiles {
    maps: Vec<Map>,
    /// `static-index` names, as relative paths.
    index: Vec<Vec<u8>>,
    expires: Vec<(Regex, u64)>,
    /// Real paths of the `static-safe` folders.
    safe: Vec<PathBuf>,
    /// Cleared when `openat2` turns out to be missing or forbidden.
    openat2: AtomicBool,
}

/// Where looking for a file in one map ended.
#[derive(Debug)]
enum Found {
    /// Nothing to serve here: try the next map, or the app.
    Missing,
    /// A path that must not be served: 403.
    Refused,
    /// A directory (look for an index inside).
    Dir,
    File(Opened),
}

/// A regular file, open for reading.
#[derive(Debug)]
struct Opened {
    file: File,
    stat: Stat,
    /// The path asked for (the extension gives the type).
    path: PathBuf,
    /// The real path, when it was read already.
    real: Option<PathBuf>,
}

/// How a `Range` header is answered.
#[derive(Debug, PartialEq, Eq)]
enum Ranged {
    Whole,
    /// First and last byte, inclusive.
    Part(u64, u64),
    Unsatisfiable,
}

/// Flags for opening a file to serve: never waits on a FIFO, never takes a terminal.
const READ: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY)
    .union(OFlags::NONBLOCK);
const PATH_ONLY: OFlags = OFlags::PATH.union(OFlags::CLOEXEC);
const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);
/// The last second HTTP-dates (four-digit years) can carry.
const LAST_DATE: u64 = 253_402_300_799;

impl StaticFiles {
    /// From the settings; compiles the static-expires regexes (a bad regex is an error naming
    /// it). With no map, [`StaticFiles::is_empty`] is true and nothing is ever served.
    pub fn new(settings: &Settings) -> Result<Self, StaticError> {
        let expires = settings
            .static_expires
            .iter()
            .map(|(regex, secs)| {
                Regex::new(regex)
                    .map(|r| (r, *secs))
                    .map_err(|source| StaticError::ExpiresRegex {
                        regex: regex.clone(),
                        source: Box::new(source),
                    })
            })
            .collect::<Result<_, _>>()?;
        let index = settings
            .static_index
            .iter()
            .map(|name| match relative(name.as_bytes()) {
                Some(rel) if rel != b"." && !rel.ends_with(b"/") => Ok(rel),
                _ => Err(StaticError::IndexName(name.clone())),
            })
            .collect::<Result<_, _>>()?;
        // A static-safe folder that does not exist yet keeps its path as given: if it is created
        // later without symlinks, that path is its real path.
        let safe = settings
            .static_safe
            .iter()
            .map(|p| fs_err::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect();
        let maps = settings
            .static_maps
            .iter()
            .map(|m| {
                let mut mount = m.mount.as_bytes().to_vec();
                while mount.last() == Some(&b'/') {
                    mount.pop();
                }
                Map {
                    mount,
                    dir: m.dir.clone(),
                    keep_mount: m.keep_mount,
                }
            })
            .collect();
        Ok(StaticFiles {
            maps,
            index,
            expires,
            safe,
            openat2: AtomicBool::new(true),
        })
    }

    /// Whether there is no static map at all.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// If the request maps to a static file (GET or HEAD only; other methods are not handled,
    /// the app gets them), answers it through `response`, finishes the response and returns
    /// `Ok(true)`; `Ok(false)` when no map matches or the mapped file does not exist (then the
    /// app handles the request, as in uWSGI), with nothing sent. A refused path (`..`, a symlink
    /// leading out of the folder, a file the worker may not read) is answered 403. After
    /// `Ok(true)`, the response's `status_code`, `body_bytes` and `keep_alive` tell what
    /// happened.
    pub fn serve(&self, vars: &Vars, response: &mut Response<'_>) -> io::Result<bool> {
        if !matches!(vars.get(b"REQUEST_METHOD"), Some(b"GET" | b"HEAD")) {
            return Ok(false);
        }
        let path = vars.get(b"PATH_INFO").unwrap_or_default();
        for map in &self.maps {
            let Some(rest) = map.rest(path) else {
                continue;
            };
            let tail = if map.keep_mount { path } else { rest };
            match self.find(map, tail, rest.is_empty())? {
                Found::Missing | Found::Dir => {}
                Found::Refused => {
                    response.error(403, "Forbidden")?;
                    return Ok(true);
                }
                Found::File(opened) => {
                    self.answer(vars, opened, response)?;
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Looks for `tail` in one map (`exact`: the path was the mount itself, which is what a map
    /// to a single file answers).
    fn find(&self, map: &Map, tail: &[u8], exact: bool) -> io::Result<Found> {
        let Some(rel) = relative(tail) else {
            return Ok(Found::Refused);
        };
        let root = match rustix::fs::open(&map.dir, PATH_ONLY, Mode::empty()) {
            Ok(fd) => fd,
            // A folder that is not there (yet), or that the worker cannot reach: the app answers.
            Err(e) if is_missing(e) || e == Errno::ACCESS => return Ok(Found::Missing),
            Err(e) => return Err(e.into()),
        };
        match FileType::from_raw_mode(rustix::fs::fstat(&root)?.st_mode) {
            FileType::Directory => {}
            // A map to one file, named in the (trusted) settings.
            FileType::RegularFile if exact => {
                return match rustix::fs::open(&map.dir, READ, Mode::empty()) {
                    Ok(fd) => regular(fd, map.dir.clone(), None),
                    Err(e) if is_missing(e) => Ok(Found::Missing),
                    Err(Errno::ACCESS) => Ok(Found::Refused),
                    Err(e) => Err(e.into()),
                };
            }
            _ => return Ok(Found::Missing),
        }
        match self.open_in(map, &root, &rel)? {
            Found::Dir => {}
            other => return Ok(other),
        }
        for name in &self.index {
            let rel = join(&rel, name);
            match self.open_in(map, &root, &rel)? {
                Found::Missing | Found::Dir => {}
                other => return Ok(other),
            }
        }
        Ok(Found::Missing)
    }

    /// Opens `rel` (no `..`, no NUL) inside the map's folder `root`, confined to it (or to a
    /// `static-safe` folder): see the module doc.
    fn open_in(&self, map: &Map, root: &OwnedFd, rel: &[u8]) -> io::Result<Found> {
        let path = map.dir.join(OsStr::from_bytes(rel));
        if !self.openat2.load(Ordering::Relaxed) {
            return self.open_checked(root, rel, path);
        }
        match rustix::fs::openat2(root, rel, READ, Mode::empty(), BENEATH) {
            Ok(fd) => regular(fd, path, None),
            Err(Errno::ACCESS) => {
                // Not readable: still a directory when it can be searched (mode 711).
                match rustix::fs::openat2(root, rel, PATH_ONLY, Mode::empty(), BENEATH) {
                    Ok(fd) if is_dir(&fd)? => Ok(Found::Dir),
                    _ => Ok(Found::Refused),
                }
            }
            // Leaving the folder (or an absolute symlink), a magic link, a rename racing `..`.
            Err(Errno::XDEV | Errno::LOOP | Errno::AGAIN) => self.open_checked(root, rel, path),
            Err(Errno::NOSYS | Errno::PERM) => {
                self.openat2.store(false, Ordering::Relaxed);
                self.open_checked(root, rel, path)
            }
            Err(e) if is_missing(e) => Ok(Found::Missing),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens `rel` following every symlink, then checks the real path of what was opened.
    fn open_checked(&self, root: &OwnedFd, rel: &[u8], path: PathBuf) -> io::Result<Found> {
        let fd = match rustix::fs::openat(root, rel, PATH_ONLY, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) if is_missing(e) || e == Errno::LOOP => return Ok(Found::Missing),
            Err(Errno::ACCESS) => return Ok(Found::Refused),
            Err(e) => return Err(e.into()),
        };
        let real = fs_err::read_link(proc_fd(&fd))?;
        let root_real = fs_err::read_link(proc_fd(root))?;
        if !real.starts_with(&root_real) && !self.safe.iter().any(|s| real.starts_with(s)) {
            return Ok(Found::Refused);
        }
        match FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) {
            FileType::Directory => return Ok(Found::Dir),
            FileType::RegularFile => {}
            _ => return Ok(Found::Missing),
        }
        // Reopening through the descriptor opens the very file that was checked.
        match rustix::fs::open(proc_fd(&fd), READ, Mode::empty()) {
            Ok(file) => regular(file, path, Some(real)),
            Err(Errno::ACCESS) => Ok(Found::Refused),
            Err(e) if is_missing(e) => Ok(Found::Missing),
            Err(e) => Err(e.into()),
        }
    }

    /// Answers with the file: 200, 206, 304 or 416.
    fn answer(&self, vars: &Vars, opened: Opened, response: &mut Response<'_>) -> io::Result<()> {
        let Opened {
            file,
            stat,
            path,
            real,
        } = opened;
        let size = u64::try_from(stat.st_size).unwrap_or(0);
        let mtime = stat.st_mtime;
        let last_modified = http_date(mtime);
        let mut headers: Vec<(String, String)> = Vec::with_capacity(7);
        let kind = mime_guess::from_path(&path)
            .first_raw()
            .unwrap_or("application/octet-stream");
        headers.push(("Content-Type".into(), kind.into()));
        headers.push(("Last-Modified".into(), last_modified.clone()));
        if !self.expires.is_empty() {
            let real = real
                .or_else(|| fs_err::read_link(proc_fd(&file)).ok())
                .unwrap_or(path);
            let real = real.as_os_str().as_bytes();
            if let Some((_, secs)) = self.expires.iter().find(|(re, _)| re.is_match(real)) {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let at = i64::try_from(now.saturating_add(*secs)).unwrap_or(i64::MAX);
                headers.push(("Expires".into(), http_date(at)));
            }
        }
        let start = |response: &mut Response<'_>, status: &str, headers| {
            response.start(status, headers).map_err(io::Error::other)
        };

        let header = |name: &str| vars.get_str(name).map(str::trim);
        if header("HTTP_IF_NONE_MATCH").is_none()
            && let Some(since) = header("HTTP_IF_MODIFIED_SINCE").and_then(parse_date)
            && mtime <= since
        {
            headers.retain(|(n, _)| n != "Content-Type");
            start(response, "304 Not Modified", headers)?;
            response.finish()?;
            return Ok(());
        }

        headers.push(("Accept-Ranges".into(), "bytes".into()));
        let mut ranged = header("HTTP_RANGE").map_or(Ranged::Whole, |r| byte_range(r, size));
        if ranged != Ranged::Whole
            && let Some(cond) = header("HTTP_IF_RANGE")
            && parse_date(cond) != Some(mtime)
        {
            ranged = Ranged::Whole;
        }
        match ranged {
            Ranged::Whole => {
                start(response, "200 OK", headers)?;
                response.send_file(file, 0, Some(size))?;
            }
            Ranged::Part(first, last) => {
                headers.push((
                    "Content-Range".into(),
                    format!("bytes {first}-{last}/{size}"),
                ));
                start(response, "206 Partial Content", headers)?;
                response.send_file(file, first, Some(last - first + 1))?;
            }
            Ranged::Unsatisfiable => {
                headers.retain(|(n, _)| n != "Content-Type");
                headers.push(("Content-Range".into(), format!("bytes */{size}")));
                start(response, "416 Range Not Satisfiable", headers)?;
                response.write_last(b"")?;
            }
        }
        response.finish()?;
        Ok(())
    }
}

/// Classifies a descriptor opened for reading: a directory, a regular file (then ready to
/// serve), or something else (left to the app).
fn regular(fd: OwnedFd, path: PathBuf, real: Option<PathBuf>) -> io::Result<Found> {
    let stat = rustix::fs::fstat(&fd)?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => Ok(Found::Dir),
        FileType::RegularFile => {
            // O_NONBLOCK was only there for FIFOs.
            rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
            Ok(Found::File(Opened {
                file: File::from(fd),
                stat,
                path,
                real,
            }))
        }
        _ => Ok(Found::Missing),
    }
}

fn is_dir(fd: &OwnedFd) -> io::Result<bool> {
    Ok(FileType::from_raw_mode(rustix::fs::fstat(fd)?.st_mode) == FileType::Directory)
}

/// Errors that mean "no such file here".
fn is_missing(e: Errno) -> bool {
    matches!(
        e,
        Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG | Errno::NXIO | Errno::NODEV
    )
}

/// `/proc/self/fd/N`: the magic link to what a descriptor refers to.
fn proc_fd(fd: &impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

/// The path below a map's folder for what follows the mount: segments joined by `/`, empty and
/// `.` segments dropped, a trailing slash kept (so `file.css/` is not `file.css`), `.` for the
/// folder itself. `None` for a `..` segment or a NUL byte.
fn relative(tail: &[u8]) -> Option<Vec<u8>> {
    if tail.contains(&0) {
        return None;
    }
    let mut out = Vec::with_capacity(tail.len());
    for segment in tail.split(|&c| c == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => return None,
            s => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(s);
            }
        }
    }
    if out.is_empty() {
        out.push(b'.');
    } else if tail.ends_with(b"/") {
        out.push(b'/');
    }
    Some(out)
}

/// `rel` (a directory) + `/` + an index name.
fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let dir = rel.strip_suffix(b"/").unwrap_or(rel);
    if dir == b"." {
        return name.to_vec();
    }
    [dir, b"/", name].concat()
}

/// The answer to a `Range` header for a file of `size` bytes: one range only, else the whole.
fn byte_range(header: &str, size: u64) -> Ranged {
    let Some((unit, set)) = header.split_once('=') else {
        return Ranged::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranged::Whole;
    }
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return Ranged::Whole;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return Ranged::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // The last `n` bytes.
        return match number(last) {
            None => Ranged::Whole,
            Some(0) => Ranged::Unsatisfiable,
            Some(_) if size == 0 => Ranged::Unsatisfiable,
            Some(n) => Ranged::Part(size.saturating_sub(n), size - 1),
        };
    }
    let Some(first) = number(first) else {
        return Ranged::Whole;
    };
    let last = if last.is_empty() {
        u64::MAX
    } else {
        match number(last) {
            Some(l) if l >= first => l,
            _ => return Ranged::Whole,
        }
    };
    if first >= size {
        return Ranged::Unsatisfiable;
    }
    Ranged::Part(first, last.min(size - 1))
}

/// Digits only; too many of them is "very large", as RFC 9110 treats it.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

/// An HTTP-date (IMF-fixdate, RFC 850 or asctime) as seconds since the epoch.
fn parse_date(s: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(s).ok()?;
    i64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()
}

/// Seconds since the epoch as an IMF-fixdate, clamped to what the format can carry.
fn http_date(secs: i64) -> String {
    let secs = u64::try_from(secs).unwrap_or(0).min(LAST_DATE);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::Framing;
    use crate::response::tests::Collect;
    use crate::settings::StaticMap;
    use fs_err::os::unix::fs::symlink;
    use std::path::Path;

    const GET: Framing = Framing {
        http11: true,
        keep_alive: true,
        head_only: false,
        http: true,
    };

    /// What a request got: whether it was handled, the head, the body.
    #[derive(Debug)]
    struct Got {
        handled: bool,
        head: String,
        body: Vec<u8>,
    }

    impl Got {
        fn status(&self) -> &str {
            self.head.lines().next().unwrap_or_default()
        }
        fn header(&self, name: &str) -> Option<&str> {
            self.head.lines().skip(1).find_map(|l| {
                let (n, v) = l.split_once(": ")?;
                n.eq_ignore_ascii_case(name).then_some(v)
            })
        }
    }

    fn request(sf: &StaticFiles, method: &str, path: &[u8], headers: &[(&str, &str)]) -> Got {
        let mut vars = Vars::new();
        vars.push(b"REQUEST_METHOD", method.as_bytes());
        vars.push(b"PATH_INFO", path);
        for (n, v) in headers {
            vars.push_header(n.as_bytes(), v.as_bytes());
        }
        let mut out = Collect::default();
        let framing = Framing {
            head_only: method == "HEAD",
            ..GET
        };
        let mut response = Response::new(&mut out, framing);
        let handled = sf.serve(&vars, &mut response).unwrap();
        if handled {
            assert!(response.is_head_sent(), "a handled request was answered");
        }
        let text = out.bytes;
        let split = text
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(text.len(), |i| i + 4);
        Got {
            handled,
            head: String::from_utf8_lossy(&text[..split]).into_owned(),
            body: text[split..].to_vec(),
        }
    }

    /// The settings built twice: as is, and with `openat2` taken as unavailable (a seccomp
    /// filter refusing it), so every file goes through the `/proc/self/fd` check.
    fn both_ways(setup: impl Fn() -> Setup) -> [StaticFiles; 2] {
        let fallback = setup().build();
        fallback.openat2.store(false, Ordering::Relaxed);
        [setup().build(), fallback]
    }

    fn get(sf: &StaticFiles, path: &str) -> Got {
        request(sf, "GET", path.as_bytes(), &[])
    }

    fn write(path: &Path, data: &[u8]) {
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent).unwrap();
        }
        fs_err::write(path, data).unwrap();
    }

    struct Setup {
        maps: Vec<StaticMap>,
        index: Vec<String>,
        expires: Vec<(String, u64)>,
        safe: Vec<PathBuf>,
    }

    impl Setup {
        fn map(mount: &str, dir: &Path) -> Self {
            Setup {
                maps: vec![StaticMap {
                    mount: mount.into(),
                    dir: dir.to_path_buf(),
                    keep_mount: false,
                }],
                index: Vec::new(),
                expires: Vec::new(),
                safe: Vec::new(),
            }
        }
        fn build(self) -> StaticFiles {
            let settings = Settings {
                static_maps: self.maps,
                static_index: self.index,
                static_expires: self.expires,
                static_safe: self.safe,
                ..Settings::default()
            };
            StaticFiles::new(&settings).unwrap()
        }
    }

    /// A tree: `www/` (the map's folder) with a few files, `outside/secret.txt`, and
    /// `www-x/secret.txt` beside it.
    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        write(&p.join("www/css/site.css"), b"body{}");
        write(&p.join("www/js/app.js"), b"go()");
        write(&p.join("www/img/a.png"), b"\x89PNG");
        write(&p.join("www/page.html"), b"<p>hi</p>");
        write(&p.join("www/ten.bin"), b"0123456789");
        write(&p.join("www/docs/index.html"), b"<h1>docs</h1>");
        write(&p.join("www/noindex/other.txt"), b"x");
        write(&p.join("outside/secret.txt"), b"SECRET");
        write(&p.join("www-x/secret.txt"), b"SECRET-X");
        t
    }

    #[test]
    fn a_mapped_file_is_served_with_its_headers() {
        let t = tree();
        let sf = Setup::map("/static", &t.path().join("www")).build();
        let g = get(&sf, "/static/css/site.css");
        assert!(g.handled);
        assert_eq!(g.status(), "HTTP/1.1 200 OK");
        assert_eq!(g.body, b"body{}");
        assert_eq!(g.header("Content-Type"), Some("text/css"));
        assert_eq!(g.header("Content-Length"), Some("6"));
        assert_eq!(g.header("Accept-Ranges"), Some("bytes"));
        assert_eq!(g.header("Expires"), None);
        let mtime = fs_err::metadata(t.path().join("www/css/site.css"))
            .unwrap()
            .modified()
            .unwrap();
        let lm = httpdate::parse_http_date(g.header("Last-Modified").unwrap()).unwrap();
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs(lm), secs(mtime));
    }

    #[test]
    fn content_types_follow_the_extension() {
        let t = tree();
        let sf = Setup::map("/s", &t.path().join("www")).build();
        for (path, kind) in [
            ("/s/css/site.css", "text/css"),
            ("/s/js/app.js", "text/javascript"),
            ("/s/img/a.png", "image/png"),
            ("/s/page.html", "text/html"),
            ("/s/ten.bin", "application/octet-stream"),
        ] {
            assert_eq!(get(&sf, path).header("Content-Type"), Some(kind), "{path}");
        }
    }

    #[test]
    fn the_mount_matches_on_a_segment_boundary_only() {
        let t = tree();
        write(&t.path().join("www/ain/x.txt"), b"x");
        let sf = Setup::map("/mount", &t.path().join("www")).build();
        assert!(!get(&sf, "/mountain/x.txt").handled);
        assert!(!get(&sf, "/mountcss/site.css").handled);
        assert!(get(&sf, "/mount/css/site.css").handled);
        // A mount written with a trailing slash is the same mount.
        let sf = Setup::map("/mount/", &t.path().join("www")).build();
        assert!(get(&sf, "/mount/css/site.css").handled);
        assert!(!get(&sf, "/mountain/x.txt").handled);
        // `/` maps everything.
        let sf = Setup::map("/", &t.path().join("www")).build();
        assert_eq!(get(&sf, "/css/site.css").body, b"body{}");
    }

    #[test]
    fn static_map2_appends_the_whole_path() {
        let t = tree();
        let mut setup = Setup::map("/img", t.path());
        setup.maps[0].dir = t.path().join("www");
        setup.maps[0].keep_mount = true;
        let sf = setup.build();
        let g = get(&sf, "/img/a.png");
        assert_eq!(g.body, b"\x89PNG");
        assert_eq!(g.header("Content-Type"), Some("image/png"));
        // static-map would have looked for www/a.png.
        let sf = Setup::map("/img", &t.path().join("www")).build();
        assert!(!get(&sf, "/img/a.png").handled);
    }

    #[test]
    fn maps_are_tried_in_order_and_missing_files_fall_through() {
        let t = tree();
        write(&t.path().join("first/css/site.css"), b"first");
        write(&t.path().join("first/only.txt"), b"only");
        let mut setup = Setup::map("/s", &t.path().join("first"));
        setup.maps.push(StaticMap {
            mount: "/s".into(),
            dir: t.path().join("www"),
            keep_mount: false,
        });
        let sf = setup.build();
        assert_eq!(get(&sf, "/s/css/site.css").body, b"first");
        assert_eq!(get(&sf, "/s/only.txt").body, b"only");
        assert_eq!(get(&sf, "/s/page.html").body, b"<p>hi</p>");
        let g = get(&sf, "/s/missing.css");
        assert!(!g.handled);
        assert!(g.head.is_empty() && g.body.is_empty(), "nothing was sent");
        // A folder that does not exist is not an error.
        let sf = Setup::map("/s", &t.path().join("nope")).build();
        assert!(!get(&sf, "/s/page.html").handled);
    }

    #[test]
    fn only_get_and_head_are_served() {
        let t = tree();
        let sf = Setup::map("/s", &t.path().join("www")).build();
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            assert!(
                !request(&sf, method, b"/s/page.html", &[]).handled,
                "{method}"
            );
        }
        let g = request(&sf, "HEAD", b"/s/ten.bin", &[]);
        assert!(g.handled);
        assert_eq!(g.status(), "HTTP/1.1 200 OK");
        assert_eq!(g.header("Content-Length"), Some("10"));
        assert_eq!(g.header("Content-Type"), Some("application/octet-stream"));
        assert!(g.body.is_empty());
    }

    #[test]
    fn directories_are_answered_by_their_index() {
        let t = tree();
        let mut setup = Setup::map("/s", &t.path().join("www"));
        setup.index = vec!["index.htm".into(), "index.html".into()];
        let sf = setup.build();
        for path in ["/s/docs", "/s/docs/", "/s//docs//"] {
            let g = get(&sf, path);
            assert_eq!(g.body, b"<h1>docs</h1>", "{path}");
            assert_eq!(g.header("Content-Type"), Some("text/html"));
        }
        assert!(!get(&sf, "/s/noindex/").handled);
        // The folder itself has no index.
        assert!(!get(&sf, "/s").handled);
        // Without static-index a directory is never served.
        let sf = Setup::map("/s", &t.path().join("www")).build();
        assert!(!get(&sf, "/s/docs/").handled);
    }

    #[test]
    fn a_file_with_a_trailing_slash_is_not_the_file() {
        let t = tree();
        let sf = Setup::map("/s", &t.path().join("www")).build();
        assert!(!get(&sf, "/s/page.html/").handled);
    }

    #[test]
    fn a_map_to_a_file_answers_its_mount_only() {
        let t = tree();
        write(&t.path().join("fav.ico"), b"ICO");
        let sf = Setup::map("/favicon.ico", &t.path().join("fav.ico")).build();
        let g = get(&sf, "/favicon.ico");
        assert_eq!(g.body, b"ICO");
        assert_eq!(g.header("Content-Type"), Some("image/x-icon"));
        assert!(!get(&sf, "/favicon.ico/x").handled);
        assert!(!get(&sf, "/favicon.icon").handled);
    }

    #[test]
    fn dot_dot_and_nul_are_refused() {
        let t = tree();
        let sf = Setup::map("/static", &t.path().join("www")).build();
        for path in [
            &b"/static/../outside/secret.txt"[..],
            b"/static/css/../../outside/secret.txt",
            b"/static/..",
            b"/static/css/..",
            b"/static/page.html\0.css",
        ] {
            let g = request(&sf, "GET", path, &[]);
            assert_refused(&g, &String::from_utf8_lossy(path));
        }
        // `..` inside a name is only a name.
        write(&t.path().join("www/a..b"), b"dots");
        assert_eq!(get(&sf, "/static/a..b").body, b"dots");
        // Not under the mount: not ours to refuse.
        assert!(!get(&sf, "/other/../x").handled);
    }

    #[test]
    fn symlinks_inside_the_folder_are_followed() {
        let t = tree();
        let www = t.path().join("www");
        symlink("css/site.css", www.join("relative.css")).unwrap();
        symlink(www.join("css/site.css"), www.join("absolute.css")).unwrap();
        symlink(www.join("docs"), www.join("docs2")).unwrap();
        symlink("../docs/index.html", www.join("noindex/index.html")).unwrap();
        let setup = || {
            let mut setup = Setup::map("/s", &www);
            setup.index = vec!["index.html".into()];
            setup
        };
        for sf in both_ways(setup) {
            assert_eq!(get(&sf, "/s/relative.css").body, b"body{}");
            assert_eq!(get(&sf, "/s/absolute.css").body, b"body{}");
            assert_eq!(get(&sf, "/s/docs2/").body, b"<h1>docs</h1>");
            assert_eq!(get(&sf, "/s/noindex/").body, b"<h1>docs</h1>");
        }
    }

    #[test]
    fn the_map_folder_may_itself_be_a_symlink() {
        let t = tree();
        symlink(t.path().join("www"), t.path().join("current")).unwrap();
        symlink(
            t.path().join("www/css/site.css"),
            t.path().join("www/abs.css"),
        )
        .unwrap();
        for sf in both_ways(|| Setup::map("/s", &t.path().join("current"))) {
            assert_eq!(get(&sf, "/s/css/site.css").body, b"body{}");
            assert_eq!(get(&sf, "/s/abs.css").body, b"body{}");
        }
    }

    /// Links from `www` to `outside/secret.txt`: absolute, relative, and through a folder link.
    fn links_out(t: &tempfile::TempDir) -> [&'static str; 3] {
        let www = t.path().join("www");
        symlink(t.path().join("outside/secret.txt"), www.join("abs.txt")).unwrap();
        symlink("../outside/secret.txt", www.join("rel.txt")).unwrap();
        symlink(t.path().join("outside"), www.join("out")).unwrap();
        ["/s/abs.txt", "/s/rel.txt", "/s/out/secret.txt"]
    }

    fn assert_refused(g: &Got, path: &str) {
        assert!(g.handled, "{path}");
        assert_eq!(g.status(), "HTTP/1.1 403 Forbidden", "{path}");
        assert!(!g.body.windows(6).any(|w| w == b"SECRET"), "{path}");
    }

    #[test]
    fn symlinks_out_of_the_folder_are_refused() {
        let t = tree();
        let paths = links_out(&t);
        for sf in both_ways(|| Setup::map("/s", &t.path().join("www"))) {
            for path in paths {
                assert_refused(&get(&sf, path), path);
            }
        }
    }

    #[test]
    fn static_safe_allows_symlinks_into_its_folder() {
        let t = tree();
        let paths = links_out(&t);
        let setup = || {
            let mut setup = Setup::map("/s", &t.path().join("www"));
            setup.safe = vec![t.path().join("outside")];
            setup
        };
        for sf in both_ways(setup) {
            for path in paths {
                let g = get(&sf, path);
                assert_eq!(g.status(), "HTTP/1.1 200 OK", "{path}");
                assert_eq!(g.body, b"SECRET", "{path}");
            }
        }
    }

    #[test]
    fn a_sibling_folder_sharing_the_prefix_is_not_inside() {
        let t = tree();
        let www = t.path().join("www");
        // `/tmp/.x/www-x/secret.txt` starts with the string `/tmp/.x/www`.
        symlink(t.path().join("www-x/secret.txt"), www.join("trap.txt")).unwrap();
        symlink("../www-x/secret.txt", www.join("trap2.txt")).unwrap();
        // Nor does static-safe `outside` cover `outside-x`.
        write(&t.path().join("outside-x/secret.txt"), b"SECRET-OX");
        symlink(t.path().join("outside-x/secret.txt"), www.join("trap3.txt")).unwrap();
        let setup = || {
            let mut setup = Setup::map("/s", &www);
            setup.safe = vec![t.path().join("outside")];
            setup
        };
        for sf in both_ways(setup) {
            for path in ["/s/trap.txt", "/s/trap2.txt", "/s/trap3.txt"] {
                assert_refused(&get(&sf, path), path);
            }
        }
    }

    #[test]
    fn fifos_are_left_to_the_app_without_blocking() {
        let t = tree();
        let fifo = t.path().join("www/pipe.txt");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let sf = Setup::map("/s", &t.path().join("www")).build();
        assert!(!get(&sf, "/s/pipe.txt").handled);
    }

    #[test]
    fn ranges_in_all_three_forms() {
        let t = tree();
        let sf = Setup::map("/s", &t.path().join("www")).build();
        for (range, body, content_range) in [
            ("bytes=2-5", &b"2345"[..], "bytes 2-5/10"),
            ("bytes=7-", b"789", "bytes 7-9/10"),
            ("bytes=-3", b"789", "bytes 7-9/10"),
            ("bytes=-20", b"0123456789", "bytes 0-9/10"),
            ("bytes=8-100", b"89", "bytes 8-9/10"),
            ("bytes=0-0", b"0", "bytes 0-0/10"),
            ("Bytes = 3-3 ,", b"3", "bytes 3-3/10"),
            (
                "bytes=1-99999999999999999999999",
                b"123456789",
                "bytes 1-9/10",
            ),
        ] {
            let g = request(&sf, "GET", b"/s/ten.bin", &[("Range", range)]);
            assert_eq!(g.status(), "HTTP/1.1 206 Partial Content", "{range}");
            assert_eq!(g.body, body, "{range}");
            assert_eq!(g.header("Content-Range"), Some(content_range), "{range}");
            assert_eq!(
                g.header("Content-Length"),
                Some(body.len().to_string().as_str()),
                "{range}"
            );
        }
    }

    #[test]
    fn unsatisfiable_ranges_get_416() {
        let t = tree();
        write(&t.path().join("www/empty.txt"), b"");
        let sf = Setup::map("/s", &t.path().join("www")).build();
        for (path, range, size) in [
            ("/s/ten.bin", "bytes=10-", 10),
            ("/s/ten.bin", "bytes=10-20", 10),
            ("/s/ten.bin", "bytes=-0", 10),
            ("/s/empty.txt", "bytes=-5", 0),
            ("/s/empty.txt", "bytes=0-", 0),
        ] {
            let g = request(&sf, "GET", path.as_bytes(), &[("Range", range)]);
            assert_eq!(g.status(), "HTTP/1.1 416 Range Not Satisfiable", "{range}");
            assert_eq!(
                g.header("Content-Range"),
                Some(format!("bytes */{size}").as_str())
            );
            assert_eq!(g.header("Content-Length"), Some("0"));
            assert!(g.body.is_empty());
        }
    }

    #[test]
    fn several_or_malformed_ranges_get_the_whole_file() {
        let t = tree();
        let sf = Setup::map("/s", &t.path().join("www")).build();
        for range in [
            "bytes=0-1,4-5",
            "bytes=x-y",
            "bytes=5-2",
            "bytes=-",
            "bytes=3",
            "items=0-1",
            "bytes=1.5-2",
            "0-1",
        ] {
            let g = request(&sf, "GET", b"/s/ten.bin", &[("Range", range)]);
            assert_eq!(g.status(), "HTTP/1.1 200 OK", "{range}");
            assert_eq!(g.body, b"0123456789", "{range}");
            assert_eq!(g.header("Content-Range"), None);
        }
    }

    fn set_mtime(path: &Path, secs: u64) {
        let f = fs_err::File::options().write(true).open(path).unwrap();
        f.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap();
    }

    const MTIME: u64 = 1_700_000_000;
    /// MTIME as an HTTP-date.
    const MTIME_DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

    #[test]
    fn if_range_must_match_last_modified() {
        let t = tree();
        set_mtime(&t.path().join("www/ten.bin"), MTIME);
        let sf = Setup::map("/s", &t.path().join("www")).build();
        let ranged = |if_range: &str| {
            request(
                &sf,
                "GET",
                b"/s/ten.bin",
                &[("Range", "bytes=0-1"), ("If-Range", if_range)],
            )
        };
        let g = ranged(MTIME_DATE);
        assert_eq!(g.status(), "HTTP/1.1 206 Partial Content");
        assert_eq!(g.body, b"01");
        for other in ["Tue, 14 Nov 2023 22:13:21 GMT", "\"etag\"", "junk"] {
            let g = ranged(other);
            assert_eq!(g.status(), "HTTP/1.1 200 OK", "{other}");
            assert_eq!(g.body, b"0123456789");
        }
        // A failed If-Range also drops an unsatisfiable range.
        let g = request(
            &sf,
            "GET",
            b"/s/ten.bin",
            &[("Range", "bytes=50-"), ("If-Range", "\"etag\"")],
        );
        assert_eq!(g.status(), "HTTP/1.1 200 OK");
    }

    #[test]
    fn if_modified_since_answers_304() {
        let t = tree();
        set_mtime(&t.path().join("www/page.html"), MTIME);
        let mut setup = Setup::map("/s", &t.path().join("www"));
        setup.expires = vec![("\\.html$".into(), 60)];
        let sf = setup.build();
        let since =
            |date: &str| request(&sf, "GET", b"/s/page.html", &[("If-Modified-Since", date)]);
        assert_eq!(
            get(&sf, "/s/page.html").header("Last-Modified"),
            Some(MTIME_DATE)
        );
        for date in [
            MTIME_DATE,
            "Wed, 15 Nov 2023 00:00:00 GMT",
            "Tuesday, 14-Nov-23 22:13:20 GMT",
        ] {
            let g = since(date);
            assert_eq!(g.status(), "HTTP/1.1 304 Not Modified", "{date}");
            assert!(g.body.is_empty());
            assert_eq!(g.header("Last-Modified"), Some(MTIME_DATE));
            assert!(g.header("Expires").is_some());
            assert_eq!(g.header("Content-Length"), None);
        }
        for date in ["Tue, 14 Nov 2023 22:13:19 GMT", "yesterday", ""] {
            let g = since(date);
            assert_eq!(g.status(), "HTTP/1.1 200 OK", "{date}");
            assert_eq!(g.body, b"<p>hi</p>");
        }
        // If-None-Match takes precedence (and no ETag is ever sent, so it never matches).
        let g = request(
            &sf,
            "GET",
            b"/s/page.html",
            &[
                ("If-Modified-Since", MTIME_DATE),
                ("If-None-Match", "\"x\""),
            ],
        );
        assert_eq!(g.status(), "HTTP/1.1 200 OK");
        // HEAD too.
        let g = request(
            &sf,
            "HEAD",
            b"/s/page.html",
            &[("If-Modified-Since", MTIME_DATE)],
        );
        assert_eq!(g.status(), "HTTP/1.1 304 Not Modified");
    }

    #[test]
    fn expires_follows_the_first_matching_regex_on_the_real_path() {
        let t = tree();
        let www = t.path().join("www");
        symlink("css/site.css", www.join("style")).unwrap();
        let mut setup = Setup::map("/s", &www);
        setup.expires = vec![
            ("/www/css/.*\\.css$".into(), 3600),
            ("\\.css$".into(), 60),
            ("\\.js$".into(), 86400),
        ];
        let sf = setup.build();
        // The Expires date is `secs` after some moment during the request.
        let expires_in = |path: &str, secs: u64| {
            let epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
            let before = epoch(SystemTime::now());
            let g = get(&sf, path);
            let after = epoch(SystemTime::now());
            let at = epoch(httpdate::parse_http_date(g.header("Expires").unwrap()).unwrap());
            assert!(
                (before + secs..=after + secs).contains(&at),
                "{path}: {at} not {secs}s after {before}..={after}"
            );
        };
        expires_in("/s/css/site.css", 3600);
        // Through a symlink, the real path decides.
        expires_in("/s/style", 3600);
        expires_in("/s/js/app.js", 86400);
        assert_eq!(get(&sf, "/s/page.html").header("Expires"), None);
    }

    #[test]
    fn bad_options_are_errors_naming_them() {
        let settings = Settings {
            static_expires: vec![("(".into(), 1)],
            ..Settings::default()
        };
        let e = StaticFiles::new(&settings).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("static-expires: regex `(` does not compile: "),
            "{e}"
        );
        let settings = Settings {
            static_index: vec!["../index.html".into()],
            ..Settings::default()
        };
        let e = StaticFiles::new(&settings).unwrap_err();
        assert_eq!(
            e.to_string(),
            "static-index: `../index.html` is not a file name inside the folder"
        );
        let sf = StaticFiles::new(&Settings::default()).unwrap();
        assert!(sf.is_empty());
        assert!(!get(&sf, "/anything").handled);
    }

    #[test]
    fn relative_paths_are_cleaned() {
        assert_eq!(relative(b"/a//./b/").unwrap(), b"a/b/");
        assert_eq!(relative(b"").unwrap(), b".");
        assert_eq!(relative(b"/").unwrap(), b".");
        assert_eq!(relative(b"/a/b").unwrap(), b"a/b");
        assert_eq!(relative(b"/a/../b"), None);
        assert_eq!(join(b".", b"index.html"), b"index.html");
        assert_eq!(join(b"docs/", b"index.html"), b"docs/index.html");
    }
}
