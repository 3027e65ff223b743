//! Idle pooled HTTP/1.1 connections of one endpoint, in one lane per core.
//!
//! A connection is checked in when its response body has been read to the end (no task,
//! no wait: [`super::detach::DrainOnDrop`] hands it back), and checked out by the next
//! request if hyper says it can take one. In the per-core runtime every core uses its own lane, so
//! a connection is only ever used by the core whose I/O driver it is registered with, and
//! its wake-ups stay on that core; with one lane (work-stealing) the queue is shared by
//! every worker thread.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use hyper::client::conn::http1;

use crate::body::ProxyBody;

/// How many lanes pools built from now on have: the largest count asked for so far.
static LANES: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// This thread's lane (0 outside the per-core runtime).
    static LANE: Cell<usize> = const { Cell::new(0) };
}

/// Pools built after this call have at least `n` lanes (one per per-core runtime thread).
pub fn reserve_lanes(n: usize) {
    LANES.fetch_max(n.max(1), Ordering::Relaxed);
}

/// The calling thread uses lane `i` (a per-core runtime thread, at its start).
pub fn enter_lane(i: usize) {
    LANE.with(|l| l.set(i));
}

pub struct Idle {
    pub tx: http1::SendRequest<ProxyBody>,
    pub since: Instant,
}

/// The idle connections of one endpoint (see the module docs).
pub struct IdlePool {
    lanes: Box<[ArrayQueue<Idle>]>,
}

impl IdlePool {
    /// At most `max` idle connections in all, shared out over the lanes (at least one each).
    pub fn new(max: usize) -> IdlePool {
        let n = LANES.load(Ordering::Relaxed);
        let per_lane = max.div_ceil(n).max(1);
        IdlePool {
            lanes: (0..n).map(|_| ArrayQueue::new(per_lane)).collect(),
        }
    }

    fn lane(&self) -> &ArrayQueue<Idle> {
        let i = LANE.with(Cell::get) % self.lanes.len();
        &self.lanes[i]
    }

    /// Give `tx` back; a full lane drops it, which closes the connection.
    pub fn check_in(&self, tx: http1::SendRequest<ProxyBody>) {
        let _ = self.lane().push(Idle {
            tx,
            since: Instant::now(),
        });
    }

    /// A connection idle for less than `max_idle` that can take a request now; closed or
    /// expired ones are dropped on the way. One still finishing its last exchange (hyper's
    /// connection task has not yet seen the end of that response, or the request body is
    /// still being sent) goes back to the lane and the caller opens a new connection: a
    /// request never waits for another's exchange.
    pub async fn check_out(&self, max_idle: Duration) -> Option<http1::SendRequest<ProxyBody>> {
        // This thread's lane, looked up once: a per-core task never changes threads, and
        // work-stealing has one lane.
        let lane = self.lane();
        while let Some(mut c) = lane.pop() {
            if c.since.elapsed() >= max_idle {
                continue;
            }
            match std::future::poll_fn(|cx| Poll::Ready(c.tx.poll_ready(cx))).await {
                Poll::Ready(Ok(())) => return Some(c.tx),
                Poll::Ready(Err(_)) => continue,
                Poll::Pending => {
                    let _ = lane.push(c);
                    return None;
                }
            }
        }
        None
    }
}
