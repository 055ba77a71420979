//! The scoreboard the master shares with one generation's workers (and the next, while the
//! shape stays the same).

use std::os::fd::OwnedFd;

use liege_proto::scoreboard::{Scoreboard, WorkerSlot};
use liege_sys::shm::SharedWords;

use crate::RunError;

/// A scoreboard: 2 × `processes` worker slots, so each worker id has a spare slot for the
/// process that replaces it in a reload.
#[derive(Debug)]
pub(super) struct Board {
    pub(super) id: u64,
    pub(super) fd: OwnedFd,
    pub(super) mem: SharedWords,
    pub(super) workers: usize,
    pub(super) cores: usize,
    pub(super) used: Vec<bool>,
}

impl Board {
    pub(super) fn create(id: u64, processes: usize, cores: usize) -> Result<Board, RunError> {
        let workers = processes * 2;
        let (fd, mem) = SharedWords::create(
            "liege-scoreboard",
            liege_proto::scoreboard::words(workers, cores),
        )
        .map_err(|e| RunError::Setup {
            step: "the scoreboard",
            source: std::io::Error::other(e),
        })?;
        let board = Board {
            id,
            fd,
            mem,
            workers,
            cores,
            used: vec![false; workers + 1],
        };
        board.sb().init();
        Ok(board)
    }

    pub(super) fn sb(&self) -> Scoreboard<'_> {
        // The memory was made for exactly this shape in `create`.
        Scoreboard::new(self.mem.words(), self.workers, self.cores)
            .unwrap_or_else(|e| unreachable!("{e}"))
    }

    pub(super) fn slot(&self, slot: usize) -> WorkerSlot<'_> {
        self.sb().worker(slot)
    }
}
