//! Respawn throttling: a worker (or zygote) that keeps dying right after it starts is respawned
//! after a delay that doubles each time, so a broken app does not make the master fork in a
//! tight loop; one that lived a while, or exited 0 to be recycled, comes back at once.

use std::time::Duration;

/// A process that dies sooner than this after its spawn died "quickly".
pub(crate) const QUICK: Duration = Duration::from_secs(1);
/// The first delay after a quick death.
pub(crate) const FIRST: Duration = Duration::from_millis(125);
/// The longest delay.
pub(crate) const MOST: Duration = Duration::from_secs(8);

/// The back-off state of one worker id (or of the zygote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST }
    }
}

impl Backoff {
    /// How long to wait before respawning a process that lived `lived` and exited with
    /// `recycled` (status 0, or killed by the master on purpose) or not.
    pub(crate) fn delay(&mut self, lived: Duration, recycled: bool) -> Duration {
        if recycled || lived >= QUICK {
            self.next = FIRST;
            return Duration::ZERO;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MOST);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_deaths_double_up_to_the_cap_and_a_long_life_resets() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(10);
        let delays: Vec<u128> = (0..9).map(|_| b.delay(quick, false).as_millis()).collect();
        assert_eq!(delays, [125, 250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(b.delay(Duration::from_secs(2), false), Duration::ZERO);
        assert_eq!(b.delay(quick, false), FIRST);
    }

    #[test]
    fn a_recycled_worker_comes_back_at_once() {
        let mut b = Backoff::default();
        b.delay(Duration::ZERO, false);
        b.delay(Duration::ZERO, false);
        assert_eq!(b.delay(Duration::ZERO, true), Duration::ZERO);
        assert_eq!(b.delay(Duration::ZERO, false), FIRST);
    }
}
