//! `--hdr FILE`: the run's latencies as an HdrHistogram interval log (the format of Java's
//! `HistogramLogWriter`, read by `HistogramLogProcessor` and the HdrHistogram plotters): one
//! V2-compressed histogram per second, in microseconds, with `BaseTime` the run's start
//! and a max-value divisor of 1000 so the `Interval_Max` column reads in milliseconds.

use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::V2DeflateSerializer;

use crate::report::{Report, INTERVAL};

const LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n";

/// Write `report`'s interval histograms to `path`.
pub fn write(path: &Path, report: &Report) -> Result<()> {
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let series = &report.series;
    {
        let mut builder = IntervalLogWriterBuilder::new();
        builder
            .add_comment(&format!(
                "loadtest {} {} ({}, {} connections); values in microseconds",
                report.mode, report.target, report.protocol, report.connections
            ))
            .with_start_time(series.started)
            .with_base_time(series.started)
            .with_max_value_divisor(1000.0);
        let mut log = builder
            .begin_log_with(&mut out, &mut serializer)
            .context("hdr log header")?;
        // The column legend Java's HistogramLogWriter writes after the header (this
        // writer has no call for it; readers skip it).
        log.write_comment("").context("hdr log header")?;
        for (i, h) in series.intervals.iter().enumerate() {
            if h.is_empty() {
                continue;
            }
            log.write_histogram(h, INTERVAL * i as u32, INTERVAL, None)
                .map_err(|e| anyhow::anyhow!("hdr log: {e}"))?;
        }
    }
    let out = String::from_utf8_lossy(&out).replacen("#\n", LEGEND, 1);
    std::fs::write(path, out.as_bytes()).with_context(|| format!("{}", path.display()))?;
    Ok(())
}

/// The total count of every histogram in an interval log (for tests and checks).
pub fn count(log: &[u8]) -> Result<u64> {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    let mut de = Deserializer::new();
    let mut n = 0;
    for entry in IntervalLogIterator::new(log) {
        if let LogEntry::Interval(ilh) = entry.map_err(|e| anyhow::anyhow!("{e:?}"))? {
            let bytes = base64_decode(ilh.encoded_histogram())?;
            let h: hdrhistogram::Histogram<u64> = de
                .deserialize(&mut bytes.as_slice())
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            n += h.len();
        }
    }
    Ok(n)
}

fn base64_decode(s: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .context("interval histogram: not base64")
}
