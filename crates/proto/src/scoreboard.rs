//! The scoreboard: a block of shared memory, a `u64` word each field, that the master and its
//! workers both map. A worker writes its own slot (state, counters, the request it is serving);
//! the master reads every slot for harakiri, stats and graceful reloads, and writes the counters
//! only it knows (respawns, harakiri kills). The master never acts on a pid read from here: it
//! keeps its own pidfds.
//!
//! Layout: [`HEADER_WORDS`] words of header, then one slot per worker, each
//! [`WORKER_WORDS`] words followed by `cores` core slots of [`CORE_WORDS`] words (a core is one
//! interpreter thread of the worker).

use std::sync::atomic::{AtomicU64, Ordering};

/// Words before the first worker slot.
pub const HEADER_WORDS: usize = 4;
/// Words of a worker's own fields.
pub const WORKER_WORDS: usize = 16;
/// Words of one core (thread) of a worker: [`CoreField`]s, then [`LABEL_WORDS`] words holding
/// the request being served (`GET /path`, truncated) for the harakiri log line.
pub const CORE_WORDS: usize = 4 + LABEL_WORDS;
/// Words of a core's request label (8 bytes each).
pub const LABEL_WORDS: usize = 8;
/// Written at word 0, so a worker can tell it mapped a scoreboard.
pub const MAGIC: u64 = 0x6c69_6567_6573_6231; // "liegesb1"

/// How many words a scoreboard of `workers` workers with `cores` cores each takes.
pub const fn words(workers: usize, cores: usize) -> usize {
    HEADER_WORDS + workers * (WORKER_WORDS + cores * CORE_WORDS)
}

/// What a worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum State {
    /// No process in this slot.
    Empty = 0,
    /// Started, loading the app.
    Loading = 1,
    /// Accepting connections.
    Accepting = 2,
    /// Told to stop: finishes its requests, accepts no more.
    Stopping = 3,
}

impl State {
    fn from_word(w: u64) -> State {
        match w {
            1 => State::Loading,
            2 => State::Accepting,
            3 => State::Stopping,
            _ => State::Empty,
        }
    }

    /// uWSGI's name for the state in the stats JSON.
    pub fn uwsgi_name(self, busy: bool) -> &'static str {
        match self {
            State::Empty | State::Loading => "cheap",
            State::Stopping => "pause",
            State::Accepting if busy => "busy",
            State::Accepting => "idle",
        }
    }
}

/// A worker's fields (word offsets inside its slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerField {
    /// The worker's pid as it sees it (for stats only).
    Pid = 0,
    /// A [`State`].
    State = 1,
    /// Requests served since the worker started.
    Requests = 2,
    /// Requests whose app raised an exception.
    Exceptions = 3,
    /// Times the master killed this slot's worker for harakiri (master-written).
    HarakiriCount = 4,
    /// Times this slot's worker was respawned (master-written).
    RespawnCount = 5,
    /// Moving average of the request time, in microseconds.
    AvgRtMicros = 6,
    /// Resident memory in bytes, measured after each request.
    RssBytes = 7,
    /// Bytes sent to clients.
    TxBytes = 8,
    /// When the worker was spawned, unix seconds (master-written).
    LastSpawn = 9,
    /// Requests served from static files.
    StaticRequests = 10,
    /// Client connections the worker holds open now (all its threads). Workers read each
    /// other's to share new connections evenly.
    Connections = 11,
}

/// A core's fields (word offsets inside the core slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreField {
    /// When the request being served started, in CLOCK_MONOTONIC microseconds; 0 when idle.
    RequestStart = 0,
    /// The client's socket descriptor in the worker, plus one; 0 when idle. The master takes a
    /// copy with `pidfd_getfd` to answer 504 on harakiri.
    ClientFdPlusOne = 1,
    /// 1 once the response head went out (then harakiri cannot answer 504).
    ResponseStarted = 2,
    /// Requests this core served.
    Requests = 3,
}

/// A view of the scoreboard's words.
#[derive(Debug, Clone, Copy)]
pub struct Scoreboard<'a> {
    words: &'a [AtomicU64],
    workers: usize,
    cores: usize,
}

/// The scoreboard's memory is too small for the given shape.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("scoreboard of {have} words cannot hold {workers} workers of {cores} cores")]
pub struct TooSmall {
    pub have: usize,
    pub workers: usize,
    pub cores: usize,
}

impl<'a> Scoreboard<'a> {
    /// A view of `words` for `workers` workers of `cores` cores each.
    pub fn new(words: &'a [AtomicU64], workers: usize, cores: usize) -> Result<Self, TooSmall> {
        if words.len() < self::words(workers, cores) {
            return Err(TooSmall {
                have: words.len(),
                workers,
                cores,
            });
        }
        Ok(Scoreboard {
            words,
            workers,
            cores,
        })
    }

    /// Writes the header (the master does, once).
    pub fn init(&self) {
        self.words[0].store(MAGIC, Ordering::Relaxed);
        self.words[1].store(self.workers as u64, Ordering::Relaxed);
        self.words[2].store(self.cores as u64, Ordering::Relaxed);
    }

    /// The shape written in the header: (workers, cores), if the magic is there.
    pub fn shape(words: &[AtomicU64]) -> Option<(usize, usize)> {
        if words.len() < HEADER_WORDS || words[0].load(Ordering::Relaxed) != MAGIC {
            return None;
        }
        let w = usize::try_from(words[1].load(Ordering::Relaxed)).ok()?;
        let c = usize::try_from(words[2].load(Ordering::Relaxed)).ok()?;
        Some((w, c))
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn cores(&self) -> usize {
        self.cores
    }

    /// Worker `id` (1-based, as in uWSGI).
    pub fn worker(&self, id: usize) -> WorkerSlot<'a> {
        assert!(
            id >= 1 && id <= self.workers,
            "worker {id} out of 1..={}",
            self.workers
        );
        let size = WORKER_WORDS + self.cores * CORE_WORDS;
        let start = HEADER_WORDS + (id - 1) * size;
        WorkerSlot {
            words: &self.words[start..start + size],
            cores: self.cores,
        }
    }
}

/// One worker's slot.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSlot<'a> {
    words: &'a [AtomicU64],
    cores: usize,
}

impl<'a> WorkerSlot<'a> {
    pub fn get(&self, f: WorkerField) -> u64 {
        self.words[f as usize].load(Ordering::Relaxed)
    }

    pub fn set(&self, f: WorkerField, v: u64) {
        self.words[f as usize].store(v, Ordering::Relaxed);
    }

    pub fn add(&self, f: WorkerField, v: u64) {
        self.words[f as usize].fetch_add(v, Ordering::Relaxed);
    }

    /// Subtracts `v` from a counter (a gauge such as [`WorkerField::Connections`]).
    pub fn sub(&self, f: WorkerField, v: u64) {
        self.words[f as usize].fetch_sub(v, Ordering::Relaxed);
    }

    pub fn state(&self) -> State {
        State::from_word(self.words[WorkerField::State as usize].load(Ordering::Acquire))
    }

    pub fn set_state(&self, s: State) {
        self.words[WorkerField::State as usize].store(s as u64, Ordering::Release);
    }

    /// Clears everything a worker writes, for a new process in this slot (the master-written
    /// counters stay).
    pub fn reset(&self) {
        for f in [
            WorkerField::Pid,
            WorkerField::State,
            WorkerField::Requests,
            WorkerField::Exceptions,
            WorkerField::AvgRtMicros,
            WorkerField::RssBytes,
            WorkerField::TxBytes,
            WorkerField::StaticRequests,
            WorkerField::Connections,
        ] {
            self.set(f, 0);
        }
        for c in 0..self.cores {
            for i in 0..CORE_WORDS {
                self.core(c).words[i].store(0, Ordering::Relaxed);
            }
        }
    }

    pub fn cores(&self) -> usize {
        self.cores
    }

    /// Core `i` (0-based).
    pub fn core(&self, i: usize) -> CoreSlot<'a> {
        let start = WORKER_WORDS + i * CORE_WORDS;
        CoreSlot {
            words: &self.words[start..start + CORE_WORDS],
        }
    }

    /// Whether any core is serving a request.
    pub fn busy(&self) -> bool {
        (0..self.cores).any(|c| self.core(c).get(CoreField::RequestStart) != 0)
    }
}

/// One core's slot.
#[derive(Debug, Clone, Copy)]
pub struct CoreSlot<'a> {
    words: &'a [AtomicU64],
}

impl CoreSlot<'_> {
    pub fn get(&self, f: CoreField) -> u64 {
        self.words[f as usize].load(Ordering::Acquire)
    }

    pub fn set(&self, f: CoreField, v: u64) {
        self.words[f as usize].store(v, Ordering::Release);
    }

    /// Marks a request as started on client descriptor `fd` at `now_us`.
    pub fn begin(&self, fd: i32, now_us: u64) {
        self.set(CoreField::ResponseStarted, 0);
        self.set(
            CoreField::ClientFdPlusOne,
            u64::try_from(fd).map_or(0, |f| f + 1),
        );
        self.set(CoreField::RequestStart, now_us.max(1));
    }

    /// Records what is being served (`GET /path?q`), truncated to fit, for the harakiri log.
    pub fn set_label(&self, label: &[u8]) {
        let mut bytes = [0u8; LABEL_WORDS * 8];
        let n = label.len().min(bytes.len());
        bytes[..n].copy_from_slice(&label[..n]);
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            self.words[4 + i].store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
    }

    /// The label [`set_label`](Self::set_label) recorded.
    pub fn label(&self) -> String {
        let mut bytes = Vec::with_capacity(LABEL_WORDS * 8);
        for i in 0..LABEL_WORDS {
            bytes.extend_from_slice(&self.words[4 + i].load(Ordering::Relaxed).to_le_bytes());
        }
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    }

    /// Marks the request as finished.
    pub fn end(&self) {
        self.set(CoreField::RequestStart, 0);
        self.set(CoreField::ClientFdPlusOne, 0);
        self.words[CoreField::Requests as usize].fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn slots_do_not_overlap() {
        let m = mem(words(3, 2));
        let sb = Scoreboard::new(&m, 3, 2).unwrap();
        sb.init();
        assert_eq!(Scoreboard::shape(&m), Some((3, 2)));
        sb.worker(1).set(WorkerField::Requests, 5);
        sb.worker(3).core(1).begin(9, 100);
        assert_eq!(sb.worker(1).get(WorkerField::Requests), 5);
        assert_eq!(sb.worker(2).get(WorkerField::Requests), 0);
        assert!(sb.worker(3).busy());
        assert!(!sb.worker(2).busy());
        assert_eq!(sb.worker(3).core(1).get(CoreField::ClientFdPlusOne), 10);
        let core = sb.worker(3).core(1);
        core.set_label(
            b"GET /a-very-long-path-that-is-longer-than-the-sixty-four-bytes-a-label-holds",
        );
        assert_eq!(core.label().len(), 64);
        core.set_label(b"GET /x");
        assert_eq!(core.label(), "GET /x");
        core.end();
        assert_eq!(core.get(CoreField::Requests), 1);
        assert_eq!(
            m.last().unwrap().load(Ordering::Relaxed),
            0,
            "the label's last word"
        );
    }

    #[test]
    fn connections_is_a_gauge_inside_the_worker_words_and_reset_clears_it() {
        assert!((WorkerField::Connections as usize) < WORKER_WORDS);
        let m = mem(words(2, 1));
        let sb = Scoreboard::new(&m, 2, 1).unwrap();
        let w = sb.worker(1);
        w.add(WorkerField::Connections, 3);
        w.sub(WorkerField::Connections, 1);
        assert_eq!(w.get(WorkerField::Connections), 2);
        assert_eq!(w.core(0).get(CoreField::RequestStart), 0);
        assert_eq!(sb.worker(2).get(WorkerField::Connections), 0);
        w.reset();
        assert_eq!(w.get(WorkerField::Connections), 0);
    }

    #[test]
    fn too_small_is_refused() {
        let m = mem(10);
        assert!(Scoreboard::new(&m, 1, 1).is_err());
    }
}
