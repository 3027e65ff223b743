//! The standard process metrics, read from `/proc/self` when `/metrics` is scraped (so they
//! are never older than the scrape) and written in the exposition format after the
//! recorder's own output. On a system without `/proc` they are left out.
//!
//! `process_cpu_seconds_total` is a counter of fractional seconds, which the `metrics`
//! crate's integer counters cannot hold; that is why these three are rendered here rather
//! than recorded.

use std::fmt::Write as _;

use super::metrics as m;

/// Clock ticks per second of `/proc/<pid>/stat`'s `utime`/`stime`: the kernel reports them in
/// `USER_HZ`, which Linux fixes at 100 on every architecture it exposes to user space
/// (reading `sysconf(_SC_CLK_TCK)` would need `unsafe` libc calls).
const USER_HZ: f64 = 100.0;

/// A reading of the process's own counters.
#[derive(Debug, Default, PartialEq)]
pub struct Sample {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub open_fds: Option<u64>,
}

impl Sample {
    /// Read `/proc/self` now.
    pub fn read() -> Sample {
        Sample {
            cpu_seconds: std::fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|s| cpu_seconds(&s)),
            resident_bytes: std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| resident_bytes(&s)),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                // The count includes the descriptor read_dir itself holds open.
                .map(|d| d.count().saturating_sub(1) as u64),
        }
    }

    /// Append the exposition text of what was read to `out`.
    pub fn render_into(&self, out: &mut String) {
        let families: [(&str, &str, &str, Option<String>); 3] = [
            (
                m::PROCESS_CPU_SECONDS_TOTAL,
                "counter",
                "Total user and system CPU time spent in seconds.",
                self.cpu_seconds.map(|v| format!("{v}")),
            ),
            (
                m::PROCESS_RESIDENT_MEMORY_BYTES,
                "gauge",
                "Resident memory size in bytes.",
                self.resident_bytes.map(|v| v.to_string()),
            ),
            (
                m::PROCESS_OPEN_FDS,
                "gauge",
                "Number of open file descriptors.",
                self.open_fds.map(|v| v.to_string()),
            ),
        ];
        for (name, kind, help, value) in families {
            if let Some(v) = value {
                // Writing to a String cannot fail.
                let _ = write!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n\n"
                );
            }
        }
    }
}

/// utime + stime (fields 14 and 15) of `/proc/self/stat`, in seconds. The command name
/// (field 2) is in parentheses and may hold spaces, so fields are counted after its `)`.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 is the first after ')'
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// `VmRSS` of `/proc/self/status` (in kB there), in bytes.
fn resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_time_after_a_command_name_with_spaces() {
        let stat = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(cpu_seconds(stat), Some(3.0));
    }

    #[test]
    fn parses_resident_memory_in_bytes() {
        let status = "Name:\tx\nVmRSS:\t    2048 kB\nThreads: 1\n";
        assert_eq!(resident_bytes(status), Some(2048 * 1024));
    }

    #[test]
    fn reads_this_process() {
        let s = Sample::read();
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(s.resident_bytes.is_some_and(|b| b > 0));
            assert!(s.open_fds.is_some_and(|n| n >= 1));
            let mut out = String::new();
            s.render_into(&mut out);
            assert!(
                out.contains("# TYPE process_cpu_seconds_total counter\n"),
                "{out}"
            );
        }
    }
}
