//! Framing of regular messages: one type byte, a big-endian i32 length that counts itself,
//! then the body.

use bytes::{Buf, Bytes, BytesMut};

use crate::ProtocolError;

/// The largest message accepted from a peer (1 GiB is PostgreSQL's own limit; the gateway
/// configures a smaller one for clients).
pub const MAX_MESSAGE_LEN: usize = 1 << 30;

/// One framed message: its type byte and its body (without type and length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The type byte.
    pub tag: u8,
    /// The body.
    pub body: Bytes,
}

impl Frame {
    /// Splits the next complete message off `buf`; `Ok(None)` when more bytes are needed.
    /// Refuses declared lengths below 4 or above `max_len` before waiting for the body.
    pub fn parse(buf: &mut BytesMut, max_len: usize) -> Result<Option<Frame>, ProtocolError> {
        if buf.len() < 5 {
            return Ok(None);
        }
        let tag = buf[0];
        let declared = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        let len = usize::try_from(declared)
            .ok()
            .filter(|l| *l >= 4 && *l <= max_len);
        let Some(len) = len else {
            return Err(ProtocolError::Length {
                len: i64::from(declared),
                min: 4,
                max: max_len,
            });
        };
        if buf.len() < 1 + len {
            buf.reserve(1 + len - buf.len());
            return Ok(None);
        }
        buf.advance(5);
        let body = buf.split_to(len - 4).freeze();
        Ok(Some(Frame { tag, body }))
    }

    /// The whole message as bytes on the wire.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(5 + self.body.len());
        out.extend_from_slice(&[self.tag]);
        out.extend_from_slice(&((self.body.len() + 4) as i32).to_be_bytes());
        out.extend_from_slice(&self.body);
        out.freeze()
    }
}

/// A cursor over a message body with checked reads.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    fn short(&self) -> ProtocolError {
        ProtocolError::Malformed {
            what: self.what,
            detail: "body ends early",
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ProtocolError> {
        let (&b, rest) = self.buf.split_first().ok_or_else(|| self.short())?;
        self.buf = rest;
        Ok(b)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, ProtocolError> {
        let b = self.bytes(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, ProtocolError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.buf.len() < n {
            return Err(self.short());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// A NUL-terminated UTF-8 string.
    pub(crate) fn cstr(&mut self) -> Result<&'a str, ProtocolError> {
        let end = self
            .buf
            .iter()
            .position(|b| *b == 0)
            .ok_or(ProtocolError::Malformed {
                what: self.what,
                detail: "string without terminating NUL",
            })?;
        let s = std::str::from_utf8(&self.buf[..end]).map_err(|_| ProtocolError::Malformed {
            what: self.what,
            detail: "string is not UTF-8",
        })?;
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    /// A count field, refused when negative or larger than what the rest could hold.
    pub(crate) fn count(&mut self, min_item_len: usize) -> Result<usize, ProtocolError> {
        let n = self.i16()?;
        let n = usize::try_from(n).map_err(|_| ProtocolError::Malformed {
            what: self.what,
            detail: "negative count",
        })?;
        if n.saturating_mul(min_item_len) > self.buf.len() {
            return Err(self.short());
        }
        Ok(n)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn finish(&self) -> Result<(), ProtocolError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::Malformed {
                what: self.what,
                detail: "trailing bytes",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_wait_for_complete_bodies_and_refuse_bad_lengths() {
        let mut buf = BytesMut::from(&b"Q\0\0\0\x09SELE"[..]);
        assert_eq!(Frame::parse(&mut buf, 100), Ok(None));
        buf.extend_from_slice(b"CT 1\0");
        // Declared 9 = 4 + 5 bytes: "SELEC" is a complete body; the rest stays buffered.
        let f = Frame::parse(&mut buf, 100).expect("ok").expect("frame");
        assert_eq!((f.tag, &f.body[..]), (b'Q', &b"SELEC"[..]));
        assert_eq!(&buf[..], b"T 1\0");
        for bad in [&b"Q\0\0\0\x03"[..], b"Q\xff\xff\xff\xff", b"Q\0\0\x01\0"] {
            let mut buf = BytesMut::from(bad);
            assert!(Frame::parse(&mut buf, 100).is_err(), "{bad:?}");
        }
    }
}
