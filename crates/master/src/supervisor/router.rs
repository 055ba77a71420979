//! The router gateway of a master run by hand (`liege --http :8080 ...`): started before the
//! master dropped its privileges (`crate::start`), supervised here like a worker: its answers
//! read, respawned with a back-off when it dies, stopped with the instance.

use std::time::Instant;

use liege_proto::router::FromRouter;
use rustix::event::epoll;
use rustix::process::WaitStatus;

use super::{Supervisor, TOKEN_ROUTER, describe};
use crate::log;

impl Supervisor<'_> {
    /// The router's control socket is readable (or writable again).
    pub(super) fn router_event(&mut self) {
        let Some(g) = &mut self.gateway else {
            return;
        };
        let read = g.read();
        for m in read.messages {
            if let FromRouter::Applied { error: Some(e) } = m {
                log!("router: its settings were refused: {e}");
            }
        }
        if let Some(why) = read.closed
            && self.stopping.is_none()
        {
            log!("router: {why}");
        }
        self.router_interest();
    }

    /// Watches the control socket for output too while sends wait for room.
    fn router_interest(&self) {
        let Some(fd) = self.gateway.as_ref().and_then(|g| g.control()) else {
            return;
        };
        let mut flags = epoll::EventFlags::IN;
        if self.gateway.as_ref().is_some_and(|g| g.wants_output()) {
            flags |= epoll::EventFlags::OUT;
        }
        let _ = epoll::modify(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(TOKEN_ROUTER),
            flags,
        );
    }

    /// Whether `pid`, just reaped, was the router (then a respawn is scheduled unless the
    /// instance stops).
    pub(super) fn router_exited(&mut self, pid: i32, status: WaitStatus, now: Instant) -> bool {
        let Some(g) = &mut self.gateway else {
            return false;
        };
        if g.pid() != Some(pid) {
            return false;
        }
        let how = describe(status);
        match g.exited(&how, now) {
            Some(delay) => log!(
                "router (pid {pid}) ended ({how}): respawning it in {} ms",
                delay.as_millis()
            ),
            None => log!("router (pid {pid}) stopped ({how})"),
        }
        true
    }

    /// A respawn that is due.
    pub(super) fn router_step(&mut self, now: Instant) {
        if self.stopping.is_some() {
            return;
        }
        let Some(g) = &mut self.gateway else {
            return;
        };
        if !g.respawn_due(now) {
            return;
        }
        match g.spawn() {
            Ok(pid) => {
                log!("router respawned, pid {pid}");
                if let Some(fd) = g.control() {
                    let _ = epoll::add(
                        &self.epoll,
                        fd,
                        epoll::EventData::new_u64(TOKEN_ROUTER),
                        epoll::EventFlags::IN,
                    );
                }
                self.router_interest();
            }
            Err(e) => {
                let delay = g.exited(&e.to_string(), now).unwrap_or_default();
                log!("{e}: trying again in {} ms", delay.as_millis());
            }
        }
    }

    /// The instance stops: so does the router (its control socket closes; it finishes what it
    /// serves).
    pub(super) fn stop_router(&mut self) {
        if let Some(g) = &mut self.gateway {
            g.stop(Instant::now());
        }
    }

    /// Whether the router is gone (or there is none); kills it past its time.
    pub(super) fn router_gone(&mut self, now: Instant) -> bool {
        let Some(g) = &mut self.gateway else {
            return true;
        };
        if g.kill_if_late(now) {
            log!("the router did not stop in time: SIGKILL");
        }
        g.pid().is_none()
    }
}
