//! The harness's own CPU time, from `/proc/self/stat`, to tell when the load client
//! rather than the target is the bottleneck.

use std::time::Duration;

/// Clock ticks per second of `/proc` accounting (USER_HZ, 100 on every Linux ABI).
const USER_HZ: f64 = 100.0;

/// User + system CPU time of this process, all threads.
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat)
}

/// utime + stime from a `/proc/PID/stat` line (fields 14 and 15; the command name in
/// field 2 may hold spaces and parentheses, so fields are counted after the last `)`).
pub fn parse_stat(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) / USER_HZ))
}

/// True when the client used at least 85 % of the cores its runtime may use.
pub fn is_bottleneck(cpu: Duration, wall: Duration, threads: usize) -> bool {
    wall.as_secs_f64() > 0.0 && cpu.as_secs_f64() / wall.as_secs_f64() >= 0.85 * threads as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime_after_the_command_name() {
        let line =
            "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 1 1";
        assert_eq!(parse_stat(line), Some(Duration::from_secs(3)));
        assert!(process_cpu().is_some());
    }

    #[test]
    fn bottleneck_threshold() {
        let s = Duration::from_secs;
        assert!(is_bottleneck(s(9), s(10), 1));
        assert!(!is_bottleneck(s(9), s(10), 2));
        assert!(!is_bottleneck(s(1), s(0), 1));
    }
}
