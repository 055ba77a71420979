//! One interpreter thread's event loop: it accepts connections from the shared listening sockets,
//! reads and parses requests without blocking, receives each body whole, and only then runs the
//! app (or serves a static file) for a complete request. While the app runs, the other
//! connections of this thread wait in the kernel; while a client is slow, nothing waits for it.
//!
//! Fairness: every connection with a complete request gets at most [`BURST`] requests served
//! before the loop moves on, so a pipelining client cannot starve the others; listeners are
//! registered with `EPOLLEXCLUSIVE`, so one new connection wakes one waiting worker (the one that
//! is not busy in its app), and a worker accepts one connection per wake-up. The kernel wakes
//! waiting workers in a fixed order, so a worker that holds clearly more connections than an
//! idle one leaves new connections to it for a while ([`Loop::balance`], from the scoreboard's
//! [`WorkerField::Connections`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use liege_proto::handoff::Proto;
use liege_proto::scoreboard::{CoreField, CoreSlot, Scoreboard, State, WorkerField, WorkerSlot};
use rustix::buffer::spare_capacity;
use rustix::event::epoll;
use rustix::io::Errno;
use rustix::net::SocketFlags;

use crate::app::App;
use crate::http::{self, BodyKind, ChunkedDecoder, Limits};
use crate::log;
use crate::request::{Body, Request, Vars};
use crate::response::{Framing, Output, Response};
use crate::settings::Settings;
use crate::static_files::StaticFiles;
use crate::uwsgi;

/// Requests served on one connection before the loop looks at the others.
const BURST: usize = 8;
/// Epoll tokens: listeners are `0..n`, the stop pipe is [`STOP`], connections start at [`CONN`].
const STOP: u64 = 1 << 40;
const CONN: u64 = 1 << 32;
/// How much is read at once.
const READ_CHUNK: usize = 16 * 1024;
/// Past this many queued response bytes, a streaming app waits for the client.
const OUT_HIGH_WATER: usize = 1 << 20;
/// Once told to stop, a connection idle this long is closed (a busy one is closed after its
/// next response).
const STOP_IDLE_GRACE: Duration = Duration::from_secs(1);
/// A worker leaves new connections to an idle worker that holds more than this many fewer.
const BALANCE_MARGIN: u64 = 4;
/// While it leaves new connections to others, a loop looks again this often.
const BALANCE_RECHECK: Duration = Duration::from_millis(10);

/// A listening socket inherited from the master.
#[derive(Debug)]
pub(crate) struct Listening {
    pub(crate) fd: OwnedFd,
    pub(crate) proto: Proto,
    pub(crate) server_name: String,
    pub(crate) server_port: String,
    pub(crate) tcp: bool,
}

/// What every loop of the worker shares.
pub(crate) struct Shared<'a, A: App> {
    /// `None` when the app could not be loaded: every request gets 500.
    pub(crate) app: Option<&'a A>,
    pub(crate) settings: &'a Settings,
    pub(crate) statics: &'a StaticFiles,
    pub(crate) listeners: &'a [Listening],
    pub(crate) slot: Option<WorkerSlot<'a>>,
    /// Every worker's slot, to share connections evenly ([`WorkerField::Connections`]).
    pub(crate) board: Option<Scoreboard<'a>>,
    pub(crate) worker_id: usize,
    pub(crate) stop_pipe: BorrowedFd<'a>,
    pub(crate) stopping: &'a AtomicBool,
    /// Requests this worker may serve before it recycles (0: no limit).
    pub(crate) max_requests: u64,
    pub(crate) pid: u32,
}

enum Seg {
    Bytes(Vec<u8>, usize),
    File(File, u64, u64),
}

/// A connection's queued output.
struct OutQueue {
    segs: VecDeque<Seg>,
    bytes: usize,
}

impl OutQueue {
    fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// Writes what it can without blocking. Ok(true) when everything went out.
    fn drain(&mut self, fd: BorrowedFd<'_>, tx: &mut u64) -> io::Result<bool> {
        loop {
            match self.segs.front_mut() {
                None => return Ok(true),
                Some(Seg::File(file, offset, remaining)) => {
                    if *remaining == 0 {
                        self.segs.pop_front();
                        continue;
                    }
                    let count = usize::try_from((*remaining).min(1 << 30)).unwrap_or(1 << 30);
                    match rustix::fs::sendfile(fd, &*file, Some(offset), count) {
                        Ok(0) => {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "file shorter than announced",
                            ));
                        }
                        Ok(n) => {
                            *remaining -= n as u64;
                            *tx += n as u64;
                        }
                        Err(Errno::AGAIN) => return Ok(false),
                        Err(Errno::INTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Some(Seg::Bytes(..)) => {
                    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(8);
                    for s in self.segs.iter() {
                        match s {
                            Seg::Bytes(b, pos) if slices.len() < 64 => {
                                slices.push(IoSlice::new(&b[*pos..]))
                            }
                            _ => break,
                        }
                    }
                    match rustix::io::writev(fd, &slices) {
                        Ok(mut n) => {
                            *tx += n as u64;
                            self.bytes = self.bytes.saturating_sub(n);
                            while n > 0 {
                                let Some(Seg::Bytes(b, pos)) = self.segs.front_mut() else {
                                    break;
                                };
                                let left = b.len() - *pos;
                                if n >= left {
                                    n -= left;
                                    self.segs.pop_front();
                                } else {
                                    *pos += n;
                                    n = 0;
                                }
                            }
                        }
                        Err(Errno::AGAIN) => return Ok(false),
                        Err(Errno::INTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    }
}

/// The [`Output`] a response writes into: the connection's queue.
struct ConnOutput<'a> {
    out: &'a mut OutQueue,
    fd: BorrowedFd<'a>,
    timeout: Duration,
    core: Option<CoreSlot<'a>>,
    tx: u64,
}

impl Output for ConnOutput<'_> {
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.bytes += data.len();
        if let Some(Seg::Bytes(last, _)) = self.out.segs.back_mut()
            && last.len() + data.len() <= 64 * 1024
        {
            last.extend_from_slice(data);
            return Ok(());
        }
        self.out.segs.push_back(Seg::Bytes(data.to_vec(), 0));
        Ok(())
    }

    fn send_file(&mut self, file: File, offset: u64, len: u64) -> io::Result<()> {
        self.out.segs.push_back(Seg::File(file, offset, len));
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let done = self.out.drain(self.fd, &mut self.tx)?;
            if done || self.out.bytes < OUT_HIGH_WATER {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "client too slow"));
            }
            let mut fds = [rustix::event::PollFd::new(
                &self.fd,
                rustix::event::PollFlags::OUT,
            )];
            let ts = rustix::time::Timespec::try_from(left).unwrap_or(rustix::time::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn head_sent(&mut self) {
        if let Some(core) = self.core {
            core.set(CoreField::ResponseStarted, 1);
        }
    }
}

/// Where the request body goes while it arrives.
enum BodySink {
    Memory(Vec<u8>),
    File(File, u64),
}

impl BodySink {
    fn write(&mut self, data: &[u8], memory_limit: u64) -> io::Result<()> {
        if let BodySink::Memory(v) = self
            && (v.len() + data.len()) as u64 > memory_limit
        {
            let mut f = tempfile::tempfile()?;
            f.write_all(v)?;
            let len = v.len() as u64;
            *self = BodySink::File(f, len);
        }
        match self {
            BodySink::Memory(v) => v.extend_from_slice(data),
            BodySink::File(f, len) => {
                f.write_all(data)?;
                *len += data.len() as u64;
            }
        }
        Ok(())
    }

    fn into_body(self) -> Body {
        match self {
            BodySink::Memory(v) if v.is_empty() => Body::Empty,
            BodySink::Memory(v) => Body::Memory(v),
            BodySink::File(file, len) => Body::File { file, len },
        }
    }
}

/// A request head, from either protocol.
struct ReqHead {
    vars: Vars,
    http11: bool,
    keep_alive: bool,
    expect_continue: bool,
    head_only: bool,
    label: Vec<u8>,
    https: bool,
    body: BodyKind,
}

enum BodyLeft {
    Length(u64),
    Chunked(ChunkedDecoder),
}

enum Phase {
    Head,
    Body {
        head: ReqHead,
        sink: BodySink,
        left: BodyLeft,
    },
    Closing,
}

struct Conn {
    fd: OwnedFd,
    proto: Proto,
    listener: usize,
    peer_addr: String,
    peer_port: String,
    rbuf: Vec<u8>,
    rstart: usize,
    phase: Phase,
    out: OutQueue,
    /// Registered for EPOLLOUT (output pending) rather than EPOLLIN.
    writing: bool,
    close_after_flush: bool,
    last_active: Instant,
    peer_closed: bool,
    /// In [`Loop::pending`] (so it is queued once, whatever asks for it).
    queued: bool,
    /// What is buffered from `rstart` holds no complete request (at most the start of one):
    /// only more bytes from the client can move this connection on. While this is false and
    /// bytes are buffered, nothing more is read: a pipelining client's requests wait in the
    /// kernel, not in this process.
    need_input: bool,
    /// No request answered yet: an idle fresh connection waits `socket-timeout`, not the
    /// keep-alive timeout.
    fresh: bool,
    /// The answer was an error sent while the client may still be sending (400, 413, 408):
    /// after it goes out, the connection lingers (see [`LINGER`]) rather than resetting.
    discard_input: bool,
    /// Lingering until then: the write side is shut, what arrives is read and dropped.
    linger: Option<Instant>,
}

impl Conn {
    fn idle(&self) -> bool {
        matches!(self.phase, Phase::Head) && self.rstart == self.rbuf.len() && self.out.is_empty()
    }
}

/// How long a connection closed after an error answer keeps reading (and dropping) what the
/// client still sends. Closing a socket with unread input sends a TCP reset, which makes the
/// client's writes fail and can destroy the answer in flight (nginx's "lingering close").
const LINGER: Duration = Duration::from_secs(2);

/// How long a loop that could not accept for lack of descriptors or memory leaves its
/// listeners alone.
const STARVED_PAUSE: Duration = Duration::from_millis(100);

/// One thread's loop.
pub(crate) struct Loop<'a, A: App> {
    shared: &'a Shared<'a, A>,
    core_id: usize,
    core: Option<CoreSlot<'a>>,
    epoll: OwnedFd,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    live: usize,
    /// Connections with a complete request still buffered, to serve before waiting again.
    pending: VecDeque<usize>,
    stopping_since: Option<Instant>,
    limits: Limits,
    last_sweep: Instant,
    core_requests: u64,
    /// The listeners are out of this loop's epoll: the worker holds clearly more connections
    /// than another that is free to take them. Since when [`Loop::balance`] last looked, and
    /// the other workers' connections then ([`Loop::others_connections`]).
    deferred: Option<(Instant, u64)>,
    /// Out of descriptors (or memory) at the last accept: the listeners are out of the epoll
    /// set until then, so a full table does not spin the loop on a listener it cannot serve.
    starved_until: Option<Instant>,
}

impl<'a, A: App> Loop<'a, A> {
    pub(crate) fn new(shared: &'a Shared<'a, A>, core_id: usize) -> io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        for (i, l) in shared.listeners.iter().enumerate() {
            epoll::add(
                &epoll,
                &l.fd,
                epoll::EventData::new_u64(i as u64),
                epoll::EventFlags::IN | epoll::EventFlags::EXCLUSIVE,
            )?;
        }
        epoll::add(
            &epoll,
            shared.stop_pipe,
            epoll::EventData::new_u64(STOP),
            epoll::EventFlags::IN,
        )?;
        let limits = Limits {
            head: shared.settings.buffer_size,
            body: shared.settings.limit_post,
        };
        Ok(Loop {
            shared,
            core_id,
            core: shared.slot.map(|s| s.core(core_id)),
            epoll,
            conns: Vec::new(),
            free: Vec::new(),
            live: 0,
            pending: VecDeque::new(),
            stopping_since: None,
            limits,
            last_sweep: Instant::now(),
            core_requests: 0,
            deferred: None,
            starved_until: None,
        })
    }

    /// Runs until the worker is told to stop and this loop's connections are done.
    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
        while self.turn(&mut events)? {}
        Ok(())
    }

    /// One pass of the loop: waits for events (not when requests are pending), handles them,
    /// serves pending requests, sweeps timeouts. False once the loop is done.
    fn turn(&mut self, events: &mut Vec<epoll::Event>) -> io::Result<bool> {
        if self.shared.stopping.load(Ordering::Relaxed) && self.stopping_since.is_none() {
            self.begin_stop();
        }
        if let Some(since) = self.stopping_since {
            self.close_idle_for_stop(since);
            if self.live == 0 || since.elapsed() > self.shared.settings.worker_reload_mercy {
                return Ok(false);
            }
        }
        if let Some(until) = self.starved_until
            && Instant::now() >= until
        {
            self.starved_until = None;
            if self.deferred.is_none() && self.stopping_since.is_none() {
                for li in 0..self.shared.listeners.len() {
                    self.listen(li);
                }
            }
        }
        if self.stopping_since.is_none() {
            self.balance();
        }
        let timeout = if !self.pending.is_empty() {
            rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }
        } else if self.deferred.is_some() || self.starved_until.is_some() {
            rustix::time::Timespec::try_from(BALANCE_RECHECK).unwrap_or(rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 10_000_000,
            })
        } else {
            rustix::time::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            }
        };
        events.clear();
        match epoll::wait(&self.epoll, spare_capacity(events), Some(&timeout)) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        // An event names a slot, and a slot freed in this batch may be taken by an accept in it:
        // that is safe because the kernel reports a descriptor once per wait and handling an
        // event closes no other slot than its own. Entries of `pending` can be stale; they are
        // checked (`Conn::queued`).
        for ev in events.iter() {
            let token = ev.data.u64();
            let flags = ev.flags;
            if token == STOP {
                let _ = epoll::delete(&self.epoll, self.shared.stop_pipe);
                self.shared.stopping.store(true, Ordering::Relaxed);
            } else if token < CONN {
                // Also when this loop just deferred: it may be the one woken for this connection.
                if self.stopping_since.is_none() {
                    self.accept(usize::try_from(token).unwrap_or(0));
                }
            } else {
                let idx = usize::try_from(token - CONN).unwrap_or(usize::MAX);
                self.on_event(idx, flags);
            }
        }
        for _ in 0..self.pending.len() {
            let Some(idx) = self.pending.pop_front() else {
                break;
            };
            // An entry left by a connection closed since is stale: its slot may hold another.
            if let Some(Some(conn)) = self.conns.get_mut(idx)
                && conn.queued
            {
                conn.queued = false;
                self.process(idx);
            }
        }
        if self.last_sweep.elapsed() >= Duration::from_secs(1) {
            self.sweep();
        }
        Ok(true)
    }

    fn begin_stop(&mut self) {
        self.stopping_since = Some(Instant::now());
        for l in self.shared.listeners {
            let _ = epoll::delete(&self.epoll, &l.fd);
        }
        if let Some(slot) = self.shared.slot {
            slot.set_state(State::Stopping);
        }
    }

    fn close_idle_for_stop(&mut self, since: Instant) {
        for idx in 0..self.conns.len() {
            let close = match &self.conns[idx] {
                Some(c) => {
                    c.idle()
                        && (c.last_active.elapsed() >= STOP_IDLE_GRACE
                            || since.elapsed() >= STOP_IDLE_GRACE)
                }
                None => false,
            };
            if close {
                self.close(idx);
            }
        }
    }

    fn accept(&mut self, li: usize) {
        let Some(l) = self.shared.listeners.get(li) else {
            return;
        };
        let (fd, addr) =
            match rustix::net::acceptfrom_with(&l.fd, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)
            {
                Ok(x) => x,
                Err(Errno::AGAIN | Errno::INTR | Errno::CONNABORTED) => return,
                Err(e @ (Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)) => {
                    // The connection stays in the listen queue: stop looking at the listeners
                    // for a moment instead of being woken for it again at once.
                    log::line(&format!(
                        "liege: worker {} cannot accept on {}: {e}; not accepting for {} ms",
                        self.shared.worker_id,
                        l.server_name,
                        STARVED_PAUSE.as_millis()
                    ));
                    self.starved_until = Some(Instant::now() + STARVED_PAUSE);
                    if self.deferred.is_none() {
                        for l in self.shared.listeners {
                            let _ = epoll::delete(&self.epoll, &l.fd);
                        }
                    }
                    return;
                }
                Err(e) => {
                    log::line(&format!("liege: accept on {}: {e}", l.server_name));
                    return;
                }
            };
        let (peer_addr, peer_port) = match addr.and_then(|a| std::net::SocketAddr::try_from(a).ok())
        {
            Some(a) => (a.ip().to_string(), a.port().to_string()),
            None => (String::new(), String::new()),
        };
        if l.tcp {
            let _ = rustix::net::sockopt::set_tcp_nodelay(&fd, true);
        }
        let conn = Conn {
            fd,
            proto: l.proto,
            listener: li,
            peer_addr,
            peer_port,
            rbuf: Vec::new(),
            rstart: 0,
            phase: Phase::Head,
            out: OutQueue {
                segs: VecDeque::new(),
                bytes: 0,
            },
            writing: false,
            close_after_flush: false,
            last_active: Instant::now(),
            peer_closed: false,
            queued: false,
            need_input: true,
            fresh: true,
            discard_input: false,
            linger: None,
        };
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        if epoll::add(
            &self.epoll,
            &conn.fd,
            epoll::EventData::new_u64(CONN + idx as u64),
            epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
        )
        .is_err()
        {
            self.free.push(idx);
            return;
        }
        self.conns[idx] = Some(conn);
        self.live += 1;
        if let Some(slot) = self.shared.slot {
            slot.add(WorkerField::Connections, 1);
        }
        self.balance();
        // A client (nginx above all, which connects for each request) has often sent its
        // request by the time it is accepted: read it now rather than after another wait.
        self.read_in(idx);
    }

    /// Whether another worker, accepting and with a thread free, holds clearly fewer
    /// connections than this one: then it should take the next ones.
    fn over_share(&self) -> bool {
        let (Some(board), Some(slot)) = (self.shared.board, self.shared.slot) else {
            return false;
        };
        let own = slot.get(WorkerField::Connections);
        if own <= BALANCE_MARGIN {
            return false;
        }
        (1..=board.workers()).any(|id| {
            let w = board.worker(id);
            id != self.shared.worker_id
                && w.state() == State::Accepting
                && w.get(WorkerField::Connections) + BALANCE_MARGIN < own
                && (0..w.cores()).any(|c| w.core(c).get(CoreField::RequestStart) == 0)
        })
    }

    /// Takes the listeners out of this loop's epoll while the worker holds clearly more than its
    /// share ([`Loop::over_share`]), and puts them back once it does not (looking again every
    /// [`BALANCE_RECHECK`] meanwhile). With `EPOLLEXCLUSIVE` a new connection wakes the first
    /// waiting loop in the order the loops registered, and a running loop drains the backlog
    /// alone: two workers took 64 connections arriving at once 64/0 or 0/64 in most runs.
    fn balance(&mut self) {
        if self.starved_until.is_some() {
            return;
        }
        let mut over = self.over_share();
        if over
            && let Some((since, seen)) = self.deferred
            && since.elapsed() >= BALANCE_RECHECK
        {
            // Connections wait, and no other worker took one since the last look: the worker
            // they were left to does not take them (a worker that died keeps its slot,
            // accepting, until the master clears it).
            let others = self.others_connections();
            if others <= seen && self.connections_waiting() {
                over = false;
            } else {
                self.deferred = Some((Instant::now(), others));
            }
        }
        if over != self.deferred.is_some() {
            self.deferred = over.then(|| (Instant::now(), self.others_connections()));
            for li in 0..self.shared.listeners.len() {
                if over {
                    let _ = epoll::delete(&self.epoll, &self.shared.listeners[li].fd);
                } else {
                    self.listen(li);
                }
            }
        }
    }

    /// The connections the other workers hold.
    fn others_connections(&self) -> u64 {
        let Some(board) = self.shared.board else {
            return 0;
        };
        (1..=board.workers())
            .filter(|&id| id != self.shared.worker_id)
            .map(|id| board.worker(id).get(WorkerField::Connections))
            .sum()
    }

    /// Whether a listener has a connection no one accepted yet.
    fn connections_waiting(&self) -> bool {
        let mut fds: Vec<rustix::event::PollFd<'_>> = self
            .shared
            .listeners
            .iter()
            .map(|l| rustix::event::PollFd::new(&l.fd, rustix::event::PollFlags::IN))
            .collect();
        let now = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(rustix::event::poll(&mut fds, Some(&now)), Ok(n) if n > 0)
    }

    /// Registers listener `li` in this loop's epoll.
    fn listen(&self, li: usize) {
        let l = &self.shared.listeners[li];
        if let Err(e) = epoll::add(
            &self.epoll,
            &l.fd,
            epoll::EventData::new_u64(li as u64),
            epoll::EventFlags::IN | epoll::EventFlags::EXCLUSIVE,
        ) {
            log::line(&format!("liege: listening again on {}: {e}", l.server_name));
        }
    }

    fn close(&mut self, idx: usize) {
        if let Some(c) = self.conns.get_mut(idx).and_then(Option::take) {
            // Counted out before the client can see the connection end.
            if let Some(slot) = self.shared.slot {
                slot.sub(WorkerField::Connections, 1);
            }
            let _ = epoll::delete(&self.epoll, &c.fd);
            drop(c);
            self.free.push(idx);
            self.live -= 1;
        }
    }

    fn on_event(&mut self, idx: usize, flags: epoll::EventFlags) {
        let Some(Some(conn)) = self.conns.get_mut(idx) else {
            return;
        };
        if conn.writing {
            if flags.intersects(
                epoll::EventFlags::OUT | epoll::EventFlags::ERR | epoll::EventFlags::HUP,
            ) {
                self.write_out(idx);
            }
            return;
        }
        if flags.intersects(
            epoll::EventFlags::IN
                | epoll::EventFlags::RDHUP
                | epoll::EventFlags::HUP
                | epoll::EventFlags::ERR,
        ) {
            self.read_in(idx);
        }
    }

    fn read_in(&mut self, idx: usize) {
        let Some(Some(conn)) = self.conns.get_mut(idx) else {
            return;
        };
        if conn.linger.is_some() {
            // Drop what the client still sends, until it closes (or the linger ends).
            let mut scratch = [0u8; 16 * 1024];
            loop {
                match rustix::io::read(&conn.fd, &mut scratch) {
                    Ok(0) | Err(Errno::CONNRESET | Errno::PIPE) => break,
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(Errno::AGAIN) => return,
                    Err(_) => break,
                }
            }
            self.close(idx);
            return;
        }
        if !conn.need_input && conn.rstart < conn.rbuf.len() {
            // Requests are buffered still: they are served first (the connection is pending,
            // or waits for its output to drain).
            return;
        }
        if conn.rstart > 0 {
            conn.rbuf.drain(..conn.rstart);
            conn.rstart = 0;
        }
        conn.rbuf.reserve(READ_CHUNK);
        match rustix::io::read(&conn.fd, spare_capacity(&mut conn.rbuf)) {
            Ok(0) => {
                conn.peer_closed = true;
                // What is buffered may still hold a request (a client that half-closes after
                // sending); otherwise the connection is done.
                if conn.rstart == conn.rbuf.len() || matches!(conn.phase, Phase::Body { .. }) {
                    self.close(idx);
                    return;
                }
            }
            Ok(_) => {
                conn.last_active = Instant::now();
                conn.need_input = false;
            }
            Err(Errno::AGAIN | Errno::INTR) => return,
            Err(_) => {
                self.close(idx);
                return;
            }
        }
        self.process(idx);
    }

    fn write_out(&mut self, idx: usize) {
        let Some(Some(conn)) = self.conns.get_mut(idx) else {
            return;
        };
        let mut tx = 0;
        let result = conn.out.drain(conn.fd.as_fd(), &mut tx);
        conn.last_active = Instant::now();
        if let Some(slot) = self.shared.slot {
            slot.add(WorkerField::TxBytes, tx);
        }
        match result {
            Ok(true) => {
                if conn.close_after_flush {
                    if conn.discard_input && !conn.peer_closed && conn.linger.is_none() {
                        let _ = rustix::net::shutdown(&conn.fd, rustix::net::Shutdown::Write);
                        conn.linger = Some(Instant::now() + LINGER);
                        conn.rbuf = Vec::new();
                        conn.rstart = 0;
                        if conn.writing {
                            conn.writing = false;
                            let _ = epoll::modify(
                                &self.epoll,
                                &conn.fd,
                                epoll::EventData::new_u64(CONN + idx as u64),
                                epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
                            );
                        }
                        // What already arrived is dropped now; the rest as it comes.
                        self.read_in(idx);
                        return;
                    }
                    self.close(idx);
                    return;
                }
                if conn.writing {
                    conn.writing = false;
                    let _ = epoll::modify(
                        &self.epoll,
                        &conn.fd,
                        epoll::EventData::new_u64(CONN + idx as u64),
                        epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
                    );
                }
                // Pipelined requests may be waiting in the buffer.
                if !conn.need_input && conn.rstart < conn.rbuf.len() && !conn.queued {
                    conn.queued = true;
                    self.pending.push_back(idx);
                }
            }
            Ok(false) => {
                if !conn.writing {
                    conn.writing = true;
                    let _ = epoll::modify(
                        &self.epoll,
                        &conn.fd,
                        epoll::EventData::new_u64(CONN + idx as u64),
                        epoll::EventFlags::OUT,
                    );
                }
            }
            Err(_) => self.close(idx),
        }
    }

    /// Serves what the connection's buffer holds, up to [`BURST`] requests.
    fn process(&mut self, idx: usize) {
        let mut served = 0;
        loop {
            let Some(Some(conn)) = self.conns.get_mut(idx) else {
                return;
            };
            // Output not yet sent stops the burst: `write_out` comes back here once it is gone.
            if conn.writing
                || matches!(conn.phase, Phase::Closing)
                || conn.out.bytes >= OUT_HIGH_WATER
            {
                break;
            }
            if served >= BURST {
                if !conn.queued {
                    conn.queued = true;
                    self.pending.push_back(idx);
                }
                break;
            }
            match std::mem::replace(&mut conn.phase, Phase::Head) {
                Phase::Head => {
                    let avail = &conn.rbuf[conn.rstart..];
                    if avail.is_empty() {
                        conn.need_input = true;
                        // Between requests a connection holds no buffer.
                        conn.rbuf = Vec::new();
                        conn.rstart = 0;
                        break;
                    }
                    let parsed = match conn.proto {
                        Proto::Http => http::parse_head(avail, &self.limits).map(|o| {
                            o.map(|(h, n)| {
                                (
                                    ReqHead {
                                        vars: h.vars,
                                        http11: h.http11,
                                        keep_alive: h.keep_alive,
                                        expect_continue: h.expect_continue,
                                        head_only: h.head_only,
                                        label: h.label,
                                        https: false,
                                        body: h.body,
                                    },
                                    n,
                                )
                            })
                        }),
                        Proto::Uwsgi => uwsgi::parse_request(avail, &self.limits).map(|o| {
                            o.map(|(h, n)| {
                                (
                                    ReqHead {
                                        vars: h.vars,
                                        http11: true,
                                        keep_alive: false,
                                        expect_continue: false,
                                        head_only: h.head_only,
                                        label: h.label,
                                        https: h.https,
                                        body: BodyKind::Length(h.body_len),
                                    },
                                    n,
                                )
                            })
                        }),
                    };
                    match parsed {
                        Ok(None) => {
                            if conn.peer_closed {
                                self.close(idx);
                                return;
                            }
                            conn.need_input = true;
                            break;
                        }
                        Err(e) => {
                            let (code, reason) = e.status();
                            log::line(&format!(
                                "liege: worker {} bad request from {}: {e} ({code})",
                                self.shared.worker_id, conn.peer_addr
                            ));
                            conn.rstart = conn.rbuf.len();
                            self.reply_error(idx, code, reason);
                            return;
                        }
                        Ok(Some((head, n))) => {
                            conn.rstart += n;
                            let left = match head.body {
                                BodyKind::None | BodyKind::Length(0) => None,
                                BodyKind::Length(len) => Some(BodyLeft::Length(len)),
                                BodyKind::Chunked => {
                                    Some(BodyLeft::Chunked(ChunkedDecoder::new(self.limits.body)))
                                }
                            };
                            match left {
                                None => {
                                    self.dispatch(idx, head, Body::Empty);
                                    served += 1;
                                }
                                Some(left) => {
                                    if head.expect_continue && conn.rstart == conn.rbuf.len() {
                                        // Queued: `write_out` sends it (and counts it) once
                                        // this turn finds no body yet.
                                        let mut o = ConnOutput {
                                            out: &mut conn.out,
                                            fd: conn.fd.as_fd(),
                                            timeout: self.shared.settings.socket_timeout,
                                            core: None,
                                            tx: 0,
                                        };
                                        let _ = o.send(b"HTTP/1.1 100 Continue\r\n\r\n");
                                    }
                                    conn.phase = Phase::Body {
                                        head,
                                        sink: BodySink::Memory(Vec::new()),
                                        left,
                                    };
                                }
                            }
                        }
                    }
                }
                Phase::Body {
                    head,
                    mut sink,
                    left,
                } => {
                    let avail = &conn.rbuf[conn.rstart..];
                    let memory = self.shared.settings.post_buffering;
                    let (consumed, done, left, failed) = match left {
                        BodyLeft::Length(n) => {
                            let take = usize::try_from(n).unwrap_or(usize::MAX).min(avail.len());
                            let r = sink.write(&avail[..take], memory);
                            let rest = n - take as u64;
                            (
                                take,
                                rest == 0,
                                BodyLeft::Length(rest),
                                r.err().map(|e| (500, e.to_string())),
                            )
                        }
                        BodyLeft::Chunked(mut dec) => {
                            let mut werr = None;
                            let r = dec.decode(avail, &mut |piece| {
                                sink.write(piece, memory)
                                    .inspect_err(|e| werr = Some(e.to_string()))
                            });
                            match r {
                                Ok((n, done)) => {
                                    (n, done, BodyLeft::Chunked(dec), werr.map(|e| (500, e)))
                                }
                                Err(e) => (
                                    avail.len(),
                                    false,
                                    BodyLeft::Chunked(dec),
                                    Some((e.status().0, e.to_string())),
                                ),
                            }
                        }
                    };
                    conn.rstart += consumed;
                    if let Some((code, msg)) = failed {
                        log::line(&format!(
                            "liege: worker {} request body from {}: {msg}",
                            self.shared.worker_id, conn.peer_addr
                        ));
                        conn.rstart = conn.rbuf.len();
                        let reason = match code {
                            413 => "Payload Too Large",
                            400 => "Bad Request",
                            _ => "Internal Server Error",
                        };
                        self.reply_error(idx, code, reason);
                        return;
                    }
                    if done {
                        let mut head = head;
                        if let BodyLeft::Chunked(dec) = &left {
                            head.vars
                                .push(b"CONTENT_LENGTH", dec.total().to_string().as_bytes());
                        }
                        self.dispatch(idx, head, sink.into_body());
                        served += 1;
                    } else {
                        if conn.peer_closed {
                            self.close(idx);
                            return;
                        }
                        conn.need_input = true;
                        conn.phase = Phase::Body { head, sink, left };
                        break;
                    }
                }
                Phase::Closing => {
                    conn.phase = Phase::Closing;
                    break;
                }
            }
        }
        self.write_out(idx);
    }

    /// Answers a request that cannot be served, then closes the connection.
    fn reply_error(&mut self, idx: usize, code: u16, reason: &str) {
        let Some(Some(conn)) = self.conns.get_mut(idx) else {
            return;
        };
        let mut o = ConnOutput {
            out: &mut conn.out,
            fd: conn.fd.as_fd(),
            timeout: self.shared.settings.socket_timeout,
            core: None,
            tx: 0,
        };
        let framing = Framing {
            http11: true,
            keep_alive: false,
            head_only: false,
            http: conn.proto == Proto::Http,
        };
        let mut r = Response::new(&mut o, framing);
        let _ = r.error(code, reason);
        conn.phase = Phase::Closing;
        conn.close_after_flush = true;
        conn.discard_input = true;
        self.write_out(idx);
    }

    /// Runs the app (or a static file) for a complete request and queues the response.
    fn dispatch(&mut self, idx: usize, head: ReqHead, body: Body) {
        let shared = self.shared;
        let Some(Some(conn)) = self.conns.get_mut(idx) else {
            return;
        };
        let started = Instant::now();
        let mut vars = head.vars;
        let listener = &shared.listeners[conn.listener];
        if conn.proto == Proto::Http {
            vars.push(b"SCRIPT_NAME", b"");
            vars.push(b"SERVER_NAME", listener.server_name.as_bytes());
            vars.push(b"SERVER_PORT", listener.server_port.as_bytes());
            vars.push(b"REMOTE_ADDR", conn.peer_addr.as_bytes());
            vars.push(b"REMOTE_PORT", conn.peer_port.as_bytes());
        } else {
            for (k, v) in [
                (&b"SCRIPT_NAME"[..], &b""[..]),
                (b"SERVER_NAME", listener.server_name.as_bytes()),
                (b"SERVER_PORT", listener.server_port.as_bytes()),
                (b"REMOTE_ADDR", b""),
                (b"PATH_INFO", b""),
                (b"QUERY_STRING", b""),
                (b"SERVER_PROTOCOL", b"HTTP/1.1"),
            ] {
                if vars.get(k).is_none() {
                    vars.push(k, v);
                }
            }
        }
        let core = self.core;
        if let Some(core) = core {
            core.set_label(&head.label);
            core.begin(conn.fd.as_raw_fd(), monotonic_micros());
        }
        // Once the worker is told to stop, every response closes its connection: also one whose
        // head came before the stop (its body arrived after), or in the same turn as the stop.
        let framing = Framing {
            http11: head.http11,
            keep_alive: head.keep_alive
                && !conn.close_after_flush
                && !shared.stopping.load(Ordering::Relaxed),
            head_only: head.head_only,
            http: conn.proto == Proto::Http,
        };
        let fd = conn.fd.as_fd();
        let mut output = ConnOutput {
            out: &mut conn.out,
            fd,
            timeout: shared.settings.socket_timeout,
            core,
            tx: 0,
        };
        // Earlier (pipelined) answers still queued go out first. What cannot go out yet makes
        // this request count as answering: the master's harakiri must not write a 504 on the
        // socket ahead of those bytes, where the client would read it as an earlier answer.
        if !output.out.is_empty() {
            let _ = output.out.drain(fd, &mut output.tx);
            if !output.out.is_empty()
                && let Some(core) = core
            {
                core.set(CoreField::ResponseStarted, 1);
            }
        }
        let nvars = vars.len();
        let vars_bytes: usize = vars.iter().map(|(k, v)| k.len() + v.len()).sum();
        // The request log names the client and protocol the request gives (for uwsgi, those
        // the web server passed on, not the web server's own address).
        let (log_addr, log_proto) = if shared.settings.disable_logging {
            (String::new(), Vec::new())
        } else {
            (
                String::from_utf8_lossy(vars.get(b"REMOTE_ADDR").unwrap_or_default()).into_owned(),
                vars.get(b"SERVER_PROTOCOL").unwrap_or_default().to_vec(),
            )
        };
        let mut response = Response::new(&mut output, framing);
        let mut is_static = false;
        let mut failed = false;
        let request = Request {
            vars,
            body,
            scheme: if head.https { "https" } else { "http" },
        };
        let served_static = if shared.statics.is_empty() {
            Ok(false)
        } else {
            shared.statics.serve(&request.vars, &mut response)
        };
        match served_static {
            Ok(true) => is_static = true,
            Ok(false) => match shared.app {
                Some(app) => {
                    if let Err(e) = app.call(request, &mut response) {
                        failed = true;
                        log::line(&format!(
                            "liege: worker {} {}: {e}",
                            shared.worker_id,
                            String::from_utf8_lossy(&head.label)
                        ));
                        let _ = response.error(500, "Internal Server Error");
                    }
                }
                None => {
                    let _ = response.error(500, "Internal Server Error");
                }
            },
            Err(e) => {
                failed = true;
                log::line(&format!("liege: static file: {e}"));
                let _ = response.error(500, "Internal Server Error");
            }
        }
        let keep = match response.finish() {
            Ok(k) => k,
            Err(_) => {
                if !response.is_started() {
                    let _ = response.error(500, "Internal Server Error");
                }
                false
            }
        };
        let status = response.status_code().unwrap_or(500);
        let size = response.body_bytes();
        drop(response);
        let tx = output.tx;
        if !keep {
            conn.close_after_flush = true;
            conn.phase = Phase::Closing;
        }
        conn.last_active = Instant::now();
        conn.fresh = false;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.core_requests += 1;
        let mut worker_requests = self.core_requests;
        if let Some(core) = core {
            core.end();
        }
        if let Some(slot) = shared.slot {
            slot.add(WorkerField::Requests, 1);
            slot.add(WorkerField::TxBytes, tx);
            if failed {
                slot.add(WorkerField::Exceptions, 1);
            }
            if is_static {
                slot.add(WorkerField::StaticRequests, 1);
            }
            let avg = slot.get(WorkerField::AvgRtMicros);
            slot.set(
                WorkerField::AvgRtMicros,
                if avg == 0 {
                    micros
                } else {
                    (avg * 7 + micros) / 8
                },
            );
            worker_requests = slot.get(WorkerField::Requests);
        }
        if !shared.settings.disable_logging {
            let vars = method_and_uri(&head.label);
            log::request(
                shared.settings.log_format.as_deref(),
                &log::RequestLine {
                    pid: shared.pid,
                    worker: shared.worker_id,
                    core: self.core_id,
                    worker_requests,
                    core_requests: self.core_requests,
                    addr: &log_addr,
                    method: vars.0,
                    uri: vars.1,
                    proto: &log_proto,
                    status,
                    size,
                    micros,
                    vars: nvars,
                    vars_bytes,
                },
            );
        }
        if shared.max_requests > 0 && worker_requests >= shared.max_requests {
            shared.stopping.store(true, Ordering::Relaxed);
        }
        if shared.settings.reload_on_rss > 0 && rss_bytes() > shared.settings.reload_on_rss {
            log::line(&format!(
                "liege: worker {} uses more than reload-on-rss allows, recycling",
                shared.worker_id
            ));
            shared.stopping.store(true, Ordering::Relaxed);
        }
    }

    /// Closes connections that timed out, and updates the scoreboard's memory figure.
    fn sweep(&mut self) {
        self.last_sweep = Instant::now();
        let s = self.shared.settings;
        for idx in 0..self.conns.len() {
            let Some(c) = &self.conns[idx] else { continue };
            let idle_for = c.last_active.elapsed();
            if let Some(until) = c.linger {
                if Instant::now() >= until {
                    self.close(idx);
                }
            } else if c.idle() {
                // A connection that never sent a request gets the socket timeout; one kept
                // alive after an answer, the keep-alive timeout.
                let limit = if c.fresh {
                    s.socket_timeout
                } else {
                    s.keepalive_timeout
                };
                if idle_for > limit {
                    self.close(idx);
                }
            } else if idle_for > s.socket_timeout {
                if c.out.is_empty() && !matches!(c.phase, Phase::Closing) {
                    self.reply_error(idx, 408, "Request Timeout");
                } else {
                    self.close(idx);
                }
            }
        }
        if self.core_id == 0
            && let Some(slot) = self.shared.slot
        {
            slot.set(WorkerField::RssBytes, rss_bytes());
        }
    }
}

impl<A: App> Drop for Loop<'_, A> {
    fn drop(&mut self) {
        // Connections still open when the loop ends (past the reload mercy) close with it.
        if let Some(slot) = self.shared.slot {
            slot.sub(WorkerField::Connections, self.live as u64);
        }
    }
}

/// (method, uri) for the request log, from the label `METHOD URI`.
fn method_and_uri(label: &[u8]) -> (&[u8], &[u8]) {
    match label.iter().position(|&c| c == b' ') {
        Some(i) => (&label[..i], &label[i + 1..]),
        None => (label, &b""[..]),
    }
}

/// CLOCK_MONOTONIC in microseconds, the clock the master's harakiri check reads too.
pub(crate) fn monotonic_micros() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0) / 1000
}

/// This process's resident memory, in bytes (from /proc/self/statm).
pub(crate) fn rss_bytes() -> u64 {
    let Ok(text) = fs_err::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * rustix::param::page_size() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::AppError;
    use std::io::{BufRead, BufReader, Read};
    use std::net::{TcpListener, TcpStream};

    /// The bytes of piece `i` of `/stream/N`.
    fn piece_byte(i: usize) -> u8 {
        b"abcdefghijklmnopqrstuvwxyz"[i % 26]
    }

    /// Echoes the path and the body; `/fail` fails; `/stream` streams; `/big/N` answers N bytes;
    /// `/stream/N` streams N pieces of 64 KiB.
    struct Echo;

    impl App for Echo {
        fn call(&self, request: Request, response: &mut Response<'_>) -> Result<(), AppError> {
            let path = request.vars.get(b"PATH_INFO").unwrap_or_default().to_vec();
            if path == b"/fail" {
                return Err(AppError("failed on purpose".into()));
            }
            response
                .start("200 OK", vec![])
                .map_err(|e| AppError(e.to_string()))?;
            if let Some(n) = path.strip_prefix(b"/stream/") {
                // N pieces of 64 KiB, each pushed out before the next is made.
                let n: usize = String::from_utf8_lossy(n).parse().unwrap();
                for i in 0..n {
                    let piece = vec![piece_byte(i); 64 * 1024];
                    response
                        .write(&piece)
                        .map_err(|e| AppError(e.to_string()))?;
                }
                return Ok(());
            }
            if let Some(n) = path.strip_prefix(b"/big/") {
                let n: usize = String::from_utf8_lossy(n).parse().unwrap();
                return response
                    .write_last(&vec![b'x'; n])
                    .map_err(|e| AppError(e.to_string()));
            }
            if path == b"/stream" {
                for piece in [&b"a"[..], b"bc"] {
                    response.write(piece).map_err(|e| AppError(e.to_string()))?;
                }
                return Ok(());
            }
            let mut input = crate::request::Input::new(request.body);
            let mut out = path;
            out.extend_from_slice(b":");
            out.extend_from_slice(&input.read(None).map_err(|e| AppError(e.to_string()))?);
            response
                .write_last(&out)
                .map_err(|e| AppError(e.to_string()))
        }
    }

    /// A loopback HTTP listener as the master would hand it over.
    fn listening(proto: Proto) -> (Listening, std::net::SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let l = Listening {
            fd: OwnedFd::from(listener),
            proto,
            server_name: "127.0.0.1".into(),
            server_port: addr.port().to_string(),
            tcp: true,
        };
        (l, addr)
    }

    /// What a worker's loops share, over `listeners`, for `test`; with a scoreboard, as worker
    /// `id` of it.
    fn with_shared<A: App, R>(
        settings: &Settings,
        app: &A,
        board: Option<(Scoreboard<'_>, usize)>,
        listeners: &[Listening],
        test: impl FnOnce(&Shared<'_, A>) -> R,
    ) -> R {
        let (stop_read, _stop_write) = rustix::pipe::pipe().unwrap();
        let stopping = AtomicBool::new(false);
        let statics = StaticFiles::new(settings).unwrap();
        let shared = Shared {
            app: Some(app),
            settings,
            statics: &statics,
            listeners,
            slot: board.map(|(b, id)| b.worker(id)),
            board: board.map(|(b, _)| b),
            worker_id: board.map_or(1, |(_, id)| id),
            stop_pipe: stop_read.as_fd(),
            stopping: &stopping,
            max_requests: 0,
            pid: 1,
        };
        test(&shared)
    }

    /// Runs a loop in a thread while `test` talks to it, then stops it and checks it ended (also
    /// when `test` fails, so that a failure never hangs).
    fn in_loop<A: App>(shared: &Shared<'_, A>, test: impl FnOnce()) {
        std::thread::scope(|s| {
            let handle = s.spawn(|| Loop::new(shared, 0).and_then(Loop::run));
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(test));
            shared.stopping.store(true, Ordering::Relaxed);
            let ended = handle.join();
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
            ended.unwrap().unwrap();
        });
    }

    /// [`in_loop`] with [`Echo`] on a fresh HTTP listener.
    fn with_loop(settings: Settings, test: impl FnOnce(std::net::SocketAddr)) {
        let (l, addr) = listening(Proto::Http);
        with_shared(&settings, &Echo, None, &[l], |shared| {
            in_loop(shared, || test(addr))
        });
    }

    /// Turns the loop until `done` holds (after a turn, or when the loop ends), for at most 20
    /// seconds.
    fn turn_until<A: App>(
        lp: &mut Loop<'_, A>,
        what: &str,
        mut done: impl FnMut(&Loop<'_, A>) -> bool,
    ) {
        let mut events = Vec::with_capacity(256);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(lp) {
            assert!(Instant::now() < deadline, "the loop never got to: {what}");
            if !lp.turn(&mut events).unwrap() {
                assert!(done(lp), "the loop ended before: {what}");
                return;
            }
        }
    }

    /// A client connection that gives up (and fails its test) after 20 seconds of silence.
    fn connect(addr: std::net::SocketAddr) -> TcpStream {
        let c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        c
    }

    /// The live connections of a loop.
    fn conns<'l, A: App>(lp: &'l Loop<'_, A>) -> impl Iterator<Item = &'l Conn> {
        lp.conns.iter().flatten()
    }

    fn response(r: &mut impl BufRead) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        let mut len = 0;
        let mut chunked = false;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let h = h.trim_end().to_string();
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(": ").unwrap();
            if n.eq_ignore_ascii_case("content-length") {
                len = v.parse().unwrap();
            }
            if n.eq_ignore_ascii_case("transfer-encoding") {
                chunked = true;
            }
            headers.push((n.to_string(), v.to_string()));
        }
        let mut body = vec![0; len];
        if chunked {
            body.clear();
            loop {
                let mut size = String::new();
                r.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; n + 2];
                r.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            r.read_exact(&mut body).unwrap();
        }
        (status, headers, body)
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_on_one_connection() {
        with_loop(Settings::default(), |addr| {
            let mut s = TcpStream::connect(addr).unwrap();
            let mut raw = Vec::new();
            for i in 0..20 {
                raw.extend_from_slice(format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
            }
            raw.extend_from_slice(b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
            s.write_all(&raw).unwrap();
            let mut r = BufReader::new(s);
            for i in 0..20 {
                assert_eq!(response(&mut r).2, format!("/{i}:").into_bytes());
            }
            assert_eq!(response(&mut r).2, b"/p:abc");
        });
    }

    #[test]
    fn failures_streams_and_bad_requests() {
        with_loop(Settings::default(), |addr| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(
                b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\nGET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
            )
            .unwrap();
            let mut r = BufReader::new(s);
            assert_eq!(response(&mut r).0, 500);
            let (status, _, body) = response(&mut r);
            assert_eq!((status, body), (200, b"abc".to_vec()));
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"NOT HTTP AT ALL\r\n\r\n").unwrap();
            let mut r = BufReader::new(s);
            assert_eq!(response(&mut r).0, 400);
        });
    }

    #[test]
    fn bodies_past_post_buffering_go_to_a_file_and_arrive_whole() {
        let settings = Settings {
            post_buffering: 1000,
            ..Settings::default()
        };
        with_loop(settings, |addr| {
            let body: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
            let mut s = TcpStream::connect(addr).unwrap();
            let head = format!(
                "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).unwrap();
            for piece in body.chunks(7000) {
                s.write_all(piece).unwrap();
            }
            let (status, _, got) = response(&mut BufReader::new(s));
            assert_eq!(status, 200);
            assert_eq!(&got[..3], b"/b:");
            assert!(got[3..] == body[..]);
        });
    }

    fn quiet() -> Settings {
        Settings {
            disable_logging: true,
            ..Settings::default()
        }
    }

    #[test]
    fn a_partial_head_waits_for_more_instead_of_spinning() {
        let (l, addr) = listening(Proto::Http);
        with_shared(&quiet(), &Echo, None, &[l], |shared| {
            let mut lp = Loop::new(shared, 0).unwrap();
            let mut c = connect(addr);
            c.write_all(b"GET /x HTTP/1.1\r\nHo").unwrap();
            turn_until(&mut lp, "the partial head is read", |lp| {
                conns(lp).any(|c| !c.rbuf.is_empty())
            });
            // Nothing can be served until more arrives: the loop must wait in epoll, not come
            // back to this connection at once (a busy loop while a client is slow).
            assert!(lp.pending.is_empty(), "pending: {:?}", lp.pending);
            c.write_all(b"st: x\r\n\r\n").unwrap();
            let mut r = BufReader::new(c);
            std::thread::scope(|s| {
                let reader = s.spawn(move || response(&mut r));
                turn_until(&mut lp, "the response is read", |_| reader.is_finished());
                assert_eq!(reader.join().unwrap().2, b"/x:");
            });
        });
    }

    #[test]
    fn a_pipelining_client_holds_a_bounded_read_buffer_and_one_place_in_line() {
        const N: usize = 3000;
        let (l, addr) = listening(Proto::Http);
        with_shared(&quiet(), &Echo, None, &[l], |shared| {
            let mut lp = Loop::new(shared, 0).unwrap();
            let c = connect(addr);
            let mut w = c.try_clone().unwrap();
            let mut r = BufReader::new(c);
            std::thread::scope(|s| {
                s.spawn(move || {
                    let mut raw = Vec::new();
                    for i in 0..N {
                        raw.extend_from_slice(
                            format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
                        );
                    }
                    w.write_all(&raw).unwrap();
                });
                let reader = s.spawn(move || {
                    for i in 0..N {
                        assert_eq!(response(&mut r).2, format!("/{i}:").into_bytes());
                    }
                });
                let mut most_buffered = 0;
                turn_until(&mut lp, "every response is read", |lp| {
                    for c in conns(lp) {
                        most_buffered = most_buffered.max(c.rbuf.capacity());
                    }
                    let mut seen: Vec<usize> = lp.pending.iter().copied().collect();
                    seen.sort_unstable();
                    let before = seen.len();
                    seen.dedup();
                    assert_eq!(
                        seen.len(),
                        before,
                        "a connection queued twice: {:?}",
                        lp.pending
                    );
                    reader.is_finished()
                });
                reader.join().unwrap();
                // At most a partial head plus one read, in a vector that may double once.
                let bound = 2 * (shared.settings.buffer_size + READ_CHUNK);
                assert!(
                    most_buffered <= bound,
                    "read buffer grew to {most_buffered} bytes (bound {bound})"
                );
            });
        });
    }

    #[test]
    fn an_idle_keep_alive_connection_holds_no_read_buffer() {
        let (l, addr) = listening(Proto::Http);
        with_shared(&quiet(), &Echo, None, &[l], |shared| {
            let mut lp = Loop::new(shared, 0).unwrap();
            let mut c = connect(addr);
            c.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut r = BufReader::new(c);
            std::thread::scope(|s| {
                // The client stays connected (the reader gives its stream back).
                let reader = s.spawn(move || (response(&mut r), r));
                turn_until(&mut lp, "the response is read", |_| reader.is_finished());
                let ((_, _, body), _client) = reader.join().unwrap();
                assert_eq!(body, b"/a:");
                let held: Vec<usize> = conns(&lp).map(|c| c.rbuf.capacity()).collect();
                assert_eq!(held, [0]);
            });
        });
    }

    #[test]
    fn a_burst_of_pipelined_requests_stops_while_output_is_queued() {
        const BIG: usize = 4_000_000;
        let (l, addr) = listening(Proto::Http);
        with_shared(&quiet(), &Echo, None, &[l], |shared| {
            let mut lp = Loop::new(shared, 0).unwrap();
            let mut c = connect(addr);
            let mut raw = Vec::new();
            for _ in 0..BURST {
                raw.extend_from_slice(
                    format!("GET /big/{BIG} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
                );
            }
            // The client sends its requests and reads nothing yet.
            c.write_all(&raw).unwrap();
            let mut most_queued = 0;
            turn_until(&mut lp, "the connection waits for the client", |lp| {
                for c in conns(lp) {
                    most_queued = most_queued.max(c.out.bytes);
                }
                conns(lp).any(|c| c.writing)
            });
            assert!(
                most_queued <= OUT_HIGH_WATER + BIG,
                "{most_queued} bytes queued for a client that does not read"
            );
            let mut r = BufReader::new(c);
            std::thread::scope(|s| {
                let reader = s.spawn(move || {
                    for _ in 0..BURST {
                        assert_eq!(response(&mut r).2.len(), BIG);
                    }
                });
                turn_until(&mut lp, "every response is read", |_| reader.is_finished());
                reader.join().unwrap();
            });
        });
    }

    fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_request_whose_body_arrives_across_a_stop_is_answered_with_connection_close() {
        let (l, addr) = listening(Proto::Http);
        with_shared(&quiet(), &Echo, None, &[l], |shared| {
            let mut lp = Loop::new(shared, 0).unwrap();
            let mut c = connect(addr);
            c.write_all(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc")
                .unwrap();
            turn_until(&mut lp, "the body is being received", |lp| {
                conns(lp).any(|c| matches!(c.phase, Phase::Body { .. }))
            });
            shared.stopping.store(true, Ordering::Relaxed);
            c.write_all(b"def").unwrap();
            let mut r = BufReader::new(c);
            std::thread::scope(|s| {
                let reader = s.spawn(move || {
                    let got = response(&mut r);
                    let mut rest = Vec::new();
                    r.read_to_end(&mut rest).unwrap();
                    (got, rest)
                });
                turn_until(&mut lp, "the connection is closed", |lp| lp.live == 0);
                let ((status, headers, body), rest) = reader.join().unwrap();
                assert_eq!((status, body, rest), (200, b"/p:abcdef".to_vec(), vec![]));
                assert_eq!(header(&headers, "connection"), Some("close"));
            });
            // Nothing is left: the loop ends.
            let mut events = Vec::with_capacity(8);
            assert!(!lp.turn(&mut events).unwrap());
        });
    }

    #[test]
    fn a_stop_answers_what_is_in_flight_closes_idle_connections_and_accepts_nothing() {
        let (l, addr) = listening(Proto::Http);
        with_shared(&quiet(), &Echo, None, &[l], |shared| {
            let mut lp = Loop::new(shared, 0).unwrap();
            let mut idle = BufReader::new(connect(addr));
            idle.get_mut()
                .write_all(b"GET /i HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut busy = connect(addr);
            busy.write_all(b"GET /b HTTP/1.1\r\nHo").unwrap();
            std::thread::scope(|s| {
                let reader = s.spawn(|| response(&mut idle));
                turn_until(&mut lp, "both are in", |lp| {
                    reader.is_finished() && conns(lp).any(|c| !c.rbuf.is_empty())
                });
                assert_eq!(reader.join().unwrap().2, b"/i:");
            });
            shared.stopping.store(true, Ordering::Relaxed);
            let mut events = Vec::with_capacity(8);
            assert!(lp.turn(&mut events).unwrap());
            let late = connect(addr);
            busy.write_all(b"st: x\r\n\r\n").unwrap();
            let mut r = BufReader::new(busy);
            std::thread::scope(|s| {
                let reader = s.spawn(move || {
                    let got = response(&mut r);
                    let mut rest = Vec::new();
                    r.read_to_end(&mut rest).unwrap();
                    (got, rest)
                });
                turn_until(&mut lp, "every connection is closed", |lp| lp.live == 0);
                let ((status, headers, body), rest) = reader.join().unwrap();
                assert_eq!((status, body, rest), (200, b"/b:".to_vec(), vec![]));
                assert_eq!(header(&headers, "connection"), Some("close"));
            });
            assert!(!lp.turn(&mut events).unwrap());
            // The idle connection was closed without an answer.
            let mut rest = Vec::new();
            idle.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, b"");
            // The late connection still waits in the listener's backlog, for another worker.
            let (taken, _) = rustix::net::acceptfrom(&shared.listeners[0].fd).unwrap();
            let peer = rustix::net::getpeername(&taken).unwrap().unwrap();
            assert_eq!(
                std::net::SocketAddr::try_from(peer).unwrap(),
                late.local_addr().unwrap()
            );
        });
    }

    #[test]
    fn the_stop_pipe_ends_every_thread_of_a_worker() {
        let (l, addr) = listening(Proto::Http);
        let settings = quiet();
        let (stop_read, stop_write) = rustix::pipe::pipe().unwrap();
        let stopping = AtomicBool::new(false);
        let statics = StaticFiles::new(&settings).unwrap();
        let listeners = [l];
        let shared = Shared {
            app: Some(&Echo),
            settings: &settings,
            statics: &statics,
            listeners: &listeners,
            slot: None,
            board: None,
            worker_id: 1,
            stop_pipe: stop_read.as_fd(),
            stopping: &stopping,
            max_requests: 0,
            pid: 1,
        };
        std::thread::scope(|s| {
            let loops: Vec<_> = (0..3)
                .map(|core| {
                    s.spawn({
                        let shared = &shared;
                        move || Loop::new(shared, core).and_then(Loop::run)
                    })
                })
                .collect();
            let mut c = BufReader::new(connect(addr));
            c.get_mut()
                .write_all(b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            assert_eq!(response(&mut c).2, b"/k:");
            rustix::io::write(&stop_write, b"x").unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while !loops.iter().all(|h| h.is_finished()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let ended = loops.iter().filter(|h| h.is_finished()).count();
            // Let the test end either way, then say what happened.
            stopping.store(true, Ordering::Relaxed);
            for h in loops {
                h.join().unwrap().unwrap();
            }
            assert_eq!(ended, 3, "loops ended by the stop pipe");
            // The idle keep-alive connection was closed.
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, b"");
        });
    }

    #[test]
    fn a_client_that_half_closes_after_its_requests_gets_every_answer() {
        with_loop(quiet(), |addr| {
            let c = connect(addr);
            let mut raw = Vec::new();
            for i in 0..(3 * BURST + 1) {
                raw.extend_from_slice(format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
            }
            (&c).write_all(&raw).unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let mut r = BufReader::new(c);
            for i in 0..(3 * BURST + 1) {
                assert_eq!(response(&mut r).2, format!("/{i}:").into_bytes());
            }
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, b"");
        });
    }

    #[test]
    fn a_client_gone_mid_body_or_mid_response_is_closed_and_the_loop_goes_on() {
        let (l, addr) = listening(Proto::Http);
        with_shared(&quiet(), &Echo, None, &[l], |shared| {
            let mut lp = Loop::new(shared, 0).unwrap();
            let mut c = connect(addr);
            c.write_all(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
                .unwrap();
            turn_until(&mut lp, "the body is being received", |lp| {
                conns(lp).any(|c| matches!(c.phase, Phase::Body { .. }))
            });
            drop(c);
            turn_until(&mut lp, "the connection is closed", |lp| lp.live == 0);

            let mut c = BufReader::new(connect(addr));
            c.get_mut()
                .write_all(b"GET /big/30000000 HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            turn_until(&mut lp, "the response waits for the client", |lp| {
                conns(lp).any(|c| c.writing)
            });
            let mut line = String::new();
            c.read_line(&mut line).unwrap();
            assert_eq!(line, "HTTP/1.1 200 OK\r\n");
            drop(c);
            turn_until(&mut lp, "the connection is closed", |lp| lp.live == 0);

            let mut c = BufReader::new(connect(addr));
            c.get_mut()
                .write_all(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            std::thread::scope(|s| {
                let reader = s.spawn(move || response(&mut c));
                turn_until(&mut lp, "the response is read", |_| reader.is_finished());
                assert_eq!(reader.join().unwrap().2, b"/after:");
            });
        });
    }

    #[test]
    fn a_body_past_limit_post_gets_its_413_even_while_the_client_still_sends() {
        let settings = Settings {
            limit_post: 100,
            ..quiet()
        };
        with_loop(settings, |addr| {
            for _ in 0..20 {
                let c = connect(addr);
                let mut w = c.try_clone().unwrap();
                std::thread::scope(|s| {
                    s.spawn(move || {
                        let _ = w.write_all(
                            b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n",
                        );
                        let body = vec![b'y'; 5_000_000];
                        // The server answers and closes before the body is all sent.
                        let _ = w.write_all(&body);
                    });
                    let (status, headers, _) = response(&mut BufReader::new(c));
                    assert_eq!(status, 413);
                    assert_eq!(header(&headers, "connection"), Some("close"));
                });
            }
        });
    }

    #[test]
    fn timeouts_close_idle_keep_alive_answer_408_to_partial_requests_and_drop_stalled_readers() {
        let settings = Settings {
            socket_timeout: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(1),
            ..quiet()
        };
        let (l, addr) = listening(Proto::Http);
        with_shared(&settings, &Echo, None, &[l], |shared| {
            let mut lp = Loop::new(shared, 0).unwrap();
            let mut idle = BufReader::new(connect(addr));
            idle.get_mut()
                .write_all(b"GET /i HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut head = connect(addr);
            head.write_all(b"GET /h HTTP/1.1\r\nHo").unwrap();
            let mut body = connect(addr);
            body.write_all(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc")
                .unwrap();
            let mut stalled = connect(addr);
            stalled
                .write_all(b"GET /big/30000000 HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            std::thread::scope(|s| {
                let idle = s.spawn(move || {
                    let got = response(&mut idle);
                    let mut rest = Vec::new();
                    idle.read_to_end(&mut rest).unwrap();
                    (got.2, rest)
                });
                let partial = |c: TcpStream| {
                    s.spawn(move || {
                        let mut r = BufReader::new(c);
                        let (status, headers, _) = response(&mut r);
                        let mut rest = Vec::new();
                        r.read_to_end(&mut rest).unwrap();
                        (
                            status,
                            header(&headers, "connection").map(String::from),
                            rest,
                        )
                    })
                };
                let head = partial(head);
                let body = partial(body);
                turn_until(&mut lp, "every connection is in", |lp| lp.live == 4);
                turn_until(&mut lp, "every connection is closed", |lp| lp.live == 0);
                assert_eq!(idle.join().unwrap(), (b"/i:".to_vec(), vec![]));
                for r in [head, body] {
                    assert_eq!(r.join().unwrap(), (408, Some("close".into()), vec![]));
                }
            });
            // The stalled reader got part of the body, then the end.
            let mut got = Vec::new();
            let _ = stalled.read_to_end(&mut got);
            assert!(got.len() < 30_000_000, "{} bytes", got.len());
        });
    }

    /// Reads until the server closes the connection.
    fn rest(mut r: impl Read) -> Vec<u8> {
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        rest
    }

    #[test]
    fn expect_100_continue_is_answered_only_when_the_body_is_not_there_yet() {
        with_loop(quiet(), |addr| {
            let mut c = BufReader::new(connect(addr));
            c.get_mut()
                .write_all(b"POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
                .unwrap();
            let mut interim = String::new();
            c.read_line(&mut interim).unwrap();
            assert_eq!(interim, "HTTP/1.1 100 Continue\r\n");
            c.read_line(&mut interim).unwrap();
            c.get_mut().write_all(b"abc").unwrap();
            assert_eq!(response(&mut c).2, b"/e:abc");
            // With the body sent at once, the final answer comes first.
            c.get_mut()
                .write_all(b"POST /f HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nxyz")
                .unwrap();
            let (status, _, body) = response(&mut c);
            assert_eq!((status, body), (200, b"/f:xyz".to_vec()));
        });
    }

    #[test]
    fn head_requests_and_http_1_0_keep_alive() {
        with_loop(quiet(), |addr| {
            let mut c = BufReader::new(connect(addr));
            c.get_mut()
                .write_all(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut head = String::new();
            loop {
                let mut line = String::new();
                c.read_line(&mut line).unwrap();
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert!(head.contains("Content-Length: 3\r\n"), "{head}");
            // No body came: the next bytes are the next response.
            assert_eq!(response(&mut c).2, b"/g:");

            let mut c = BufReader::new(connect(addr));
            c.get_mut()
                .write_all(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap();
            for path in ["/a:", "/b:"] {
                let (status, headers, body) = response(&mut c);
                assert_eq!((status, body), (200, path.as_bytes().to_vec()));
                assert_eq!(header(&headers, "connection"), Some("keep-alive"));
            }
            c.get_mut().write_all(b"GET /c HTTP/1.0\r\n\r\n").unwrap();
            let (_, headers, body) = response(&mut c);
            assert_eq!(body, b"/c:");
            assert_eq!(header(&headers, "connection"), Some("close"));
            assert_eq!(rest(c), b"");
        });
    }

    #[test]
    fn uwsgi_requests_get_their_body_and_the_connection_closes_after_the_answer() {
        let (l, addr) = listening(Proto::Uwsgi);
        with_shared(&quiet(), &Echo, None, &[l], |shared| {
            in_loop(shared, || {
                let mut c = BufReader::new(connect(addr));
                let vars: [(&[u8], &[u8]); 4] = [
                    (b"REQUEST_METHOD", b"POST"),
                    (b"REQUEST_URI", b"/u"),
                    (b"PATH_INFO", b"/u"),
                    (b"CONTENT_LENGTH", b"5"),
                ];
                let mut packet = liege_proto::uwsgi::encode(0, 0, &vars).unwrap();
                packet.extend_from_slice(b"hello");
                // A second packet on the same connection is not read.
                packet.extend_from_slice(&packet.clone());
                c.get_mut().write_all(&packet).unwrap();
                let (status, headers, body) = response(&mut c);
                assert_eq!((status, body), (200, b"/u:hello".to_vec()));
                assert_eq!(header(&headers, "connection"), None);
                assert_eq!(rest(c), b"");
            });
        });
    }

    /// Counts what is read through it.
    struct Counting<'c, R>(R, &'c std::cell::Cell<usize>);

    impl<R: Read> Read for Counting<'_, R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1.set(self.1.get() + n);
            Ok(n)
        }
    }

    #[test]
    fn the_scoreboard_counts_requests_failures_and_every_byte_sent() {
        use liege_proto::scoreboard::{self, Scoreboard};
        let words: Vec<std::sync::atomic::AtomicU64> = (0..scoreboard::words(1, 1))
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect();
        let sb = Scoreboard::new(&words, 1, 1).unwrap();
        sb.init();
        let slot = sb.worker(1);
        let (l, addr) = listening(Proto::Http);
        with_shared(&quiet(), &Echo, Some((sb, 1)), &[l], |shared| {
            in_loop(shared, || {
                let received = std::cell::Cell::new(0);
                let c = connect(addr);
                let mut w = c.try_clone().unwrap();
                let mut r = BufReader::new(Counting(c, &received));
                w.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
                    .unwrap();
                assert_eq!(response(&mut r).2, b"/a:");
                let mut interim = String::new();
                r.read_line(&mut interim).unwrap();
                assert_eq!(interim, "HTTP/1.1 100 Continue\r\n");
                w.write_all(b"abcGET /fail HTTP/1.1\r\nHost: x\r\n\r\nGET /z HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let all = rest(&mut r);
                assert!(all.ends_with(b"/z:"));
                let core = slot.core(0);
                assert_eq!(
                    [
                        slot.get(WorkerField::Requests),
                        slot.get(WorkerField::Exceptions),
                        slot.get(WorkerField::StaticRequests),
                        slot.get(WorkerField::TxBytes),
                    ],
                    [4, 1, 0, received.get() as u64]
                );
                assert_eq!(
                    [
                        core.get(CoreField::Requests),
                        core.get(CoreField::RequestStart),
                        core.get(CoreField::ClientFdPlusOne),
                        core.get(CoreField::ResponseStarted),
                    ],
                    [4, 0, 0, 1]
                );
                assert_eq!(core.label(), "GET /z");
                // The connection closed after its last answer.
                assert_eq!(slot.get(WorkerField::Connections), 0);
            });
            assert_eq!(slot.state(), State::Stopping);
        });
    }

    /// Answers which worker it runs in.
    struct Tag(usize);

    impl App for Tag {
        fn call(&self, _: Request, response: &mut Response<'_>) -> Result<(), AppError> {
            response
                .start("200 OK", vec![])
                .map_err(|e| AppError(e.to_string()))?;
            response
                .write_last(self.0.to_string().as_bytes())
                .map_err(|e| AppError(e.to_string()))
        }
    }

    /// Two workers (each its own `Shared`, as two processes, and one scoreboard) on one listening
    /// socket; `clients` connections opened at once, each sending one request and staying open.
    /// How many each worker got.
    fn split(clients: usize) -> [usize; 2] {
        let words: Vec<std::sync::atomic::AtomicU64> = (0..liege_proto::scoreboard::words(2, 1))
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect();
        let sb = Scoreboard::new(&words, 2, 1).unwrap();
        sb.init();
        for id in [1, 2] {
            sb.worker(id).set_state(State::Accepting);
        }
        let (l1, addr) = listening(Proto::Http);
        let l2 = Listening {
            fd: OwnedFd::from(TcpListener::from(l1.fd.try_clone().unwrap())),
            proto: Proto::Http,
            server_name: l1.server_name.clone(),
            server_port: l1.server_port.clone(),
            tcp: true,
        };
        let settings = quiet();
        with_shared(&settings, &Tag(0), Some((sb, 1)), &[l1], |one| {
            with_shared(&settings, &Tag(1), Some((sb, 2)), &[l2], |two| {
                let mut got = [0; 2];
                in_loop(one, || {
                    in_loop(two, || {
                        let mut clients: Vec<TcpStream> =
                            (0..clients).map(|_| connect(addr)).collect();
                        for c in &mut clients {
                            c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                        }
                        // Every client stays connected until all are answered.
                        let mut readers: Vec<_> = clients.into_iter().map(BufReader::new).collect();
                        for r in &mut readers {
                            let body = response(r).2;
                            got[usize::from(body == b"1")] += 1;
                        }
                    })
                });
                got
            })
        })
    }

    #[test]
    fn connections_arriving_at_once_split_evenly_between_two_workers() {
        let got = split(64);
        writeln!(io::stderr(), "64 connections at once: {got:?}").unwrap();
        assert!(got[0].min(got[1]) >= 24, "split {got:?}");
    }

    fn board(workers: usize, words: &[std::sync::atomic::AtomicU64]) -> Scoreboard<'_> {
        let sb = Scoreboard::new(words, workers, 1).unwrap();
        sb.init();
        for id in 1..=workers {
            sb.worker(id).set_state(State::Accepting);
        }
        sb
    }

    #[test]
    fn a_worker_leaves_new_connections_only_to_an_idle_accepting_worker_with_clearly_fewer() {
        let words: Vec<std::sync::atomic::AtomicU64> = (0..liege_proto::scoreboard::words(3, 1))
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect();
        let sb = board(3, &words);
        let (l, _) = listening(Proto::Http);
        with_shared(&quiet(), &Echo, Some((sb, 1)), &[l], |shared| {
            let lp = Loop::new(shared, 0).unwrap();
            let [one, two, three] = [1, 2, 3].map(|id| sb.worker(id));
            one.set(WorkerField::Connections, 10);
            two.set(WorkerField::Connections, 10);
            three.set(WorkerField::Connections, 6);
            assert!(!lp.over_share(), "10 against 6 is within the margin");
            three.set(WorkerField::Connections, 5);
            assert!(lp.over_share(), "10 against 5");
            three.core(0).begin(7, 1);
            assert!(!lp.over_share(), "the one with fewer is busy");
            three.core(0).end();
            three.set_state(State::Stopping);
            assert!(!lp.over_share(), "the one with fewer is stopping");
        });
    }

    #[test]
    fn a_worker_does_not_leave_connections_waiting_for_a_worker_that_is_gone() {
        let words: Vec<std::sync::atomic::AtomicU64> = (0..liege_proto::scoreboard::words(2, 1))
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect();
        // Worker 2 died while accepting: its slot still says so, with no connections.
        let sb = board(2, &words);
        let (l, addr) = listening(Proto::Http);
        // No timeout closes a connection while the test runs (the clients wait 20 seconds).
        let settings = Settings {
            keepalive_timeout: Duration::from_secs(60),
            socket_timeout: Duration::from_secs(60),
            ..quiet()
        };
        with_shared(&settings, &Echo, Some((sb, 1)), &[l], |shared| {
            in_loop(shared, || {
                let mut clients = Vec::new();
                for i in 0..(2 * BALANCE_MARGIN) {
                    let mut c = BufReader::new(connect(addr));
                    c.get_mut()
                        .write_all(format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                        .unwrap();
                    assert_eq!(response(&mut c).2, format!("/{i}:").into_bytes());
                    clients.push(c);
                }
            });
        });
    }

    /// What the worker logs while `f` runs (stderr goes to a file meanwhile: other tests' lines
    /// may land there too).
    fn stderr_during(f: impl FnOnce()) -> String {
        let saved = rustix::io::dup(rustix::stdio::stderr()).unwrap();
        let mut file = tempfile::tempfile().unwrap();
        rustix::stdio::dup2_stderr(&file).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        rustix::stdio::dup2_stderr(&saved).unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
        let mut text = String::new();
        std::io::Seek::rewind(&mut file).unwrap();
        file.read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn the_request_log_names_the_client_and_protocol_a_uwsgi_request_gives() {
        let settings = Settings {
            log_format: Some("%(addr) %(proto) %(status) %(uri)".into()),
            ..Settings::default()
        };
        let (l, addr) = listening(Proto::Uwsgi);
        let log = stderr_during(|| {
            with_shared(&settings, &Echo, None, &[l], |shared| {
                in_loop(shared, || {
                    let vars: [(&[u8], &[u8]); 5] = [
                        (b"REQUEST_METHOD", b"GET"),
                        (b"REQUEST_URI", b"/uwsgi-log-line"),
                        (b"PATH_INFO", b"/uwsgi-log-line"),
                        (b"REMOTE_ADDR", b"203.0.113.7"),
                        (b"SERVER_PROTOCOL", b"HTTP/1.0"),
                    ];
                    let mut c = BufReader::new(connect(addr));
                    c.get_mut()
                        .write_all(&liege_proto::uwsgi::encode(0, 0, &vars).unwrap())
                        .unwrap();
                    assert_eq!(response(&mut c).0, 200);
                });
            });
            let (l, addr) = listening(Proto::Http);
            with_shared(&settings, &Echo, None, &[l], |shared| {
                in_loop(shared, || {
                    let mut c = BufReader::new(connect(addr));
                    c.get_mut()
                        .write_all(b"GET /http-log-line HTTP/1.0\r\n\r\n")
                        .unwrap();
                    assert_eq!(response(&mut c).0, 200);
                });
            });
        });
        let lines: Vec<&str> = log.lines().filter(|l| l.ends_with("-log-line")).collect();
        assert_eq!(
            lines,
            [
                "203.0.113.7 HTTP/1.0 200 /uwsgi-log-line",
                "127.0.0.1 HTTP/1.0 200 /http-log-line"
            ]
        );
    }

    #[test]
    fn a_streamed_response_waits_for_a_slow_reader_and_gives_up_on_a_stalled_one() {
        let settings = Settings {
            socket_timeout: Duration::from_secs(1),
            ..quiet()
        };
        with_loop(settings, |addr| {
            // 16 MiB, far past what the loop queues and the sockets hold, read slowly.
            let mut slow = BufReader::new(connect(addr));
            slow.get_mut()
                .write_all(b"GET /stream/256 HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut line = String::new();
            slow.read_line(&mut line).unwrap();
            assert_eq!(line, "HTTP/1.1 200 OK\r\n");
            std::thread::sleep(Duration::from_millis(300));
            let mut head = String::new();
            loop {
                let mut h = String::new();
                slow.read_line(&mut h).unwrap();
                if h == "\r\n" {
                    break;
                }
                head.push_str(&h);
            }
            assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
            let mut body = Vec::new();
            loop {
                let mut size = String::new();
                slow.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; n + 2];
                slow.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
                if body.len() % (4 << 20) == 0 {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            assert_eq!(body.len(), 256 * 64 * 1024);
            assert!(
                body.chunks(64 * 1024)
                    .enumerate()
                    .all(|(i, p)| p.iter().all(|&b| b == piece_byte(i)))
            );
            // A client that reads nothing: after socket-timeout the app's write fails, the
            // connection is closed, and the loop serves others.
            let mut stalled = connect(addr);
            stalled
                .write_all(b"GET /stream/256 HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut other = BufReader::new(connect(addr));
            other
                .get_mut()
                .write_all(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            assert_eq!(response(&mut other).2, b"/other:");
            let mut got = Vec::new();
            let _ = stalled.read_to_end(&mut got);
            assert!(got.len() < 256 * 64 * 1024, "{} bytes", got.len());
        });
    }

    /// Records what the scoreboard says of its core while it serves (a harakiri would read it
    /// then).
    struct Peek<'c>(CoreSlot<'c>, std::sync::Mutex<Vec<u64>>);

    impl App for Peek<'_> {
        fn call(&self, request: Request, response: &mut Response<'_>) -> Result<(), AppError> {
            self.1
                .lock()
                .unwrap()
                .push(self.0.get(CoreField::ResponseStarted));
            Echo.call(request, response)
        }
    }

    #[test]
    fn a_harakiri_504_cannot_overtake_a_pipelined_response_still_queued() {
        let words: Vec<std::sync::atomic::AtomicU64> = (0..liege_proto::scoreboard::words(1, 1))
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect();
        let sb = board(1, &words);
        let app = Peek(sb.worker(1).core(0), std::sync::Mutex::default());
        let (l, addr) = listening(Proto::Http);
        with_shared(&quiet(), &app, Some((sb, 1)), &[l], |shared| {
            let mut lp = Loop::new(shared, 0).unwrap();
            // A client with a small receive buffer, so that the first answer (under the 1 MiB
            // that ends a burst) cannot all go out before the second request runs.
            let fd = rustix::net::socket(
                rustix::net::AddressFamily::INET,
                rustix::net::SocketType::STREAM,
                None,
            )
            .unwrap();
            rustix::net::sockopt::set_socket_recv_buffer_size(&fd, 4096).unwrap();
            rustix::net::connect(&fd, &addr).unwrap();
            let mut c = TcpStream::from(fd);
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            // And a small send buffer on the worker's side (autotuned, it takes 900 KB at once).
            turn_until(&mut lp, "the connection is accepted", |lp| lp.live == 1);
            for conn in conns(&lp) {
                rustix::net::sockopt::set_socket_send_buffer_size(&conn.fd, 4096).unwrap();
            }
            c.write_all(
                b"GET /big/900000 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
            )
            .unwrap();
            let mut r = BufReader::new(c);
            std::thread::scope(|s| {
                let reader = s.spawn(move || {
                    assert_eq!(response(&mut r).2.len(), 900_000);
                    response(&mut r).2
                });
                turn_until(&mut lp, "both answers are read", |_| reader.is_finished());
                assert_eq!(reader.join().unwrap(), b"/2:");
            });
        });
        // While the app ran the second request, bytes of the first were still queued: a 504
        // written by the master then would reach the client first, as the first answer.
        let seen = app.1.into_inner().unwrap();
        assert_eq!(seen, [0, 1]);
    }

    #[test]
    fn an_error_answer_lingers_so_a_client_still_sending_reads_it() {
        let settings = Settings {
            limit_post: 100,
            disable_logging: true,
            ..Settings::default()
        };
        with_loop(settings, |addr| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n")
                .unwrap();
            std::thread::sleep(Duration::from_millis(100));
            // The 413 is out and the server closed its side; the client, unaware, goes on
            // sending its body. Without lingering, the server's close of a socket with unread
            // input resets the connection and these writes fail.
            let piece = vec![b'a'; 64 * 1024];
            for _ in 0..32 {
                s.write_all(&piece)
                    .expect("writes after the 413 are not reset");
            }
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            assert_eq!(response(&mut BufReader::new(s)).0, 413);
        });
    }

    #[test]
    fn a_connection_that_never_sends_is_closed_after_the_socket_timeout() {
        let settings = Settings {
            socket_timeout: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(60),
            disable_logging: true,
            ..Settings::default()
        };
        with_loop(settings, |addr| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 16];
            let start = Instant::now();
            let n = std::io::Read::read(&mut s, &mut buf).unwrap_or(0);
            assert_eq!(n, 0, "closed without an answer");
            assert!(
                start.elapsed() < Duration::from_secs(8),
                "closed by the socket timeout"
            );
        });
    }

    /// This process's CPU time so far, in clock ticks (utime + stime of /proc/self/stat).
    fn cpu_ticks(file: &std::fs::File) -> u64 {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; 4096];
        let n = file.read_at(&mut buf, 0).unwrap();
        let stat = String::from_utf8_lossy(&buf[..n]).into_owned();
        let rest = stat.rsplit_once(") ").unwrap().1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 and 15 of the line; 3 is the first after the name.
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    #[test]
    fn out_of_descriptors_pauses_accepting_instead_of_spinning() {
        const NAME: &str =
            "event_loop::tests::out_of_descriptors_pauses_accepting_instead_of_spinning";
        // The descriptor limit is the process's: run in a process of its own.
        if std::env::var_os("LIEGE_T_EMFILE_CHILD").is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", NAME, "--test-threads", "1", "--nocapture"])
                .env("LIEGE_T_EMFILE_CHILD", "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{text}");
            assert!(text.contains("1 passed"), "the child ran the test: {text}");
            return;
        }
        let settings = Settings {
            disable_logging: true,
            ..Settings::default()
        };
        with_loop(settings, |addr| {
            use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
            // The client's six sockets first, unconnected; then a limit at what is open, so
            // the loop's accepts fail while the connects (which need no descriptor) succeed.
            let socks: Vec<OwnedFd> = (0..6)
                .map(|_| {
                    rustix::net::socket(
                        rustix::net::AddressFamily::INET,
                        rustix::net::SocketType::STREAM,
                        None,
                    )
                    .unwrap()
                })
                .collect();
            let stat = fs_err::File::open("/proc/self/stat")
                .unwrap()
                .into_parts()
                .0;
            let open = fs_err::read_dir("/proc/self/fd").unwrap().count() as u64;
            let old = getrlimit(Resource::Nofile);
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(open),
                    maximum: old.maximum,
                },
            )
            .unwrap();
            let mut clients: Vec<TcpStream> = socks
                .into_iter()
                .map(|fd| {
                    rustix::net::connect(&fd, &addr).unwrap();
                    TcpStream::from(fd)
                })
                .collect();
            for c in &mut clients {
                c.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            }
            std::thread::sleep(Duration::from_millis(200));
            let before = cpu_ticks(&stat);
            std::thread::sleep(Duration::from_secs(1));
            let spent = cpu_ticks(&stat) - before;
            assert!(
                spent < 30,
                "the loop spun: {spent} ticks of CPU in one second"
            );
            // Descriptors come back: the waiting connections are accepted and served.
            setrlimit(Resource::Nofile, old).unwrap();
            for c in clients {
                assert_eq!(response(&mut BufReader::new(c)).2, b"/x:");
            }
        });
    }
}
