//! `[runtime]`: how connections are served across the cores, raw struct →
//! [`RuntimeConfig`].
//!
//! - `mode = "per-core"`: one single-threaded runtime per worker thread, each with its own
//!   `SO_REUSEPORT` socket per listener; a connection stays on the core that accepted it,
//!   with its upstream connections. Reloads, fetches and the admin listener run on a
//!   control thread. The default.
//! - `mode = "work-stealing"`: one multi-threaded tokio runtime shared by everything.
//!
//! The thread count is the listeners' `workers` in both modes (0: one per core).

use super::build::{k, Builder, Seg};
use super::defaults as d;

/// How connections are served (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeMode {
    PerCore,
    WorkStealing,
}

impl RuntimeMode {
    /// The value as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeMode::PerCore => "per-core",
            RuntimeMode::WorkStealing => "work-stealing",
        }
    }

    /// The mode written `s`, spelled as [`Self::as_str`] spells it.
    fn parse(s: &str) -> Option<RuntimeMode> {
        [RuntimeMode::PerCore, RuntimeMode::WorkStealing]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// `[runtime]`, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub mode: RuntimeMode,
}

/// `[runtime]` as written.
#[derive(Debug, Default, serde::Deserialize)]
pub struct RawRuntime {
    pub mode: Option<String>,
}

impl Builder {
    pub(super) fn runtime(&mut self, r: &RawRuntime) -> RuntimeConfig {
        let p = [Seg::Key("runtime".into())];
        let written = r.mode.as_deref().unwrap_or(d::RUNTIME_MODE);
        let mode = RuntimeMode::parse(written).unwrap_or_else(|| {
            self.err(
                k(&p, "mode"),
                format!("\"{written}\" is not a runtime mode: \"per-core\" or \"work-stealing\""),
            );
            RuntimeMode::parse(d::RUNTIME_MODE).unwrap_or(RuntimeMode::PerCore)
        });
        RuntimeConfig { mode }
    }
}
