//! The stats document: one JSON object in uWSGI's layout (`uwsgi_master_generate_stats`), so
//! that `uwsgitop` and existing dashboards read it. The master writes it to whoever connects to
//! the `stats` socket, then closes the connection.

use serde_json::{Value, json};

use liege_proto::scoreboard::{CoreField, WorkerField, WorkerSlot};

/// One listening socket.
#[derive(Debug, Clone)]
pub(crate) struct SocketStat {
    pub(crate) name: String,
    pub(crate) proto: &'static str,
    pub(crate) queue: u64,
    pub(crate) max_queue: u64,
}

/// The master-side facts about one worker id (what its scoreboard slot does not hold).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkerFacts {
    /// The logical id, 1 to `processes`.
    pub(crate) id: usize,
    /// The pid the master tracks by pidfd; 0 when no process serves this id.
    pub(crate) pid: i32,
    /// Requests served by earlier processes of this id.
    pub(crate) requests_before: u64,
    pub(crate) respawn_count: u64,
    pub(crate) harakiri_count: u64,
    /// Resident and virtual memory in bytes.
    pub(crate) rss: u64,
    pub(crate) vsz: u64,
}

/// The process-wide facts.
#[derive(Debug, Clone)]
pub(crate) struct MasterFacts {
    pub(crate) pid: i32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) cwd: String,
}

/// One worker's entry, from its facts and (if a process serves the id) its slot.
pub(crate) fn worker(facts: &WorkerFacts, slot: Option<WorkerSlot<'_>>) -> Value {
    let get = |f| slot.map_or(0, |s| s.get(f));
    let status = slot.map_or("cheap", |s| s.state().uwsgi_name(s.busy()));
    let accepting = slot.is_some_and(|s| s.state() == liege_proto::scoreboard::State::Accepting);
    let delta = get(WorkerField::Requests);
    let cores: Vec<Value> = slot
        .map(|s| {
            (0..s.cores())
                .map(|c| {
                    let core = s.core(c);
                    json!({
                        "id": c,
                        "requests": core.get(CoreField::Requests),
                        "static_requests": 0,
                        "routed_requests": 0,
                        "offloaded_requests": 0,
                        "write_errors": 0,
                        "read_errors": 0,
                        "in_request": u8::from(core.get(CoreField::RequestStart) != 0),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "id": facts.id,
        "pid": facts.pid,
        "accepting": u8::from(accepting),
        "requests": facts.requests_before + delta,
        "delta_requests": delta,
        "exceptions": get(WorkerField::Exceptions),
        "harakiri_count": facts.harakiri_count,
        "signals": 0,
        "signal_queue": 0,
        "status": status,
        "rss": facts.rss,
        "vsz": facts.vsz,
        "running_time": 0,
        "last_spawn": get(WorkerField::LastSpawn),
        "respawn_count": facts.respawn_count,
        "tx": get(WorkerField::TxBytes),
        "avg_rt": get(WorkerField::AvgRtMicros),
        "apps": [],
        "cores": cores,
    })
}

/// The whole document.
pub(crate) fn document(master: &MasterFacts, sockets: &[SocketStat], workers: Vec<Value>) -> Value {
    let listen_queue = sockets.iter().map(|s| s.queue).max().unwrap_or(0);
    let sockets: Vec<Value> = sockets
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "proto": s.proto,
                "queue": s.queue,
                "max_queue": s.max_queue,
                "shared": 0,
                "can_offload": 0,
            })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "listen_queue": listen_queue,
        "listen_queue_errors": 0,
        "signal_queue": 0,
        "load": listen_queue,
        "pid": master.pid,
        "uid": master.uid,
        "gid": master.gid,
        "cwd": master.cwd,
        "locks": [],
        "sockets": sockets,
        "workers": workers,
    })
}

/// Resident and virtual memory of `pid` in bytes, from /proc/PID/statm; zeros if unreadable.
pub(crate) fn memory(pid: i32) -> (u64, u64) {
    let page = u64::try_from(rustix::param::page_size()).unwrap_or(4096);
    fs_err::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| {
            let mut f = s.split_whitespace().map(|n| n.parse::<u64>().ok());
            let size = f.next()??;
            let resident = f.next()??;
            Some((resident * page, size * page))
        })
        .unwrap_or((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use liege_proto::scoreboard::{Scoreboard, State, words};
    use std::sync::atomic::AtomicU64;

    #[test]
    fn workers_and_sockets_in_uwsgi_layout() {
        let mem: Vec<AtomicU64> = (0..words(2, 2)).map(|_| AtomicU64::new(0)).collect();
        let sb = Scoreboard::new(&mem, 2, 2).unwrap();
        let slot = sb.worker(2);
        slot.set_state(State::Accepting);
        slot.set(WorkerField::Requests, 5);
        slot.set(WorkerField::LastSpawn, 1_700_000_000);
        slot.core(1).begin(7, 10);
        let facts = WorkerFacts {
            id: 1,
            pid: 42,
            requests_before: 10,
            respawn_count: 3,
            harakiri_count: 1,
            rss: 4096,
            vsz: 8192,
        };
        let w = worker(&facts, Some(slot));
        assert_eq!(w["pid"], 42);
        assert_eq!(w["requests"], 15);
        assert_eq!(w["delta_requests"], 5);
        assert_eq!(w["status"], "busy");
        assert_eq!(w["accepting"], 1);
        assert_eq!(w["cores"][1]["in_request"], 1);
        assert_eq!(w["cores"][0]["in_request"], 0);
        assert_eq!(w["last_spawn"], 1_700_000_000);
        let empty = worker(&WorkerFacts { pid: 0, ..facts }, None);
        assert_eq!(empty["status"], "cheap");
        assert_eq!(empty["cores"], json!([]));
        let doc = document(
            &MasterFacts {
                pid: 1,
                uid: 0,
                gid: 0,
                cwd: "/".into(),
            },
            &[SocketStat {
                name: ":8000".into(),
                proto: "http",
                queue: 3,
                max_queue: 100,
            }],
            vec![w, empty],
        );
        assert_eq!(doc["listen_queue"], 3);
        assert_eq!(doc["sockets"][0]["max_queue"], 100);
        assert_eq!(doc["workers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn memory_of_this_process_is_not_zero() {
        let (rss, vsz) = memory(i32::try_from(std::process::id()).unwrap());
        assert!(rss > 0 && vsz >= rss, "{rss} {vsz}");
    }
}
