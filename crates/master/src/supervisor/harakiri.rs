//! Harakiri: a request that runs longer than `harakiri` seconds gets its worker killed; its
//! client gets `504 Gateway Timeout` if no response had started, through a copy of the
//! client socket the master takes from the frozen worker (`pidfd_getfd`).

use std::os::fd::OwnedFd;
use std::time::Instant;

use liege_proto::scoreboard::{CoreField, WorkerField};
use rustix::net::{SendFlags, Shutdown};
use rustix::process::Signal;

use super::{Kind, Supervisor, monotonic_micros};
use crate::log;

impl Supervisor<'_> {
    /// Kills the workers whose request ran past `harakiri`, answering their client 504.
    pub(super) fn harakiri(&mut self, now: Instant) {
        let now_us = monotonic_micros();
        let mut victims = Vec::new();
        for (i, p) in self.procs.iter().enumerate() {
            let Kind::Worker { slot, board, .. } = p.kind else {
                continue;
            };
            let limit = self.generation(p.generation).map_or(0, |g| g.plan.harakiri);
            if limit == 0 || p.killed {
                continue;
            }
            let Some(b) = self.board(board) else {
                continue;
            };
            let s = b.slot(slot);
            for c in 0..s.cores() {
                let start = s.core(c).get(CoreField::RequestStart);
                if start != 0 && now_us.saturating_sub(start) > limit * 1_000_000 {
                    victims.push((i, c, start, limit));
                    break;
                }
            }
        }
        for (i, core, start, limit) in victims {
            self.kill_for_harakiri(i, core, start, limit, now);
        }
    }

    fn kill_for_harakiri(&mut self, i: usize, core: usize, start: u64, limit: u64, now: Instant) {
        let Some(p) = self.procs.get(i) else {
            return;
        };
        let Kind::Worker { id, slot, board } = p.kind else {
            return;
        };
        let Some(b) = self.board(board) else {
            return;
        };
        // Frozen, the worker cannot finish (or start) a response while the master looks.
        p.signal(Signal::STOP);
        let c = b.slot(slot).core(core);
        if c.get(CoreField::RequestStart) != start {
            // It finished the request meanwhile.
            p.signal(Signal::CONT);
            return;
        }
        let label = c.label();
        let ran = monotonic_micros().saturating_sub(start) / 1_000_000;
        let fd_plus_one = c.get(CoreField::ClientFdPlusOne);
        if c.get(CoreField::ResponseStarted) == 0 && fd_plus_one > 0 {
            let fd = i32::try_from(fd_plus_one - 1).unwrap_or(-1);
            match rustix::process::pidfd_getfd(
                &p.pidfd,
                fd,
                rustix::process::PidfdGetfdFlags::empty(),
            ) {
                Ok(client) => answer_504(&client, limit),
                Err(e) => log!(
                    "cannot take the client socket of {} to answer 504: {e}",
                    p.what()
                ),
            }
        }
        p.signal(Signal::KILL);
        log!("HARAKIRI {}: \"{label}\" ran for {ran} s", p.what());
        let b = b.slot(slot);
        b.add(WorkerField::HarakiriCount, 1);
        if let Some(p) = self.procs.get_mut(i) {
            p.killed = true;
            p.harakiri = true;
            p.stop.get_or_insert(now);
        }
        if let Some(seat) = self.seats.get_mut(id - 1) {
            seat.harakiri += 1;
        }
    }
}

/// Writes `504 Gateway Timeout` to a client whose request harakiri cut short.
fn answer_504(client: &OwnedFd, limit: u64) {
    let body = format!("the request ran longer than harakiri allows ({limit} s)\n");
    let response = format!(
        "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = rustix::net::send(
        client,
        response.as_bytes(),
        SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
    );
    let _ = rustix::net::shutdown(client, Shutdown::Both);
}
