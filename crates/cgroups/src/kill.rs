//! Killing every process of a cgroup, forks racing the kill included.
//!
//! v2 has `cgroup.kill` (Linux 5.14): one write and the kernel kills the whole subtree, processes
//! being forked at that moment included. Without it (v1 alone, or an older v2) the cgroup is frozen
//! (v1 `freezer.state`, v2 `cgroup.freeze`), so nothing in it can fork or exit while its list is
//! read, every listed process gets SIGKILL, the cgroup is thawed so the signals are acted on, and
//! this repeats until the list is empty. Without any freezer the same loop runs unfrozen.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, Signal};

use crate::tree::{Cgroup, all_pids};
use crate::{Error, io};

/// How long [`Cgroup::kill_all`] keeps killing (without `cgroup.kill`) before it gives up.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// How long one freeze may take to complete before the round goes on unfrozen.
const FREEZE_WAIT: Duration = Duration::from_secs(1);

impl Cgroup {
    /// Sends SIGKILL to every process in the cgroup and the cgroups below it, including processes
    /// forked while this runs (a fork bomb).
    ///
    /// With v2's `cgroup.kill` (used even when the controllers are on v1: the processes are in the
    /// v2 cgroup too) this returns once the kernel has signalled them all; they exit shortly after
    /// ([`Cgroup::remove`] waits for that). Otherwise it returns once the cgroup lists no process,
    /// or fails after [`KILL_WAIT`]. A cgroup that no longer exists has nothing to kill.
    pub fn kill_all(&self) -> Result<(), Error> {
        if !self.dirs.iter().any(|d| io::exists(d)) {
            return Ok(());
        }
        let roles = &self.layout.roles;
        if let Some(i) = roles.v2 {
            let kill = self.dirs[i].join("cgroup.kill");
            if io::exists(&kill) {
                return io::write(&kill, "1");
            }
        }
        let freezer = match (roles.freezer, roles.v2) {
            (Some(i), _) => Some(Freezer::V1(self.dirs[i].join("freezer.state"))),
            (None, Some(i)) if io::exists(&self.dirs[i].join("cgroup.freeze")) => {
                Some(Freezer::V2(self.dirs[i].clone()))
            }
            _ => None,
        };
        let procs_dir = self.procs_dir();
        let deadline = Instant::now() + KILL_WAIT;
        loop {
            if all_pids(procs_dir)?.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::KillUnfinished {
                    path: procs_dir.to_path_buf(),
                    seconds: KILL_WAIT.as_secs(),
                });
            }
            let round = match &freezer {
                Some(f) => {
                    f.freeze()?;
                    let killed = kill_listed(procs_dir);
                    // Thaw whatever happened: a frozen process acts on SIGKILL only once thawed.
                    f.thaw()?;
                    killed
                }
                None => kill_listed(procs_dir),
            };
            round?;
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// SIGKILL to every process listed in `dir` and below; one that is already gone is fine.
fn kill_listed(dir: &Path) -> Result<(), Error> {
    for pid in all_pids(dir)? {
        let Some(target) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            continue;
        };
        match rustix::process::kill_process(target, Signal::KILL) {
            Ok(()) | Err(Errno::SRCH) => {}
            Err(errno) => return Err(Error::Kill { pid, errno }),
        }
    }
    Ok(())
}

/// The freezer of a cgroup.
enum Freezer {
    /// v1: the `freezer.state` file.
    V1(PathBuf),
    /// v2: the cgroup directory (`cgroup.freeze`, `cgroup.events`).
    V2(PathBuf),
}

impl Freezer {
    /// Freezes, and waits up to [`FREEZE_WAIT`] for the freeze to complete (a task in
    /// uninterruptible sleep can hold it up; the round then goes on with what is frozen).
    fn freeze(&self) -> Result<(), Error> {
        match self {
            Self::V1(state) => io::write(state, "FROZEN")?,
            Self::V2(dir) => io::write(&dir.join("cgroup.freeze"), "1")?,
        }
        let deadline = Instant::now() + FREEZE_WAIT;
        while !self.frozen()? && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn frozen(&self) -> Result<bool, Error> {
        match self {
            Self::V1(state) => {
                let mut buf = [0u8; 32];
                Ok(io::trim(io::read_into(state, &mut buf)?) == b"FROZEN")
            }
            Self::V2(dir) => Ok(io::read_keyed(&dir.join("cgroup.events"), "frozen")? != 0),
        }
    }

    fn thaw(&self) -> Result<(), Error> {
        match self {
            Self::V1(state) => io::write(state, "THAWED"),
            Self::V2(dir) => io::write(&dir.join("cgroup.freeze"), "0"),
        }
    }
}
