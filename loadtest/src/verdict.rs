//! Whether a run passed, like k6's thresholds: a run in which every request failed never
//! passes, and `--max-error-rate` / `--max-p99` fail it when crossed, each saying which.
//! `main` exits 1 for the first and [`THRESHOLD_EXIT`] (k6's code) for the second.

use std::time::Duration;

use crate::report::Report;

/// Exit status when a threshold was crossed (k6 uses 99 too).
pub const THRESHOLD_EXIT: u8 = 99;

/// The limits a run must stay within.
#[derive(Debug, Clone, Copy, Default)]
pub struct Thresholds {
    /// Highest share of failed requests, 0.0..=1.0.
    pub max_error_rate: Option<f64>,
    pub max_p99: Option<Duration>,
}

/// Why a run did not pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass,
    /// No request succeeded (including: none was sent).
    AllFailed(String),
    /// One line per crossed threshold.
    Crossed(Vec<String>),
}

/// `1%`, `0.5 %` or a fraction such as `0.01`, as a fraction.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("{s:?}: want a percentage like 1% or a fraction like 0.01"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{s:?}: an error rate is between 0% and 100%"));
    }
    Ok(v)
}

/// Judge `report` against `t`.
pub fn judge(report: &Report, t: &Thresholds) -> Verdict {
    let r = &report.requests;
    if r.ok == 0 {
        let why = if r.total == 0 {
            "no request was sent".to_owned()
        } else {
            let top = report
                .errors
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(k, _)| format!(" (most: {k})"))
                .unwrap_or_default();
            format!("every request failed: {} of {}{top}", r.errors, r.total)
        };
        return Verdict::AllFailed(why);
    }
    let mut crossed = Vec::new();
    if let Some(max) = t.max_error_rate {
        let rate = r.errors as f64 / r.total as f64;
        if rate > max {
            crossed.push(format!(
                "threshold crossed: error rate {:.2}% ({} of {}) > --max-error-rate {}%",
                rate * 100.0,
                r.errors,
                r.total,
                max * 100.0
            ));
        }
    }
    if let Some(max) = t.max_p99 {
        let p99_ms = report.latency_ms.p99;
        if p99_ms > max.as_secs_f64() * 1000.0 {
            crossed.push(format!(
                "threshold crossed: p99 latency {p99_ms:.3} ms > --max-p99 {}",
                humantime::format_duration(max)
            ));
        }
    }
    if crossed.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Crossed(crossed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_percentages_and_fractions() {
        assert_eq!(parse_rate("1%"), Ok(0.01));
        assert_eq!(parse_rate("0.5 %"), Ok(0.005));
        assert_eq!(parse_rate("0.25"), Ok(0.25));
        assert!(parse_rate("150%").is_err());
        assert!(parse_rate("lots").is_err());
    }
}
