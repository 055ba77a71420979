//! Crash-loop throttling (`emperor-throttle`, `emperor-max-throttle`): a vassal that dies
//! before it has served a request waits before its respawn, first `emperor-throttle`
//! milliseconds, then twice as long at each such death, up to `emperor-max-throttle`. Once a
//! vassal has served a request (it is *loyal*) the next death respawns it at once.
//!
//! uWSGI's 2.0 code takes the same options in milliseconds but applies the first one as
//! microseconds and then adds one second per death, halving at the maximum; liege doubles.

use std::time::Duration;

/// The throttle of one vassal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Throttle {
    first: Duration,
    most: Duration,
    next: Duration,
}

impl Throttle {
    pub(crate) fn new(first: Duration, most: Duration) -> Self {
        Throttle {
            first,
            most: most.max(first),
            next: first,
        }
    }

    /// How long to wait before respawning a vassal that died, `loyal` or not.
    pub(crate) fn delay(&mut self, loyal: bool) -> Duration {
        if loyal {
            self.next = self.first;
            return Duration::ZERO;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(self.most);
        delay
    }

    /// Forgets the deaths: the vassal served a request, or its file changed (a fix deserves
    /// a prompt try).
    pub(crate) fn reset(&mut self) {
        self.next = self.first;
    }

    /// The wait the next unloyal death would get.
    pub(crate) fn level(&self) -> Duration {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unloyal_deaths_double_up_to_the_most_and_loyalty_resets() {
        let mut t = Throttle::new(Duration::from_millis(1000), Duration::from_millis(5000));
        let d: Vec<u128> = (0..5).map(|_| t.delay(false).as_millis()).collect();
        assert_eq!(d, [1000, 2000, 4000, 5000, 5000]);
        assert_eq!(t.delay(true), Duration::ZERO);
        assert_eq!(t.delay(false), Duration::from_millis(1000));
        t.delay(false);
        t.reset();
        assert_eq!(t.level(), Duration::from_millis(1000));
    }
}
