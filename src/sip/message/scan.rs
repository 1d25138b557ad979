//! Quoted-string tracking shared by the scanners that split or inspect
//! header values outside quotes (RFC 3261 §25.1 quoted-string/quoted-pair).

/// Whether a left-to-right scan is inside a quoted string.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Quotes {
    quoted: bool,
    escaped: bool,
}

impl Quotes {
    /// Feeds `c`: true when it belongs to an open quoted string (its
    /// closing quote included), i.e. the caller must not interpret it.
    pub(crate) fn skip(&mut self, c: char) -> bool {
        if !self.quoted {
            return false;
        }
        match c {
            _ if self.escaped => self.escaped = false,
            '\\' => self.escaped = true,
            '"' => self.quoted = false,
            _ => {}
        }
        true
    }

    /// The caller met an opening '"'.
    pub(crate) fn open(&mut self) {
        self.quoted = true;
    }

    /// True when the scan ended inside a quoted string.
    pub(crate) fn is_open(&self) -> bool {
        self.quoted
    }
}

/// Where the lines of `b` are, cut at each '\n' as `split` cuts them (the
/// last one after the last '\n', empty when `b` ends with one). The line
/// ends are found with memchr: this runs over every datagram.
pub(crate) fn line_spans(b: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut start = 0;
    memchr::memchr_iter(b'\n', b)
        .chain(std::iter::once(b.len()))
        .map(move |end| {
            let span = start..end;
            start = end + 1;
            span
        })
}

/// Byte index of the first `wanted` outside a quoted string.
pub(crate) fn find_unquoted(s: &str, wanted: char) -> Option<usize> {
    let mut quotes = Quotes::default();
    for (i, c) in s.char_indices() {
        if quotes.skip(c) {
            continue;
        }
        if c == '"' {
            quotes.open();
        } else if c == wanted {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::Quotes;

    #[test]
    fn skips_quoted_text_and_escapes() {
        let mut q = Quotes::default();
        let mut seen = String::new();
        for c in r#"a"b\"c;"d"#.chars() {
            if q.skip(c) {
                continue;
            }
            if c == '"' {
                q.open();
            }
            seen.push(c);
        }
        assert_eq!(seen, "a\"d");
        assert!(!q.is_open());
        q.open();
        assert!(q.skip('x') && q.is_open());
    }
}
