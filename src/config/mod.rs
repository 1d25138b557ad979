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
pub mod file;
mod keys;
mod raw;
mod read;
pub mod schedule;
pub mod tls;
mod types;
pub mod wav;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_limits;
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
    /// (One error: for many, [`LineIndex`] finds positions faster.)
    pub fn at(path: &Path, text: &str, at: usize, message: impl Into<String>) -> Self {
        LineIndex::new(text).error(path, at, message)
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
#[cfg(test)]
fn line_col(text: &str, at: usize) -> (usize, usize) {
    LineIndex::new(text).line_col(at)
}

/// Where each line of a text starts, so that turning thousands of error
/// offsets into line:col costs a binary search each, not a scan of the
/// file each (`check` stays linear in its input however many errors).
pub(crate) struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    /// 1-based line and column (in chars) of byte offset `at`.
    pub(crate) fn line_col(&self, at: usize) -> (usize, usize) {
        let mut at = at.min(self.text.len());
        while !self.text.is_char_boundary(at) {
            at -= 1;
        }
        let line = self.starts.partition_point(|s| *s <= at).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let col = self.text.get(start..at).map_or(0, |s| s.chars().count());
        (line, col + 1)
    }

    pub(crate) fn error(&self, path: &Path, at: usize, message: impl Into<String>) -> ConfigError {
        let (line, col) = self.line_col(at);
        ConfigError {
            path: path.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }
}

/// Reads and validates the file at `path` and every file it names. Unlike
/// [`parse_str`], a whole file must say what it serves: an empty file (or
/// one truncated by a failed copy) is refused rather than taken as "no
/// numbers, no agents", which a reload would apply by dropping them all.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let whole = |message: String| {
        ConfigErrors(vec![ConfigError {
            path: path.to_path_buf(),
            line: 1,
            col: 1,
            message,
        }])
    };
    let bytes = file::read_regular(path, file::CONFIG_LIMIT)
        .map_err(|e| whole(format!("cannot read config file: {e}")))?;
    let text =
        String::from_utf8(bytes).map_err(|e| whole(format!("config file is not UTF-8: {e}")))?;
    let missing = required_tables(&text, path);
    match parse_str(&text, path) {
        Ok(config) if missing.is_empty() => Ok(config),
        Ok(_) => Err(ConfigErrors(missing)),
        Err(ConfigErrors(mut errors)) => {
            errors.extend(missing);
            errors.sort_by_key(|e| (e.line, e.col));
            Err(ConfigErrors(errors))
        }
    }
}

/// `[server]` and at least one `[[numbers]]` entry, or an error at 1:1 for
/// each that is missing (nothing to report when the file does not parse:
/// the syntax error says more).
fn required_tables(text: &str, path: &Path) -> Vec<ConfigError> {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if !doc.contains_key("server") {
        out.push(ConfigError::at(
            path,
            text,
            0,
            "the file has no [server] table (is it the whole configuration?)",
        ));
    }
    // A `numbers` of another type is serde's error to report.
    let numbers = doc.get("numbers").map_or(0, |n| {
        n.as_array_of_tables()
            .map(|a| a.len())
            .or_else(|| n.as_array().map(|a| a.len()))
            .unwrap_or(1)
    });
    if numbers == 0 {
        out.push(ConfigError::at(
            path,
            text,
            0,
            "the file routes no [[numbers]]: sipacd would answer no call",
        ));
    }
    out
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
