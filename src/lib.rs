//! portcullis: an mTLS gateway for machine-to-machine traffic.
//!
//! `server` runs listeners and connections, `proxy::pipeline` is the request lifecycle,
//! `tls` verifies clients, `config` reads the TOML file.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod auth;
pub mod body;
pub mod builtin;
pub mod cert_verify;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod error;
pub mod fetch;
pub mod http1;
pub mod identity;
pub mod issuer;
pub mod material;
pub mod pki;
pub mod policy;
pub mod proxy;
pub mod quickstart;
pub mod reload;
pub mod rolesanywhere_client;
pub mod route;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod upstream;
