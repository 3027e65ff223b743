//! The refusal log's rate limit: every refused handshake and refused request is logged at
//! `info` as one structured line, but at most [`LINES_PER_SECOND`] per reason per second,
//! so a flood cannot fill the disk. What a second did not log is counted in
//! `portcullis_log_suppressed_total{reason}` and told in one line at the start of the next
//! second that logs that reason ("N refusal lines suppressed").
//!
//! Only refusals take the lock; a request that is let through never does. Reasons are the
//! fixed `&'static str` labels of the handshake counter and the access log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::metrics as m;

/// Refusal lines logged per reason per second; the rest are counted.
pub const LINES_PER_SECOND: u32 = 10;

#[derive(Default)]
struct Window {
    /// Whole seconds since the limiter was made, of the window being counted.
    second: u64,
    logged: u32,
    suppressed: u64,
}

struct Limiter {
    start: Instant,
    windows: Mutex<HashMap<&'static str, Window>>,
}

fn limiter() -> &'static Limiter {
    static L: std::sync::OnceLock<Limiter> = std::sync::OnceLock::new();
    L.get_or_init(|| Limiter {
        start: Instant::now(),
        windows: Mutex::new(HashMap::new()),
    })
}

/// Whether a refusal line for `reason` may be written now (`false`: it was counted as
/// suppressed). Writes the "suppressed" line of the previous window first, when it had any.
pub fn allow(reason: &'static str) -> bool {
    let l = limiter();
    let second = l.start.elapsed().as_secs();
    // A poisoned lock means a panic while counting: log rather than lose the line.
    let Ok(mut windows) = l.windows.lock() else {
        return true;
    };
    let w = windows.entry(reason).or_default();
    if w.second != second {
        if w.suppressed > 0 {
            tracing::info!(
                reason,
                suppressed = w.suppressed,
                "refusal lines suppressed (over {LINES_PER_SECOND} per second for this reason)"
            );
        }
        *w = Window {
            second,
            ..Window::default()
        };
    }
    if w.logged < LINES_PER_SECOND {
        w.logged += 1;
        true
    } else {
        w.suppressed += 1;
        metrics::counter!(m::LOG_SUPPRESSED_TOTAL, "reason" => reason).increment(1);
        false
    }
}
