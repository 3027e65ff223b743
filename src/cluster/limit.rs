//! The fleet-wide token-endpoint limits: the same GCRA as `issuer::ratelimit` (one
//! theoretical arrival time per key; `burst` at once, then one per `interval`), run as one
//! Lua script so that reading and moving the time is atomic across instances. Time is
//! Redis's own (`TIME`, microseconds), so instances with skewed clocks share one budget.
//! A key expires once its bucket is full again.
//!
//! One call checks every bucket of a request in order (the source address's, then the
//! client's) in one round trip: the first bucket that is over the limit ends it, so a
//! request refused by its address spends nothing of its client's budget, and one refused
//! by its client has spent its address's — as two calls in that order would.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

/// KEYS the buckets, in order; ARGV interval and tolerance in µs for each key in turn.
/// Returns `{0, 0}` when the request passes every bucket (and counts it in each), else
/// `{i, µs to wait}` for the first bucket `i` (1-based) over its limit.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  if tat - now > tolerance then
    return {i, tat - now - tolerance}
  end
  local next = tat + interval
  redis.call('SET', key, string.format('%.0f', next), 'PX', math.ceil((next - now) / 1000) + 1)
end
return {0, 0}
";

static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(GCRA));

/// One bucket of a request.
#[derive(Debug, Clone, Copy)]
pub struct Bucket<'a> {
    /// `client` | `address` (part of the Redis key).
    pub kind: &'static str,
    pub key: &'a str,
    pub interval: Duration,
    pub tolerance: Duration,
}

/// Which bucket refused (its index in the call's list), and how long to wait.
pub type Refused = (usize, Duration);

pub(super) async fn check(
    mut conn: MultiplexedConnection,
    prefix: &str,
    buckets: &[Bucket<'_>],
) -> redis::RedisResult<Result<(), Refused>> {
    let micros = |d: Duration| d.as_micros() as u64;
    let mut call = SCRIPT.prepare_invoke();
    for b in buckets {
        call.key(format!("{prefix}limit:{}:{}", b.kind, b.key))
            .arg(micros(b.interval).max(1))
            .arg(micros(b.tolerance));
    }
    let (i, wait): (usize, u64) = call.invoke_async(&mut conn).await?;
    Ok(match i {
        0 => Ok(()),
        i => Err((i - 1, Duration::from_micros(wait))),
    })
}
