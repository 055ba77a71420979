//! The stats socket: each connection gets one JSON document (uWSGI's layout), then is closed.

use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{SendFlags, Shutdown, SocketFlags};

use super::{Kind, Supervisor};
use crate::{sockets, stats};

impl Supervisor<'_> {
    /// Answers every waiting connection on the stats socket.
    pub(super) fn serve_stats(&mut self) {
        loop {
            let Some(listener) = &self.stats else {
                return;
            };
            let conn = match rustix::net::accept_with(&listener.fd, SocketFlags::CLOEXEC) {
                Ok(c) => c,
                Err(Errno::INTR) => continue,
                Err(_) => return,
            };
            let doc = self.stats_document();
            let mut text = doc.to_string();
            text.push('\n');
            // A client that does not read cannot stall the master for long.
            let _ = rustix::net::sockopt::set_socket_timeout(
                &conn,
                rustix::net::sockopt::Timeout::Send,
                Some(Duration::from_millis(500)),
            );
            let mut rest = text.as_bytes();
            while !rest.is_empty() {
                match rustix::net::send(&conn, rest, SendFlags::NOSIGNAL) {
                    Ok(0) => break,
                    Ok(n) => rest = &rest[n.min(rest.len())..],
                    Err(Errno::INTR) => {}
                    Err(_) => break,
                }
            }
            let _ = rustix::net::shutdown(&conn, Shutdown::Write);
        }
    }

    fn stats_document(&mut self) -> serde_json::Value {
        let backlog = self.current().map_or(0, |g| g.plan.listen);
        let socket_names: Vec<(String, &'static str)> = self
            .current()
            .map(|g| {
                g.plan
                    .sockets
                    .iter()
                    .map(|s| (s.name.clone(), s.proto.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        let sockets: Vec<stats::SocketStat> = self
            .sockets
            .iter()
            .zip(socket_names)
            .map(|(b, (name, proto))| {
                let (queue, max_queue) = sockets::queue(b, backlog);
                stats::SocketStat {
                    name,
                    proto,
                    queue,
                    max_queue,
                }
            })
            .collect();
        let current = self.current_number();
        let processes = self.current().map_or(0, |g| g.plan.processes);
        let mut workers = Vec::new();
        for id in 1..=processes {
            // The process serving the id: the current generation's, else the newest.
            let p = self
                .procs
                .iter()
                .filter(|p| matches!(p.kind, Kind::Worker { id: i, .. } if i == id))
                .max_by_key(|p| (p.generation == current && p.stop.is_none(), p.generation));
            let seat = self.seats.get(id - 1);
            let (rss, vsz) = p.map_or((0, 0), |p| stats::memory(p.pid));
            let facts = stats::WorkerFacts {
                id,
                pid: p.map_or(0, |p| p.pid),
                requests_before: seat.map_or(0, |s| s.requests_before),
                respawn_count: seat.map_or(0, |s| s.spawns.saturating_sub(1)),
                harakiri_count: seat.map_or(0, |s| s.harakiri),
                rss,
                vsz,
            };
            let slot = p.and_then(|p| match p.kind {
                Kind::Worker { slot, board, .. } => self.board(board).map(|b| b.slot(slot)),
                Kind::Zygote => None,
            });
            workers.push(stats::worker(&facts, slot));
        }
        let master = stats::MasterFacts {
            pid: rustix::process::getpid().as_raw_nonzero().get(),
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
            cwd: std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        };
        stats::document(&master, &sockets, workers)
    }
}
