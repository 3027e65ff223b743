//! `[log]`: the diagnostic log's filter and format, and where access-log lines go, raw struct →
//! [`LogConfig`].

use super::build::{k, Builder, Seg};
use super::defaults as d;
use super::file;
use super::{resolve, AccessLog, LogConfig, LogFormat};

impl Builder {
    pub(super) fn log(&mut self, l: &file::RawLog) -> LogConfig {
        let p = [Seg::Key("log".into())];
        let level = l.level.clone().unwrap_or_else(|| d::LOG_LEVEL.into());
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
            self.err(
                k(&p, "level"),
                format!(
                    "\"{level}\" is not a log filter ({e}); e.g. \"info\" or \"portcullis=debug\""
                ),
            );
        }
        let format = match l.format.as_deref() {
            None => LogFormat::Auto,
            Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                self.err(
                    k(&p, "format"),
                    format!("\"{other}\" is not a log format: \"json\" or \"text\""),
                );
                LogFormat::Auto
            }
        };
        let access_log = match l.access_log.as_deref().unwrap_or(d::ACCESS_LOG) {
            "-" | "stdout" => AccessLog::Stdout,
            "off" => AccessLog::Off,
            "" => {
                self.err(
                    k(&p, "access_log"),
                    "must be \"-\" (stdout), \"off\" or a file path",
                );
                AccessLog::Off
            }
            path => AccessLog::File(resolve(&self.base, path)),
        };
        LogConfig {
            level,
            format,
            access_log,
        }
    }
}
