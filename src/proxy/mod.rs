//! The HTTP side of the gateway: the request pipeline and its phases.

pub mod headers;
pub mod host;
pub mod path;
pub mod pipeline;
pub mod recheck;
