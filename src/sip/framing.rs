//! Stream framing for SIP over TCP (RFC 3261 §18.3): a message ends after
//! its header block plus Content-Length bytes. Check-then-parse with size
//! caps, so a peer cannot make us buffer without bound.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// Largest header block we accept.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest whole message we accept.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    #[error("header block larger than {MAX_HEADER_BYTES} bytes")]
    HeadersTooLarge,
    #[error("message larger than {MAX_MESSAGE_BYTES} bytes")]
    MessageTooLarge,
    #[error("stream message without a valid Content-Length")]
    BadContentLength,
}

/// What the framer found at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole SIP message.
    Message(Bytes),
    /// A CRLFCRLF keep-alive ping (RFC 5626 §3.5.1); answer with CRLF.
    Ping,
}

/// Takes the next frame off `buf`, or `Ok(None)` if more bytes are needed.
/// An error means the stream is unusable and should be closed.
pub fn next_frame(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    // Leading CRLFs between messages are allowed; a double one is a ping.
    let crlfs = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if crlfs > 0 {
        let ping = buf.starts_with(b"\r\n\r\n");
        buf.advance(if ping { 4 } else { crlfs });
        if ping {
            return Ok(Some(Frame::Ping));
        }
    }
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEADER_BYTES {
            return Err(FrameError::HeadersTooLarge);
        }
        return Ok(None);
    };
    if head_end > MAX_HEADER_BYTES {
        return Err(FrameError::HeadersTooLarge);
    }
    let body_len = content_length(&buf[..head_end]).ok_or(FrameError::BadContentLength)?;
    let total = head_end + 4 + body_len;
    if total > MAX_MESSAGE_BYTES {
        return Err(FrameError::MessageTooLarge);
    }
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(Frame::Message(buf.split_to(total).freeze())))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Content-Length (or its compact form `l`) from a header block; folded
/// lines cannot split it in practice, and a missing one is an error on a
/// stream (RFC 3261 §18.3).
fn content_length(head: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l"))
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn splits_back_to_back_messages() {
        let mut buf = BytesMut::from(&[OPTIONS, OPTIONS].concat()[..]);
        assert_eq!(
            next_frame(&mut buf).unwrap(),
            Some(Frame::Message(Bytes::from_static(OPTIONS)))
        );
        assert_eq!(
            next_frame(&mut buf).unwrap(),
            Some(Frame::Message(Bytes::from_static(OPTIONS)))
        );
        assert_eq!(next_frame(&mut buf).unwrap(), None);
    }

    #[test]
    fn waits_for_the_body() {
        let mut buf = BytesMut::from(&OPTIONS[..OPTIONS.len() - 2]);
        assert_eq!(next_frame(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"dy");
        assert!(matches!(
            next_frame(&mut buf).unwrap(),
            Some(Frame::Message(_))
        ));
    }

    #[test]
    fn keepalive_ping_and_compact_length() {
        let mut buf = BytesMut::from(&b"\r\n\r\nOPTIONS sip:a SIP/2.0\r\nl: 0\r\n\r\n"[..]);
        assert_eq!(next_frame(&mut buf).unwrap(), Some(Frame::Ping));
        assert!(matches!(
            next_frame(&mut buf).unwrap(),
            Some(Frame::Message(_))
        ));
        assert!(buf.is_empty());
    }

    #[test]
    fn caps_and_missing_length_are_errors() {
        let mut buf = BytesMut::from(&b"INVITE sip:a SIP/2.0\r\nVia: x\r\n\r\n"[..]);
        assert_eq!(next_frame(&mut buf), Err(FrameError::BadContentLength));
        let mut big =
            BytesMut::from(&b"INVITE sip:a SIP/2.0\r\nContent-Length: 999999\r\n\r\n"[..]);
        assert_eq!(next_frame(&mut big), Err(FrameError::MessageTooLarge));
        let mut endless = BytesMut::from(&vec![b'a'; MAX_HEADER_BYTES + 1][..]);
        assert_eq!(next_frame(&mut endless), Err(FrameError::HeadersTooLarge));
    }

    proptest! {
        #[test]
        fn never_panics_and_never_grows(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut buf = BytesMut::from(&data[..]);
            let before = buf.len();
            let mut taken = 0;
            while let Ok(Some(frame)) = next_frame(&mut buf) {
                if let Frame::Message(m) = frame { taken += m.len(); }
                prop_assert!(taken <= before);
            }
        }
    }
}
