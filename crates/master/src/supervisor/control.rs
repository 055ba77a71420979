//! A vassal's master and its emperor: the control socket the emperor connects to, in the
//! master's epoll like everything else.
//!
//! One connection at a time, from root only (`SO_PEERCRED`); a new one replaces the old. On
//! each new connection the master says `Hello` (its pid and the digest of its options), `Ready`,
//! then `Accepting` and `Loyal` when they hold; later it says `Accepting` once per generation,
//! `Loyal` once, `Heartbeat` every `heartbeat` seconds and `Stopping` when it stops. Writes
//! never block the loop: what the socket does not take waits for `EPOLLOUT`, except a heartbeat,
//! which is dropped. When the connection ends the master logs it and serves on.

use std::collections::VecDeque;
use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use liege_config::Options;
use liege_proto::emperor::{self, Decoder, ToEmperor, ToMaster};
use liege_proto::scoreboard::{State, WorkerField};
use rustix::event::epoll;
use rustix::io::Errno;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendFlags, SocketFlags};

use super::{Kind, RELOAD_POLL, Source, Start, Supervisor, TOKEN_EMPEROR, TOKEN_EMPEROR_LOG};
use crate::plan::{Mode, Plan};
use crate::vassal::{self, Vassal};
use crate::{RunError, log};

/// Bytes waiting to be sent past which an emperor that does not read loses its connection.
const MAX_UNSENT: usize = 1 << 20;
/// For how long after a generation starts the master looks for its first accepting worker
/// every [`RELOAD_POLL`] while an emperor listens (later, at its tick).
const ACCEPTING_WATCH: Duration = Duration::from_secs(60);
/// The most descriptors received and not yet claimed by a `LogFd`; more are closed.
const MAX_FDS: usize = 4;

/// The emperor's side of a vassal's master.
#[derive(Debug)]
pub(crate) struct Emperor {
    listener: OwnedFd,
    conn: Option<Conn>,
    /// The options the master runs with: what the emperor sent last (the memfd's, at first).
    pub(super) options: Options,
    digest: u64,
    /// Whether the instance has served a request since the master started.
    loyal: bool,
    /// A read end of the vassal's log FIFO: while no emperor is connected the master reads it
    /// and drops what it reads, so the vassal's writes to its output (an app's `print`) do not
    /// fail for want of a reader, nor block on a full FIFO.
    log: Option<OwnedFd>,
    /// Whether the log is being drained now, and how many bytes were dropped.
    draining: bool,
    dropped: u64,
}

/// The emperor's connection.
#[derive(Debug)]
struct Conn {
    fd: OwnedFd,
    decoder: Decoder<ToMaster>,
    /// Descriptors received (`SCM_RIGHTS`), each for the next `LogFd`.
    fds: VecDeque<OwnedFd>,
    unsent: Vec<u8>,
    /// The generation whose `Accepting` this connection was told.
    accepting_sent: u64,
    loyal_sent: bool,
    next_heartbeat: Option<Instant>,
}

impl Emperor {
    pub(super) fn new(v: Vassal) -> Emperor {
        if let Some(name) = &v.name {
            log!(
                "vassal {name}: options from the emperor (digest {:016x})",
                v.digest
            );
        }
        Emperor {
            listener: v.control,
            conn: None,
            options: v.options,
            digest: v.digest,
            loyal: false,
            log: v.log,
            draining: false,
            dropped: 0,
        }
    }

    /// Watches the control socket in `epoll` under `token`.
    pub(super) fn register(&self, ep: &OwnedFd, token: u64) -> Result<(), RunError> {
        let setup = |source: Errno| RunError::Setup {
            step: "the emperor's control socket",
            source: source.into(),
        };
        rustix::io::ioctl_fionbio(&self.listener, true).map_err(setup)?;
        epoll::add(
            ep,
            &self.listener,
            epoll::EventData::new_u64(token),
            epoll::EventFlags::IN,
        )
        .map_err(setup)
    }
}

/// What reading the connection found besides messages.
enum End {
    Open,
    Closed,
    Failed(String),
}

/// The emperor's state, borrowed apart from the supervisor's other fields.
fn emperor_of<'a>(source: &'a mut Source<'_>) -> Option<&'a mut Emperor> {
    match source {
        Source::Emperor(e) => Some(e),
        Source::Files(_) => None,
    }
}

fn conn_of<'a>(source: &'a mut Source<'_>) -> Option<&'a mut Conn> {
    emperor_of(source)?.conn.as_mut()
}

impl Supervisor<'_> {
    fn emperor_mut(&mut self) -> Option<&mut Emperor> {
        emperor_of(&mut self.source)
    }

    fn emperor(&self) -> Option<&Emperor> {
        match &self.source {
            Source::Emperor(e) => Some(e),
            Source::Files(_) => None,
        }
    }

    /// Accepts the emperor's connections waiting on the control socket; the last one from root
    /// is kept.
    pub(super) fn accept_emperor(&mut self) {
        loop {
            let Some(e) = self.emperor() else {
                return;
            };
            let fd = match rustix::net::accept_with(
                &e.listener,
                SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            ) {
                Ok(fd) => fd,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return,
                Err(err) => {
                    log!("cannot accept the emperor's connection: {err}");
                    return;
                }
            };
            // The emperor is outside the vassal's pid namespace: its pid reads 0 here.
            match liege_sys::sock::peer_cred(&fd) {
                Ok(cred) if cred.uid == 0 => {}
                Ok(cred) => {
                    log!(
                        "refused a control connection from uid {}: only root may be the emperor",
                        cred.uid
                    );
                    continue;
                }
                Err(err) => {
                    log!("refused a control connection whose peer is unknown: {err}");
                    continue;
                }
            }
            if let Err(err) = epoll::add(
                &self.epoll,
                &fd,
                epoll::EventData::new_u64(TOKEN_EMPEROR),
                epoll::EventFlags::IN,
            ) {
                log!("cannot watch the emperor's connection: {err}");
                continue;
            }
            let epoll = &self.epoll;
            let Some(e) = emperor_of(&mut self.source) else {
                return;
            };
            if e.draining
                && let Some(log) = &e.log
            {
                let _ = epoll::delete(epoll, log);
                e.draining = false;
                if e.dropped > 0 {
                    log!(
                        "{} bytes of output were dropped while no emperor read them",
                        e.dropped
                    );
                    e.dropped = 0;
                }
            }
            if let Some(old) = e.conn.take() {
                let _ = epoll::delete(epoll, &old.fd);
                log!("a new connection from the emperor replaces the old one");
            } else {
                log!("the emperor connected");
            }
            e.conn = Some(Conn {
                fd,
                decoder: Decoder::new(),
                fds: VecDeque::new(),
                unsent: Vec::new(),
                accepting_sent: 0,
                loyal_sent: false,
                next_heartbeat: None,
            });
            let hello = ToEmperor::Hello {
                pid: std::process::id(),
                digest: e.digest,
            };
            self.send_emperor(hello);
            self.send_emperor(ToEmperor::Ready);
            self.report_to_emperor(Instant::now());
        }
    }

    /// Drops the emperor's connection, saying why.
    fn lose_emperor(&mut self, why: &str) {
        let stopping = self.stopping.is_some();
        let epoll = &self.epoll;
        let Some(e) = emperor_of(&mut self.source) else {
            return;
        };
        if let Some(conn) = e.conn.take() {
            let _ = epoll::delete(epoll, &conn.fd);
            if stopping {
                log!("{why}: the emperor's connection is closed");
            } else {
                log!("{why}: lost the emperor's connection; serving on");
            }
        }
        if !e.draining
            && let Some(log) = &e.log
            && epoll::add(
                epoll,
                log,
                epoll::EventData::new_u64(TOKEN_EMPEROR_LOG),
                epoll::EventFlags::IN,
            )
            .is_ok()
        {
            e.draining = true;
        }
    }

    /// Reads and drops what waits in the log FIFO (no emperor reads it).
    pub(super) fn drain_log(&mut self) {
        let Some(e) = self.emperor_mut() else {
            return;
        };
        let Some(log) = &e.log else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        loop {
            match rustix::io::read(log, &mut buf) {
                Ok(0) | Err(Errno::AGAIN) => return,
                Ok(n) => e.dropped += n as u64,
                Err(Errno::INTR) => {}
                Err(_) => return,
            }
        }
    }

    /// Sends `msg` to the emperor, if one is connected, without blocking.
    pub(super) fn send_emperor(&mut self, msg: ToEmperor) {
        let epoll = &self.epoll;
        let Some(conn) = conn_of(&mut self.source) else {
            return;
        };
        let bytes = msg.encode();
        let droppable = msg == ToEmperor::Heartbeat;
        if !conn.unsent.is_empty() {
            if !droppable {
                conn.unsent.extend_from_slice(&bytes);
            }
        } else {
            let sent = loop {
                match rustix::net::send(&conn.fd, &bytes, SendFlags::NOSIGNAL | SendFlags::DONTWAIT)
                {
                    Ok(n) => break Ok(n),
                    Err(Errno::INTR) => {}
                    Err(Errno::AGAIN) => break Ok(0),
                    Err(err) => break Err(err),
                }
            };
            match sent {
                Ok(n) if n >= bytes.len() => return,
                // The socket buffer is full: a heartbeat is not worth waiting for.
                Ok(0) if droppable => return,
                Ok(n) => {
                    conn.unsent.extend_from_slice(&bytes[n..]);
                    let _ = epoll::modify(
                        epoll,
                        &conn.fd,
                        epoll::EventData::new_u64(TOKEN_EMPEROR),
                        epoll::EventFlags::IN | epoll::EventFlags::OUT,
                    );
                }
                Err(err) => {
                    self.lose_emperor(&format!("cannot write to the emperor: {err}"));
                    return;
                }
            }
        }
        if conn_unsent(self) > MAX_UNSENT {
            self.lose_emperor("the emperor does not read what the master sends");
        }
    }

    /// Sends what waited for room in the socket.
    fn flush_emperor(&mut self) {
        let epoll = &self.epoll;
        let Some(conn) = conn_of(&mut self.source) else {
            return;
        };
        while !conn.unsent.is_empty() {
            match rustix::net::send(
                &conn.fd,
                &conn.unsent,
                SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
            ) {
                Ok(n) => {
                    conn.unsent.drain(..n.min(conn.unsent.len()));
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return,
                Err(err) => {
                    self.lose_emperor(&format!("cannot write to the emperor: {err}"));
                    return;
                }
            }
        }
        let _ = epoll::modify(
            epoll,
            &conn.fd,
            epoll::EventData::new_u64(TOKEN_EMPEROR),
            epoll::EventFlags::IN,
        );
    }

    /// The connection is readable or writable (or ended): sends what waited, reads and acts on
    /// every whole message.
    pub(super) fn emperor_event(&mut self, flags: epoll::EventFlags) {
        if flags.contains(epoll::EventFlags::OUT) {
            self.flush_emperor();
        }
        let Some(conn) = conn_of(&mut self.source) else {
            return;
        };
        let mut end = read_conn(conn);
        let mut messages = Vec::new();
        loop {
            match conn.decoder.next_message() {
                Ok(Some(m)) => {
                    let fd = if m == ToMaster::LogFd {
                        conn.fds.pop_front()
                    } else {
                        None
                    };
                    messages.push((m, fd));
                }
                Ok(None) => break,
                Err(err) => {
                    end = End::Failed(format!("a bad message from the emperor ({err})"));
                    break;
                }
            }
        }
        for (m, fd) in messages {
            self.emperor_says(m, fd);
        }
        match end {
            End::Open => {}
            End::Closed => self.lose_emperor("the emperor closed the connection"),
            End::Failed(why) => self.lose_emperor(&why),
        }
    }

    fn emperor_says(&mut self, msg: ToMaster, fd: Option<OwnedFd>) {
        match msg {
            ToMaster::Reload { config } => {
                if config.is_empty() {
                    log!("the emperor asks for a reload with the same options");
                } else {
                    self.take_options(&config);
                }
                self.request_reload(Start::Graceful, "the emperor asked for a reload");
            }
            ToMaster::Stop => self.begin_graceful_stop("the emperor asked the instance to stop"),
            ToMaster::LogFd => {
                let Some(fd) = fd else {
                    log!("the emperor sent a new log without its descriptor: ignored");
                    return;
                };
                let logto = self.current().is_some_and(|g| g.plan.logto.is_some());
                if let Err(err) = rustix::stdio::dup2_stdout(&fd) {
                    log!(
                        "cannot use the emperor's new log (descriptor {}): {err}",
                        fd.as_raw_fd()
                    );
                    return;
                }
                // With `logto`, stderr stays on the file the options name.
                if !logto && let Err(err) = rustix::stdio::dup2_stderr(&fd) {
                    log!(
                        "cannot use the emperor's new log (descriptor {}): {err}",
                        fd.as_raw_fd()
                    );
                    return;
                }
                log!("the emperor sent a new log: the master writes to it from here on");
                self.request_reload(Start::Graceful, "the emperor sent a new log");
            }
        }
    }

    /// Keeps the options of a `Reload` for the reload it starts, if they are good.
    fn take_options(&mut self, config: &[u8]) {
        let checked = vassal::options_from_config(config)
            .map_err(|e| e.to_string())
            .and_then(|options| {
                Plan::from_options_as(&options, Mode::Vassal)
                    .map(|_| options)
                    .map_err(|e| e.to_string())
            });
        let Some(e) = self.emperor_mut() else {
            return;
        };
        match checked {
            Ok(options) => {
                e.options = options;
                e.digest = emperor::config_digest(config);
                log!("the emperor sent new options (digest {:016x})", e.digest);
            }
            Err(err) => {
                log!("{err}");
                log!("the emperor's new options cannot work: keeping the old ones");
            }
        }
    }

    /// Whether a worker of the current generation accepts connections.
    fn current_accepting(&self) -> bool {
        let number = self.current_number();
        self.procs.iter().any(|p| match p.kind {
            Kind::Worker { slot, board, .. } => {
                p.generation == number
                    && p.stop.is_none()
                    && self
                        .board(board)
                        .is_some_and(|b| b.slot(slot).state() == State::Accepting)
            }
            Kind::Zygote => false,
        })
    }

    /// Whether any request has been served since the master started.
    fn served_any(&self) -> bool {
        self.seats.iter().any(|s| s.requests_before > 0)
            || self.procs.iter().any(|p| match p.kind {
                Kind::Worker { slot, board, .. } => self
                    .board(board)
                    .is_some_and(|b| b.slot(slot).get(WorkerField::Requests) > 0),
                Kind::Zygote => false,
            })
    }

    /// Tells a connected emperor what became true: a generation accepts, the instance served
    /// its first request, a heartbeat is due.
    pub(super) fn report_to_emperor(&mut self, now: Instant) {
        let Some(e) = self.emperor() else {
            return;
        };
        let Some(conn) = &e.conn else {
            return;
        };
        if self.stopping.is_some() {
            return;
        }
        let number = self.current_number();
        let accepting = conn.accepting_sent != number && self.current_accepting();
        let loyal = e.loyal || self.served_any();
        let heartbeat = self.current().and_then(|g| g.plan.heartbeat);
        let Some(e) = self.emperor_mut() else {
            return;
        };
        e.loyal = loyal;
        let Some(conn) = e.conn.as_mut() else {
            return;
        };
        let mut say = Vec::new();
        if accepting {
            conn.accepting_sent = number;
            say.push(ToEmperor::Accepting);
        }
        if loyal && !conn.loyal_sent {
            conn.loyal_sent = true;
            say.push(ToEmperor::Loyal);
        }
        match (heartbeat, conn.next_heartbeat) {
            (None, _) => conn.next_heartbeat = None,
            (Some(every), None) => conn.next_heartbeat = Some(now + every),
            (Some(every), Some(due)) if now >= due => {
                conn.next_heartbeat = Some(now + every);
                say.push(ToEmperor::Heartbeat);
            }
            (Some(_), Some(_)) => {}
        }
        for m in say {
            self.send_emperor(m);
        }
    }

    /// When the loop must wake for the emperor: a heartbeat, or a look for the first accepting
    /// worker of a young generation.
    pub(super) fn emperor_wake(&self, now: Instant) -> Option<Instant> {
        let conn = self.emperor()?.conn.as_ref()?;
        let watch = self.current().is_some_and(|g| {
            conn.accepting_sent != g.number
                && now.saturating_duration_since(g.started) < ACCEPTING_WATCH
        });
        let poll = watch.then(|| now + RELOAD_POLL);
        match (conn.next_heartbeat, poll) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

fn conn_unsent(s: &Supervisor<'_>) -> usize {
    s.emperor()
        .and_then(|e| e.conn.as_ref())
        .map_or(0, |c| c.unsent.len())
}

/// Reads everything the connection holds into its decoder, and the descriptors that came with
/// it into its queue.
fn read_conn(conn: &mut Conn) -> End {
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = rustix::net::recvmsg(
            conn.fd.as_fd(),
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
        );
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = m {
                for fd in fds {
                    // Past the limit the descriptor is dropped, which closes it.
                    if conn.fds.len() < MAX_FDS {
                        conn.fds.push_back(fd);
                    }
                }
            }
        }
        match got {
            Ok(r) if r.bytes == 0 => return End::Closed,
            Ok(r) => conn.decoder.feed(&buf[..r.bytes.min(buf.len())]),
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return End::Open,
            Err(err) => return End::Failed(format!("cannot read from the emperor: {err}")),
        }
    }
}
