//! portcullis: an mTLS gateway for machine-to-machine traffic.
#![forbid(unsafe_code)]

pub mod config;
pub mod telemetry;
