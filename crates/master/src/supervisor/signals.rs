//! The master's signals: each handled signal sets a flag, then writes a byte to a pipe the
//! loop's epoll watches (signal-hook), so the handlers do nothing but that and the loop acts.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::RunError;

/// The signals the master handles, each with a flag its handler sets before it writes a byte
/// to the wake-up pipe.
pub(super) struct Signals {
    pub(super) wake: OwnedFd,
    pub(super) chld: Arc<AtomicBool>,
    pub(super) hup: Arc<AtomicBool>,
    pub(super) int: Arc<AtomicBool>,
    pub(super) quit: Arc<AtomicBool>,
    pub(super) term: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals").finish_non_exhaustive()
    }
}

impl Signals {
    pub(super) fn register() -> Result<Signals, RunError> {
        let setup = |e: std::io::Error| RunError::Setup {
            step: "signal handlers",
            source: e,
        };
        let (read, write) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )
        .map_err(|e| setup(e.into()))?;
        let mut s = Signals {
            wake: read,
            chld: Arc::default(),
            hup: Arc::default(),
            int: Arc::default(),
            quit: Arc::default(),
            term: Arc::default(),
            ids: Vec::new(),
        };
        for (sig, flag) in [
            (libc::SIGCHLD, &s.chld),
            (libc::SIGHUP, &s.hup),
            (libc::SIGINT, &s.int),
            (libc::SIGQUIT, &s.quit),
            (libc::SIGTERM, &s.term),
        ] {
            // The flag first: handlers run in the order they were registered, so the flag is
            // set when the byte wakes the loop.
            s.ids
                .push(signal_hook::flag::register(sig, Arc::clone(flag)).map_err(setup)?);
            let w = rustix::io::fcntl_dupfd_cloexec(&write, 3).map_err(|e| setup(e.into()))?;
            s.ids
                .push(signal_hook::low_level::pipe::register(sig, w).map_err(setup)?);
        }
        Ok(s)
    }

    pub(super) fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!(rustix::io::read(&self.wake, &mut buf), Ok(n) if n > 0) {}
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
