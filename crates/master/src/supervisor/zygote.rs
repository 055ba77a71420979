//! Prefork mode: a zygote (the worker executable in role `zygote`) loads the app once and
//! forks each worker the master asks for, with `CLONE_PARENT`, so the workers are the
//! master's own children. The master adopts each by pidfd, after checking it is its child.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use liege_proto::handoff::{Role, ZygoteReply};
use rustix::event::epoll;
use rustix::io::Errno;
use rustix::net::{RecvFlags, SocketFlags};
use rustix::process::Signal;

use super::{Generation, Gone, Kind, Proc, Supervisor, TOKEN_ZYGOTE};
use crate::spawn;
use crate::{RunError, log};

/// A generation's zygote link.
#[derive(Debug)]
pub(super) struct Zygote {
    /// The master's end of the seqpacket pair.
    pub(super) sock: OwnedFd,
    /// Whether its process runs (it is in `procs`).
    pub(super) alive: bool,
    /// Spawn requests sent and not answered: (slot, worker id).
    pub(super) pending: Vec<(usize, usize)>,
}

impl Supervisor<'_> {
    /// Starts generation `g`'s zygote, handing it its end of a seqpacket pair.
    pub(super) fn spawn_zygote(
        &mut self,
        g: &mut Generation,
        now: Instant,
    ) -> Result<(), RunError> {
        let setup = |e: Errno| RunError::Setup {
            step: "the zygote socket",
            source: e.into(),
        };
        let (ours, theirs) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(setup)?;
        // Non-blocking on the master's side only (the flag belongs to each end's own open
        // file description): the zygote may block on its end.
        rustix::io::ioctl_fionbio(&ours, true).map_err(setup)?;
        let child = {
            let h = self.handoff(g).ok_or_else(|| RunError::Setup {
                step: "the zygote",
                source: std::io::Error::other("no scoreboard"),
            })?;
            spawn::spawn(&h, Role::Zygote, None, Some(theirs.as_fd())).map_err(|e| {
                RunError::Setup {
                    step: "the zygote",
                    source: std::io::Error::other(e),
                }
            })?
        };
        drop(theirs);
        epoll::add(
            &self.epoll,
            &ours,
            epoll::EventData::new_u64(TOKEN_ZYGOTE + g.number),
            epoll::EventFlags::IN,
        )
        .map_err(setup)?;
        log!(
            "spawned zygote (pid {}) for generation {}: it loads the app once and forks the workers",
            child.pid,
            g.number
        );
        self.procs.push(Proc {
            pid: child.pid,
            pidfd: child.pidfd,
            generation: g.number,
            kind: Kind::Zygote,
            spawned: now,
            stop: None,
            killed: false,
            harakiri: false,
        });
        g.zygote = Some(Zygote {
            sock: ours,
            alive: true,
            pending: Vec::new(),
        });
        Ok(())
    }

    /// Reads a zygote's replies.
    pub(super) fn zygote_readable(&mut self, number: u64) {
        let mut buf = [0u8; 512];
        loop {
            let Some(g) = self.generations.iter().find(|g| g.number == number) else {
                return;
            };
            let Some(z) = &g.zygote else {
                return;
            };
            let n = match rustix::net::recv(&z.sock, &mut buf, RecvFlags::DONTWAIT) {
                Ok((0, _)) | Err(Errno::CONNRESET) => {
                    // The zygote closed its end: it is gone or going; its exit is reaped.
                    let _ = epoll::delete(&self.epoll, &z.sock);
                    return;
                }
                Ok((n, _)) => n,
                Err(Errno::INTR) => continue,
                Err(_) => return,
            };
            let text = String::from_utf8_lossy(&buf[..n.min(buf.len())]).into_owned();
            match ZygoteReply::decode(&text) {
                Ok(ZygoteReply::Spawned { id, pid }) => self.zygote_spawned(number, id, pid),
                Ok(ZygoteReply::Failed { id, reason }) => {
                    let Some((slot, worker)) = self.take_pending(number, id) else {
                        continue;
                    };
                    log!("the zygote could not fork worker {worker}: {reason}");
                    let board = self.generation(number).map_or(0, |g| g.board);
                    self.spawn_failed(board, slot, worker, Instant::now());
                }
                Err(e) => log!("zygote of generation {number}: {e}"),
            }
        }
    }

    pub(super) fn take_pending(&mut self, number: u64, slot: u32) -> Option<(usize, usize)> {
        let z = self
            .generations
            .iter_mut()
            .find(|g| g.number == number)?
            .zygote
            .as_mut()?;
        let i = z
            .pending
            .iter()
            .position(|(s, _)| u32::try_from(*s).ok() == Some(slot))?;
        Some(z.pending.swap_remove(i))
    }

    pub(super) fn zygote_spawned(&mut self, number: u64, slot: u32, pid: i32) {
        let now = Instant::now();
        let Some((slot, id)) = self.take_pending(number, slot) else {
            log!(
                "the zygote of generation {number} names a worker slot {slot} it was not asked for"
            );
            return;
        };
        let board = self.generation(number).map_or(0, |g| g.board);
        let respawn = self.seats.get(id - 1).is_some_and(|s| s.spawns > 1);
        if let Some(i) = self.unknown_reaped.iter().position(|(p, _, _)| *p == pid) {
            // It died before its reply arrived, and was reaped as an unknown pid.
            let (_, status, reaped) = self.unknown_reaped.swap_remove(i);
            let gone = Gone {
                pid,
                generation: number,
                kind: Kind::Worker { id, slot, board },
                spawned: reaped,
                told_to_stop: false,
                harakiri: false,
            };
            self.process_gone(&gone, status, reaped);
            return;
        }
        match spawn::adopt(pid) {
            Ok(child) => {
                if respawn {
                    log!(
                        "respawned worker {id} (new pid {}) from the zygote",
                        child.pid
                    );
                } else {
                    log!("spawned worker {id} (pid {}) from the zygote", child.pid);
                }
                let p = Proc {
                    pid: child.pid,
                    pidfd: child.pidfd,
                    generation: number,
                    kind: Kind::Worker { id, slot, board },
                    spawned: now,
                    stop: None,
                    killed: false,
                    harakiri: false,
                };
                if self.stopping.is_some() {
                    p.signal(Signal::INT);
                }
                self.procs.push(p);
            }
            Err(e) => {
                log!(
                    "the zygote says it forked worker {id} as pid {pid}, but that is no child of the master ({e})"
                );
                self.spawn_failed(board, slot, id, now);
            }
        }
    }
}
