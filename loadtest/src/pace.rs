//! The request schedule shared by all connections: it hands out numbered tickets until
//! the count or the deadline is reached. In open loop (a fixed rate) ticket `i` carries
//! its intended send time `start + i / rate`, and latency is measured from that time, not
//! from when a busy connection got round to sending it: a stalled server is charged for
//! the queueing it caused (no coordinated omission).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct Schedule {
    start: Instant,
    deadline: Option<Instant>,
    limit: Option<u64>,
    /// Nanoseconds between intended send times (open loop), or `None` (closed loop).
    interval_ns: Option<f64>,
    next: AtomicU64,
    stopped: AtomicBool,
}

/// Permission to send one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub index: u64,
    /// When the request should be sent (open loop only).
    pub intended: Option<Instant>,
}

impl Schedule {
    pub fn new(
        start: Instant,
        duration: Option<Duration>,
        limit: Option<u64>,
        rate: Option<f64>,
    ) -> Schedule {
        Schedule {
            start,
            deadline: duration.map(|d| start + d),
            limit,
            interval_ns: rate.filter(|r| *r > 0.0).map(|r| 1e9 / r),
            next: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// The next ticket, or `None` when the run is over.
    pub fn take(&self) -> Option<Ticket> {
        if self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        if self.limit.is_some_and(|l| index >= l) {
            return None;
        }
        let intended = self.intended(index);
        let due = intended.unwrap_or_else(Instant::now);
        if self.deadline.is_some_and(|d| due >= d) {
            return None;
        }
        Some(Ticket { index, intended })
    }

    /// Intended send time of ticket `index` (open loop), else `None`.
    pub fn intended(&self, index: u64) -> Option<Instant> {
        self.interval_ns
            .map(|ns| self.start + Duration::from_nanos((ns * index as f64) as u64))
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Ends the run early (Ctrl-C, or the idle mode's hold time is over).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    pub fn is_over(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
            || self
                .limit
                .is_some_and(|l| self.next.load(Ordering::Relaxed) >= l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_tickets_are_evenly_spaced_from_start() {
        let start = Instant::now();
        let s = Schedule::new(start, None, Some(3), Some(1000.0));
        let t: Vec<_> = std::iter::from_fn(|| s.take()).collect();
        assert_eq!(t.len(), 3, "count bound");
        assert_eq!(t[0].intended, Some(start));
        assert_eq!(t[1].intended, Some(start + Duration::from_millis(1)));
        assert_eq!(t[2].intended, Some(start + Duration::from_millis(2)));
        assert!(s.is_over());
    }

    #[test]
    fn open_loop_stops_at_the_deadline_even_without_a_count() {
        let start = Instant::now();
        // 10 per second for 1 s: tickets at 0, 0.1, … 0.9 s — exactly 10.
        let s = Schedule::new(start, Some(Duration::from_secs(1)), None, Some(10.0));
        assert_eq!(std::iter::from_fn(|| s.take()).count(), 10);
    }

    #[test]
    fn closed_loop_has_no_intended_time_and_honours_stop() {
        let s = Schedule::new(Instant::now(), Some(Duration::from_secs(60)), None, None);
        assert_eq!(s.take().unwrap().intended, None);
        s.stop();
        assert_eq!(s.take(), None);
        assert!(s.is_over());
    }
}
