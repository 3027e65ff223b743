//! portcullis: an mTLS gateway for machine-to-machine traffic.
//!
//! `server` runs listeners and connections, `proxy::pipeline` is the request lifecycle,
//! `tls` verifies clients, `config` reads the TOML file.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod cert_verify;
pub mod cli;
pub mod config;
pub mod fetch;
pub mod pki;
pub mod policy;
pub mod proxy;
pub mod quickstart;
pub mod reload;
pub mod server;
pub mod telemetry;
pub mod tls;
