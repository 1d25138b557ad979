//! The configuration file: load, validate, compare.
//!
//! Two stages, like vector's builder/compiler: `raw` is the file as written
//! (serde, spans kept; `keys` rejects unknown keys), `compile` turns it into the
//! typed `Config` and collects *every* error at once, each pointing at
//! `PATH:LINE:COL` in the file.
//!
//! Paths: relative `server.data_dir` and `server.prompts` resolve against the
//! directory of the config file (not the working directory), and prompt
//! names resolve against `server.prompts`. The demo `config/sipacd.toml`
//! therefore says `prompts = "../prompts"`.

mod compile;
mod diff;
mod keys;
mod raw;
mod read;
pub mod schedule;
mod types;
pub mod wav;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_unknown;

pub use diff::{diff, AT_RESTART, RESTART_ONLY};
pub use schedule::{windows_open, Schedule, Window};
pub use types::*;

use std::fmt;
use std::path::{Path, PathBuf};

/// Prompts the queue position announcement needs from the prompts dir
/// (`you-are-number`, the digits, `in-the-queue`); checked when a queue sets
/// `announce_position_s`.
pub const POSITION_PROMPTS: [&str; 12] = [
    "you-are-number.wav",
    "in-the-queue.wav",
    "0.wav",
    "1.wav",
    "2.wav",
    "3.wav",
    "4.wav",
    "5.wav",
    "6.wav",
    "7.wav",
    "8.wav",
    "9.wav",
];

/// One problem in a config file, at a 1-based line and column (in chars).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

impl ConfigError {
    /// An error at byte offset `at` of `text`.
    pub fn at(path: &Path, text: &str, at: usize, message: impl Into<String>) -> Self {
        let (line, col) = line_col(text, at);
        ConfigError {
            path: path.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }
}

/// Every error found in a file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// 1-based line and column (counted in chars) of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Reads and validates the file at `path` and every file it names.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_str(&text, path),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            path: path.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("cannot read config file: {e}"),
        }])),
    }
}

/// Validates `text` as if read from `path`: relative paths resolve against
/// `path`'s directory, and errors name `path`.
pub fn parse_str(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let read::Read { raw, mut errors } = read::read(text, path);
    // Semantic checks run even after unknown keys or type errors, so that
    // one `check` shows everything; raw spans match `text` byte for byte.
    let compiled = raw.map(|raw| compile::compile(raw, text, path));
    match compiled {
        Some(Ok(config)) if errors.is_empty() => return Ok(config),
        Some(Err(ConfigErrors(more))) => errors.extend(more),
        _ => {}
    }
    errors.sort_by_key(|e| (e.line, e.col));
    Err(ConfigErrors(errors))
}
