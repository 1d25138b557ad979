//! The daemon's log writer: stderr, with control characters escaped.
//!
//! Log fields carry what peers send (Call-IDs, user names) and what API
//! clients send (pause reasons). Written raw, a CR/LF forges a whole log
//! line (and a fail2ban match), and an escape sequence rewrites the
//! operator's terminal. The text formatter writes each event with one
//! `write` of the whole line, so every control character but the line's
//! final newline is escaped here, as `\n`, `\r`, `\t` or `\xNN`. With
//! colours on (stderr is a terminal) ESC is let through for them.

use std::io::{self, Write};
use tracing_subscriber::fmt::MakeWriter;

/// Makes escaping writers over stderr.
#[derive(Debug, Clone, Copy)]
pub struct EscapedStderr {
    /// Let ESC through (the formatter's own colours).
    pub ansi: bool,
}

impl<'a> MakeWriter<'a> for EscapedStderr {
    type Writer = Escaping<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Escaping {
            inner: io::stderr(),
            ansi: self.ansi,
        }
    }
}

/// Escapes control characters of each buffer it is handed.
#[derive(Debug)]
pub struct Escaping<W> {
    pub inner: W,
    pub ansi: bool,
}

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_all(&escape(buf, self.ansi))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `buf` with every control byte but a final `\n` (and ESC when `ansi`)
/// written as an escape. Bytes of multi-byte UTF-8 characters are not
/// controls and pass unchanged; so does DEL's neighbourhood above 0x7f.
pub fn escape(buf: &[u8], ansi: bool) -> Vec<u8> {
    let (body, end) = match buf.split_last() {
        Some((b'\n', body)) => (body, &b"\n"[..]),
        _ => (buf, &b""[..]),
    };
    if !body.iter().any(|b| needs_escape(*b, ansi)) {
        return buf.to_vec();
    }
    let mut out = Vec::with_capacity(buf.len() + 16);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b if needs_escape(b, ansi) => {
                out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
            }
            b => out.push(b),
        }
    }
    out.extend_from_slice(end);
    out
}

fn needs_escape(b: u8, ansi: bool) -> bool {
    (b < 0x20 || b == 0x7f) && !(ansi && b == 0x1b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_but_the_final_newline_stays() {
        let line = b"INFO call=abc\r\nWARN forged\x1b[2J\x00 \xc3\xa9\n";
        assert_eq!(
            escape(line, false),
            b"INFO call=abc\\r\\nWARN forged\\x1b[2J\\x00 \xc3\xa9\n".to_vec()
        );
        // Colours on: ESC passes, the rest does not.
        assert_eq!(
            escape(b"\x1b[32mINFO\x1b[0m a\nb\n", true),
            b"\x1b[32mINFO\x1b[0m a\\nb\n".to_vec()
        );
        assert_eq!(escape(b"plain line\n", false), b"plain line\n".to_vec());
        assert_eq!(escape(b"tab\there", false), b"tab\\there".to_vec());
    }

    #[test]
    fn the_writer_reports_the_whole_buffer_written() {
        let mut w = Escaping {
            inner: Vec::new(),
            ansi: false,
        };
        assert_eq!(w.write(b"a\x07b\n").unwrap(), 4);
        assert_eq!(w.inner, b"a\\x07b\n");
    }
}
