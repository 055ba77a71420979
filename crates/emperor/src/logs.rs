//! Each vassal's output (its master's and workers' stdout and stderr share one pipe) is read
//! by the emperor and written to `LOGDIR/NAME.log` on the host, which is renamed to
//! `NAME.log.1` once it would pass `log-maxsize`: a vassal's log never takes more than twice
//! that on disk, whatever it writes.

use fs_err::os::unix::fs::OpenOptionsExt as _;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::io::Errno;

/// How much is read from one vassal's pipe per wake-up, so one noisy vassal does not hold
/// the emperor's loop.
const READ_BURST: usize = 64 * 1024;

/// A vassal's log: the read end of its output pipe and the file it goes to.
#[derive(Debug)]
pub(crate) struct Log {
    pipe: Option<OwnedFd>,
    path: PathBuf,
    file: Option<fs_err::File>,
    size: u64,
    max: u64,
}

/// What a read of the pipe found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Drained {
    /// More may come.
    Open,
    /// Every writer is gone.
    Closed,
}

impl Log {
    /// The log of vassal `name` in `dir`, rotated at `max` bytes; `pipe` is the read end.
    pub(crate) fn new(dir: &Path, name: &str, max: u64) -> Log {
        Log {
            pipe: None,
            path: dir.join(format!("{name}.log")),
            file: None,
            size: 0,
            max: max.max(1024),
        }
    }

    /// Takes a new pipe (a respawn, or an adoption), dropping the old one.
    pub(crate) fn attach(&mut self, pipe: OwnedFd) {
        self.pipe = Some(pipe);
    }

    pub(crate) fn set_max(&mut self, max: u64) {
        self.max = max.max(1024);
    }

    pub(crate) fn pipe(&self) -> Option<BorrowedFd<'_>> {
        self.pipe.as_ref().map(AsFd::as_fd)
    }

    /// Writes one line of the emperor's own about this vassal into its log, so a customer sees
    /// why their app was restarted or refused.
    pub(crate) fn note(&mut self, line: &str) {
        let text = format!("liege emperor: {line}\n");
        self.write(text.as_bytes());
    }

    /// Reads what is waiting in the pipe (up to a burst) into the file.
    pub(crate) fn drain(&mut self) -> Drained {
        let mut buf = vec![0u8; READ_BURST];
        let mut got = 0;
        while got < READ_BURST {
            let Some(pipe) = &self.pipe else {
                return Drained::Closed;
            };
            match rustix::io::read(pipe, &mut buf[got..]) {
                Ok(0) => {
                    self.write_owned(&buf[..got]);
                    self.pipe = None;
                    return Drained::Closed;
                }
                Ok(n) => got += n,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => break,
                Err(_) => {
                    self.write_owned(&buf[..got]);
                    self.pipe = None;
                    return Drained::Closed;
                }
            }
        }
        self.write_owned(&buf[..got]);
        Drained::Open
    }

    fn write_owned(&mut self, data: &[u8]) {
        if !data.is_empty() {
            self.write(data);
        }
    }

    fn write(&mut self, data: &[u8]) {
        if self.file.is_some() && self.size + data.len() as u64 > self.max {
            self.file = None;
            let _ = fs_err::rename(&self.path, self.path.with_extension("log.1"));
        }
        if self.file.is_none() {
            match fs_err::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&self.path)
            {
                Ok(f) => {
                    self.size = f.metadata().map_or(0, |m| m.len());
                    self.file = Some(f);
                }
                Err(_) => return,
            }
            if self.size + data.len() as u64 > self.max && self.size > 0 {
                self.file = None;
                let _ = fs_err::rename(&self.path, self.path.with_extension("log.1"));
                return self.write(data);
            }
        }
        if let Some(f) = &mut self.file {
            // One write past the limit is cut, so the file never passes `max`.
            let room = self.max.saturating_sub(self.size);
            let take = data.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            if f.write_all(&data[..take]).is_ok() {
                self.size += take as u64;
            }
            if take < data.len() {
                self.file = None;
                let _ = fs_err::rename(&self.path, self.path.with_extension("log.1"));
                self.write(&data[take..]);
            }
        }
    }

    /// Removes nothing: a stopped vassal's log stays for its owner to read.
    pub(crate) fn close(&mut self) {
        self.pipe = None;
        self.file = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_rotates_and_never_passes_its_maximum() {
        let dir = tempfile::tempdir().unwrap();
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK).unwrap();
        let mut log = Log::new(dir.path(), "app", 1024);
        log.attach(r);
        let line = [b'x'; 100];
        for _ in 0..25 {
            rustix::io::write(&w, &line).unwrap();
            assert_eq!(log.drain(), Drained::Open);
        }
        drop(w);
        assert_eq!(log.drain(), Drained::Closed);
        let now = fs_err::metadata(dir.path().join("app.log")).unwrap().len();
        let old = fs_err::metadata(dir.path().join("app.log.1"))
            .unwrap()
            .len();
        assert!(now <= 1024 && old <= 1024, "{now} {old}");
        assert_eq!((now + old) % 100, 0);
        assert!(now + old >= 1024, "the newest writes are kept");
    }

    #[test]
    fn a_symlink_in_place_of_the_log_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        fs_err::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("app.log")).unwrap();
        let mut log = Log::new(dir.path(), "app", 1024);
        log.note("hello");
        assert_eq!(fs_err::read_to_string(&target).unwrap(), "keep");
    }
}
