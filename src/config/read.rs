//! Stage one driver: text -> `RawConfig` plus every error serde can find.
//!
//! A syntax error ends everything (nothing else can be known). Unknown keys
//! come from `keys`. Type errors (a string where a number belongs) stop
//! serde at the first one, so after each the offending `key = value` line is
//! blanked out with spaces - byte offsets, hence all other spans, stay the
//! same - and serde runs again on what is left.

use super::keys::unknown_keys;
use super::raw::RawConfig;
use super::ConfigError;
use std::ops::Range;
use std::path::Path;
use toml_edit::{ImDocument, Item, Table};

/// Upper bound on type errors collected (each costs one more parse).
const MAX_TYPE_ERRORS: usize = 100;

/// The raw config, if serde got through the file, and the errors so far.
pub struct Read {
    pub raw: Option<RawConfig>,
    pub errors: Vec<ConfigError>,
}

pub fn read(text: &str, path: &Path) -> Read {
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            let msg = e.message().trim().to_string();
            return Read {
                raw: None,
                errors: vec![ConfigError::at(path, text, at, msg)],
            };
        }
    };
    let lines = super::LineIndex::new(text);
    let mut errors: Vec<ConfigError> = unknown_keys(doc.as_table())
        .into_iter()
        .map(|u| lines.error(path, u.span.start, u.message))
        .collect();

    let mut left = text.to_string();
    for _ in 0..MAX_TYPE_ERRORS {
        let e = match toml::from_str::<RawConfig>(&left) {
            Ok(raw) => {
                return Read {
                    raw: Some(raw),
                    errors,
                }
            }
            Err(e) => e,
        };
        let at = e.span().map_or(0, |s| s.start);
        errors.push(lines.error(path, at, e.message().trim()));
        if !blank_entry(&mut left, at) {
            break;
        }
    }
    Read { raw: None, errors }
}

/// Blanks what holds byte `at`: a line-level `key = value`, or a table
/// header with its own `key = value` lines. False if there is none or the
/// result would not parse (e.g. a dotted key), so serde must stop.
fn blank_entry(text: &mut String, at: usize) -> bool {
    let Some(ranges) = ImDocument::parse(text.as_str())
        .ok()
        .and_then(|doc| entry_at(doc.as_table(), text, at))
    else {
        return false;
    };
    for range in ranges {
        let Some(bytes) = text.get(range.clone()) else {
            return false;
        };
        // Same byte length, newlines kept: every later span stays valid.
        let spaces: String = bytes
            .bytes()
            .map(|b| if b == b'\n' { '\n' } else { ' ' })
            .collect();
        text.replace_range(range, &spaces);
    }
    ImDocument::parse(text.as_str()).is_ok()
}

/// The ranges to blank for an error at byte `at` inside `table`.
fn entry_at(table: &Table, text: &str, at: usize) -> Option<Vec<Range<usize>>> {
    for (k, item) in table.iter() {
        let found = match item {
            Item::Value(v) => {
                let key = table.key(k).and_then(|k| k.span());
                match (key, v.span()) {
                    (Some(key), Some(value)) if key.start <= at && at < value.end => {
                        Some(std::iter::once(key.start..value.end).collect())
                    }
                    _ => None,
                }
            }
            Item::Table(t) => whole_table(t, text, at).or_else(|| entry_at(t, text, at)),
            Item::ArrayOfTables(a) => a
                .iter()
                .find_map(|t| whole_table(t, text, at).or_else(|| entry_at(t, text, at))),
            Item::None => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Header line and own values of `t` if the error is at its `[header]`
/// (`t.span()` starts there but covers the body too).
fn whole_table(t: &Table, text: &str, at: usize) -> Option<Vec<Range<usize>>> {
    let start = t.span().filter(|h| h.start == at)?.start;
    let line_end = text
        .get(start..)?
        .find('\n')
        .map_or(text.len(), |i| start + i);
    let mut ranges: Vec<Range<usize>> = std::iter::once(start..line_end).collect();
    for (k, item) in t.iter() {
        if let Item::Value(v) = item {
            let key = t.key(k).and_then(|k| k.span());
            if let (Some(key), Some(value)) = (key, v.span()) {
                ranges.push(key.start..value.end);
            }
        }
    }
    Some(ranges)
}
