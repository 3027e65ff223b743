//! `--html FILE`: a small self-contained report (no scripts, no external assets): the
//! summary table, latency over time (p50, p99 and max per second) and the percentile
//! curve (latency by percentile on HdrHistogram's `1/(1-q)` axis), both as inline SVG.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

use crate::report::{Report, INTERVAL};

const W: f64 = 640.0;
const H: f64 = 260.0;
const PAD: f64 = 48.0;
/// The percentile curve's points: 0 % up to 99.999 %.
const QUANTILES: [f64; 13] = [
    0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99995, 0.99999,
];

/// Write the report to `path`.
pub fn write(path: &Path, report: &Report) -> Result<()> {
    std::fs::write(path, render(report)).with_context(|| format!("{}", path.display()))
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let l = &r.latency_ms;
    let mut page = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>loadtest report</title>\n\
         <style>body{font:14px sans-serif;margin:2em}td{padding:2px 12px}svg{background:#fafafa;border:1px solid #ddd}\
         .p50{stroke:#1f77b4}.p99{stroke:#d62728}.max{stroke:#999;stroke-dasharray:3 3}</style></head><body>\n",
    );
    let _ = write!(
        page,
        "<h1>loadtest: {}</h1>\n<table>\
         <tr><td>mode</td><td>{} ({}, {} connections, {} identities)</td></tr>\
         <tr><td>duration</td><td>{:.2} s</td></tr>\
         <tr><td>requests</td><td>{} ok, {} errors, {:.1} req/s</td></tr>\
         <tr><td>latency ms</td><td>p50 {:.3} · p90 {:.3} · p99 {:.3} · p99.9 {:.3} · max {:.3}</td></tr>\
         </table>\n",
        esc(&r.target),
        esc(&r.mode),
        esc(&r.protocol),
        r.connections,
        r.identities,
        r.duration_s,
        r.requests.ok,
        r.requests.errors,
        r.requests_per_s,
        l.p50,
        l.p90,
        l.p99,
        l.p99_9,
        l.max
    );
    page.push_str("<h2>Latency over time</h2>\n");
    page.push_str(&over_time(&r.series.intervals));
    page.push_str("<h2>Latency by percentile</h2>\n");
    page.push_str(&percentiles(&r.series.total));
    if !r.errors.is_empty() {
        page.push_str("<h2>Errors</h2>\n<table>");
        for (k, n) in &r.errors {
            let _ = write!(page, "<tr><td>{}</td><td>{n}</td></tr>", esc(k));
        }
        page.push_str("</table>\n");
    }
    page.push_str("</body></html>\n");
    page
}

/// p50, p99 and max of each interval, in ms, against seconds since the start.
fn over_time(intervals: &[Histogram<u64>]) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    let series: Vec<(f64, [f64; 3])> = intervals
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.is_empty())
        .map(|(i, h)| {
            let t = (i as f64 + 0.5) * INTERVAL.as_secs_f64();
            let v = [0.5, 0.99].map(|q| ms(h.value_at_quantile(q)));
            (t, [v[0], v[1], ms(h.max())])
        })
        .collect();
    let x_max = (intervals.len() as f64 * INTERVAL.as_secs_f64()).max(1.0);
    let y_max = series
        .iter()
        .map(|(_, v)| v[2])
        .fold(0.0, f64::max)
        .max(0.001);
    let mut svg = frame("seconds since start", "ms", x_max, y_max);
    for (k, class) in ["p50", "p99", "max"].iter().enumerate() {
        let pts: Vec<(f64, f64)> = series
            .iter()
            .map(|(t, v)| (*t / x_max, v[k] / y_max))
            .collect();
        svg.push_str(&polyline(class, &pts));
    }
    svg.push_str(&legend(&["p50", "p99", "max"]));
    svg.push_str("</svg>\n");
    svg
}

/// Latency at each of [`QUANTILES`], on the `log10(1/(1-q))` axis.
fn percentiles(h: &Histogram<u64>) -> String {
    let axis = |q: f64| (1.0 / (1.0 - q)).log10();
    let x_max = axis(*QUANTILES.last().unwrap_or(&0.99999));
    let pts: Vec<(f64, f64)> = QUANTILES
        .iter()
        .map(|&q| (axis(q), h.value_at_quantile(q) as f64 / 1000.0))
        .collect();
    let y_max = pts.iter().map(|p| p.1).fold(0.0, f64::max).max(0.001);
    let mut svg = frame("percentile", "ms", x_max, y_max);
    for (label, q) in [
        ("90%", 0.9),
        ("99%", 0.99),
        ("99.9%", 0.999),
        ("99.99%", 0.9999),
    ] {
        let x = PAD + axis(q) / x_max * (W - 2.0 * PAD);
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{label}</text>",
            H - PAD + 14.0
        );
    }
    let norm: Vec<(f64, f64)> = pts.iter().map(|(x, y)| (x / x_max, y / y_max)).collect();
    svg.push_str(&polyline("p99", &norm));
    svg.push_str("</svg>\n");
    svg
}

/// An open `<svg>` with axes, their labels and the top values of both.
fn frame(x_label: &str, y_label: &str, x_max: f64, y_max: f64) -> String {
    let (x0, y0, x1, y1) = (PAD, H - PAD, W - PAD, PAD);
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"#333\"/>\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{y1}\" stroke=\"#333\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{x_label}</text>\
         <text x=\"4\" y=\"{:.1}\" font-size=\"11\">{y_label}</text>\
         <text x=\"4\" y=\"{y1}\" font-size=\"10\">{y_max:.3}</text>\
         <text x=\"{x1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{x_max:.1}</text>",
        (x0 + x1) / 2.0,
        H - 8.0,
        y1 - 12.0,
        H - PAD + 28.0,
    )
}

/// A line through `pts` given as fractions (0..=1) of the plot area.
fn polyline(class: &str, pts: &[(f64, f64)]) -> String {
    let mut p = String::new();
    for (x, y) in pts {
        let _ = write!(
            p,
            "{:.1},{:.1} ",
            PAD + x * (W - 2.0 * PAD),
            H - PAD - y * (H - 2.0 * PAD)
        );
    }
    format!(
        "<polyline class=\"{class}\" fill=\"none\" stroke-width=\"2\" points=\"{}\"/>",
        p.trim_end()
    )
}

fn legend(classes: &[&str]) -> String {
    let mut out = String::new();
    for (i, c) in classes.iter().enumerate() {
        let x = W - PAD - 150.0 + 55.0 * i as f64;
        let _ = write!(
            out,
            "<line class=\"{c}\" x1=\"{x}\" y1=\"{PAD}\" x2=\"{:.0}\" y2=\"{PAD}\" stroke-width=\"2\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\" font-size=\"10\">{c}</text>",
            x + 16.0,
            x + 20.0,
            PAD + 4.0
        );
    }
    out
}

/// HTML-escape text that came from the command line or the target.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_came_from_outside() {
        assert_eq!(esc("<a href=\"x\">&"), "&lt;a href=&quot;x&quot;&gt;&amp;");
    }
}
