//! Token issuers built into the gateway (floor 2: uses `config`, `identity`, `policy`,
//! `telemetry`; `auth`, `builtin`, `state` and above use it, never the other way).
//!
//! - [`keys`]: a folder of signing keys, hot-reloaded; [`revocations`]: revocations
//!   persisted durably in `state_dir`, one file per issuer; [`ratelimit`]: keyed limits;
//!   [`watch`]: the file polling they share. All of these are meant for every issuer.
//! - [`oauth2`]: the OAuth2 client-credentials token service (`[issuer.oauth2]`).

pub mod keys;
pub mod oauth2;
pub mod ratelimit;
pub mod revocations;
pub mod sessions;
pub mod watch;
