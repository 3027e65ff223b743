//! `[issuer.sessions]`: Roles Anywhere-compatible session credentials.
//!
//! - [`keys`]: the sealing-keys folder (hot-reloaded, the newest seals);
//! - [`token`]: access key ids, derived secrets, sealed session tokens.

pub mod check;
pub mod keys;
pub mod token;
