//! What a run measured: per-connection statistics (HDR latency histogram, counts, errors
//! by class), their merge, and the final report in text and JSON.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histogram records, in microseconds (longer is clamped).
const MAX_LATENCY_US: u64 = 120_000_000;

/// Length of one interval of the latency-over-time series (`--hdr`, `--html`).
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Statistics of one worker; merged at the end.
#[derive(Debug, Clone)]
pub struct Stats {
    pub latency_us: Histogram<u64>,
    /// The same latencies, one histogram per [`INTERVAL`] since the run began (by when the
    /// request finished). Auto-resizing, so a quiet interval costs little memory.
    pub intervals: Vec<Histogram<u64>>,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub handshakes_full: u64,
    pub handshakes_resumed: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            // Bounds 1..MAX with 3 significant figures are valid constants: cannot fail.
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("constant histogram bounds are valid"),
            intervals: Vec::new(),
            ok: 0,
            errors: BTreeMap::new(),
            handshakes_full: 0,
            handshakes_resumed: 0,
        }
    }
}

impl Stats {
    pub fn record(&mut self, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        let _ = self.latency_us.record(us);
    }

    /// Record a latency that ended `at` after the run began, also in its interval.
    pub fn record_at(&mut self, latency: Duration, at: Duration) {
        self.record(latency);
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        let i = (at.as_micros() / INTERVAL.as_micros()) as usize;
        let h = self.interval(i);
        let _ = h.record(us);
    }

    /// The histogram of interval `i`, created (with the ones before it) if missing.
    fn interval(&mut self, i: usize) -> &mut Histogram<u64> {
        while self.intervals.len() <= i {
            // 3 significant figures is a valid constant: cannot fail.
            let h = Histogram::new(3).expect("constant significant figures are valid");
            self.intervals.push(h);
        }
        &mut self.intervals[i]
    }

    pub fn error(&mut self, class: String) {
        *self.errors.entry(class).or_default() += 1;
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn merge(&mut self, other: &Stats) {
        // Same bounds on both sides: add cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        for (i, h) in other.intervals.iter().enumerate() {
            // Auto-resizing: add cannot fail.
            let _ = self.interval(i).add(h);
        }
        self.ok += other.ok;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.handshakes_full += other.handshakes_full;
        self.handshakes_resumed += other.handshakes_resumed;
    }
}

/// The class of a failure, from the error chain: `tls_alert:<name>`, `tls:<what>`,
/// `timeout`, `connect:<kind>` (set by the caller) or `io:<kind>`.
pub fn classify(err: &(dyn StdError + 'static)) -> String {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    let mut io_kind = None;
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return tls_class(t);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(t) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return tls_class(t);
            }
            io_kind.get_or_insert(io.kind());
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_timeout() {
                return "timeout".into();
            }
            if h.is_incomplete_message() && e.source().is_none() {
                return "io:closed".into();
            }
        }
        cur = e.source();
    }
    match io_kind {
        Some(std::io::ErrorKind::TimedOut) => "timeout".into(),
        Some(k) => format!("io:{}", snake(&format!("{k:?}"))),
        None => "io:other".into(),
    }
}

fn tls_class(e: &rustls::Error) -> String {
    match e {
        rustls::Error::AlertReceived(a) => format!("tls_alert:{}", snake(&format!("{a:?}"))),
        rustls::Error::InvalidCertificate(_) => "tls:invalid_server_certificate".into(),
        rustls::Error::NoApplicationProtocol => "tls:no_application_protocol".into(),
        rustls::Error::PeerMisbehaved(_) => "tls:peer_misbehaved".into(),
        rustls::Error::PeerIncompatible(_) => "tls:peer_incompatible".into(),
        _ => "tls:other".into(),
    }
}

/// `UnknownCA` → `unknown_ca`, `CertificateRevoked` → `certificate_revoked`.
pub fn snake(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev_lower = chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit();
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev_lower || (chars[i - 1].is_uppercase() && next_lower) {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// The final report (`--json` writes exactly this).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub mode: String,
    pub protocol: String,
    pub connections: usize,
    pub identities: usize,
    pub rate: Option<f64>,
    pub duration_s: f64,
    pub requests: Counts,
    pub requests_per_s: f64,
    pub handshakes: Handshakes,
    pub latency_ms: Latency,
    pub errors: BTreeMap<String, u64>,
    pub client: Client,
    /// The run's latencies, for `--hdr` and `--html` (not in the JSON).
    #[serde(skip)]
    pub series: Series,
}

/// The latency histograms behind a report: the whole run and each [`INTERVAL`].
#[derive(Debug, Clone)]
pub struct Series {
    /// When the run began (wall clock).
    pub started: SystemTime,
    pub total: Histogram<u64>,
    pub intervals: Vec<Histogram<u64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    pub ok: u64,
    pub errors: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Handshakes {
    pub full: u64,
    pub resumed: u64,
    pub per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Client {
    pub cpu_s: f64,
    pub threads: usize,
    /// True when the client used ≥ 85 % of its threads' CPU: the numbers understate the target.
    pub bottleneck: bool,
}

/// Static facts of a run that go into its report.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub target: String,
    pub mode: String,
    pub protocol: String,
    pub connections: usize,
    pub identities: usize,
    pub rate: Option<f64>,
    pub threads: usize,
}

impl Report {
    pub fn build(info: &RunInfo, s: &Stats, wall: Duration, cpu: Duration) -> Report {
        let secs = wall.as_secs_f64().max(1e-9);
        let h = &s.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        let errors = s.error_count();
        let hs = s.handshakes_full + s.handshakes_resumed;
        Report {
            target: info.target.clone(),
            mode: info.mode.clone(),
            protocol: info.protocol.clone(),
            connections: info.connections,
            identities: info.identities,
            rate: info.rate,
            duration_s: secs,
            requests: Counts {
                ok: s.ok,
                errors,
                total: s.ok + errors,
            },
            requests_per_s: s.ok as f64 / secs,
            handshakes: Handshakes {
                full: s.handshakes_full,
                resumed: s.handshakes_resumed,
                per_s: hs as f64 / secs,
            },
            latency_ms: Latency {
                p50: ms(h.value_at_quantile(0.50)),
                p90: ms(h.value_at_quantile(0.90)),
                p99: ms(h.value_at_quantile(0.99)),
                p99_9: ms(h.value_at_quantile(0.999)),
                max: ms(h.max()),
                mean: h.mean() / 1000.0,
            },
            errors: s.errors.clone(),
            client: Client {
                cpu_s: cpu.as_secs_f64(),
                threads: info.threads,
                bottleneck: crate::cpu::is_bottleneck(cpu, wall, info.threads),
            },
            series: Series {
                started: SystemTime::now()
                    .checked_sub(wall)
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                total: s.latency_us.clone(),
                intervals: s.intervals.clone(),
            },
        }
    }

    /// The human-readable summary.
    pub fn text(&self) -> String {
        let l = &self.latency_ms;
        let mut out = format!(
            "target      {} ({}, {}, {} connections, {} identities{})\n\
             duration    {:.2} s\n\
             requests    {} ok, {} errors — {:.1} req/s\n\
             handshakes  {} full, {} resumed — {:.1} /s\n\
             latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}\n\
             client cpu  {:.2} s on {} thread(s)\n",
            self.target,
            self.mode,
            self.protocol,
            self.connections,
            self.identities,
            self.rate
                .map(|r| format!(", open loop {r}/s"))
                .unwrap_or_default(),
            self.duration_s,
            self.requests.ok,
            self.requests.errors,
            self.requests_per_s,
            self.handshakes.full,
            self.handshakes.resumed,
            self.handshakes.per_s,
            l.p50,
            l.p90,
            l.p99,
            l.p99_9,
            l.max,
            l.mean,
            self.client.cpu_s,
            self.client.threads,
        );
        for (k, v) in &self.errors {
            out.push_str(&format!("error       {k}: {v}\n"));
        }
        if self.client.bottleneck {
            out.push_str(
                "WARNING     the load client used ~all of its CPU: it was the bottleneck, \
                 the target may be faster than these numbers (raise --threads)\n",
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_errors_and_histograms() {
        let mut a = Stats::default();
        a.record(Duration::from_millis(1));
        a.ok = 1;
        a.error("timeout".into());
        let mut b = Stats::default();
        for _ in 0..99 {
            b.record(Duration::from_millis(2));
        }
        b.ok = 99;
        b.error("timeout".into());
        b.error("http_status:503".into());
        b.handshakes_full = 2;
        a.merge(&b);
        assert_eq!(a.ok, 100);
        assert_eq!(a.latency_us.len(), 100);
        assert_eq!(a.errors["timeout"], 2);
        assert_eq!(a.error_count(), 3);
        assert_eq!(a.handshakes_full, 2);
        let p50 = a.latency_us.value_at_quantile(0.5);
        assert!((1990..=2010).contains(&p50), "{p50}");
    }

    #[test]
    fn report_json_has_every_field() {
        let mut s = Stats::default();
        s.record(Duration::from_micros(1500));
        s.ok = 10;
        s.handshakes_full = 1;
        s.error("tls_alert:certificate_revoked".into());
        let info = RunInfo {
            target: "https://127.0.0.1:1/".into(),
            mode: "keep-alive".into(),
            protocol: "http/1.1".into(),
            connections: 2,
            identities: 3,
            rate: None,
            threads: 1,
        };
        let r = Report::build(
            &info,
            &s,
            Duration::from_secs(2),
            Duration::from_millis(100),
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["requests"]["ok"], 10);
        assert_eq!(v["requests"]["errors"], 1);
        assert_eq!(v["requests_per_s"], 5.0);
        assert_eq!(v["handshakes"]["per_s"], 0.5);
        assert_eq!(v["errors"]["tls_alert:certificate_revoked"], 1);
        for k in ["p50", "p90", "p99", "p99_9", "max", "mean"] {
            assert!(v["latency_ms"][k].as_f64().unwrap() > 1.4, "{k}");
        }
        assert_eq!(v["client"]["bottleneck"], false);
        assert!(r.text().contains("certificate_revoked"));
    }

    #[test]
    fn classes_name_the_tls_alert() {
        use rustls::AlertDescription as A;
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(A::CertificateRevoked),
        );
        assert_eq!(classify(&io), "tls_alert:certificate_revoked");
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(A::UnknownCA),
        );
        assert_eq!(classify(&io), "tls_alert:unknown_ca");
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(classify(&io), "io:connection_reset");
        assert_eq!(snake("CertificateRequired"), "certificate_required");
    }
}
