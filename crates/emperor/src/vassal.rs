//! One vassal as the emperor keeps it: what its file said last, the master running it (if
//! any), its cgroup, its log, its throttle, and where it is in its life.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use liege_cgroups::Cgroup;

use crate::control::Control;
use crate::logs::Log;
use crate::policy::VassalConfig;
use crate::throttle::Throttle;

/// Why a master is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopFor {
    /// Its file went away, or the emperor stops: remove the vassal once it is gone.
    Removal,
    /// Its namespaces or identity changed: spawn it again once it is gone.
    Restart,
    /// It stopped answering heartbeats, or a spawn went wrong: respawn (throttled).
    Respawn,
}

/// The master currently running a vassal.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) pid: i32,
    pub(crate) pidfd: OwnedFd,
    /// Spawned by this emperor (so it reaps it), or adopted from a previous one.
    pub(crate) child: bool,
    pub(crate) control: Option<Control>,
    pub(crate) started: Instant,
    /// Unix time of the spawn.
    pub(crate) born: u64,
    pub(crate) ready: bool,
    pub(crate) accepting: bool,
    pub(crate) loyal: bool,
    pub(crate) last_heartbeat: Option<Instant>,
    /// The digest of the config the master runs.
    pub(crate) digest: u64,
    /// What needs a restart when it changes, for the config the master runs.
    pub(crate) restart_key: String,
    /// Set when it was told to stop: why, and when it gets killed if still there.
    pub(crate) stopping: Option<(StopFor, Instant)>,
    pub(crate) killed: bool,
    /// Reloads sent to this master.
    pub(crate) reloads: u64,
}

/// A vassal.
#[derive(Debug)]
pub(crate) struct Vassal {
    /// Its epoll tokens carry this id.
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) location: String,
    /// Which of the emperor's sources gives its file.
    pub(crate) source: usize,
    /// The folder of its file: its master's working directory, as in uWSGI.
    pub(crate) cwd: std::path::PathBuf,
    /// The source still has its file.
    pub(crate) wanted: bool,
    /// The last config that loaded (what runs, or will).
    pub(crate) config: Option<VassalConfig>,
    /// The last error loading its file, until a later load works.
    pub(crate) error: Option<String>,
    pub(crate) run: Option<Running>,
    pub(crate) cgroup: Option<Cgroup>,
    pub(crate) log: Log,
    pub(crate) throttle: Throttle,
    pub(crate) respawn_at: Option<Instant>,
    /// Masters spawned for it after the first.
    pub(crate) restarts: u64,
    pub(crate) spawned_once: bool,
    pub(crate) adopted: bool,
    /// Waiting in the emperor's spawn queue.
    pub(crate) queued: bool,
    /// Its cgroup's figures, and when they were read.
    pub(crate) usage: Option<(Instant, crate::stats::Usage)>,
    /// What its last config tells the router (when the emperor runs one).
    pub(crate) route: Option<crate::routes::RouteSpec>,
    /// Its place among the claimants of domains: the order vassals were first loaded in.
    pub(crate) claim_seq: Option<u64>,
    /// Its routing warnings and refused claims, each naming its file and line.
    pub(crate) route_errors: Vec<String>,
}

impl Vassal {
    /// What the stats call its state.
    pub(crate) fn state(&self) -> &'static str {
        match &self.run {
            Some(r) if r.stopping.is_some() => "stopping",
            Some(r) if r.accepting => "accepting",
            Some(r) if r.ready => "ready",
            Some(_) => "starting",
            None if self.queued => "starting",
            None if self.respawn_at.is_some() => "throttled",
            None if self.error.is_some() => "broken",
            None => "stopped",
        }
    }

    /// The time until its next deadline, if any.
    pub(crate) fn next_deadline(&self, now: Instant, heartbeat: Duration) -> Option<Duration> {
        let mut next: Option<Instant> = self.respawn_at;
        if let Some(r) = &self.run {
            if let Some((_, at)) = r.stopping {
                if !r.killed {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            } else if let Some(h) = r.last_heartbeat {
                let at = h + heartbeat;
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next.map(|at| at.saturating_duration_since(now))
    }
}
