//! SCAFFOLD: replaced by the config implementation.
use std::path::{Path, PathBuf};

use super::Config;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration")]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

pub fn load(_path: &Path) -> Result<Config, ConfigError> {
    unimplemented!()
}

pub fn parse(_text: &str, _path: &Path) -> Result<Config, ConfigError> {
    unimplemented!()
}
