//! The master's loop: one thread, one epoll, over a signal pipe, the zygotes' control sockets,
//! the stats listener and (a vassal's master) the emperor's control socket, with a tick for
//! harakiri, touch-reload and the deadlines.
//!
//! Workers come in generations. A generation is one checked [`Plan`], its options memfd, its
//! scoreboard and (prefork) its zygote. A reload starts a new generation: each worker id gets a
//! new process in its spare scoreboard slot, and the old one is told to stop (SIGHUP) only once
//! the new one accepts, so there is always someone accepting on the shared sockets. Every child
//! is addressed through the pidfd opened when it was spawned (or adopted from a zygote); a pid
//! is only ever compared with the one `waitpid` returns for a child the master itself reaped.

mod board;
mod control;
mod harakiri;
mod router;
mod signals;
mod stats_server;
mod zygote;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use liege_proto::emperor::ToEmperor;
use liege_proto::handoff::{self, Role, ZygoteRequest};
use liege_proto::scoreboard::{State, WorkerField};
use rustix::event::epoll;
use rustix::io::Errno;
use rustix::net::SendFlags;
use rustix::process::{Signal, WaitOptions, WaitStatus};

use crate::backoff::Backoff;
use crate::exe::Program;
use crate::log;
use crate::plan::{Mode, Plan};
use crate::sockets::Bound;
use crate::spawn::{self, Handoff};
use crate::vassal::Vassal;
use crate::{Reload, RunError};
use board::Board;
use signals::Signals;
use zygote::Zygote;

/// How long a stop waits for the children after SIGINT before it SIGKILLs them.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often the master checks harakiri and touch-reload files.
const TICK: Duration = Duration::from_secs(1);
/// How often the master looks for new workers accepting while a reload is under way.
const RELOAD_POLL: Duration = Duration::from_millis(50);
/// How long a pid the master reaped but did not know is remembered, in case a zygote's
/// `Spawned` reply for it is still on its way.
const UNKNOWN_MEMORY: Duration = Duration::from_secs(10);

const TOKEN_SIGNALS: u64 = 1;
const TOKEN_STATS: u64 = 2;
/// The emperor's control socket (listening).
const TOKEN_CONTROL: u64 = 3;
/// The emperor's connection.
const TOKEN_EMPEROR: u64 = 4;
/// The vassal's log FIFO, drained while no emperor is connected.
const TOKEN_EMPEROR_LOG: u64 = 5;
/// The router gateway's control socket (`http` run by hand).
const TOKEN_ROUTER: u64 = 6;
/// Plus the generation number.
const TOKEN_ZYGOTE: u64 = 1 << 32;

/// One generation of workers.
#[derive(Debug)]
struct Generation {
    number: u64,
    plan: Plan,
    exe: Program,
    options: OwnedFd,
    board: u64,
    zygote: Option<Zygote>,
    started: Instant,
}

/// Where the options of a reload come from.
pub(crate) enum Source<'r> {
    /// The command line and the config files it names, read again.
    Files(&'r mut Reload<'r>),
    /// The emperor: the options it sent last.
    Emperor(Box<control::Emperor>),
}

impl Source<'_> {
    /// A vassal's master, answering to its emperor.
    pub(crate) fn emperor(v: Vassal) -> Self {
        Source::Emperor(Box::new(control::Emperor::new(v)))
    }

    /// How the options are checked.
    pub(crate) fn mode(&self) -> Mode {
        match self {
            Source::Files(_) => Mode::Standalone,
            Source::Emperor(_) => Mode::Vassal,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Worker { id: usize, slot: usize, board: u64 },
    Zygote,
}

/// A child the master supervises.
#[derive(Debug)]
struct Proc {
    pid: i32,
    pidfd: OwnedFd,
    generation: u64,
    kind: Kind,
    spawned: Instant,
    /// When it was told to stop, the time it gets SIGKILL.
    stop: Option<Instant>,
    killed: bool,
    harakiri: bool,
}

/// What is left to know of a child once it is gone.
#[derive(Debug, Clone, Copy)]
struct Gone {
    pid: i32,
    generation: u64,
    kind: Kind,
    spawned: Instant,
    told_to_stop: bool,
    harakiri: bool,
}

impl Gone {
    fn what(&self) -> String {
        match self.kind {
            Kind::Worker { id, .. } => format!("worker {id} (pid {})", self.pid),
            Kind::Zygote => format!("zygote (pid {})", self.pid),
        }
    }
}

impl Proc {
    fn gone(&self) -> Gone {
        Gone {
            pid: self.pid,
            generation: self.generation,
            kind: self.kind,
            spawned: self.spawned,
            told_to_stop: self.stop.is_some(),
            harakiri: self.harakiri,
        }
    }

    fn signal(&self, sig: Signal) {
        let _ = rustix::process::pidfd_send_signal(&self.pidfd, sig);
    }

    fn what(&self) -> String {
        self.gone().what()
    }
}

/// The master-side state of a worker id, across its processes.
#[derive(Debug, Default)]
struct Seat {
    spawns: u64,
    harakiri: u64,
    requests_before: u64,
    backoff: Backoff,
    /// When to spawn the next process for this id.
    due: Option<Instant>,
    /// Whether the log says this id waits for a free scoreboard slot.
    waiting_logged: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Initial,
    /// SIGHUP or touch-reload: new workers first, old ones stop once the new ones accept.
    Graceful,
    /// SIGTERM: every old worker gets SIGINT at once.
    Brutal,
    /// A dead zygote was replaced: its workers are replaced gracefully.
    Recycle,
}

#[derive(Debug)]
struct Stopping {
    code: u8,
    deadline: Instant,
    killed: bool,
}

/// The running master.
pub(crate) struct Supervisor<'r> {
    source: Source<'r>,
    exe_dir: PathBuf,
    sockets: Vec<Bound>,
    sockets_env: String,
    /// What the `putenv` hooks set, for every worker.
    hook_env: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)>,
    stats: Option<Bound>,
    epoll: OwnedFd,
    signals: Signals,
    boards: Vec<Board>,
    generations: Vec<Generation>,
    procs: Vec<Proc>,
    seats: Vec<Seat>,
    zygote_backoff: Backoff,
    /// A generation to start (the zygote died) and when.
    recycle_at: Option<Instant>,
    reload_queued: bool,
    touch: Vec<(PathBuf, Option<SystemTime>)>,
    unknown_reaped: Vec<(i32, WaitStatus, Instant)>,
    next_number: u64,
    stopping: Option<Stopping>,
    last_tick: Instant,
    /// The router in front of the workers (`http`, `https` run by hand).
    gateway: Option<crate::gateway::Gateway>,
}

impl std::fmt::Debug for Supervisor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("procs", &self.procs)
            .finish_non_exhaustive()
    }
}

fn mtime(path: &PathBuf) -> Option<SystemTime> {
    fs_err::metadata(path).ok().and_then(|m| m.modified().ok())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn monotonic_micros() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs * 1_000_000 + nanos / 1_000
}

/// How a child ended, for the log.
fn describe(status: WaitStatus) -> String {
    if let Some(code) = status.exit_status() {
        format!("exit status {code}")
    } else if let Some(sig) = status.terminating_signal() {
        let name = match sig {
            libc::SIGKILL => "SIGKILL",
            libc::SIGTERM => "SIGTERM",
            libc::SIGINT => "SIGINT",
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGABRT => "SIGABRT",
            libc::SIGBUS => "SIGBUS",
            libc::SIGHUP => "SIGHUP",
            libc::SIGQUIT => "SIGQUIT",
            libc::SIGPIPE => "SIGPIPE",
            _ => "a signal",
        };
        format!("killed by {name} ({sig})")
    } else {
        "ended".to_string()
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

impl<'r> Supervisor<'r> {
    /// Sets up signals and epoll around the bound sockets; spawns nothing yet.
    pub(crate) fn new(
        source: Source<'r>,
        exe_dir: PathBuf,
        sockets: Vec<Bound>,
        sockets_env: String,
        hook_env: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)>,
        stats: Option<Bound>,
        gateway: Option<crate::gateway::Gateway>,
    ) -> Result<Self, RunError> {
        let setup = |step: &'static str| {
            move |e: Errno| RunError::Setup {
                step,
                source: e.into(),
            }
        };
        let signals = Signals::register()?;
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(setup("epoll"))?;
        epoll::add(
            &epoll,
            &signals.wake,
            epoll::EventData::new_u64(TOKEN_SIGNALS),
            epoll::EventFlags::IN,
        )
        .map_err(setup("epoll"))?;
        if let Some(s) = &stats {
            rustix::io::ioctl_fionbio(&s.fd, true).map_err(setup("the stats socket"))?;
            epoll::add(
                &epoll,
                &s.fd,
                epoll::EventData::new_u64(TOKEN_STATS),
                epoll::EventFlags::IN,
            )
            .map_err(setup("epoll"))?;
        }
        if let Source::Emperor(e) = &source {
            e.register(&epoll, TOKEN_CONTROL)?;
        }
        if let Some(fd) = gateway.as_ref().and_then(crate::gateway::Gateway::control) {
            epoll::add(
                &epoll,
                fd,
                epoll::EventData::new_u64(TOKEN_ROUTER),
                epoll::EventFlags::IN,
            )
            .map_err(setup("epoll"))?;
        }
        Ok(Supervisor {
            source,
            exe_dir,
            sockets,
            sockets_env,
            hook_env,
            stats,
            epoll,
            signals,
            boards: Vec::new(),
            generations: Vec::new(),
            procs: Vec::new(),
            seats: Vec::new(),
            zygote_backoff: Backoff::default(),
            recycle_at: None,
            reload_queued: false,
            touch: Vec::new(),
            unknown_reaped: Vec::new(),
            next_number: 1,
            stopping: None,
            last_tick: Instant::now(),
            gateway,
        })
    }

    /// The sockets, for vacuum once the loop returns.
    pub(crate) fn into_sockets(self) -> (Vec<Bound>, Option<Bound>, bool) {
        let vacuum = self.current().is_some_and(|g| g.plan.vacuum);
        (self.sockets, self.stats, vacuum)
    }

    fn current(&self) -> Option<&Generation> {
        self.generations.last()
    }

    fn current_number(&self) -> u64 {
        self.current().map_or(0, |g| g.number)
    }

    fn generation(&self, number: u64) -> Option<&Generation> {
        self.generations.iter().find(|g| g.number == number)
    }

    fn board(&self, id: u64) -> Option<&Board> {
        self.boards.iter().find(|b| b.id == id)
    }

    /// Runs the instance with `plan` until it stops; returns the exit status.
    pub(crate) fn run(&mut self, plan: Plan, exe: Program) -> Result<u8, RunError> {
        self.touch = plan
            .touch_reload
            .iter()
            .map(|p| (p.clone(), mtime(p)))
            .collect();
        self.start_generation(plan, exe, Start::Initial)?;
        let mut events = Vec::with_capacity(16);
        loop {
            let now = Instant::now();
            if let Some(code) = self.finished(now) {
                return Ok(code);
            }
            let timeout = self.next_wake(now).saturating_duration_since(now);
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
                Err(e) => {
                    return Err(RunError::Setup {
                        step: "epoll",
                        source: e.into(),
                    });
                }
            }
            for ev in events.iter() {
                match ev.data.u64() {
                    TOKEN_SIGNALS => self.signals.drain(),
                    TOKEN_STATS => self.serve_stats(),
                    TOKEN_CONTROL => self.accept_emperor(),
                    TOKEN_EMPEROR => self.emperor_event(ev.flags),
                    TOKEN_EMPEROR_LOG => self.drain_log(),
                    TOKEN_ROUTER => self.router_event(),
                    t if t > TOKEN_ZYGOTE => self.zygote_readable(t - TOKEN_ZYGOTE),
                    _ => {}
                }
            }
            self.handle_signals();
            self.reap();
            let now = Instant::now();
            self.step(now);
            self.router_step(now);
            self.report_to_emperor(now);
        }
    }

    /// When the loop must wake next.
    fn next_wake(&self, now: Instant) -> Instant {
        if let Some(s) = &self.stopping {
            // Children ending wake the loop (SIGCHLD); the deadlines are the only timers.
            let router = self.gateway.as_ref().and_then(|g| g.deadline());
            return router.map_or(s.deadline, |r| r.min(s.deadline)).max(now);
        }
        let mut at = self.last_tick + TICK;
        let mut consider = |t: Instant| at = at.min(t);
        let current = self.current_number();
        for seat in &self.seats {
            if let Some(due) = seat.due {
                // A spawn still due after `step` waits for a free slot (an old process still
                // stopping) or for the zygote: look again shortly, without spinning.
                consider(due.max(now + RELOAD_POLL));
            }
        }
        if let Some(t) = self.recycle_at {
            consider(t);
        }
        if let Some(t) = self.gateway.as_ref().and_then(|g| g.deadline()) {
            consider(t);
        }
        if let Some(t) = self.emperor_wake(now) {
            consider(t);
        }
        for p in &self.procs {
            if let (Some(deadline), false) = (p.stop, p.killed) {
                consider(deadline);
            }
        }
        if self
            .procs
            .iter()
            .any(|p| p.generation < current && p.stop.is_none())
        {
            consider(now + RELOAD_POLL);
        }
        at.max(now)
    }

    /// Whether the stop is over: every child gone, or gone past all patience.
    fn finished(&mut self, now: Instant) -> Option<u8> {
        let (code, deadline, killed) = {
            let s = self.stopping.as_ref()?;
            (s.code, s.deadline, s.killed)
        };
        if self.procs.is_empty() && self.router_gone(now) {
            log!("goodbye (exit status {code})");
            return Some(code);
        }
        if now >= deadline {
            if killed {
                log!(
                    "{} children still not gone after SIGKILL; exiting anyway",
                    self.procs.len()
                );
                return Some(code);
            }
            for p in &self.procs {
                log!("{} did not stop in time: SIGKILL", p.what());
                p.signal(Signal::KILL);
            }
            if let Some(g) = &mut self.gateway
                && g.pid().is_some()
            {
                log!("the router did not stop in time: SIGKILL");
                g.kill();
            }
            self.stopping = Some(Stopping {
                code,
                deadline: now + STOP_GRACE,
                killed: true,
            });
        }
        None
    }

    fn handle_signals(&mut self) {
        let took = |f: &AtomicBool| f.swap(false, Ordering::Relaxed);
        let _ = took(&self.signals.chld);
        if took(&self.signals.int) {
            self.begin_stop(0, "SIGINT received: stopping the instance");
        }
        if took(&self.signals.quit) {
            self.begin_stop(0, "SIGQUIT received: stopping the instance");
        }
        if took(&self.signals.term) {
            if self.current().is_some_and(|g| g.plan.die_on_term) {
                self.begin_stop(0, "SIGTERM received (die-on-term): stopping the instance");
            } else {
                self.request_reload(Start::Brutal, "SIGTERM");
            }
        }
        if took(&self.signals.hup) {
            self.request_reload(Start::Graceful, "SIGHUP");
        }
    }

    /// Stops the instance now: every child gets SIGINT, and SIGKILL after [`STOP_GRACE`].
    fn begin_stop(&mut self, code: u8, why: &str) {
        self.stop_with(code, why, false);
    }

    /// Stops the instance gracefully: the workers stop accepting and finish what they serve
    /// (SIGHUP), within `worker-reload-mercy`; then the master exits 0.
    fn begin_graceful_stop(&mut self, why: &str) {
        self.stop_with(0, why, true);
    }

    fn stop_with(&mut self, code: u8, why: &str, graceful: bool) {
        if self.stopping.is_some() {
            return;
        }
        log!("{why}");
        self.send_emperor(ToEmperor::Stopping);
        self.stop_router();
        let grace = match self.current() {
            Some(g) if graceful => g.plan.worker_reload_mercy,
            _ => STOP_GRACE,
        };
        for p in &self.procs {
            p.signal(match (graceful, p.kind) {
                (false, _) => Signal::INT,
                (true, Kind::Zygote) => Signal::TERM,
                (true, Kind::Worker { .. }) => Signal::HUP,
            });
        }
        self.stopping = Some(Stopping {
            code,
            deadline: Instant::now() + grace,
            killed: false,
        });
    }

    /// Reaps every child that ended: the master's workers and zygotes, and, as pid 1 of a pid
    /// namespace, every orphan re-parented to it.
    fn reap(&mut self) {
        loop {
            // `wait` is waitpid(-1): any child, whatever its process group (rustix's
            // `waitpid(None)` is waitpid(0), the caller's group only, which would miss
            // orphans).
            match rustix::process::wait(WaitOptions::NOHANG) {
                Ok(Some((pid, status))) => self.exited(pid.as_raw_nonzero().get(), status),
                Ok(None) | Err(Errno::CHILD) => break,
                Err(Errno::INTR) => {}
                Err(e) => {
                    log!("waitpid failed: {e}");
                    break;
                }
            }
        }
    }

    fn exited(&mut self, pid: i32, status: WaitStatus) {
        let now = Instant::now();
        if self.router_exited(pid, status, now) {
            return;
        }
        let Some(i) = self.procs.iter().position(|p| p.pid == pid) else {
            // An orphan (or a zygote's worker whose `Spawned` reply is still on its way).
            let waiting = self
                .generations
                .iter()
                .any(|g| g.zygote.as_ref().is_some_and(|z| !z.pending.is_empty()));
            if waiting && self.unknown_reaped.len() < 4096 {
                self.unknown_reaped.push((pid, status, now));
            }
            return;
        };
        let p = self.procs.swap_remove(i);
        self.process_gone(&p.gone(), status, now);
    }

    /// What every exit of a worker or zygote checks first: the instance is stopping (nothing to
    /// replace), or the app could not be loaded with `need-app` set (stop with 22). True when
    /// the exit is fully handled.
    fn exit_ends_here(&mut self, what: &str, how: &str, code: Option<i32>, need_app: bool) -> bool {
        if self.stopping.is_some() {
            log!("{what} stopped ({how})");
            return true;
        }
        if code == Some(22) && need_app {
            log!("{what} could not load the app ({how})");
            self.begin_stop(22, "need-app is set: stopping the instance");
            return true;
        }
        false
    }

    /// Bookkeeping for a child that is gone: its slot, the respawn of a worker, the
    /// replacement of a zygote, or the end of the instance (`need-app`).
    fn process_gone(&mut self, p: &Gone, status: WaitStatus, now: Instant) {
        let lived = now.saturating_duration_since(p.spawned);
        let how = describe(status);
        let code = status.exit_status();
        let current = self.current_number();
        let need_app = self
            .generation(p.generation)
            .is_some_and(|g| g.plan.need_app);
        match p.kind {
            Kind::Worker { id, slot, board } => {
                let served = self.release_slot(board, slot, Some(id));
                if self.exit_ends_here(&p.what(), &how, code, need_app) {
                    return;
                }
                if p.generation == current && (!p.told_to_stop || p.harakiri) {
                    // Exit 0 after serving is a recycle (max-requests, reload-on-rss); exit 0
                    // without serving anything is throttled like a crash, or a worker that
                    // exits at once would be respawned in a tight loop.
                    let recycled = (code == Some(0) && served > 0) || p.harakiri;
                    let Some(seat) = self.seats.get_mut(id - 1) else {
                        return;
                    };
                    let delay = seat.backoff.delay(lived, recycled);
                    seat.due = Some(now + delay);
                    if code == Some(0) && delay.is_zero() {
                        log!(
                            "{} exited ({how}) after {served} request(s): recycling it",
                            p.what()
                        );
                    } else if code == Some(0) {
                        log!(
                            "{} exited ({how}) after {} without serving a request: respawning in {}",
                            p.what(),
                            secs(lived),
                            millis(delay)
                        );
                    } else if delay.is_zero() {
                        log!(
                            "{} died ({how}) after {}: respawning",
                            p.what(),
                            secs(lived)
                        );
                    } else {
                        log!(
                            "{} died ({how}) after {}: respawning in {}",
                            p.what(),
                            secs(lived),
                            millis(delay)
                        );
                    }
                } else {
                    log!("{} stopped ({how})", p.what());
                }
            }
            Kind::Zygote => {
                if let Some(g) = self
                    .generations
                    .iter_mut()
                    .find(|g| g.number == p.generation)
                    && let Some(z) = g.zygote.as_mut()
                {
                    z.alive = false;
                }
                if self.exit_ends_here(&p.what(), &how, code, need_app) {
                    return;
                }
                if p.generation == current && !p.told_to_stop {
                    let delay = self.zygote_backoff.delay(lived, false);
                    self.recycle_at = Some(now + delay);
                    // Requests it did not answer are asked again of the new zygote.
                    if let Some(z) = self.generations.last_mut().and_then(|g| g.zygote.as_mut()) {
                        let pending = std::mem::take(&mut z.pending);
                        let board = self.generations.last().map_or(0, |g| g.board);
                        for (slot, _) in pending {
                            self.release_slot(board, slot, None);
                        }
                    }
                    let when = if delay.is_zero() {
                        String::new()
                    } else {
                        format!(" in {}", millis(delay))
                    };
                    log!(
                        "{} died ({how}) after {}: a new zygote replaces it{when}, then its workers are recycled",
                        p.what(),
                        secs(lived),
                    );
                } else {
                    log!("{} stopped ({how})", p.what());
                }
            }
        }
    }

    /// Frees a scoreboard slot; counts the requests its process served toward the id, and
    /// returns that count.
    fn release_slot(&mut self, board: u64, slot: usize, id: Option<usize>) -> u64 {
        let Some(b) = self.boards.iter_mut().find(|b| b.id == board) else {
            return 0;
        };
        if let Some(u) = b.used.get_mut(slot) {
            *u = false;
        }
        let s = b.slot(slot);
        let served = s.get(WorkerField::Requests);
        s.reset();
        s.set_state(State::Empty);
        if let Some(seat) = id.and_then(|id| self.seats.get_mut(id - 1)) {
            seat.requests_before += served;
        }
        served
    }

    /// Everything that happens on time rather than on an event.
    fn step(&mut self, now: Instant) {
        self.unknown_reaped
            .retain(|(_, _, t)| now.saturating_duration_since(*t) < UNKNOWN_MEMORY);
        if self.stopping.is_some() {
            return;
        }
        for p in &mut self.procs {
            if let (Some(deadline), false) = (p.stop, p.killed)
                && now >= deadline
            {
                log!(
                    "{} did not stop within worker-reload-mercy: SIGKILL",
                    p.what()
                );
                p.signal(Signal::KILL);
                p.killed = true;
            }
        }
        if self.recycle_at.is_some_and(|t| now >= t) {
            self.recycle_at = None;
            if let Some(g) = self.current() {
                let (plan, exe) = (g.plan.clone(), g.exe.clone());
                if let Err(e) = self.start_generation(plan, exe, Start::Recycle) {
                    log!("cannot start a new zygote: {e}");
                    let delay = self.zygote_backoff.delay(Duration::ZERO, false);
                    self.recycle_at = Some(now + delay);
                }
            }
        }
        self.spawn_due(now);
        self.advance_reload(now);
        if now >= self.last_tick + TICK {
            self.last_tick = now;
            self.harakiri(now);
            self.check_touch();
        }
        self.retire();
    }

    /// Asks for a reload; one asked while another runs waits for it (one at most), unless the
    /// running one is stuck on workers that keep dying.
    fn request_reload(&mut self, how: Start, why: &str) {
        if self.stopping.is_some() {
            return;
        }
        let current = self.current_number();
        let running = self
            .procs
            .iter()
            .any(|p| p.generation < current && p.stop.is_none());
        // Stuck: a new worker died young and waits for its respawn delay.
        let now = Instant::now();
        let stuck = self.seats.iter().any(|s| s.due.is_some_and(|d| d > now));
        if how == Start::Graceful && running && !stuck {
            if !self.reload_queued {
                log!("{why}: a reload is under way; another one follows it");
            }
            self.reload_queued = true;
            return;
        }
        self.reload_now(how, why);
    }

    fn reload_now(&mut self, how: Start, why: &str) {
        let Some(old) = self.current() else {
            return;
        };
        let kind = if how == Start::Brutal {
            "brutal"
        } else {
            "graceful"
        };
        log!("{why}: {kind} reload");
        let old_plan = old.plan.clone();
        let old_exe = old.exe.clone();
        let fresh = match &mut self.source {
            Source::Files(reload) => reload(),
            Source::Emperor(e) => Ok(e.options.clone()),
        };
        let mode = self.source.mode();
        let mut plan = match fresh {
            Err(e) => {
                log!("cannot re-read the options, keeping the old ones: {e}");
                old_plan.clone()
            }
            Ok(options) => match Plan::from_options_as(&options, mode) {
                Err(e) => {
                    log!("{e}");
                    log!("keeping the old options");
                    old_plan.clone()
                }
                Ok(p) => p,
            },
        };
        let changed = plan.needs_restart(&old_plan);
        if !changed.is_empty() {
            log!(
                "{} changed: that needs a restart of the instance; keeping the old ones",
                changed.join(", ")
            );
            plan.sockets = old_plan.sockets.clone();
            plan.listen = old_plan.listen;
            plan.chmod_socket = old_plan.chmod_socket;
            plan.chown_socket = old_plan.chown_socket;
            plan.stats = old_plan.stats.clone();
            plan.logto = old_plan.logto.clone();
            plan.identity = old_plan.identity.clone();
        }
        let exe = if plan.worker == old_plan.worker && plan.plugins_dirs == old_plan.plugins_dirs {
            Ok(old_exe)
        } else {
            crate::exe::find(&plan.worker, &self.exe_dir, &plan.plugins_dirs)
                .map_err(|e| e.to_string())
                .and_then(|path| {
                    let shown = path.display().to_string();
                    Program::open(path).map_err(|e| format!("cannot open `{shown}`: {e}"))
                })
        };
        let exe = match exe {
            Ok(e) => e,
            Err(e) => {
                log!("{e}: keeping the running workers");
                return;
            }
        };
        self.touch = plan
            .touch_reload
            .iter()
            .map(|p| (p.clone(), mtime(p)))
            .collect();
        if let Err(e) = self.start_generation(plan, exe, how) {
            log!("cannot start the new workers: {e}");
        }
    }

    /// Starts generation `next_number` with `plan`.
    fn start_generation(&mut self, plan: Plan, exe: Program, how: Start) -> Result<(), RunError> {
        let now = Instant::now();
        let number = self.next_number;
        self.next_number += 1;
        self.recycle_at = None;
        let board = match self.current().and_then(|g| self.board(g.board)) {
            Some(b) if b.workers == plan.processes * 2 && b.cores == plan.threads => b.id,
            _ => {
                let b = Board::create(number, plan.processes, plan.threads)?;
                let id = b.id;
                self.boards.push(b);
                id
            }
        };
        let options = spawn::options_memfd(&plan.options).map_err(|source| RunError::Setup {
            step: "the options memfd",
            source,
        })?;
        let processes = plan.processes;
        let threads = plan.threads;
        let lazy = plan.lazy_apps;
        let mode = if lazy {
            "lazy-apps"
        } else {
            "prefork (zygote)"
        };
        log!("generation {number}: {processes} worker(s) of {threads} thread(s), {mode}");
        let mut generation = Generation {
            number,
            plan,
            exe,
            options,
            board,
            zygote: None,
            started: now,
        };
        if !lazy {
            self.spawn_zygote(&mut generation, now)?;
        }
        self.generations.push(generation);
        if self.seats.len() < processes {
            self.seats.resize_with(processes, Seat::default);
        }
        for seat in self.seats.iter_mut().take(processes) {
            seat.due = Some(now);
        }
        for seat in self.seats.iter_mut().skip(processes) {
            seat.due = None;
        }
        if how == Start::Brutal {
            for p in self.procs.iter_mut().filter(|p| p.generation < number) {
                p.signal(Signal::INT);
                p.stop = Some(now + STOP_GRACE);
            }
        }
        self.spawn_due(now);
        Ok(())
    }

    fn handoff<'a>(&'a self, g: &'a Generation) -> Option<Handoff<'a>> {
        let board = self.board(g.board)?;
        Some(Handoff {
            exe: &g.exe,
            sockets: self.sockets.iter().map(|b| b.fd.as_fd()).collect(),
            sockets_env: self.sockets_env.clone(),
            options: g.options.as_fd(),
            scoreboard: board.fd.as_fd(),
            env: &self.hook_env,
        })
    }

    /// Spawns (or asks the zygote for) every worker of the current generation whose time came.
    fn spawn_due(&mut self, now: Instant) {
        if self.stopping.is_some() {
            return;
        }
        let Some(g) = self.current() else {
            return;
        };
        let number = g.number;
        let processes = g.plan.processes;
        if g.zygote.as_ref().is_some_and(|z| !z.alive) {
            return;
        }
        for id in 1..=processes {
            let Some(seat) = self.seats.get(id - 1) else {
                continue;
            };
            if seat.due.is_none_or(|d| d > now) {
                continue;
            }
            let has_one = self.procs.iter().any(|p| {
                p.generation == number
                    && p.stop.is_none()
                    && matches!(p.kind, Kind::Worker { id: i, .. } if i == id)
            });
            let asked = self
                .current()
                .and_then(|g| g.zygote.as_ref())
                .is_some_and(|z| z.pending.iter().any(|(_, i)| *i == id));
            if has_one || asked {
                if let Some(seat) = self.seats.get_mut(id - 1) {
                    seat.due = None;
                }
                continue;
            }
            self.spawn_worker(id, now);
        }
    }

    fn spawn_worker(&mut self, id: usize, now: Instant) {
        let Some(g) = self.generations.last() else {
            return;
        };
        let number = g.number;
        let processes = g.plan.processes;
        let Some(board) = self.board(g.board) else {
            return;
        };
        // Generations alternate between the id's two slots; either will do.
        let preferred = if number % 2 == 0 { id + processes } else { id };
        let other = if preferred == id { id + processes } else { id };
        let Some(slot) = [preferred, other]
            .into_iter()
            .find(|s| board.used.get(*s) == Some(&false))
        else {
            // Both slots hold processes still stopping: wait for one to go.
            if let Some(seat) = self.seats.get_mut(id - 1)
                && !seat.waiting_logged
            {
                seat.waiting_logged = true;
                log!("worker {id} waits for an older process of it to stop before it starts");
            }
            return;
        };
        let board_id = board.id;
        let Some(seat) = self.seats.get_mut(id - 1) else {
            return;
        };
        seat.due = None;
        seat.waiting_logged = false;
        let respawns = seat.spawns;
        let harakiri = seat.harakiri;
        seat.spawns += 1;
        if let Some(b) = self.boards.iter_mut().find(|b| b.id == board_id) {
            b.used[slot] = true;
            let s = b.slot(slot);
            s.reset();
            s.set(WorkerField::RespawnCount, respawns);
            s.set(WorkerField::HarakiriCount, harakiri);
            s.set(WorkerField::LastSpawn, unix_now());
        }
        let Some(g) = self.generations.last() else {
            return;
        };
        if let Some(z) = &g.zygote {
            let msg = ZygoteRequest::Spawn {
                id: u32::try_from(slot).unwrap_or(u32::MAX),
            }
            .encode();
            match rustix::net::send(&z.sock, msg.as_bytes(), SendFlags::NOSIGNAL) {
                Ok(_) => {
                    if let Some(z) = self.generations.last_mut().and_then(|g| g.zygote.as_mut()) {
                        z.pending.push((slot, id));
                    }
                }
                Err(e) => {
                    log!("cannot ask the zygote for worker {id}: {e}");
                    self.spawn_failed(board_id, slot, id, now);
                }
            }
            return;
        }
        let spawned = match self.handoff(g) {
            Some(h) => spawn::spawn(&h, Role::Worker, Some(slot), None).map_err(|e| e.to_string()),
            None => Err("no scoreboard".to_string()),
        };
        match spawned {
            Ok(child) => {
                if respawns == 0 {
                    log!(
                        "spawned worker {id} (pid {}, cores {})",
                        child.pid,
                        g.plan.threads
                    );
                } else {
                    log!("respawned worker {id} (new pid {})", child.pid);
                }
                self.procs.push(Proc {
                    pid: child.pid,
                    pidfd: child.pidfd,
                    generation: number,
                    kind: Kind::Worker {
                        id,
                        slot,
                        board: board_id,
                    },
                    spawned: now,
                    stop: None,
                    killed: false,
                    harakiri: false,
                });
            }
            Err(e) => {
                log!("cannot spawn worker {id}: {e}");
                self.spawn_failed(board_id, slot, id, now);
            }
        }
    }

    fn spawn_failed(&mut self, board: u64, slot: usize, id: usize, now: Instant) {
        self.release_slot(board, slot, None);
        if let Some(seat) = self.seats.get_mut(id - 1) {
            let delay = seat.backoff.delay(Duration::ZERO, false);
            seat.due = Some(now + delay);
        }
    }

    /// Stops the old generation's workers whose replacements accept, and the old zygotes
    /// once every new worker accepts; then starts a queued reload.
    fn advance_reload(&mut self, now: Instant) {
        let Some(g) = self.current() else {
            return;
        };
        let number = g.number;
        let processes = g.plan.processes;
        let mercy = g.plan.worker_reload_mercy;
        let running = |procs: &[Proc]| {
            procs
                .iter()
                .any(|p| p.generation < number && p.stop.is_none())
        };
        if !running(&self.procs) {
            if self.reload_queued {
                self.reload_queued = false;
                self.reload_now(Start::Graceful, "queued reload");
            }
            return;
        }
        let mut accepting = vec![false; processes + 1];
        for p in &self.procs {
            if let Kind::Worker { id, slot, board } = p.kind
                && p.generation == number
                && p.stop.is_none()
                && id <= processes
                && self
                    .board(board)
                    .is_some_and(|b| b.slot(slot).state() == State::Accepting)
            {
                accepting[id] = true;
            }
        }
        let all = accepting.iter().skip(1).all(|a| *a);
        for p in self.procs.iter_mut() {
            if p.generation >= number || p.stop.is_some() {
                continue;
            }
            let retire = match p.kind {
                Kind::Worker { id, .. } => accepting.get(id).copied().unwrap_or(all),
                Kind::Zygote => all,
            };
            if retire {
                let sig = if p.kind == Kind::Zygote {
                    Signal::TERM
                } else {
                    Signal::HUP
                };
                log!(
                    "{} of generation {} is replaced: stopping it gracefully",
                    p.what(),
                    p.generation
                );
                p.signal(sig);
                p.stop = Some(now + mercy);
            }
        }
        if !running(&self.procs) && self.reload_queued {
            self.reload_queued = false;
            self.reload_now(Start::Graceful, "queued reload");
        }
    }

    /// Drops generations and scoreboards no process uses any more.
    fn retire(&mut self) {
        let current = self.current_number();
        let procs = &self.procs;
        self.generations.retain(|g| {
            g.number == current
                || procs.iter().any(|p| p.generation == g.number)
                || g.zygote.as_ref().is_some_and(|z| !z.pending.is_empty())
        });
        let keep: Vec<u64> = self.generations.iter().map(|g| g.board).collect();
        self.boards
            .retain(|b| keep.contains(&b.id) || b.used.iter().any(|u| *u));
    }

    fn check_touch(&mut self) {
        let mut touched = None;
        for (path, last) in &mut self.touch {
            let now = mtime(path);
            if now != *last {
                *last = now;
                if now.is_some() && touched.is_none() {
                    touched = Some(path.display().to_string());
                }
            }
        }
        if let Some(path) = touched {
            self.request_reload(Start::Graceful, &format!("`{path}` was touched"));
        }
    }
}

/// Builds [`handoff::SOCKETS`] for the bound sockets.
pub(crate) fn sockets_env(plan: &Plan, bound: &[Bound]) -> String {
    let listeners: Vec<handoff::Listener> = plan
        .sockets
        .iter()
        .zip(bound)
        .map(|(s, b)| handoff::Listener {
            fd: b.fd.as_raw_fd(),
            proto: s.proto,
            name: s.name.clone(),
        })
        .collect();
    handoff::encode_listeners(&listeners)
}
