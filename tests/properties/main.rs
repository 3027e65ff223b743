//! Property tests over what hostile clients (and careless operators) control: the identity
//! header encoders, the JWT and SigV4 parsers, and the config loader. Seeded and bounded
//! (see `support`): every run checks the same 10^5 or more cases per property.

mod config;
mod identity;
mod jwt;
mod sigv4;
mod support;
