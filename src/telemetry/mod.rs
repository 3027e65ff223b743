//! Metrics, the access log and the diagnostic log.

pub mod metrics;
