//! The HTTP side of the gateway: the request pipeline and its phases.

pub mod body;
pub mod conn;
pub mod echo;
pub mod error;
pub mod headers;
pub mod path;
pub mod pipeline;
pub mod recheck;
pub mod route;
pub mod upstream;
