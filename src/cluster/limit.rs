//! The fleet-wide token-endpoint limit: the same GCRA as `issuer::ratelimit` (one
//! theoretical arrival time per key; `burst` at once, then one per `interval`), run as one
//! Lua script so that reading and moving the time is atomic across instances. Time is
//! Redis's own (`TIME`, microseconds), so instances with skewed clocks share one budget.
//! The key expires once its bucket is full again.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

/// KEYS[1] the bucket; ARGV interval and tolerance in µs. Returns 0 when the request
/// passes (and counts it), else the µs to wait.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tolerance then
  return tat - now - tolerance
end
local next = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.ceil((next - now) / 1000) + 1)
return 0
";

static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(GCRA));

pub(super) async fn check(
    mut conn: MultiplexedConnection,
    key: String,
    interval: Duration,
    tolerance: Duration,
) -> redis::RedisResult<Result<(), Duration>> {
    let micros = |d: Duration| (d.as_micros() as u64).max(1);
    let wait: u64 = SCRIPT
        .key(key)
        .arg(micros(interval))
        .arg(tolerance.as_micros() as u64)
        .invoke_async(&mut conn)
        .await?;
    Ok(match wait {
        0 => Ok(()),
        us => Err(Duration::from_micros(us)),
    })
}
