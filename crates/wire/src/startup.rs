//! The first packet of a connection: no type byte, a length, then a request code: a startup
//! message with parameters, an SSL or GSS encryption request, or a cancel request.

use bytes::BytesMut;

use crate::frame::Reader;
use crate::ProtocolError;

/// PostgreSQL's own limit on a startup packet.
pub const MAX_STARTUP_LEN: usize = 10_000;
/// Protocol 3.0 as a request code.
pub const PROTOCOL_3_0: i32 = 196_608;
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// A decoded first packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// Start a session.
    Startup {
        /// Protocol minor version (major is always 3).
        minor: u16,
        /// Parameters in order (`user`, `database`, `options`, ...).
        params: Vec<(String, String)>,
    },
    /// Asks for TLS; answered with `S` or `N`.
    SslRequest,
    /// Asks for GSS encryption; answered with `N`.
    GssEncRequest,
    /// Cancels the query running under a backend key.
    Cancel {
        /// The process id from BackendKeyData.
        pid: i32,
        /// The secret key (4 bytes in protocol 3.0, up to 256 in 3.2).
        secret: Vec<u8>,
    },
}

impl Startup {
    /// Decodes the first packet from `buf`; `Ok(None)` when more bytes are needed.
    pub fn parse(buf: &mut BytesMut) -> Result<Option<Startup>, ProtocolError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let declared = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let len = usize::try_from(declared)
            .ok()
            .filter(|l| (8..=MAX_STARTUP_LEN).contains(l))
            .ok_or(ProtocolError::Length {
                len: i64::from(declared),
                min: 8,
                max: MAX_STARTUP_LEN,
            })?;
        if buf.len() < len {
            return Ok(None);
        }
        let packet = buf.split_to(len);
        let mut r = Reader::new(&packet[4..], "startup");
        let code = r.i32()?;
        let decoded = match code {
            SSL_REQUEST => {
                r.finish()?;
                Startup::SslRequest
            }
            GSSENC_REQUEST => {
                r.finish()?;
                Startup::GssEncRequest
            }
            CANCEL_REQUEST => {
                let pid = r.i32()?;
                let secret = r.rest().to_vec();
                if !(4..=256).contains(&secret.len()) {
                    return Err(ProtocolError::Malformed {
                        what: "cancel request",
                        detail: "secret key must be 4 to 256 bytes",
                    });
                }
                Startup::Cancel { pid, secret }
            }
            version => {
                let (major, minor) = ((version >> 16) as u16, (version & 0xffff) as u16);
                if major != 3 {
                    return Err(ProtocolError::Version { major, minor });
                }
                Startup::Startup {
                    minor,
                    params: parameters(&mut r)?,
                }
            }
        };
        Ok(Some(decoded))
    }
}

fn parameters(r: &mut Reader<'_>) -> Result<Vec<(String, String)>, ProtocolError> {
    let mut params = Vec::new();
    loop {
        let name = r.cstr()?;
        if name.is_empty() {
            break;
        }
        let value = r.cstr()?;
        params.push((name.to_string(), value.to_string()));
    }
    r.finish()?;
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::to_server;

    #[test]
    fn startup_cancel_and_ssl_requests_decode() {
        let mut buf = BytesMut::new();
        to_server::startup(&mut buf, &[("user", "acme"), ("database", "billing")]);
        to_server::ssl_request(&mut buf);
        to_server::cancel_request(&mut buf, 42, &[1, 2, 3, 4]);
        assert_eq!(
            Startup::parse(&mut buf).expect("ok"),
            Some(Startup::Startup {
                minor: 0,
                params: vec![
                    ("user".into(), "acme".into()),
                    ("database".into(), "billing".into())
                ]
            })
        );
        assert_eq!(
            Startup::parse(&mut buf).expect("ok"),
            Some(Startup::SslRequest)
        );
        assert_eq!(
            Startup::parse(&mut buf).expect("ok"),
            Some(Startup::Cancel {
                pid: 42,
                secret: vec![1, 2, 3, 4]
            })
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_and_undersized_startup_packets_are_refused() {
        for len in [0i32, 7, 10_001, -1] {
            let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
            assert!(Startup::parse(&mut buf).is_err(), "{len}");
        }
        let mut v2 = BytesMut::new();
        v2.extend_from_slice(&8i32.to_be_bytes());
        v2.extend_from_slice(&(2i32 << 16).to_be_bytes());
        assert_eq!(
            Startup::parse(&mut v2),
            Err(ProtocolError::Version { major: 2, minor: 0 })
        );
    }
}
