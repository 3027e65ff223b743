//! The per-request metrics (`portcullis_http_requests_total` by route and status, and
//! `portcullis_http_request_duration_seconds` by route), with their handles kept per
//! connection.
//!
//! `counter!`/`histogram!` with labels build a key, clone its labels and look it up in the
//! registry on every call (~3 % of a keep-alive request's instructions, BENCHMARKS.md round
//! 2). A connection mostly repeats the same route and status, so it keeps the handles of
//! its last (route, status) and reuses them; anything else registers as before. The lock is
//! the connection's own (contended only by concurrent HTTP/2 streams), never a global one.

use std::sync::{Arc, Mutex};

use metrics::{Counter, Histogram, SharedString};

use super::metrics as m;

/// The last request's metric handles on one connection.
#[derive(Debug, Default)]
pub struct RequestMetrics(Mutex<Option<Entry>>);

#[derive(Debug)]
struct Entry {
    route: Option<Arc<str>>,
    status: u16,
    requests: Counter,
    duration: Histogram,
}

impl RequestMetrics {
    /// Count one request and record its duration under `route` (`none` when no route
    /// matched) and `status`.
    pub fn record(&self, route: Option<&Arc<str>>, status: u16, seconds: f64) {
        let mut last = match self.0.lock() {
            Ok(g) => g,
            // A panic elsewhere while holding it left only a cache behind: keep using it.
            Err(poisoned) => poisoned.into_inner(),
        };
        let hit = last
            .as_ref()
            .is_some_and(|e| e.status == status && e.route.as_ref() == route);
        if !hit {
            *last = Some(Entry::register(route, status));
        }
        if let Some(e) = last.as_ref() {
            e.requests.increment(1);
            e.duration.record(seconds);
        }
    }
}

impl Entry {
    fn register(route: Option<&Arc<str>>, status: u16) -> Entry {
        // The route label shares the route's Arc<str> instead of copying it.
        let label: SharedString = match route {
            Some(r) => r.clone().into(),
            None => SharedString::const_str("none"),
        };
        Entry {
            route: route.cloned(),
            status,
            requests: metrics::counter!(m::HTTP_REQUESTS_TOTAL, "route" => label.clone(), "status" => status.to_string()),
            duration: metrics::histogram!(m::HTTP_REQUEST_DURATION_SECONDS, "route" => label),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_the_handles_only_for_the_same_route_and_status() {
        let rm = RequestMetrics::default();
        let a: Arc<str> = Arc::from("a");
        rm.record(Some(&a), 200, 0.001);
        let first = rm.0.lock().unwrap().as_ref().map(|e| e.status);
        assert_eq!(first, Some(200));
        rm.record(Some(&a), 404, 0.001);
        assert_eq!(rm.0.lock().unwrap().as_ref().map(|e| e.status), Some(404));
        rm.record(None, 404, 0.001);
        assert!(rm
            .0
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|e| e.route.is_none()));
    }
}
