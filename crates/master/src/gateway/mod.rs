//! The HTTP router as a gateway process of an instance: the emperor runs one in front of its
//! vassals, a master run by hand (`liege --http :8080 ...`) one in front of its own workers.
//! Both use this module, from their single-threaded loops:
//!
//! 1. [`Config::from_options`] reads the router's options (checked, with file and line);
//! 2. [`Config::bind`] binds its listeners as root, once: they stay open in the parent for the
//!    life of the instance, so a router that dies and is respawned loses no port and no queued
//!    connection;
//! 3. [`Gateway::spawn`] fork+execs `liege router-gateway` (the liege binary, from a descriptor
//!    the parent holds) with the listeners, a control socketpair and the subscription socket as
//!    inherited descriptors named by `liege_proto::router`'s variables; the child drops to
//!    `http-uid` before it starts any thread;
//! 4. the parent sends [`ToRouter::Settings`] then [`ToRouter::Routes`] (each whole, again after
//!    each change and after each respawn), reads [`FromRouter`] answers and counters, and
//!    respawns the router with a back-off when it dies ([`Gateway::exited`]);
//! 5. [`Gateway::stop`] closes the control socket: the router stops accepting, finishes what it
//!    serves (10 s at most) and exits; [`Gateway::kill_if_late`] kills it past [`STOP_WAIT`].

pub mod config;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use liege_proto::router::{self as wire, FrameDecoder, FromRouter, Route, Settings, ToRouter};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use rustix::process::{Pid, PidfdFlags, Signal};

use crate::backoff::Backoff;

pub use config::{Bound, CertFiles, Config, ConfigError, ListenerSpec};

/// The subcommand of `liege` that runs the router.
pub const SUBCOMMAND: &str = "router-gateway";
/// How long a router told to stop may take before it is killed (it bounds its own drain to
/// 10 s).
pub const STOP_WAIT: Duration = Duration::from_secs(15);

/// The router process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot make the router's control socket: {0}")]
    Socketpair(Errno),
    #[error("cannot pass descriptors to the router: {0}")]
    Fds(std::io::Error),
    #[error("cannot start the router (`liege {SUBCOMMAND}`): {0}")]
    Exec(std::io::Error),
    #[error("cannot open a pidfd for the router, pid {pid}: {source}")]
    Pidfd { pid: i32, source: Errno },
}

/// The running router process.
#[derive(Debug)]
struct Child {
    pid: i32,
    pidfd: OwnedFd,
    /// `None` once closed (told to stop, or the router closed it).
    control: Option<OwnedFd>,
    decoder: FrameDecoder,
    out: Vec<u8>,
    started: Instant,
    /// When it was told to stop: it is killed at this time if still there.
    stop_by: Option<Instant>,
    killed: bool,
}

/// The router gateway of an instance: its sockets, its process, what it was told.
#[derive(Debug)]
pub struct Gateway {
    /// The liege binary, `O_PATH`.
    exe: OwnedFd,
    bound: Bound,
    /// The uid and gid the router drops to (`None`: stays who the parent is, when the parent
    /// is not root).
    identity: Option<(u32, u32)>,
    /// Where its stdout and stderr go (`None`: the parent's).
    output: Option<OwnedFd>,
    child: Option<Child>,
    settings: Option<Settings>,
    routes: Option<Vec<Route>>,
    backoff: Backoff,
    respawn_at: Option<Instant>,
    spawns: u64,
    last_exit: Option<String>,
    stopped: bool,
}

/// What reading the control socket gave.
#[derive(Debug, Default)]
pub struct Read {
    pub messages: Vec<FromRouter>,
    /// The router closed the connection (it is exiting), or spoke nonsense: why.
    pub closed: Option<String>,
}

/// What the stats say about the router process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub pid: Option<i32>,
    /// Spawns after the first.
    pub restarts: u64,
    pub running: bool,
    pub last_exit: Option<String>,
}

impl Gateway {
    /// A gateway over sockets already bound, not started yet. `exe` is the liege binary
    /// (`O_PATH` is enough); `identity` the uid and gid the router drops to.
    /// The uid and gid the router drops to (`None`: it stays who the master is).
    pub fn identity(&self) -> Option<(u32, u32)> {
        self.identity
    }

    pub fn new(
        exe: OwnedFd,
        bound: Bound,
        identity: Option<(u32, u32)>,
        output: Option<OwnedFd>,
    ) -> Gateway {
        Gateway {
            exe,
            bound,
            identity,
            output,
            child: None,
            settings: None,
            routes: None,
            backoff: Backoff::default(),
            respawn_at: None,
            spawns: 0,
            last_exit: None,
            stopped: false,
        }
    }

    /// The bound sockets.
    pub fn bound(&self) -> &Bound {
        &self.bound
    }

    /// Starts the router (fork+exec: call it from a single-threaded process), and queues the
    /// settings and routes it was given so far. Returns its pid.
    pub fn spawn(&mut self) -> Result<i32, GatewayError> {
        self.respawn_at = None;
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(GatewayError::Socketpair)?;
        let dup = |fd: BorrowedFd<'_>| {
            rustix::io::fcntl_dupfd_cloexec(fd, 3).map_err(|e| GatewayError::Fds(e.into()))
        };
        let mut fds = vec![(theirs, 3)];
        let mut listeners = Vec::new();
        let mut next = 4;
        for (fd, tls) in &self.bound.listeners {
            fds.push((dup(fd.as_fd())?, next));
            listeners.push(format!("{next}:{}", if *tls { "tls" } else { "plain" }));
            next += 1;
        }
        // The binary is exec'd by its descriptor's /proc path, from a copy numbered above every
        // target, where no move of the fd map lands; close-on-exec as the original is (the
        // caller leaves a script's open, for its interpreter).
        let exe = rustix::io::fcntl_dupfd_cloexec(&self.exe, 64 + next)
            .map_err(|e| GatewayError::Fds(e.into()))?;
        if !rustix::io::fcntl_getfd(&self.exe)
            .map_err(|e| GatewayError::Fds(e.into()))?
            .contains(rustix::io::FdFlags::CLOEXEC)
        {
            rustix::io::fcntl_setfd(&exe, rustix::io::FdFlags::empty())
                .map_err(|e| GatewayError::Fds(e.into()))?;
        }
        let mut cmd = Command::new(format!("/proc/self/fd/{}", exe.as_raw_fd()));
        std::os::unix::process::CommandExt::arg0(&mut cmd, "liege");
        cmd.arg(SUBCOMMAND)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LANG", "C.UTF-8")
            .env(wire::CONTROL_FD, "3")
            .env(wire::LISTENERS, listeners.join(","))
            .stdin(Stdio::null());
        if let Some(sub) = &self.bound.subscription {
            fds.push((dup(sub.as_fd())?, next));
            cmd.env(wire::SUBSCRIPTION_FD, next.to_string());
        }
        // Only root can give up root: a parent that is not root runs the router as itself.
        if let Some((uid, gid)) = self.identity
            && rustix::process::geteuid().is_root()
        {
            cmd.args(["--uid", &uid.to_string(), "--gid", &gid.to_string()]);
        }
        if let Some(out) = &self.output {
            let out = dup(out.as_fd())?;
            let err = dup(out.as_fd())?;
            cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
        }
        liege_sys::pass_fds::pass_fds(&mut cmd, fds).map_err(GatewayError::Fds)?;
        let mut child = cmd.spawn().map_err(GatewayError::Exec)?;
        drop(cmd);
        drop(exe);
        let pid = i32::try_from(child.id()).unwrap_or(0);
        let pidfd = match Pid::from_raw(pid)
            .ok_or(Errno::SRCH)
            .and_then(|p| rustix::process::pidfd_open(p, PidfdFlags::empty()))
        {
            Ok(fd) => fd,
            Err(source) => {
                // Not reaped yet, so the pid is still our child's.
                let _ = child.kill();
                let _ = child.wait();
                return Err(GatewayError::Pidfd { pid, source });
            }
        };
        rustix::io::ioctl_fionbio(&ours, true).map_err(GatewayError::Socketpair)?;
        let mut c = Child {
            pid,
            pidfd,
            control: Some(ours),
            decoder: FrameDecoder::new(),
            out: Vec::new(),
            started: Instant::now(),
            stop_by: None,
            killed: false,
        };
        if let Some(s) = &self.settings {
            c.out.extend(wire::encode(&ToRouter::Settings(s.clone())));
        }
        if let Some(r) = &self.routes {
            c.out.extend(wire::encode(&ToRouter::Routes(r.clone())));
        }
        self.child = Some(c);
        self.spawns += 1;
        self.flush();
        Ok(pid)
    }

    /// Sets the settings: sent now (when they changed), and to every later router.
    pub fn set_settings(&mut self, settings: Settings) {
        if self.settings.as_ref() == Some(&settings) {
            return;
        }
        self.queue(&ToRouter::Settings(settings.clone()));
        self.settings = Some(settings);
    }

    /// Sets the route table: sent now (when it changed), and to every later router.
    pub fn set_routes(&mut self, routes: Vec<Route>) {
        if self.routes.as_ref() == Some(&routes) {
            return;
        }
        self.queue(&ToRouter::Routes(routes.clone()));
        self.routes = Some(routes);
    }

    /// The settings last set.
    pub fn settings(&self) -> Option<&Settings> {
        self.settings.as_ref()
    }

    fn queue(&mut self, msg: &ToRouter) {
        if let Some(c) = &mut self.child
            && c.control.is_some()
        {
            c.out.extend(wire::encode(msg));
        }
        self.flush();
    }

    /// Sends what is queued, as far as the socket takes it.
    pub fn flush(&mut self) {
        let Some(c) = &mut self.child else {
            return;
        };
        let Some(control) = &c.control else {
            c.out.clear();
            return;
        };
        while !c.out.is_empty() {
            match rustix::net::send(control, &c.out, SendFlags::NOSIGNAL) {
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(Errno::INTR) => {}
                Err(_) => return,
            }
        }
    }

    /// Whether sends wait for room in the socket (watch it for output too).
    pub fn wants_output(&self) -> bool {
        self.child.as_ref().is_some_and(|c| !c.out.is_empty())
    }

    /// The router's pid, while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.pid)
    }

    /// Its pidfd, while it runs (readable once it exited).
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.child.as_ref().map(|c| c.pidfd.as_fd())
    }

    /// Its control socket, while open.
    pub fn control(&self) -> Option<BorrowedFd<'_>> {
        self.child
            .as_ref()
            .and_then(|c| c.control.as_ref())
            .map(AsFd::as_fd)
    }

    /// Reads what the router said (call it when the control socket is readable).
    pub fn read(&mut self) -> Read {
        self.flush();
        let mut read = Read::default();
        let Some(c) = &mut self.child else {
            return read;
        };
        let Some(control) = &c.control else {
            return read;
        };
        let mut buf = [0u8; 16 * 1024];
        loop {
            match rustix::net::recv(control, &mut buf, RecvFlags::DONTWAIT) {
                Ok((0, _)) => {
                    read.closed = Some("the router closed its control socket".into());
                    break;
                }
                Ok((n, _)) => c.decoder.feed(&buf[..n]),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => break,
                Err(e) => {
                    read.closed = Some(format!("the router's control socket: {e}"));
                    break;
                }
            }
        }
        loop {
            match c.decoder.next_message::<FromRouter>() {
                Ok(Some(m)) => read.messages.push(m),
                Ok(None) => break,
                Err(e) => {
                    read.closed = Some(e.to_string());
                    break;
                }
            }
        }
        if read.closed.is_some() {
            c.control = None;
            c.out.clear();
        }
        read
    }

    /// Reaps the router if it exited (a parent that reaps by pidfd, as the emperor does):
    /// how it ended.
    pub fn reap(&mut self) -> Option<String> {
        let c = self.child.as_ref()?;
        match rustix::process::waitid(
            rustix::process::WaitId::PidFd(c.pidfd.as_fd()),
            rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOHANG,
        ) {
            Ok(Some(s)) => Some(if let Some(code) = s.exit_status() {
                format!("exited with status {code}")
            } else if let Some(sig) = s.terminating_signal() {
                format!("was killed by signal {sig}")
            } else {
                "ended".to_owned()
            }),
            Ok(None) => None,
            Err(e) => Some(format!("gone ({e})")),
        }
    }

    /// The router is gone (reaped: `how` it ended). Unless it was told to stop, a respawn is
    /// due after the returned delay (a router that dies at once waits longer each time).
    pub fn exited(&mut self, how: &str, now: Instant) -> Option<Duration> {
        let c = self.child.take()?;
        self.last_exit = Some(how.to_owned());
        if self.stopped || c.stop_by.is_some() {
            return None;
        }
        let delay = self
            .backoff
            .delay(now.saturating_duration_since(c.started), false);
        self.respawn_at = Some(now + delay);
        Some(delay)
    }

    /// A spawn failed (`why`): another is due after the returned delay, longer each time.
    pub fn spawn_failed(&mut self, why: &str, now: Instant) -> Duration {
        self.last_exit = Some(why.to_owned());
        let delay = self.backoff.delay(Duration::ZERO, false);
        if !self.stopped {
            self.respawn_at = Some(now + delay);
        }
        delay
    }

    /// When the router must be respawned, or killed (it was told to stop and is late).
    pub fn deadline(&self) -> Option<Instant> {
        match &self.child {
            Some(c) if !c.killed => c.stop_by,
            Some(_) => None,
            None => self.respawn_at,
        }
    }

    /// Whether a respawn is due.
    pub fn respawn_due(&self, now: Instant) -> bool {
        !self.stopped && self.child.is_none() && self.respawn_at.is_some_and(|at| at <= now)
    }

    /// Tells the router to stop: its control socket is closed, so it stops accepting and
    /// finishes what it serves; no respawn follows.
    pub fn stop(&mut self, now: Instant) {
        self.stopped = true;
        self.respawn_at = None;
        if let Some(c) = &mut self.child {
            c.control = None;
            c.out.clear();
            c.stop_by.get_or_insert(now + STOP_WAIT);
        }
    }

    /// Whether it was told to stop and is gone.
    pub fn is_stopped(&self) -> bool {
        self.stopped && self.child.is_none()
    }

    /// Kills a router that was told to stop and is still there past its time.
    pub fn kill_if_late(&mut self, now: Instant) -> bool {
        match &mut self.child {
            Some(c) if !c.killed && c.stop_by.is_some_and(|at| at <= now) => {
                let _ = rustix::process::pidfd_send_signal(&c.pidfd, Signal::KILL);
                c.killed = true;
                true
            }
            _ => false,
        }
    }

    /// Kills the router now (its parent is going away without a graceful stop).
    pub fn kill(&mut self) {
        self.stopped = true;
        if let Some(c) = &mut self.child {
            c.control = None;
            let _ = rustix::process::pidfd_send_signal(&c.pidfd, Signal::KILL);
            c.killed = true;
        }
    }

    /// What the stats show.
    pub fn status(&self) -> Status {
        Status {
            pid: self.pid(),
            restarts: self.spawns.saturating_sub(1),
            running: self.child.is_some(),
            last_exit: self.last_exit.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
