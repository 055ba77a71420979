//! The folder or glob source: `emperor = /etc/liege/vassals` or
//! `emperor = /etc/liege/*/vassals/*.ini`, watched with inotify.
//!
//! A file is taken when it is complete: closed after writing (IN_CLOSE_WRITE), renamed into
//! the folder (IN_MOVED_TO), or created as a symbolic or hard link; a `touch`, `chmod` or
//! `chown` of a known file (IN_ATTRIB) is a change; IN_DELETE and IN_MOVED_FROM remove it.
//! IN_MODIFY is never watched, so a file being written is not read before it is closed. The
//! rescan (every `emperor-freq` seconds) compares stamps with what was reported, picks up new
//! folders of a glob and folders that were re-created, and reports a file it finds changed
//! only once its mtime is a second old, since no event said it was complete.
//!
//! Files are those with a vassal extension (and matching the glob's file pattern); names
//! starting with `.` are skipped. A symbolic link to a regular file is followed, as in uWSGI,
//! with the rights of whoever made the link ([`crate::access::read_vassal_file`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use liege_config::access::FileFacts;
use liege_config::{AccessError, FileAccess, HostAccess};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

use super::{Change, Entry, EntryReader, Fetched, SourceError, Stamp, VassalSource, coalesce};
use crate::access::read_vassal_file;
use crate::name::{VassalName, vassal_extension};

/// How long after its last modification the rescan takes a file no event announced.
const SETTLE_NS: i128 = 1_000_000_000;

/// What is watched.
#[derive(Debug)]
enum Spec {
    /// One folder, every vassal file in it.
    Dir(PathBuf),
    /// The folders a pattern names (one when it has no wildcard), the files another matches.
    Glob {
        folders: String,
        literal: bool,
        files: glob::Pattern,
    },
}

/// A watched folder.
#[derive(Debug, Clone, Copy)]
struct Watched {
    wd: i32,
    dev: u64,
    ino: u64,
}

/// A file of a watched folder as last reported.
#[derive(Debug, Clone)]
struct Tracked {
    stamp: Stamp,
    /// `None` for a file whose name is no vassal name.
    name: Option<VassalName>,
}

/// The folder or glob source; see the module.
#[derive(Debug)]
pub struct DirSource {
    pattern: String,
    spec: Spec,
    inotify: OwnedFd,
    by_wd: HashMap<i32, BTreeSet<PathBuf>>,
    folders: BTreeMap<PathBuf, Watched>,
    files: BTreeMap<PathBuf, Tracked>,
    owners: BTreeMap<VassalName, PathBuf>,
    /// Folders that could not be watched or listed, with the reason last reported.
    failed: BTreeMap<PathBuf, String>,
    started: bool,
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn glob_options() -> glob::MatchOptions {
    glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    }
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// The stamp of a regular file (following a symbolic link), or `None`.
fn stat_file(path: &Path) -> Option<Stamp> {
    let meta = fs_err::metadata(path).ok()?;
    meta.is_file().then(|| Stamp::of(&meta))
}

impl DirSource {
    /// Watches a folder, or the folders and files a glob names (relative to the current
    /// directory when not absolute). A plain folder must exist; a glob may match nothing yet.
    /// Nothing is reported before the first [`VassalSource::rescan`].
    pub fn new(pattern: &str) -> Result<DirSource, SourceError> {
        let bad = |reason: String| SourceError::Pattern {
            pattern: pattern.to_owned(),
            reason,
        };
        let absolute = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            std::env::current_dir()
                .map_err(|e| bad(format!("no current directory: {e}")))?
                .join(pattern)
        };
        let Some(text) = absolute.to_str() else {
            return Err(bad("the path is not UTF-8".into()));
        };
        let text = text.trim_end_matches('/').to_owned();
        let spec = if has_wildcard(&text) {
            let (folders, files) = text.rsplit_once('/').unwrap_or(("", &text));
            let folders = if folders.is_empty() { "/" } else { folders };
            glob::Pattern::new(folders).map_err(|e| bad(e.to_string()))?;
            Spec::Glob {
                folders: folders.to_owned(),
                literal: !has_wildcard(folders),
                files: glob::Pattern::new(files).map_err(|e| bad(e.to_string()))?,
            }
        } else {
            let meta = rustix::fs::stat(text.as_str()).map_err(|e| SourceError::Watch {
                path: text.clone(),
                reason: std::io::Error::from(e).to_string(),
            })?;
            if rustix::fs::FileType::from_raw_mode(meta.st_mode) != rustix::fs::FileType::Directory
            {
                return Err(SourceError::Watch {
                    path: text,
                    reason: "not a directory".into(),
                });
            }
            Spec::Dir(PathBuf::from(&text))
        };
        let inotify = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).map_err(|e| {
            SourceError::Watch {
                path: text.clone(),
                reason: format!("inotify: {e}"),
            }
        })?;
        let mut source = DirSource {
            pattern: pattern.to_owned(),
            spec,
            inotify,
            by_wd: HashMap::new(),
            folders: BTreeMap::new(),
            files: BTreeMap::new(),
            owners: BTreeMap::new(),
            failed: BTreeMap::new(),
            started: false,
        };
        let mut out = Vec::new();
        source.sync_folders(&mut out);
        if let (Spec::Dir(_), Some(Change::Error(e))) = (&source.spec, out.into_iter().next()) {
            return Err(e);
        }
        Ok(source)
    }

    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The folders to watch now.
    fn wanted_folders(&self) -> Vec<PathBuf> {
        let is_dir = |p: &Path| fs_err::metadata(p).is_ok_and(|m| m.is_dir());
        match &self.spec {
            Spec::Dir(d) => is_dir(d).then(|| d.clone()).into_iter().collect(),
            Spec::Glob {
                folders,
                literal: true,
                ..
            } => {
                let d = PathBuf::from(folders);
                is_dir(&d).then_some(d).into_iter().collect()
            }
            Spec::Glob { folders, .. } => glob::glob_with(folders, glob_options())
                .map(|paths| paths.flatten().filter(|p| is_dir(p)).collect())
                .unwrap_or_default(),
        }
    }

    /// Whether `file_name` in a watched folder is a vassal file candidate.
    fn is_candidate(&self, file_name: &str) -> bool {
        if file_name.starts_with('.') || vassal_extension(file_name).is_none() {
            return false;
        }
        match &self.spec {
            Spec::Dir(_) => true,
            Spec::Glob { files, .. } => files.matches_with(file_name, glob_options()),
        }
    }

    fn report_failure(&mut self, folder: &Path, error: SourceError, out: &mut Vec<Change>) {
        let reason = error.to_string();
        if self.failed.get(folder) != Some(&reason) {
            self.failed.insert(folder.to_path_buf(), reason);
            out.push(Change::Error(error));
        }
    }

    /// Forgets a folder's watch (removing it from inotify when no other folder shares it).
    fn unwatch(&mut self, folder: &Path) {
        let Some(w) = self.folders.remove(folder) else {
            return;
        };
        if let Some(set) = self.by_wd.get_mut(&w.wd) {
            set.remove(folder);
            if set.is_empty() {
                self.by_wd.remove(&w.wd);
                // Already gone when the folder was deleted: nothing to do then.
                let _ = inotify::remove_watch(&self.inotify, w.wd);
            }
        }
    }

    /// Watches the folders that exist now, re-watches re-created ones, drops vanished ones.
    fn sync_folders(&mut self, out: &mut Vec<Change>) {
        let wanted = self.wanted_folders();
        let gone: Vec<PathBuf> = self
            .folders
            .keys()
            .filter(|f| !wanted.contains(f))
            .cloned()
            .collect();
        for f in gone {
            self.unwatch(&f);
        }
        self.failed.retain(|f, _| wanted.contains(f));
        for folder in wanted {
            let Ok(meta) = fs_err::metadata(&folder) else {
                continue;
            };
            if let Some(w) = self.folders.get(&folder) {
                if w.dev == meta.dev() && w.ino == meta.ino() {
                    continue;
                }
                // Removed and made again: the old watch is on the old folder.
                self.unwatch(&folder);
            }
            let flags = WatchFlags::CLOSE_WRITE
                | WatchFlags::MOVED_TO
                | WatchFlags::MOVED_FROM
                | WatchFlags::ATTRIB
                | WatchFlags::DELETE
                | WatchFlags::CREATE
                | WatchFlags::DELETE_SELF
                | WatchFlags::MOVE_SELF
                | WatchFlags::ONLYDIR;
            match inotify::add_watch(&self.inotify, &folder, flags) {
                Ok(wd) => {
                    self.failed.remove(&folder);
                    self.by_wd.entry(wd).or_default().insert(folder.clone());
                    self.folders.insert(
                        folder,
                        Watched {
                            wd,
                            dev: meta.dev(),
                            ino: meta.ino(),
                        },
                    );
                }
                Err(e) => {
                    let hint = if e == Errno::NOSPC {
                        " (raise fs.inotify.max_user_watches)"
                    } else {
                        ""
                    };
                    let error = SourceError::Watch {
                        path: folder.display().to_string(),
                        reason: format!("{e}{hint}"),
                    };
                    self.report_failure(&folder, error, out);
                }
            }
        }
    }

    fn entry(&self, path: &Path, name: &VassalName, stamp: Stamp) -> Entry {
        let shown = path.display().to_string();
        Entry {
            name: name.clone(),
            location: shown.clone(),
            stamp,
            reader: Arc::new(DirReader {
                path: shown,
                full: path.to_path_buf(),
            }),
        }
    }

    /// Gives `name` to the first remaining file that has it (sorted by path), or reports it
    /// gone.
    fn hand_over(&mut self, name: &VassalName, out: &mut Vec<Change>) {
        let next = self
            .files
            .iter()
            .find(|(_, t)| t.name.as_ref() == Some(name))
            .map(|(p, t)| (p.clone(), t.stamp));
        match next {
            Some((path, stamp)) => {
                self.owners.insert(name.clone(), path.clone());
                out.push(Change::Upserted(self.entry(&path, name, stamp)));
            }
            None => {
                self.owners.remove(name);
                out.push(Change::Removed(name.clone()));
            }
        }
    }

    /// Takes a file's state as it is now (`None`: gone or not a regular file).
    fn update(&mut self, path: &Path, now: Option<Stamp>, out: &mut Vec<Change>) {
        let old = self.files.get(path).cloned();
        let Some(stamp) = now else {
            let Some(old) = old else { return };
            self.files.remove(path);
            if let Some(name) = old.name
                && self.owners.get(&name).map(PathBuf::as_path) == Some(path)
            {
                self.hand_over(&name, out);
            }
            return;
        };
        if old.as_ref().is_some_and(|t| t.stamp == stamp) {
            return;
        }
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let name = match VassalName::from_file_name(file_name) {
            Ok(name) => name,
            Err(e) => {
                self.files
                    .insert(path.to_path_buf(), Tracked { stamp, name: None });
                let mut e = e;
                // Name the whole path, not only the file name.
                let shown = path.display().to_string();
                match &mut e {
                    crate::name::NameError::Extension { file }
                    | crate::name::NameError::Empty { file }
                    | crate::name::NameError::TooLong { file, .. }
                    | crate::name::NameError::First { file, .. }
                    | crate::name::NameError::Char { file, .. } => *file = shown,
                }
                out.push(Change::Error(SourceError::Name(e)));
                return;
            }
        };
        self.files.insert(
            path.to_path_buf(),
            Tracked {
                stamp,
                name: Some(name.clone()),
            },
        );
        match self.owners.get(&name) {
            Some(owner) if owner != path => out.push(Change::Error(SourceError::Duplicate {
                name,
                kept: owner.display().to_string(),
                refused: path.display().to_string(),
            })),
            _ => {
                self.owners.insert(name.clone(), path.to_path_buf());
                out.push(Change::Upserted(self.entry(path, &name, stamp)));
            }
        }
    }

    /// The full comparison; `settle` holds back files modified less than a second ago.
    fn rescan_with(&mut self, settle: bool) -> Vec<Change> {
        let mut out = Vec::new();
        self.sync_folders(&mut out);
        let mut present: BTreeMap<PathBuf, Stamp> = BTreeMap::new();
        let mut listed: BTreeSet<PathBuf> = BTreeSet::new();
        let folders: Vec<PathBuf> = self.folders.keys().cloned().collect();
        for folder in folders {
            let entries = match fs_err::read_dir(&folder) {
                Ok(entries) => entries,
                Err(e) => {
                    let error = SourceError::List {
                        path: folder.display().to_string(),
                        reason: crate::access::strip_path(&e).to_string(),
                    };
                    self.report_failure(&folder, error, &mut out);
                    continue;
                }
            };
            listed.insert(folder.clone());
            for entry in entries.flatten() {
                let file_name = entry.file_name();
                let Some(file_name) = file_name.to_str() else {
                    continue;
                };
                if !self.is_candidate(file_name) {
                    continue;
                }
                let path = folder.join(file_name);
                if let Some(stamp) = stat_file(&path) {
                    present.insert(path, stamp);
                }
            }
        }
        // A folder that could not be listed keeps its files as they were.
        let vanished: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !present.contains_key(*p))
            .filter(|p| {
                p.parent()
                    .is_none_or(|f| listed.contains(f) || !self.folders.contains_key(f))
            })
            .cloned()
            .collect();
        for path in vanished {
            self.update(&path, None, &mut out);
        }
        let now = now_ns();
        for (path, stamp) in present {
            if self.files.get(&path).is_some_and(|t| t.stamp == stamp) {
                continue;
            }
            if settle && (now - stamp.mtime_ns).abs() < SETTLE_NS {
                continue;
            }
            self.update(&path, Some(stamp), &mut out);
        }
        coalesce(out)
    }

    /// Reads every pending event: the paths to look at again, whether an upsert may follow
    /// (the file is complete), and whether the queue overflowed.
    fn read_events(&mut self, out: &mut Vec<Change>) -> (BTreeMap<PathBuf, bool>, bool) {
        let mut events: Vec<(i32, ReadFlags, Option<String>)> = Vec::new();
        let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
        let mut reader = inotify::Reader::new(&self.inotify, &mut buf);
        loop {
            match reader.next() {
                Ok(ev) => events.push((
                    ev.wd(),
                    ev.events(),
                    ev.file_name()
                        .and_then(|n| n.to_str().ok())
                        .map(str::to_owned),
                )),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => break,
                Err(e) => {
                    out.push(Change::Error(SourceError::Events {
                        reason: e.to_string(),
                    }));
                    break;
                }
            }
        }
        let mut dirty: BTreeMap<PathBuf, bool> = BTreeMap::new();
        let mut overflow = false;
        for (wd, flags, name) in events {
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                overflow = true;
                continue;
            }
            let folders: Vec<PathBuf> = self
                .by_wd
                .get(&wd)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            if flags.intersects(ReadFlags::IGNORED | ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF)
            {
                // The folder is gone (or moved: its path no longer leads to it). Its files are
                // looked at again; the rescan watches it again if it comes back.
                for folder in &folders {
                    if flags.contains(ReadFlags::IGNORED) {
                        if self.folders.get(folder).is_some_and(|w| w.wd == wd) {
                            self.folders.remove(folder);
                        }
                    } else {
                        self.unwatch(folder);
                    }
                    for path in self.files.keys().filter(|p| p.parent() == Some(folder)) {
                        dirty.entry(path.clone()).or_insert(false);
                    }
                }
                if flags.contains(ReadFlags::IGNORED) {
                    self.by_wd.remove(&wd);
                }
                continue;
            }
            let Some(name) = name else { continue };
            if flags.contains(ReadFlags::ISDIR) || !self.is_candidate(&name) {
                continue;
            }
            for folder in folders {
                let path = folder.join(&name);
                let complete = if flags.intersects(ReadFlags::CLOSE_WRITE | ReadFlags::MOVED_TO) {
                    true
                } else if flags.contains(ReadFlags::ATTRIB) {
                    // Only for a file already known: a new file is taken when it is closed.
                    self.files.contains_key(&path)
                } else if flags.contains(ReadFlags::CREATE) {
                    // A symbolic or hard link is complete when it appears; a new file is not.
                    fs_err::symlink_metadata(&path)
                        .is_ok_and(|m| m.file_type().is_symlink() || m.nlink() > 1)
                } else {
                    // IN_DELETE, IN_MOVED_FROM: only a removal may follow.
                    false
                };
                let e = dirty.entry(path).or_insert(false);
                *e |= complete;
            }
        }
        (dirty, overflow)
    }
}

impl VassalSource for DirSource {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.inotify.as_fd())
    }

    fn changes(&mut self) -> Vec<Change> {
        let mut out = Vec::new();
        let (dirty, overflow) = self.read_events(&mut out);
        if overflow {
            out.push(Change::Error(SourceError::Events {
                reason: "the inotify queue overflowed: rescanning every folder".into(),
            }));
            out.extend(self.rescan_with(true));
            return coalesce(out);
        }
        for (path, complete) in dirty {
            let now = stat_file(&path);
            if now.is_some() && !complete {
                // A removal event, and something is there again: it is taken when it is
                // complete (its own event) or by the rescan.
                continue;
            }
            self.update(&path, now, &mut out);
        }
        coalesce(out)
    }

    fn rescan(&mut self) -> Vec<Change> {
        let settle = self.started;
        self.started = true;
        self.rescan_with(settle)
    }
}

/// Reads a vassal file of a folder.
#[derive(Debug)]
pub struct DirReader {
    path: String,
    full: PathBuf,
}

impl DirReader {
    /// A reader of the file at `path` (absolute).
    pub fn new(path: PathBuf) -> Self {
        DirReader {
            path: path.display().to_string(),
            full: path,
        }
    }
}

impl EntryReader for DirReader {
    fn path(&self) -> &str {
        &self.path
    }

    fn folder(&self) -> PathBuf {
        self.full
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
    }

    fn fetch(&self, limit: u64) -> Result<Fetched, AccessError> {
        let (data, stamp) = read_vassal_file(&self.full, &self.path, limit)?;
        // `%p` as liege_config gives it: the real path, or for a symbolic link the link's.
        let facts = HostAccess::without_exec(self.folder())
            .file_facts(&self.path)
            .unwrap_or_else(|| FileFacts {
                path: self.path.clone(),
                inode: stamp.inode,
            });
        Ok(Fetched { data, stamp, facts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// The changes, shortly: `+NAME PATH` (relative to `root`), `-NAME`, `! ERROR`.
    fn show(root: &Path, changes: &[Change]) -> Vec<String> {
        let rel = |p: &str| {
            Path::new(p)
                .strip_prefix(root)
                .map_or_else(|_| p.to_owned(), |r| r.display().to_string())
        };
        changes
            .iter()
            .map(|c| match c {
                Change::Upserted(e) => format!("+{} {}", e.name, rel(&e.location)),
                Change::Removed(n) => format!("-{n}"),
                Change::Error(e) => {
                    let root = format!("{}/", root.display());
                    format!(
                        "! {}",
                        e.to_string().lines().next().unwrap().replace(&root, "")
                    )
                }
            })
            .collect()
    }

    /// Sets a file's times `secs` seconds in the past (what a file written a while ago has).
    fn age(path: &Path, secs: i64) {
        let then = rustix::fs::Timespec {
            tv_sec: i64::try_from(now_ns() / 1_000_000_000).unwrap() - secs,
            tv_nsec: 0,
        };
        let times = rustix::fs::Timestamps {
            last_access: then,
            last_modification: then,
        };
        rustix::fs::utimensat(rustix::fs::CWD, path, &times, rustix::fs::AtFlags::empty()).unwrap();
    }

    /// `touch`: the times set to now.
    fn touch(path: &Path) {
        let now = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        };
        let times = rustix::fs::Timestamps {
            last_access: now,
            last_modification: now,
        };
        rustix::fs::utimensat(rustix::fs::CWD, path, &times, rustix::fs::AtFlags::empty()).unwrap();
    }

    fn stamp_of(changes: &[Change]) -> Stamp {
        match changes {
            [Change::Upserted(e)] => e.stamp,
            other => panic!("expected one upsert, got {other:?}"),
        }
    }

    #[test]
    fn a_file_is_taken_when_closed_and_changes_are_told_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let mut src = DirSource::new(root.to_str().unwrap()).unwrap();
        assert!(src.fd().is_some());
        assert!(show(root, &src.rescan()).is_empty());

        // Written in two parts: nothing until it is closed.
        let mut f = fs_err::File::create(root.join("a.ini")).unwrap();
        f.write_all(b"[uwsgi]\n").unwrap();
        assert!(src.changes().is_empty());
        f.write_all(b"processes = 2\n").unwrap();
        assert!(src.changes().is_empty());
        assert!(src.rescan().is_empty(), "the rescan waits a second too");
        drop(f);
        let first = src.changes();
        assert_eq!(show(root, &first), ["+a a.ini"]);
        let first = stamp_of(&first);
        assert_eq!(first.size, 22);
        assert!(src.changes().is_empty());
        assert!(src.rescan().is_empty(), "unchanged");

        // touch, chmod, chown: each is a change.
        touch(&root.join("a.ini"));
        let touched = stamp_of(&src.changes());
        assert_ne!(touched, first);
        assert_eq!(touched.inode, first.inode);
        fs_err::set_permissions(
            root.join("a.ini"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let chmodded = stamp_of(&src.changes());
        assert_eq!(chmodded.mode & 0o777, 0o600);
        std::os::unix::fs::chown(root.join("a.ini"), Some(65534), Some(65534)).unwrap();
        let chowned = stamp_of(&src.changes());
        assert_eq!((chowned.uid, chowned.gid), (65534, 65534));

        // Renamed into the folder: from elsewhere, and from a hidden name in it.
        let outside = tempfile::tempdir_in(root.parent().unwrap()).unwrap();
        fs_err::write(outside.path().join("b.yaml"), "uwsgi:\n  processes: 1\n").unwrap();
        fs_err::rename(outside.path().join("b.yaml"), root.join("b.yaml")).unwrap();
        fs_err::write(root.join(".c.json.tmp"), "{}").unwrap();
        assert_eq!(show(root, &src.changes()), ["+b b.yaml"]);
        fs_err::rename(root.join(".c.json.tmp"), root.join("c.json")).unwrap();
        assert_eq!(show(root, &src.changes()), ["+c c.json"]);

        // Removed.
        fs_err::remove_file(root.join("a.ini")).unwrap();
        assert_eq!(show(root, &src.changes()), ["-a"]);
        fs_err::rename(root.join("b.yaml"), outside.path().join("b.yaml")).unwrap();
        assert_eq!(show(root, &src.changes()), ["-b"]);
        assert!(src.rescan().is_empty());
    }

    #[test]
    fn an_editors_save_is_one_change() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs_err::write(root.join("a.ini"), "[uwsgi]\n").unwrap();
        let mut src = DirSource::new(root.to_str().unwrap()).unwrap();
        assert_eq!(show(root, &src.rescan()), ["+a a.ini"]);
        // vim: the old file renamed away, the new one written.
        fs_err::rename(root.join("a.ini"), root.join("a.ini~")).unwrap();
        fs_err::write(root.join("a.ini"), "[uwsgi]\nprocesses = 4\n").unwrap();
        fs_err::remove_file(root.join("a.ini~")).unwrap();
        assert_eq!(show(root, &src.changes()), ["+a a.ini"]);
        // The old file renamed away, the new one still being written: gone, then back.
        fs_err::rename(root.join("a.ini"), root.join("a.ini~")).unwrap();
        let mut f = fs_err::File::create(root.join("a.ini")).unwrap();
        f.write_all(b"[uwsgi]\n").unwrap();
        assert!(
            src.changes().is_empty(),
            "the half-written file waits for its close"
        );
        drop(f);
        assert_eq!(show(root, &src.changes()), ["+a a.ini"]);
    }

    #[test]
    fn names_are_checked_and_a_second_file_of_a_name_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs_err::write(root.join("a.yaml"), "").unwrap();
        fs_err::write(root.join("a.ini"), "").unwrap();
        fs_err::write(root.join("Bad.ini"), "").unwrap();
        fs_err::write(root.join("notes.txt"), "").unwrap();
        fs_err::write(root.join(".hidden.ini"), "").unwrap();
        fs_err::create_dir(root.join("dir.ini")).unwrap();
        let mut src = DirSource::new(root.to_str().unwrap()).unwrap();
        // At startup the first by sorted path keeps the name.
        assert_eq!(
            show(root, &src.rescan()),
            [
                "! `Bad.ini`: the vassal name `Bad` starts with `B`",
                "+a a.ini",
                "! `a.yaml`: refused: vassal `a` is already given by `a.ini`",
            ]
        );
        // Reported once, not at every rescan.
        assert!(src.rescan().is_empty());
        // A third one, later.
        fs_err::write(root.join("a.json"), "").unwrap();
        assert_eq!(
            show(root, &src.changes()),
            ["! `a.json`: refused: vassal `a` is already given by `a.ini`"]
        );
        // The keeper goes: the next by path takes the name up.
        fs_err::remove_file(root.join("a.ini")).unwrap();
        assert_eq!(show(root, &src.changes()), ["+a a.json"]);
        // A refused one goes: nothing to say.
        fs_err::remove_file(root.join("a.yaml")).unwrap();
        assert!(src.changes().is_empty());
        fs_err::remove_file(root.join("a.json")).unwrap();
        assert_eq!(show(root, &src.changes()), ["-a"]);
        // A bad name written again is said again.
        fs_err::write(root.join("Bad.ini"), "x").unwrap();
        assert_eq!(
            show(root, &src.changes()),
            ["! `Bad.ini`: the vassal name `Bad` starts with `B`"]
        );
    }

    #[test]
    fn links_are_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("vassals");
        fs_err::create_dir(&root).unwrap();
        let real = tmp.path().join("real.ini");
        fs_err::write(&real, "[uwsgi]\n").unwrap();
        let mut src = DirSource::new(root.to_str().unwrap()).unwrap();
        assert!(src.rescan().is_empty());
        std::os::unix::fs::symlink(&real, root.join("s.ini")).unwrap();
        let changes = src.changes();
        assert_eq!(show(&root, &changes), ["+s s.ini"]);
        // The stamp is the target's.
        let target = fs_err::metadata(&real).unwrap();
        assert_eq!(stamp_of(&changes).inode, target.ino());
        fs_err::hard_link(&real, root.join("h.ini")).unwrap();
        assert_eq!(show(&root, &src.changes()), ["+h h.ini"]);
        // Links to a folder or to nothing are no vassals.
        std::os::unix::fs::symlink(tmp.path(), root.join("d.ini")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("none"), root.join("n.ini")).unwrap();
        assert!(src.changes().is_empty());
        // The target changed (no event in the folder): the rescan finds it once it is a
        // second old.
        fs_err::write(&real, "[uwsgi]\nprocesses = 3\n").unwrap();
        assert!(src.changes().is_empty());
        assert!(src.rescan().is_empty());
        age(&real, 2);
        assert_eq!(show(&root, &src.rescan()), ["+h h.ini", "+s s.ini"]);
        // The link removed.
        fs_err::remove_file(root.join("s.ini")).unwrap();
        assert_eq!(show(&root, &src.changes()), ["-s"]);
    }

    #[test]
    fn a_folder_removed_and_made_again_is_watched_again() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("vassals");
        fs_err::create_dir(&root).unwrap();
        fs_err::write(root.join("a.ini"), "").unwrap();
        let mut src = DirSource::new(root.to_str().unwrap()).unwrap();
        assert_eq!(show(&root, &src.rescan()), ["+a a.ini"]);
        fs_err::remove_dir_all(&root).unwrap();
        assert_eq!(show(&root, &src.changes()), ["-a"]);
        assert!(src.rescan().is_empty());
        fs_err::create_dir(&root).unwrap();
        fs_err::write(root.join("b.ini"), "").unwrap();
        // No watch yet: the rescan finds it, once it is a second old.
        assert!(src.changes().is_empty());
        assert!(src.rescan().is_empty());
        age(&root.join("b.ini"), 2);
        assert_eq!(show(&root, &src.rescan()), ["+b b.ini"]);
        // Watched again.
        fs_err::write(root.join("c.ini"), "").unwrap();
        assert_eq!(show(&root, &src.changes()), ["+c c.ini"]);
        // Moved away, then made again, between two looks.
        fs_err::rename(&root, tmp.path().join("old")).unwrap();
        fs_err::create_dir(&root).unwrap();
        fs_err::write(root.join("d.ini"), "").unwrap();
        age(&root.join("d.ini"), 2);
        let mut seen = show(&root, &src.changes());
        seen.extend(show(&root, &src.rescan()));
        seen.sort();
        assert_eq!(seen, ["+d d.ini", "-b", "-c"]);
        fs_err::write(root.join("e.ini"), "").unwrap();
        assert_eq!(show(&root, &src.changes()), ["+e e.ini"]);
        // Nothing happens in the old one.
        fs_err::write(tmp.path().join("old/f.ini"), "").unwrap();
        assert!(src.changes().is_empty());
    }

    #[test]
    fn a_glob_watches_every_folder_it_matches_and_new_ones_at_the_rescan() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for d in ["a/vassals", "b/vassals", "c/other"] {
            fs_err::create_dir_all(root.join(d)).unwrap();
        }
        fs_err::write(root.join("a/vassals/x.ini"), "").unwrap();
        fs_err::write(root.join("b/vassals/y.ini"), "").unwrap();
        fs_err::write(root.join("b/vassals/z.yaml"), "").unwrap();
        fs_err::write(root.join("c/other/w.ini"), "").unwrap();
        let pattern = format!("{}/*/vassals/*.ini", root.display());
        let mut src = DirSource::new(&pattern).unwrap();
        assert_eq!(src.pattern(), pattern);
        assert_eq!(
            show(root, &src.rescan()),
            ["+x a/vassals/x.ini", "+y b/vassals/y.ini"]
        );
        // The same name in two folders: the first keeps it.
        fs_err::write(root.join("b/vassals/x.ini"), "").unwrap();
        assert_eq!(
            show(root, &src.changes()),
            ["! `b/vassals/x.ini`: refused: vassal `x` is already given by `a/vassals/x.ini`"]
        );
        fs_err::write(root.join("a/vassals/q.yaml"), "").unwrap();
        assert!(src.changes().is_empty(), "the glob takes *.ini only");
        // A new folder: taken at the rescan, then watched.
        fs_err::create_dir_all(root.join("d/vassals")).unwrap();
        fs_err::write(root.join("d/vassals/v.ini"), "").unwrap();
        assert!(src.changes().is_empty());
        age(&root.join("d/vassals/v.ini"), 2);
        assert_eq!(show(root, &src.rescan()), ["+v d/vassals/v.ini"]);
        fs_err::write(root.join("d/vassals/u.ini"), "").unwrap();
        assert_eq!(show(root, &src.changes()), ["+u d/vassals/u.ini"]);
        // A folder that goes: its vassals go; the duplicate is taken up.
        fs_err::remove_dir_all(root.join("a")).unwrap();
        assert_eq!(show(root, &src.changes()), ["+x b/vassals/x.ini"]);
        assert!(src.rescan().is_empty());
    }

    #[test]
    fn a_plain_folder_must_exist_and_a_glob_may_match_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("none");
        let err = DirSource::new(missing.to_str().unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot watch `{}`: No such file or directory (os error 2)",
                missing.display()
            )
        );
        fs_err::write(tmp.path().join("f"), "").unwrap();
        let err = DirSource::new(tmp.path().join("f").to_str().unwrap()).unwrap_err();
        assert!(err.to_string().ends_with(": not a directory"), "{err}");
        let mut src = DirSource::new(&format!("{}/*/v/*.ini", tmp.path().display())).unwrap();
        assert!(src.rescan().is_empty());
        fs_err::create_dir_all(tmp.path().join("n/v")).unwrap();
        fs_err::write(tmp.path().join("n/v/k.ini"), "").unwrap();
        age(&tmp.path().join("n/v/k.ini"), 2);
        assert_eq!(show(tmp.path(), &src.rescan()), ["+k n/v/k.ini"]);
        let err = DirSource::new(&format!("{}/[/*.ini", tmp.path().display())).unwrap_err();
        assert!(matches!(err, SourceError::Pattern { .. }), "{err}");
    }

    #[test]
    fn an_overflowed_queue_is_a_rescan() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs_err::write(root.join("a.ini"), "").unwrap();
        fs_err::write(root.join("b.ini"), "").unwrap();
        let mut src = DirSource::new(root.to_str().unwrap()).unwrap();
        assert_eq!(show(root, &src.rescan()), ["+a a.ini", "+b b.ini"]);
        let max: usize = fs_err::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Alternating, so the kernel cannot merge them.
        for _ in 0..max / 2 + 100 {
            touch(&root.join("a.ini"));
            touch(&root.join("b.ini"));
        }
        fs_err::remove_file(root.join("b.ini")).unwrap();
        // The rescan it makes: `b` is gone, `a` (just touched) waits its second.
        assert_eq!(
            show(root, &src.changes()),
            [
                "! reading inotify events: the inotify queue overflowed: rescanning every folder",
                "-b"
            ]
        );
        age(&root.join("a.ini"), 2);
        assert_eq!(show(root, &src.rescan()), ["+a a.ini"]);
        assert!(src.changes().is_empty());
    }

    #[test]
    fn an_entry_reads_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs_err::write(root.join("a.ini"), "[uwsgi]\nx = 1\n").unwrap();
        let mut src = DirSource::new(root.to_str().unwrap()).unwrap();
        let changes = src.rescan();
        let Some(Change::Upserted(e)) = changes.first() else {
            panic!("{changes:?}")
        };
        assert_eq!(e.reader.path(), root.join("a.ini").to_str().unwrap());
        assert_eq!(e.reader.folder(), root);
        let got = e.reader.fetch(1 << 20).unwrap();
        assert_eq!(got.data, b"[uwsgi]\nx = 1\n");
        assert_eq!(got.stamp, e.stamp);
        assert_eq!(
            got.facts.path,
            fs_err::canonicalize(root.join("a.ini"))
                .unwrap()
                .to_str()
                .unwrap()
        );
        assert!(matches!(
            e.reader.fetch(4),
            Err(AccessError::TooLarge {
                size: 14,
                limit: 4,
                ..
            })
        ));
    }
}
