//! The emperor's loop: one thread, one epoll, over the signal pipe, the vassal sources, each
//! master's pidfd, control socket and output pipe, and the stats and metrics listeners, with
//! deadlines for respawns, curses and heartbeats.
//!
//! Every clone of a vassal happens in this single-threaded process (ARCHITECTURE.md decision
//! 2). A master is addressed through its pidfd, and every process of a vassal through its
//! cgroup: the emperor never acts on a pid it read from a vassal.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use liege_cgroups::{Cgroup, Tree};
use liege_config::HostFacts;
use liege_proto::emperor::{self as wire, ConfigEntry, ToEmperor, ToMaster};
use rustix::event::epoll;
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal};

use crate::control::{Control, Read};
use crate::logs::{Drained, Log};
use crate::policy::{self, VassalConfig};
use crate::router::{self, Router};
use crate::rundir;
use crate::serve::{self, Client, Listener, Next, Service};
use crate::settings::Settings;
use crate::source::{Change, Entry, VassalSource};
use crate::spawn::{self, SpawnRequest};
use crate::stats::{self, EmperorStat, Usage, VassalStat};
use crate::throttle::Throttle;
use crate::vassal::{Running, StopFor, Vassal};
use crate::{EmperorError, log};

/// How often the loop wakes with nothing to do (deadlines, the rescan).
const TICK: Duration = Duration::from_secs(1);
/// How long an adopted master has to say hello.
const HELLO_WAIT: Duration = Duration::from_secs(2);
/// How many queued vassals one turn of the loop spawns.
const SPAWN_BURST: usize = 8;
/// Cgroup figures younger than this are shown from the cache; the ticks refresh those older
/// than [`USAGE_REFRESH`], [`USAGE_BURST`] vassals a tick, so with 2,000 vassals every figure
/// is at most ~10 s old and a stats request reads no cgroup file.
const USAGE_FRESH: Duration = Duration::from_secs(15);
const USAGE_REFRESH: Duration = Duration::from_secs(5);
/// How many vassals' cgroup figures one tick refreshes (each costs ~50 µs of file reads).
const USAGE_BURST: usize = 200;

const KIND_SIGNALS: u64 = 1;
const KIND_SOURCE: u64 = 2;
const KIND_LISTENER: u64 = 3;
const KIND_CLIENT: u64 = 4;
const KIND_PIDFD: u64 = 5;
const KIND_CONTROL: u64 = 6;
const KIND_LOG: u64 = 7;
/// The router: its pidfd (0), its control socket (1), its log pipe (2).
const KIND_ROUTER: u64 = 8;
const ROUTER_PIDFD: u64 = 0;
const ROUTER_CONTROL: u64 = 1;
const ROUTER_LOG: u64 = 2;

fn token(kind: u64, id: u64) -> u64 {
    (kind << 56) | (id & ((1 << 56) - 1))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The signals the emperor acts on.
struct Signals {
    wake: OwnedFd,
    hup: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl Signals {
    fn register() -> std::io::Result<Signals> {
        let (read, write) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )?;
        let mut s = Signals {
            wake: read,
            hup: Arc::default(),
            stop: Arc::default(),
            ids: Vec::new(),
        };
        for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGQUIT] {
            let flag = if sig == libc::SIGHUP { &s.hup } else { &s.stop };
            s.ids
                .push(signal_hook::flag::register(sig, Arc::clone(flag))?);
            let w = rustix::io::fcntl_dupfd_cloexec(&write, 3)?;
            s.ids.push(signal_hook::low_level::pipe::register(sig, w)?);
        }
        Ok(s)
    }

    fn drain(&self) {
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

/// What is kept in `RUN/emperor/NAME.state` for a later emperor that adopts the vassal.
fn state_text(digest: u64, restart_key: &str, born: u64, restarts: u64) -> String {
    serde_json::json!({
        "digest": digest,
        "restart_key": restart_key,
        "born": born,
        "restarts": restarts,
    })
    .to_string()
}

/// The running emperor.
pub(crate) struct Emperor {
    settings: Settings,
    policy: policy::Settings,
    host: HostFacts,
    sources: Vec<Box<dyn VassalSource>>,
    tree: Tree,
    exe: OwnedFd,
    epoll: OwnedFd,
    signals: Signals,
    listeners: Vec<Listener>,
    clients: HashMap<u64, Client>,
    next_client: u64,
    vassals: BTreeMap<String, Vassal>,
    ids: HashMap<u32, String>,
    next_id: u32,
    last_rescan: Instant,
    shutting_down: bool,
    /// When the last slice of cgroup figures was read, and the vassal it ended with.
    last_usage: Instant,
    usage_cursor: Option<String>,
    /// Vassals waiting for their spawn, in order.
    spawn_queue: std::collections::VecDeque<String>,
    /// Vassals whose control socket's epoll interest may need OUT (sends wait) or not.
    pending_interest: Vec<String>,
    /// `RUN/vassals`, opened without following links: every vassal's folder is made, opened
    /// and removed relative to it.
    vassals_dir: OwnedFd,
    /// The HTTP router, with `http` / `https` in the emperor's options.
    router: Option<Router>,
    /// The next vassal's place among the claimants of domains.
    next_claim_seq: u64,
    /// The lock that keeps a second emperor off this run dir.
    _lock: OwnedFd,
}

/// Reads the emperor's options again.
pub type Reload = Box<dyn FnMut() -> Result<liege_config::Options, String>>;

impl std::fmt::Debug for Emperor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emperor")
            .field("vassals", &self.vassals.len())
            .finish_non_exhaustive()
    }
}

fn setup(step: &'static str) -> impl FnOnce(std::io::Error) -> EmperorError {
    move |source| EmperorError::Setup { step, source }
}

fn make_dir(path: &Path, mode: u32) -> std::io::Result<()> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

impl Emperor {
    pub(crate) fn new(
        settings: Settings,
        policy: policy::Settings,
        host: HostFacts,
        sources: Vec<Box<dyn VassalSource>>,
        tree: Tree,
        exe: &Path,
        router: Option<router::Setup>,
    ) -> Result<Emperor, EmperorError> {
        make_dir(&settings.run_dir, 0o755).map_err(setup("the run dir"))?;
        make_dir(&settings.run_dir.join("emperor"), 0o700).map_err(setup("the run dir"))?;
        make_dir(&settings.run_dir.join("vassals"), 0o755).map_err(setup("the run dir"))?;
        make_dir(&settings.log_dir, 0o750).map_err(setup("the log dir"))?;
        // The folders the emperor keeps, checked through descriptors: `RUN/emperor` (control
        // sockets, state, log FIFOs) is root's alone (0700); `RUN/vassals` is root's, and the
        // vassals' folders in it are only ever reached through its descriptor.
        let run_fd = rustix::fs::open(
            &settings.run_dir,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| setup("the run dir")(e.into()))?;
        rundir::check_run_dir(run_fd.as_fd(), &settings.run_dir)?;
        drop(rundir::open_control_dir(
            run_fd.as_fd(),
            &settings.run_dir.join("emperor"),
        )?);
        let vassals_dir =
            rundir::open_vassals_dir(run_fd.as_fd(), &settings.run_dir.join("vassals"))?;
        let lock_path = settings.run_dir.join("emperor").join("lock");
        let lock = rustix::fs::open(
            &lock_path,
            rustix::fs::OFlags::CREATE | rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .map_err(|e| setup("the run dir lock")(e.into()))?;
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(EmperorError::Locked {
                run_dir: settings.run_dir.clone(),
            });
        }
        let exe_fd = rustix::fs::open(
            exe,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| setup("opening the liege binary")(e.into()))?;
        let router = router
            .map(|r| {
                Router::new(
                    r,
                    exe_fd.as_fd(),
                    &tree,
                    &settings.log_dir,
                    policy.default_log_maxsize,
                    &settings.run_dir,
                    &policy.passwd,
                )
            })
            .transpose()?;
        let epoll =
            epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| setup("epoll")(e.into()))?;
        let signals = Signals::register().map_err(setup("signal handlers"))?;
        let mut listeners = Vec::new();
        if let Some(addr) = &settings.stats {
            listeners.push(Listener::bind(Service::Stats, addr)?);
        }
        if let Some(addr) = &settings.metrics {
            listeners.push(Listener::bind(Service::Metrics, addr)?);
        }
        let e = Emperor {
            settings,
            policy,
            host,
            sources,
            tree,
            exe: exe_fd,
            epoll,
            signals,
            listeners,
            clients: HashMap::new(),
            next_client: 0,
            vassals: BTreeMap::new(),
            ids: HashMap::new(),
            next_id: 1,
            last_rescan: Instant::now(),
            shutting_down: false,
            pending_interest: Vec::new(),
            spawn_queue: std::collections::VecDeque::new(),
            last_usage: Instant::now(),
            usage_cursor: None,
            vassals_dir,
            router,
            next_claim_seq: 0,
            _lock: lock,
        };
        if let Some(p) = e.router.as_ref().and_then(Router::log_pipe) {
            e.watch(p, token(KIND_ROUTER, ROUTER_LOG), false)?;
        }
        e.watch(e.signals.wake.as_fd(), token(KIND_SIGNALS, 0), false)?;
        for (i, source) in e.sources.iter().enumerate() {
            if let Some(fd) = source.fd() {
                e.watch(fd, token(KIND_SOURCE, i as u64), false)?;
            }
        }
        for (i, l) in e.listeners.iter().enumerate() {
            e.watch(l.fd.as_fd(), token(KIND_LISTENER, i as u64), false)?;
        }
        Ok(e)
    }

    fn watch(&self, fd: BorrowedFd<'_>, tok: u64, out: bool) -> Result<(), EmperorError> {
        let mut flags = epoll::EventFlags::IN;
        if out {
            flags |= epoll::EventFlags::OUT;
        }
        epoll::add(&self.epoll, fd, epoll::EventData::new_u64(tok), flags)
            .map_err(|e| setup("epoll")(e.into()))
    }

    fn unwatch(&self, fd: BorrowedFd<'_>) {
        let _ = epoll::delete(&self.epoll, fd);
    }

    /// Runs until SIGINT, SIGTERM or SIGQUIT has stopped every vassal; returns the exit status.
    pub(crate) fn run(&mut self) -> Result<u8, EmperorError> {
        log!(
            "emperor pid {} watching {}; run dir {}, cgroups {}, logs {}",
            std::process::id(),
            self.settings.sources.join(" "),
            self.settings.run_dir.display(),
            self.settings.cgroup_root,
            self.settings.log_dir.display()
        );
        self.adopt_all();
        self.rescan(true);
        self.start_router();
        let mut events = Vec::with_capacity(64);
        loop {
            let now = Instant::now();
            if self.shutting_down && self.vassals.is_empty() && self.router_stopped(now) {
                self.cleanup();
                log!("emperor: every vassal stopped; goodbye");
                return Ok(0);
            }
            let timeout = self.next_wake(now);
            let timespec = rustix::time::Timespec {
                tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(timeout.subsec_nanos()),
            };
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                Some(&timespec),
            ) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(setup("epoll")(e.into())),
            }
            for ev in events.iter() {
                let t = ev.data.u64();
                let (kind, id) = (t >> 56, t & ((1 << 56) - 1));
                match kind {
                    KIND_SIGNALS => self.signals.drain(),
                    KIND_SOURCE => self.source_ready(id),
                    KIND_LISTENER => self.accept(id),
                    KIND_CLIENT => self.client_ready(id),
                    KIND_PIDFD => self.master_gone(id),
                    KIND_CONTROL => self.control_ready(id),
                    KIND_LOG => self.log_ready(id),
                    KIND_ROUTER => self.router_ready(id),
                    _ => {}
                }
            }
            self.handle_signals();
            self.deadlines(Instant::now());
            self.spawn_queued();
            self.sync_router();
            for name in std::mem::take(&mut self.pending_interest) {
                self.control_interest(&name);
            }
            self.router_interest();
        }
    }

    fn next_wake(&self, now: Instant) -> Duration {
        if !self.spawn_queue.is_empty() {
            return Duration::ZERO;
        }
        let mut wake = TICK;
        if let Some(at) = self.router.as_ref().and_then(|r| r.gateway().deadline()) {
            wake = wake.min(at.saturating_duration_since(now));
        }
        for v in self.vassals.values() {
            if let Some(d) = v.next_deadline(now, self.settings.required_heartbeat) {
                wake = wake.min(d);
            }
        }
        wake
    }

    fn handle_signals(&mut self) {
        if self.signals.stop.swap(false, Ordering::Relaxed) {
            if self.shutting_down {
                log!("emperor: asked again to stop: killing every vassal now");
                if let Some(r) = &mut self.router {
                    r.kill();
                }
                for v in self.vassals.values_mut() {
                    if let (Some(cg), Some(r)) = (&v.cgroup, &mut v.run) {
                        let _ = cg.kill_all();
                        r.killed = true;
                    }
                }
            } else {
                self.shutdown();
            }
        }
        if self.signals.hup.swap(false, Ordering::Relaxed) {
            log!("emperor: SIGHUP: reloading every vassal");
            // Read every file again first; a vassal that this already reloaded or restarted
            // is not reloaded a second time.
            let before: Vec<(String, Option<(i32, u64)>)> = self
                .vassals
                .iter()
                .map(|(n, v)| (n.clone(), v.run.as_ref().map(|r| (r.pid, r.reloads))))
                .collect();
            self.rescan(false);
            self.reload_router();
            for (name, was) in before {
                let now = self
                    .vassals
                    .get(&name)
                    .and_then(|v| v.run.as_ref())
                    .map(|r| (r.pid, r.reloads));
                if now.is_some() && now == was {
                    self.reload(&name);
                }
            }
        }
    }

    // ---- sources ---------------------------------------------------------------------

    fn source_ready(&mut self, index: u64) {
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        let Some(source) = self.sources.get_mut(index) else {
            return;
        };
        let changes = source.changes();
        self.apply(index, changes);
    }

    /// The periodic safety net (and the first scan).
    fn rescan(&mut self, first: bool) {
        self.last_rescan = Instant::now();
        for i in 0..self.sources.len() {
            let changes = self.sources[i].rescan();
            self.apply(i, changes);
        }
        if first {
            // Adopted vassals whose file is gone.
            let orphans: Vec<String> = self
                .vassals
                .values()
                .filter(|v| !v.wanted)
                .map(|v| v.name.clone())
                .collect();
            for name in orphans {
                log!("vassal {name}: adopted, but its file is gone: stopping it");
                self.stop(&name, StopFor::Removal);
            }
        }
    }

    fn apply(&mut self, source: usize, changes: Vec<Change>) {
        for change in changes {
            if self.shutting_down {
                return;
            }
            match change {
                Change::Upserted(entry) => self.upserted(source, &entry),
                Change::Removed(name) => self.removed(source, name.as_str()),
                Change::Error(e) => log!("emperor: {e}"),
            }
        }
    }

    fn new_vassal(&mut self, name: &str, location: &str, log_max: u64) -> &mut Vassal {
        let id = self.next_id;
        self.next_id += 1;
        self.ids.insert(id, name.to_owned());
        self.vassals
            .entry(name.to_owned())
            .or_insert_with(|| Vassal {
                id,
                name: name.to_owned(),
                location: location.to_owned(),
                source: 0,
                cwd: PathBuf::from("/"),
                wanted: true,
                config: None,
                error: None,
                run: None,
                cgroup: None,
                log: Log::new(&self.settings.log_dir, name, log_max),
                throttle: Throttle::new(self.settings.throttle, self.settings.max_throttle),
                respawn_at: None,
                restarts: 0,
                spawned_once: false,
                adopted: false,
                queued: false,
                usage: None,
                route: None,
                claim_seq: None,
                route_errors: Vec::new(),
            })
    }

    fn upserted(&mut self, source: usize, entry: &Entry) {
        let name = entry.name.as_str().to_owned();
        if let Some(v) = self.vassals.get(&name)
            && v.wanted
            && v.source != source
        {
            log!(
                "emperor: `{}` is refused: the vassal name `{name}` is taken by `{}`",
                entry.location,
                v.location
            );
            return;
        }
        let reload = self.vassals.get(&name).is_some_and(|v| v.run.is_some());
        let loaded = policy::load(entry, &self.policy, &self.host, reload)
            .map_err(|e| e.to_string())
            .and_then(|cfg| {
                refuse_emperor_options(&cfg.options)?;
                liege_master::Plan::from_options_as(&cfg.options, liege_master::plan::Mode::Vassal)
                    .map_err(|e| e.to_string())?;
                // The jail's options too (folders that must exist, sizes, hooks), so that a bad
                // one is refused here, naming its line, rather than by a master that dies.
                liege_jail::Jail::from_options(
                    &cfg.options,
                    &liege_jail::Context {
                        name: Some(cfg.name.as_str()),
                        vassal: true,
                    },
                )
                .map_err(|e| e.to_string())?;
                // What it tells the router (its certificates read as its user), checked here
                // too: a bad domain names its line.
                let route = match &self.router {
                    Some(r) => Some(r.spec_of(cfg.name.as_str(), &cfg, &entry.reader.folder())?),
                    None => {
                        // No router here: still no `http` in a vassal file.
                        for w in crate::routes::router_options(&cfg.options)? {
                            log!("vassal {}: {w}", cfg.name);
                        }
                        None
                    }
                };
                Ok((cfg, route))
            });
        if !self.vassals.contains_key(&name) {
            let max = self.policy.default_log_maxsize;
            self.new_vassal(&name, &entry.location, max);
        }
        let Some(v) = self.vassals.get_mut(&name) else {
            return;
        };
        v.wanted = true;
        v.source = source;
        v.location.clone_from(&entry.location);
        v.cwd = entry.reader.folder();
        let (cfg, route) = match loaded {
            Ok(loaded) => loaded,
            Err(msg) => {
                log!("vassal {name}: refused: {msg}");
                v.log.note(&format!("refused: {msg}"));
                v.error = Some(msg);
                if v.run.is_none() && v.respawn_at.is_none() && v.config.is_none() {
                    // Nothing runs: it stays broken until its file changes.
                }
                return;
            }
        };
        for w in &cfg.warnings {
            log!("vassal {name}: {w}");
        }
        if let Some(route) = route {
            for w in route
                .warnings
                .iter()
                .filter(|w| !v.route_errors.contains(w))
            {
                log!("vassal {name}: {w}");
                v.log.note(w);
            }
            v.route = Some(route);
            if v.claim_seq.is_none() {
                v.claim_seq = Some(self.next_claim_seq);
                self.next_claim_seq += 1;
            }
            if let Some(r) = &mut self.router {
                r.generation += 1;
            }
        }
        v.error = None;
        v.throttle.reset();
        v.log.set_max(cfg.log_maxsize);
        let digest = digest_of(&cfg);
        let restart_key = restart_key(&cfg);
        let first_look_after_adoption = v.adopted && v.config.is_none();
        v.config = Some(cfg);
        match &mut v.run {
            None => {
                if v.respawn_at.is_some() {
                    log!("vassal {name}: its file changed: respawning it now");
                }
                v.respawn_at = None;
                self.spawn(&name);
            }
            Some(r) if r.stopping.is_some() => {
                // Whatever stops it, it comes back with the new config.
                if let Some((why, at)) = r.stopping
                    && why == StopFor::Removal
                {
                    r.stopping = Some((StopFor::Restart, at));
                }
            }
            Some(r) if r.restart_key != restart_key => {
                log!("vassal {name}: its namespaces or identity changed: restarting it");
                self.stop(&name, StopFor::Restart);
            }
            Some(r) => {
                if first_look_after_adoption && r.digest == digest {
                    log!("vassal {name}: adopted, its file unchanged");
                    return;
                }
                self.apply_limits(&name);
                self.reload(&name);
            }
        }
    }

    fn removed(&mut self, source: usize, name: &str) {
        let Some(v) = self.vassals.get_mut(name) else {
            return;
        };
        if v.source != source {
            return;
        }
        v.wanted = false;
        if v.run.is_some() {
            log!("vassal {name}: its file is gone: stopping it");
            self.stop(name, StopFor::Removal);
        } else {
            log!("vassal {name}: its file is gone");
            self.forget(name);
        }
    }

    // ---- spawning --------------------------------------------------------------------

    fn control_path(&self, name: &str) -> PathBuf {
        self.settings
            .run_dir
            .join("emperor")
            .join(format!("{name}.sock"))
    }

    fn state_path(&self, name: &str) -> PathBuf {
        self.settings
            .run_dir
            .join("emperor")
            .join(format!("{name}.state"))
    }

    fn fifo_path(&self, name: &str) -> PathBuf {
        self.settings
            .run_dir
            .join("emperor")
            .join(format!("{name}.log"))
    }

    fn vassal_run_dir(&self, name: &str) -> PathBuf {
        self.settings.run_dir.join("vassals").join(name)
    }

    fn apply_limits(&mut self, name: &str) {
        let Some(v) = self.vassals.get_mut(name) else {
            return;
        };
        let (Some(cg), Some(cfg)) = (&v.cgroup, &v.config) else {
            return;
        };
        if let Err(e) = cg.apply(&cgroup_limits(cfg)) {
            log!("vassal {name}: cannot write its limits: {e}");
            v.log.note(&format!("cannot write its limits: {e}"));
        }
    }

    /// Queues the vassal for a spawn: the loop spawns a few per turn, so a thousand new files
    /// do not keep it from answering the stats and the masters in between.
    fn spawn(&mut self, name: &str) {
        if let Some(v) = self.vassals.get_mut(name)
            && !v.queued
        {
            v.queued = true;
            self.spawn_queue.push_back(name.to_owned());
        }
    }

    /// Spawns up to [`SPAWN_BURST`] queued vassals.
    fn spawn_queued(&mut self) {
        for _ in 0..SPAWN_BURST {
            let Some(name) = self.spawn_queue.pop_front() else {
                return;
            };
            let Some(v) = self.vassals.get_mut(&name) else {
                continue;
            };
            v.queued = false;
            if self.shutting_down || !v.wanted || v.run.is_some() {
                continue;
            }
            self.spawn_now(&name);
        }
    }

    /// Spawns the vassal's master with its config; on failure, schedules a throttled retry.
    fn spawn_now(&mut self, name: &str) {
        match self.try_spawn(name) {
            Ok(()) => {}
            Err(msg) => {
                let Some(v) = self.vassals.get_mut(name) else {
                    return;
                };
                let delay = v.throttle.delay(false);
                log!(
                    "vassal {name}: cannot spawn: {msg}; trying again in {} ms",
                    delay.as_millis()
                );
                v.log.note(&format!("cannot spawn: {msg}"));
                v.error = Some(msg);
                v.respawn_at = Some(Instant::now() + delay);
            }
        }
    }

    fn try_spawn(&mut self, name: &str) -> Result<(), String> {
        let control_path = self.control_path(name);
        let state_path = self.state_path(name);
        let fifo_path = self.fifo_path(name);
        let run_dir = self.vassal_run_dir(name);
        let Some(v) = self.vassals.get_mut(name) else {
            return Ok(());
        };
        let Some(cfg) = v.config.clone() else {
            return Ok(());
        };
        // The cgroup, with its limits, before anything of the vassal runs.
        if v.cgroup.is_none() {
            let cg = self
                .tree
                .create(name, cfg.cgroup_dir_mode)
                .map_err(|e| format!("cannot create its cgroup: {e}"))?;
            v.cgroup = Some(cg);
        }
        let cg = v.cgroup.as_ref().ok_or("no cgroup")?;
        cg.apply(&cgroup_limits(&cfg))
            .map_err(|e| format!("cannot write its limits: {e}"))?;
        // Its /run folder on the host (the jail binds it at /run), made and handed over
        // through descriptors: the customer may have planted anything there.
        let owner = cfg
            .uid
            .unwrap_or_else(|| rustix::process::geteuid().as_raw());
        let prepared = rundir::prepare(self.vassals_dir.as_fd(), name, &run_dir, owner, cfg.gid)
            .map_err(|e| e.to_string())?;
        if let Some(was) = &prepared.replaced {
            log!(
                "vassal {name}: {} was {was}, not a folder of uid {owner}: removed it and made the folder again",
                run_dir.display()
            );
        }
        // The control socket it will listen on; a stale one (a vassal killed with its
        // emperor) goes first.
        let _ = fs_err::remove_file(&control_path);
        let listener = std::os::unix::net::UnixListener::bind(&control_path)
            .map_err(|e| format!("cannot bind {}: {e}", control_path.display()))?;
        let control = Control::connect(&control_path)
            .map_err(|e| format!("cannot connect to {}: {e}", control_path.display()))?;
        // The options it runs with, sealed.
        let entries = config_entries(&cfg);
        let bytes = wire::encode_config(&entries);
        let digest = wire::config_digest(&bytes);
        let memfd = sealed_memfd(&bytes).map_err(|e| format!("cannot pass its config: {e}"))?;
        // Its output, through a FIFO in the root-only folder, so an emperor that restarts
        // opens it again by its name and the vassal's processes keep theirs.
        let (log_read, log_write) =
            log_fifo(&fifo_path).map_err(|e| format!("cannot make its log FIFO: {e}"))?;
        // A read end for the master too, which drains the FIFO while no emperor runs.
        let log_hold = rustix::fs::open(
            &fifo_path,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::NONBLOCK
                | rustix::fs::OFlags::CLOEXEC
                | rustix::fs::OFlags::NOFOLLOW,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| format!("cannot open its log FIFO: {e}"))?;
        let null = rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| format!("cannot open /dev/null: {e}"))?;
        let listener_fd: OwnedFd = listener.into();
        let env = [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            "LANG=C.UTF-8".to_owned(),
            format!("{}=3", wire::CONTROL_FD),
            format!("{}=4", wire::CONFIG_FD),
            format!("{}=5", wire::LOG_FD),
            format!("{}=6", wire::RUN_DIR_FD),
            format!("{}={name}", wire::VASSAL_NAME),
        ];
        let cwd = CString::new(v.cwd.as_os_str().as_encoded_bytes()).ok();
        let request = SpawnRequest {
            name,
            cwd: cwd.as_deref(),
            namespaces: cfg.namespaces,
            exe: self.exe.as_fd(),
            args: vec![cstring("liege")],
            env: env.iter().map(|s| cstring(s)).collect(),
            fds: vec![
                (null.as_fd(), 0),
                (log_write.as_fd(), 1),
                (log_write.as_fd(), 2),
                (listener_fd.as_fd(), 3),
                (memfd.as_fd(), 4),
                (log_hold.as_fd(), 5),
                (prepared.fd.as_fd(), 6),
            ],
        };
        let extra_dirs = cfg.cgroup_dirs.clone();
        let mode = cfg.cgroup_dir_mode;
        let mut place = |pid: i32| -> Result<(), String> {
            let pid = u32::try_from(pid).map_err(|_| format!("bad pid {pid}"))?;
            cg.place(pid).map_err(|e| e.to_string())?;
            for dir in &extra_dirs {
                liege_cgroups::place_in_dir(Path::new(dir), pid, mode)
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        };
        let spawned = spawn::spawn(&request, &mut place).map_err(|e| e.to_string())?;
        drop(request);
        drop((listener_fd, memfd, null, log_write, log_hold, prepared));
        v.log.attach(log_read);
        let born = unix_now();
        let restarts = if v.spawned_once { v.restarts + 1 } else { 0 };
        v.restarts = restarts;
        v.spawned_once = true;
        v.error = None;
        v.adopted = false;
        let restart_key = restart_key(&cfg);
        let _ = fs_err::write(
            &state_path,
            state_text(digest, &restart_key, born, restarts),
        );
        log!(
            "vassal {name}: spawned its master, pid {} (namespaces {}, uid {}, from {})",
            spawned.pid,
            cfg.namespaces,
            cfg.uid.map_or_else(|| "root".to_owned(), |u| u.to_string()),
            v.location
        );
        v.log.note(&format!("master spawned, pid {}", spawned.pid));
        v.run = Some(Running {
            pid: spawned.pid,
            pidfd: spawned.pidfd,
            child: true,
            control: Some(control),
            started: Instant::now(),
            born,
            ready: false,
            accepting: false,
            loyal: false,
            last_heartbeat: None,
            digest,
            restart_key,
            stopping: None,
            killed: false,
            reloads: 0,
        });
        self.watch_running(name);
        Ok(())
    }

    /// Puts a vassal's pidfd, control socket and log pipe in the epoll set.
    fn watch_running(&mut self, name: &str) {
        let Some(v) = self.vassals.get(name) else {
            return;
        };
        let id = u64::from(v.id);
        if let Some(r) = &v.run {
            let _ = self.watch(r.pidfd.as_fd(), token(KIND_PIDFD, id), false);
            if let Some(c) = &r.control {
                let _ = self.watch(c.fd(), token(KIND_CONTROL, id), false);
            }
        }
        if let Some(p) = v.log.pipe() {
            let _ = self.watch(p, token(KIND_LOG, id), false);
        }
    }

    // ---- talking to masters ----------------------------------------------------------

    fn name_of(&self, id: u64) -> Option<String> {
        self.ids.get(&u32::try_from(id).ok()?).cloned()
    }

    fn reload(&mut self, name: &str) {
        let Some(v) = self.vassals.get_mut(name) else {
            return;
        };
        let Some(cfg) = &v.config else {
            return;
        };
        let bytes = wire::encode_config(&config_entries(cfg));
        let digest = wire::config_digest(&bytes);
        let Some(r) = &mut v.run else {
            return;
        };
        if r.stopping.is_some() {
            return;
        }
        match &mut r.control {
            Some(c) => {
                c.send(&ToMaster::Reload { config: bytes });
                r.digest = digest;
                r.reloads += 1;
                log!("vassal {name}: reloading it gracefully");
                self.pending_interest.push(name.to_owned());
                v.log.note("graceful reload");
                let restart_key = r.restart_key.clone();
                let (born, restarts) = (r.born, v.restarts);
                let _ = fs_err::write(
                    self.settings
                        .run_dir
                        .join("emperor")
                        .join(format!("{name}.state")),
                    state_text(digest, &restart_key, born, restarts),
                );
            }
            None => {
                log!("vassal {name}: no control connection to reload it: restarting it");
                self.stop(name, StopFor::Restart);
            }
        }
    }

    /// Tells a master to stop gracefully; it is killed with its cgroup after the curse
    /// tolerance.
    fn stop(&mut self, name: &str, why: StopFor) {
        let curse = self.settings.curse;
        let Some(v) = self.vassals.get_mut(name) else {
            return;
        };
        v.respawn_at = None;
        let Some(r) = &mut v.run else {
            return;
        };
        if let Some((_, at)) = r.stopping {
            r.stopping = Some((why, at));
            return;
        }
        r.stopping = Some((why, Instant::now() + curse));
        if why == StopFor::Removal && self.router.is_some() {
            // Its routes are withdrawn before it is told: new requests get 404 rather than
            // its closing socket.
            self.sync_router();
        }
        let Some(r) = self.vassals.get_mut(name).and_then(|v| v.run.as_mut()) else {
            return;
        };
        match &mut r.control {
            Some(c) => {
                c.send(&ToMaster::Stop);
                self.pending_interest.push(name.to_owned());
            }
            None => {
                // Without a connection, SIGINT is the master's own way to stop.
                let _ = rustix::process::pidfd_send_signal(&r.pidfd, Signal::INT);
            }
        }
        if let Some(v) = self.vassals.get_mut(name) {
            v.log.note("told to stop");
        }
    }

    /// Watches a master's control socket for output too while sends wait for room.
    fn control_interest(&self, name: &str) {
        let Some(v) = self.vassals.get(name) else {
            return;
        };
        let Some(c) = v.run.as_ref().and_then(|r| r.control.as_ref()) else {
            return;
        };
        let mut flags = epoll::EventFlags::IN;
        if c.pending() {
            flags |= epoll::EventFlags::OUT;
        }
        let data = epoll::EventData::new_u64(token(KIND_CONTROL, u64::from(v.id)));
        let _ = epoll::modify(&self.epoll, c.fd(), data, flags);
    }

    fn control_ready(&mut self, id: u64) {
        let Some(name) = self.name_of(id) else {
            return;
        };
        let Some(v) = self.vassals.get_mut(&name) else {
            return;
        };
        let Some(r) = &mut v.run else {
            return;
        };
        let Some(c) = &mut r.control else {
            return;
        };
        c.flush();
        let (messages, closed) = match c.read() {
            Read::Messages(m) => (m, None),
            Read::Closed(m, why) => (m, Some(why)),
        };
        for m in messages {
            match m {
                ToEmperor::Hello { .. } => {}
                ToEmperor::Ready => {
                    if !r.ready {
                        log!("vassal {name}: ready");
                    }
                    r.ready = true;
                }
                ToEmperor::Accepting => {
                    // Its processes changed: the next stats read its cgroup afresh.
                    v.usage = None;
                    if !r.accepting {
                        log!(
                            "vassal {name}: accepting requests ({} ms after its spawn)",
                            r.started.elapsed().as_millis()
                        );
                    }
                    r.ready = true;
                    r.accepting = true;
                }
                ToEmperor::Loyal => {
                    r.loyal = true;
                    v.throttle.reset();
                }
                ToEmperor::Heartbeat => r.last_heartbeat = Some(Instant::now()),
                ToEmperor::Stopping => {}
            }
        }
        self.pending_interest.push(name.clone());
        if let Some(why) = closed {
            if let Some(c) = r.control.take() {
                let _ = epoll::delete(&self.epoll, c.fd());
            }
            if r.stopping.is_none() {
                log!(
                    "vassal {name}: its control connection closed{}",
                    why.map(|w| format!(" ({w})")).unwrap_or_default()
                );
            }
        }
    }

    fn log_ready(&mut self, id: u64) {
        let Some(name) = self.name_of(id) else {
            return;
        };
        let Some(v) = self.vassals.get_mut(&name) else {
            return;
        };
        // A closed pipe is dropped by `drain`, and epoll forgets it with its last descriptor.
        let _ = v.log.drain() == Drained::Closed;
    }

    /// A master's pidfd became readable: it exited.
    fn master_gone(&mut self, id: u64) {
        let Some(name) = self.name_of(id) else {
            return;
        };
        let control_path = self.control_path(&name);
        let state_path = self.state_path(&name);
        let Some(v) = self.vassals.get_mut(&name) else {
            return;
        };
        let Some(r) = v.run.take() else {
            return;
        };
        let _ = epoll::delete(&self.epoll, r.pidfd.as_fd());
        if let Some(c) = &r.control {
            let _ = epoll::delete(&self.epoll, c.fd());
        }
        let status = if r.child {
            match rustix::process::waitid(
                rustix::process::WaitId::PidFd(r.pidfd.as_fd()),
                rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOHANG,
            ) {
                Ok(Some(s)) => describe_status(&s),
                _ => "gone".to_owned(),
            }
        } else {
            "gone (adopted: its status went to its parent)".to_owned()
        };
        // Whatever is left of it (a vassal without a pid namespace can leave orphans).
        if let Some(cg) = &v.cgroup {
            let _ = cg.kill_all();
        }
        let _ = v.log.drain();
        let _ = fs_err::remove_file(&control_path);
        let _ = fs_err::remove_file(&state_path);
        let lived = r.started.elapsed();
        log!(
            "vassal {name}: master pid {} {status} after {:.1} s",
            r.pid,
            lived.as_secs_f64()
        );
        v.log.note(&format!("master {status}"));
        let why = r.stopping.map(|(w, _)| w);
        if self.shutting_down || (!v.wanted && why != Some(StopFor::Restart)) {
            self.forget(&name);
            return;
        }
        match why {
            Some(StopFor::Restart) => {
                if v.config.is_some() {
                    self.spawn(&name);
                } else {
                    self.forget(&name);
                }
            }
            Some(StopFor::Removal) => self.forget(&name),
            Some(StopFor::Respawn) | None => {
                let delay = v.throttle.delay(r.loyal);
                if delay.is_zero() {
                    log!("vassal {name}: respawning it");
                    self.spawn(&name);
                } else {
                    log!(
                        "vassal {name}: died before serving a request: respawning it in {} ms",
                        delay.as_millis()
                    );
                    v.respawn_at = Some(Instant::now() + delay);
                }
            }
        }
    }

    /// Drops a vassal that is not running: its cgroup, its /run folder, its books.
    fn forget(&mut self, name: &str) {
        let run_dir = self.vassal_run_dir(name);
        let _ = fs_err::remove_file(self.fifo_path(name));
        let Some(mut v) = self.vassals.remove(name) else {
            return;
        };
        self.ids.remove(&v.id);
        if let Some(r) = &mut self.router {
            r.forget(name);
        }
        if let Some(cg) = v.cgroup.take() {
            let _ = cg.kill_all();
            if let Err(e) = cg.remove() {
                log!("vassal {name}: cannot remove its cgroup: {e}");
            }
        }
        // Through RUN/vassals' descriptor, with unlinkat: nothing the customer put there is
        // followed.
        if let Err(e) = rundir::remove(self.vassals_dir.as_fd(), name, &run_dir) {
            log!("vassal {name}: {e}");
        }
        v.log.close();
        log!("vassal {name}: removed");
    }

    // ---- deadlines -------------------------------------------------------------------

    fn deadlines(&mut self, now: Instant) {
        if !self.shutting_down && now.duration_since(self.last_rescan) >= self.settings.freq {
            self.rescan(false);
        }
        self.router_deadlines(now);
        let heartbeat = self.settings.required_heartbeat;
        let mut spawn = Vec::new();
        for v in self.vassals.values_mut() {
            if let Some(at) = v.respawn_at
                && at <= now
            {
                v.respawn_at = None;
                spawn.push(v.name.clone());
            }
            let Some(r) = &mut v.run else {
                continue;
            };
            if let Some((_, at)) = r.stopping {
                if !r.killed && at <= now {
                    log!(
                        "vassal {}: still running {} s after it was told to stop: killing every process in its cgroup",
                        v.name,
                        self.settings.curse.as_secs()
                    );
                    if let Some(cg) = &v.cgroup {
                        let _ = cg.kill_all();
                    }
                    let _ = rustix::process::pidfd_send_signal(&r.pidfd, Signal::KILL);
                    r.killed = true;
                }
            } else if let Some(h) = r.last_heartbeat
                && now.duration_since(h) > heartbeat
            {
                log!(
                    "vassal {}: no heartbeat for {} s: killing it",
                    v.name,
                    heartbeat.as_secs()
                );
                v.log.note("no heartbeat: killed");
                if let Some(cg) = &v.cgroup {
                    let _ = cg.kill_all();
                }
                let _ = rustix::process::pidfd_send_signal(&r.pidfd, Signal::KILL);
                r.stopping = Some((StopFor::Respawn, now));
                r.killed = true;
            }
        }
        for name in spawn {
            if !self.shutting_down {
                self.spawn(&name);
            }
        }
        // Cgroup figures, refreshed a slice at a time so a stats request with thousands of
        // vassals reads a cache instead of thousands of files.
        if now.duration_since(self.last_usage) >= TICK {
            self.last_usage = now;
            self.refresh_usage(now);
        }
        // Stats clients that stall are dropped.
        let stale: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| c.since.elapsed() > Duration::from_secs(5))
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(c) = self.clients.remove(&k) {
                self.unwatch(c.fd());
            }
        }
    }

    /// Reads the cgroup figures of up to [`USAGE_BURST`] vassals whose figures are older than
    /// [`USAGE_REFRESH`], going round the vassals from where the last tick stopped, so every
    /// vassal gets its turn however many there are.
    fn refresh_usage(&mut self, now: Instant) {
        let start = self.usage_cursor.take().unwrap_or_default();
        let mut refreshed = 0;
        let mut last = None;
        let (after, before) = {
            let mut after: Vec<&mut Vassal> = Vec::new();
            let mut before: Vec<&mut Vassal> = Vec::new();
            for (name, v) in &mut self.vassals {
                if *name > start {
                    after.push(v);
                } else {
                    before.push(v);
                }
            }
            (after, before)
        };
        for v in after.into_iter().chain(before) {
            if refreshed == USAGE_BURST {
                break;
            }
            if v.usage
                .is_some_and(|(at, _)| now.duration_since(at) < USAGE_REFRESH)
            {
                continue;
            }
            if let Some(u) = v.cgroup.as_ref().and_then(usage_of) {
                v.usage = Some((now, u));
                refreshed += 1;
                last = Some(v.name.clone());
            }
        }
        self.usage_cursor = last;
    }

    // ---- stopping everything ---------------------------------------------------------

    fn shutdown(&mut self) {
        log!(
            "emperor: stopping every vassal (killed after {} s)",
            self.settings.curse.as_secs()
        );
        self.shutting_down = true;
        let names: Vec<String> = self.vassals.keys().cloned().collect();
        for name in names {
            let running = self.vassals.get(&name).is_some_and(|v| v.run.is_some());
            if running {
                self.stop(&name, StopFor::Removal);
            } else {
                self.forget(&name);
            }
        }
    }

    /// Leaves nothing behind: the cgroup root, the control folder, the listeners' files.
    fn cleanup(&mut self) {
        if let Some(r) = &mut self.router {
            r.cleanup();
        }
        let _ = self.tree.remove_root();
        let emperor_dir = self.settings.run_dir.join("emperor");
        if let Ok(dir) = fs_err::read_dir(&emperor_dir) {
            for e in dir.flatten() {
                let _ = fs_err::remove_file(e.path());
            }
        }
        let _ = fs_err::remove_dir(&emperor_dir);
        let _ = fs_err::remove_dir(self.settings.run_dir.join("vassals"));
        let _ = fs_err::remove_dir(&self.settings.run_dir);
        for l in &self.listeners {
            if let Some(p) = &l.path {
                let _ = fs_err::remove_file(p);
            }
        }
    }

    // ---- adoption --------------------------------------------------------------------

    /// Finds the vassals a previous emperor left running (their cgroups are not empty) and
    /// takes them over; what cannot be taken over is killed, so there are never two copies.
    fn adopt_all(&mut self) {
        let names = match self.tree.names() {
            Ok(n) => n,
            Err(e) => {
                log!("emperor: cannot list {}: {e}", self.settings.cgroup_root);
                return;
            }
        };
        for name in names {
            // The router's cgroup (no vassal can have its name).
            if name == router::NAME {
                continue;
            }
            let Ok(Some(cg)) = self.tree.get(&name) else {
                continue;
            };
            if !cg.is_populated().unwrap_or(true) {
                let _ = cg.remove();
                continue;
            }
            match self.adopt(&name, &cg) {
                Ok(r) => {
                    log!("vassal {name}: adopted its running master, pid {}", r.pid);
                    let max = self.policy.default_log_maxsize;
                    let v = self.new_vassal(&name, "", max);
                    v.wanted = false;
                    v.adopted = true;
                    v.spawned_once = true;
                    v.cgroup = Some(cg);
                    v.run = Some(r);
                    self.reopen_log(&name);
                    self.watch_running(&name);
                }
                Err(why) => {
                    log!("vassal {name}: found running but cannot adopt it ({why}): killing it");
                    let _ = cg.kill_all();
                    if let Err(e) = cg.remove() {
                        log!("vassal {name}: cannot remove its cgroup: {e}");
                    }
                    let _ = fs_err::remove_file(self.control_path(&name));
                }
            }
        }
    }

    fn adopt(&self, name: &str, cg: &Cgroup) -> Result<Running, String> {
        let mut control =
            Control::connect(&self.control_path(name)).map_err(|e| format!("connect: {e}"))?;
        let deadline = Instant::now() + HELLO_WAIT;
        let mut hello = None;
        while hello.is_none() && Instant::now() < deadline {
            let fd = control.fd();
            let mut pfd = [rustix::event::PollFd::new(
                &fd,
                rustix::event::PollFlags::IN,
            )];
            let _ = rustix::event::poll(
                &mut pfd,
                Some(&rustix::time::Timespec {
                    tv_sec: 0,
                    tv_nsec: 100_000_000,
                }),
            );
            match control.read() {
                Read::Messages(m) => {
                    hello = m.into_iter().find(|m| matches!(m, ToEmperor::Hello { .. }))
                }
                Read::Closed(_, why) => {
                    return Err(format!("connection closed {}", why.unwrap_or_default()));
                }
            }
        }
        let Some(ToEmperor::Hello { digest, .. }) = hello else {
            return Err("no hello".into());
        };
        let pid = control.peer_pid().ok_or("no peer credentials")?;
        let pidfd =
            rustix::process::pidfd_open(Pid::from_raw(pid).ok_or("bad pid")?, PidfdFlags::empty())
                .map_err(|e| format!("pidfd_open({pid}): {e}"))?;
        if !u32::try_from(pid).is_ok_and(|p| cg.contains(p).unwrap_or(false)) {
            return Err(format!("pid {pid} is not in its cgroup"));
        }
        let state: serde_json::Value = fs_err::read_to_string(self.state_path(name))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Ok(Running {
            pid,
            pidfd,
            child: false,
            control: Some(control),
            started: Instant::now(),
            born: state["born"].as_u64().unwrap_or(0),
            ready: true,
            accepting: true,
            loyal: true,
            last_heartbeat: None,
            digest,
            restart_key: state["restart_key"].as_str().unwrap_or_default().to_owned(),
            stopping: None,
            killed: false,
            reloads: 0,
        })
    }

    /// Reopens an adopted vassal's log FIFO: its processes still hold the write end (their
    /// writes failed with EPIPE while no emperor read it, and work again from now on).
    fn reopen_log(&mut self, name: &str) {
        let path = self.fifo_path(name);
        let Some(v) = self.vassals.get_mut(name) else {
            return;
        };
        match rustix::fs::open(
            &path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) {
            Ok(fd) => v.log.attach(fd),
            Err(e) => log!(
                "vassal {name}: cannot reopen its log {}: {e}",
                path.display()
            ),
        }
    }

    // ---- the router ----------------------------------------------------------------

    /// Spawns the router once the vassal files have been read, so its first route table
    /// names every vassal (those still starting, its requests wait for).
    fn start_router(&mut self) {
        self.sync_router();
        let Some(r) = &mut self.router else {
            return;
        };
        log!("router: listening on {}", r.describe());
        self.spawn_router();
    }

    fn spawn_router(&mut self) {
        let Some(r) = &mut self.router else {
            return;
        };
        match r.spawn() {
            Ok(pid) => {
                log!("router: spawned, pid {pid}");
                let g = r.gateway();
                let mut watch = Vec::new();
                if let Some(fd) = g.pidfd() {
                    watch.push((fd, ROUTER_PIDFD));
                }
                if let Some(fd) = g.control() {
                    watch.push((fd, ROUTER_CONTROL));
                }
                for (fd, id) in watch {
                    let _ = epoll::add(
                        &self.epoll,
                        fd,
                        epoll::EventData::new_u64(token(KIND_ROUTER, id)),
                        epoll::EventFlags::IN,
                    );
                }
            }
            Err((e, delay)) => {
                log!("router: {e}; trying again in {} ms", delay.as_millis());
            }
        }
    }

    fn router_ready(&mut self, id: u64) {
        let Some(r) = &mut self.router else {
            return;
        };
        match id {
            ROUTER_LOG => {
                let _ = r.log.drain();
            }
            ROUTER_CONTROL => {
                if let Some(why) = r.control_ready()
                    && !r.gateway().is_stopped()
                    && !self.shutting_down
                {
                    log!("router: {why}");
                }
            }
            ROUTER_PIDFD => {
                let Some(how) = r.gateway_mut().reap() else {
                    return;
                };
                let pid = r.gateway().pid().unwrap_or(0);
                if let Some(fd) = r.gateway().pidfd() {
                    let _ = epoll::delete(&self.epoll, fd);
                }
                if let Some(fd) = r.gateway().control() {
                    let _ = epoll::delete(&self.epoll, fd);
                }
                let _ = r.log.drain();
                match r.exited(&how, Instant::now()) {
                    Some(delay) => log!(
                        "router: pid {pid} {how}: respawning it in {} ms",
                        delay.as_millis()
                    ),
                    None => log!("router: pid {pid} {how}"),
                }
            }
            _ => {}
        }
    }

    /// Rebuilds and sends the route table and the settings when something changed; records
    /// and logs refused claims.
    fn sync_router(&mut self) {
        let Some(r) = &mut self.router else {
            return;
        };
        let Some(mut refused) = r.sync(self.vassals.values()) else {
            return;
        };
        for v in self.vassals.values_mut() {
            // Refused claims first: the stats' `last_error` shows the first.
            let mut errors = refused.remove(&v.name).unwrap_or_default();
            for m in &errors {
                if !v.route_errors.contains(m) {
                    log!("vassal {}: {m}", v.name);
                    v.log.note(m);
                }
            }
            if let Some(spec) = &v.route {
                errors.extend(spec.warnings.iter().cloned());
            }
            v.route_errors = errors;
        }
    }

    /// Watches the router's control socket for output too while sends wait for room.
    fn router_interest(&self) {
        let Some(r) = &self.router else {
            return;
        };
        let Some(fd) = r.gateway().control() else {
            return;
        };
        let mut flags = epoll::EventFlags::IN;
        if r.gateway().wants_output() {
            flags |= epoll::EventFlags::OUT;
        }
        let data = epoll::EventData::new_u64(token(KIND_ROUTER, ROUTER_CONTROL));
        let _ = epoll::modify(&self.epoll, fd, data, flags);
    }

    /// SIGHUP: the router's options, certificates and `domain-owners` again, and every
    /// vassal's routing facts (its certificates) again.
    fn reload_router(&mut self) {
        let Some(r) = &mut self.router else {
            return;
        };
        r.reload();
        for v in self.vassals.values_mut() {
            let Some(cfg) = &v.config else {
                continue;
            };
            match r.spec_of(&v.name, cfg, &v.cwd) {
                Ok(spec) => v.route = Some(spec),
                Err(e) => log!("vassal {}: {e}", v.name),
            }
        }
        log!("router: its settings and certificates read again");
    }

    /// Tells the router to stop, once the vassals are gone; whether it is gone too.
    fn router_stopped(&mut self, now: Instant) -> bool {
        match &mut self.router {
            None => true,
            Some(r) => {
                let gone = r.stop(now);
                if !gone && r.gateway_mut().kill_if_late(now) {
                    log!(
                        "router: still running {} s after it was told to stop: killed",
                        liege_master::gateway::STOP_WAIT.as_secs()
                    );
                }
                gone
            }
        }
    }

    /// The router's deadlines: a respawn that is due.
    fn router_deadlines(&mut self, now: Instant) {
        let due = self
            .router
            .as_ref()
            .is_some_and(|r| r.started() && r.gateway().respawn_due(now));
        if due && !self.shutting_down {
            self.spawn_router();
        }
    }

    // ---- stats -----------------------------------------------------------------------

    fn accept(&mut self, index: u64) {
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        let Some(service) = self.listeners.get(index).map(|l| l.service) else {
            return;
        };
        while let Some(fd) = self.listeners.get(index).and_then(Listener::accept) {
            let key = self.next_client;
            self.next_client += 1;
            let client = Client::new(fd, service);
            let _ = self.watch(client.fd(), token(KIND_CLIENT, key), true);
            self.clients.insert(key, client);
            self.client_ready(key);
        }
    }

    fn client_ready(&mut self, key: u64) {
        let Some(mut c) = self.clients.remove(&key) else {
            return;
        };
        let mut next = c.readable();
        if next == Next::Answer {
            let bytes = match c.service {
                Service::Stats => {
                    stats::document(&self.emperor_stat(), &self.vassal_stats()).into_bytes()
                }
                Service::Metrics => {
                    if c.path() == "/metrics" {
                        serve::http(
                            "200 OK",
                            "text/plain; version=0.0.4",
                            &stats::metrics(
                                &self.vassal_stats(),
                                self.router.as_ref().map(Router::stat).as_ref(),
                            ),
                        )
                    } else {
                        serve::http("404 Not Found", "text/plain", "try /metrics\n")
                    }
                }
            };
            next = c.answer(bytes);
        }
        match next {
            Next::Done => self.unwatch(c.fd()),
            Next::Wait | Next::Answer => {
                self.clients.insert(key, c);
            }
        }
    }

    fn emperor_stat(&self) -> EmperorStat {
        EmperorStat {
            pid: std::process::id(),
            sources: self.settings.sources.clone(),
            tyrant: self.policy.tyrant,
            cgroup_root: self.settings.cgroup_root.clone(),
            run_dir: self.settings.run_dir.display().to_string(),
            router: self.router.as_ref().map(Router::stat),
        }
    }

    fn vassal_stats(&self) -> Vec<VassalStat> {
        self.vassals
            .values()
            .map(|v| {
                let r = v.run.as_ref();
                let usage = v
                    .usage
                    .filter(|(at, _)| at.elapsed() < USAGE_FRESH)
                    .map(|(_, u)| u)
                    .or_else(|| v.cgroup.as_ref().and_then(usage_of));
                VassalStat {
                    name: v.name.clone(),
                    location: v.location.clone(),
                    pid: r.map(|r| r.pid),
                    state: v.state(),
                    restarts: v.restarts,
                    last_error: v.error.clone().or_else(|| v.route_errors.first().cloned()),
                    warnings: v.route_errors.clone(),
                    router: self.router.as_ref().map(|r| r.counters_of(&v.name)),
                    uid: v.config.as_ref().and_then(|c| c.uid),
                    gid: v.config.as_ref().and_then(|c| c.gid),
                    born: r.map(|r| r.born),
                    ready: r.is_some_and(|r| r.ready),
                    accepting: r.is_some_and(|r| r.accepting),
                    loyal: r.is_some_and(|r| r.loyal),
                    adopted: v.adopted,
                    heartbeat_age: r
                        .and_then(|r| r.last_heartbeat)
                        .map(|h| h.elapsed().as_secs()),
                    throttle_ms: u64::try_from(v.throttle.level().as_millis()).unwrap_or(u64::MAX),
                    namespaces: v
                        .config
                        .as_ref()
                        .map(|c| c.namespaces.to_string())
                        .unwrap_or_default(),
                    usage: usage.unwrap_or_default(),
                }
            })
            .collect()
    }
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// The option list the master gets: the vassal's, plus the identity the emperor decided.
fn config_entries(cfg: &VassalConfig) -> Vec<ConfigEntry> {
    let entries: Vec<ConfigEntry> = cfg
        .options
        .iter()
        .map(|o| ConfigEntry {
            key: o.key.clone(),
            value: o.value.clone(),
            origin: o.origin.to_string(),
        })
        .collect();
    entries
}

fn digest_of(cfg: &VassalConfig) -> u64 {
    wire::config_digest(&wire::encode_config(&config_entries(cfg)))
}

fn cgroup_limits(cfg: &VassalConfig) -> liege_cgroups::Limits {
    liege_cgroups::Limits {
        memory: cfg.limits.memory,
        cpu_percent: cfg.limits.cpu_percent,
        pids: cfg.limits.pids,
        raw: cfg.limits.cgroup_opts.clone(),
    }
}

/// What needs a restart rather than a reload when it changes: the namespaces, the identity and
/// the cgroup folders (the policy's key), the jail, and what a master binds once and keeps
/// across its reloads (its sockets, stats socket and log file).
fn restart_key(cfg: &VassalConfig) -> String {
    let mut key = format!("{:?}", cfg.restart_key());
    // The jail is built once, as root, before the master drops its privileges: a change to it
    // takes a new master.
    for o in cfg.options.iter() {
        if let liege_config::registry::Known::Liege(spec) = liege_config::registry::lookup(&o.key)
            && spec.part == liege_config::registry::Part::Jail
        {
            key.push_str(&format!("|{}={}", spec.name, o.value));
        }
    }
    for k in [
        "socket",
        "http-socket",
        "chmod-socket",
        "chown-socket",
        "stats",
        "logto",
        "listen",
    ] {
        for o in cfg.options.all(k) {
            key.push_str(&format!("|{k}={}", o.value));
        }
    }
    key
}

/// Makes (or finds) a vassal's log FIFO and opens both ends: the read end non-blocking for the
/// emperor, the write end for the vassal's stdout and stderr. Anything at that path that is not
/// a FIFO is replaced (the folder is root's alone).
fn log_fifo(path: &Path) -> std::io::Result<(OwnedFd, OwnedFd)> {
    use rustix::fs::{FileType, Mode, OFlags};
    match rustix::fs::lstat(path) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Fifo => {}
        Ok(_) => {
            fs_err::remove_file(path)?;
            rustix::fs::mknodat(
                rustix::fs::CWD,
                path,
                FileType::Fifo,
                Mode::from_raw_mode(0o600),
                0,
            )?;
        }
        Err(_) => rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )?,
    }
    let read = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )?;
    let write = rustix::fs::open(
        path,
        OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )?;
    Ok((read, write))
}

fn sealed_memfd(bytes: &[u8]) -> std::io::Result<OwnedFd> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = rustix::fs::memfd_create(
        "liege-vassal-config",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = rustix::io::write(&fd, rest)?;
        rest = &rest[n..];
    }
    rustix::fs::fcntl_add_seals(
        &fd,
        SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
    )?;
    rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(0))?;
    Ok(fd)
}

/// The emperor's own options mean nothing in a vassal file (liege has no sub-emperors yet):
/// refused rather than ignored.
fn refuse_emperor_options(options: &liege_config::Options) -> Result<(), String> {
    use liege_config::registry::{Known, Part, lookup};
    for o in options.iter() {
        if let Known::Liege(spec) = lookup(&o.key)
            && spec.part == Part::Emperor
        {
            return Err(format!(
                "{}: `{}` is an option of the emperor, not of a vassal (a vassal cannot run an emperor of its own)",
                o.origin, o.key
            ));
        }
    }
    Ok(())
}

/// What a vassal's cgroup says now.
fn usage_of(cg: &Cgroup) -> Option<Usage> {
    let s = cg.stats().ok()?;
    Some(Usage {
        memory_bytes: s.memory_bytes,
        memory_limit: s.memory_limit,
        cpu_usage_ns: s.cpu_usage_ns,
        pids: s.pids_current,
        pids_limit: s.pids_max,
        oom_kills: s.oom_kills,
    })
}

fn describe_status(s: &rustix::process::WaitIdStatus) -> String {
    if let Some(code) = s.exit_status() {
        format!("exited with status {code}")
    } else if let Some(sig) = s.terminating_signal() {
        format!("was killed by signal {sig}")
    } else {
        "gone".to_owned()
    }
}
