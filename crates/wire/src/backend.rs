//! Messages a PostgreSQL server sends, decoded from frames (the ones the gateway acts on;
//! everything else is passed through as a frame).

use bytes::Bytes;

use crate::frame::{Frame, Reader};
use crate::ProtocolError;

/// The transaction state reported by ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// `I`: not in a transaction.
    Idle,
    /// `T`: in a transaction.
    InTransaction,
    /// `E`: in a failed transaction.
    Failed,
}

impl TransactionStatus {
    /// The status byte.
    pub fn byte(&self) -> u8 {
        match self {
            TransactionStatus::Idle => b'I',
            TransactionStatus::InTransaction => b'T',
            TransactionStatus::Failed => b'E',
        }
    }
}

/// The fields of an ErrorResponse or NoticeResponse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields(pub Vec<(u8, String)>);

impl ErrorFields {
    fn get(&self, code: u8) -> Option<&str> {
        self.0
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_str())
    }
    /// The SQLSTATE (`C`).
    pub fn code(&self) -> Option<&str> {
        self.get(b'C')
    }
    /// The primary message (`M`).
    pub fn message(&self) -> Option<&str> {
        self.get(b'M')
    }
    /// The severity (`V`, else `S`).
    pub fn severity(&self) -> Option<&str> {
        self.get(b'V').or_else(|| self.get(b'S'))
    }
}

/// A decoded server message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage {
    /// `R`: an authentication request or result: the code and the rest of the body.
    Authentication(i32, Bytes),
    /// `S`: a run-time parameter's value.
    ParameterStatus(String, String),
    /// `K`: the key for cancel requests.
    BackendKeyData(i32, Bytes),
    /// `Z`: ready for a new query.
    ReadyForQuery(TransactionStatus),
    /// `E`: an error.
    Error(ErrorFields),
    /// `N`: a notice.
    Notice(ErrorFields),
    /// `C`: a command finished, with its tag.
    CommandComplete(String),
    /// `G`: the server waits for COPY data.
    CopyInResponse,
    /// `H`: the server will send COPY data.
    CopyOutResponse,
    /// `W`: COPY both ways (replication).
    CopyBothResponse,
    /// `A`: a NOTIFY.
    Notification,
    /// Anything else, passed through untouched.
    Other(u8),
}

/// The values of a DataRow frame as text (None: NULL); None when it is not a well-formed
/// DataRow of text values.
pub fn data_row_texts(frame: &Frame) -> Option<Vec<Option<String>>> {
    if frame.tag != b'D' {
        return None;
    }
    let body = &frame.body[..];
    let n = i16::from_be_bytes(body.get(..2)?.try_into().ok()?);
    let mut at = 2;
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        let len = i32::from_be_bytes(body.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        if len < 0 {
            out.push(None);
            continue;
        }
        let v = body.get(at..at + len as usize)?;
        at += len as usize;
        out.push(Some(String::from_utf8(v.to_vec()).ok()?));
    }
    (at == body.len()).then_some(out)
}

impl BackendMessage {
    /// Decodes a frame received from a server.
    pub fn decode(frame: &Frame) -> Result<BackendMessage, ProtocolError> {
        let body = &frame.body;
        Ok(match frame.tag {
            b'R' => {
                let mut r = Reader::new(body, "Authentication");
                let code = r.i32()?;
                BackendMessage::Authentication(code, Bytes::copy_from_slice(r.rest()))
            }
            b'S' => {
                let mut r = Reader::new(body, "ParameterStatus");
                let (n, v) = (r.cstr()?.to_string(), r.cstr()?.to_string());
                r.finish()?;
                BackendMessage::ParameterStatus(n, v)
            }
            b'K' => {
                let mut r = Reader::new(body, "BackendKeyData");
                let pid = r.i32()?;
                BackendMessage::BackendKeyData(pid, Bytes::copy_from_slice(r.rest()))
            }
            b'Z' => {
                let mut r = Reader::new(body, "ReadyForQuery");
                let status = match r.u8()? {
                    b'I' => TransactionStatus::Idle,
                    b'T' => TransactionStatus::InTransaction,
                    b'E' => TransactionStatus::Failed,
                    _ => {
                        return Err(ProtocolError::Malformed {
                            what: "ReadyForQuery",
                            detail: "unknown status",
                        })
                    }
                };
                r.finish()?;
                BackendMessage::ReadyForQuery(status)
            }
            b'E' => BackendMessage::Error(fields(body, "ErrorResponse")?),
            b'N' => BackendMessage::Notice(fields(body, "NoticeResponse")?),
            b'C' => {
                let mut r = Reader::new(body, "CommandComplete");
                let tag = r.cstr()?.to_string();
                r.finish()?;
                BackendMessage::CommandComplete(tag)
            }
            b'G' => BackendMessage::CopyInResponse,
            b'H' => BackendMessage::CopyOutResponse,
            b'W' => BackendMessage::CopyBothResponse,
            b'A' => BackendMessage::Notification,
            other => BackendMessage::Other(other),
        })
    }
}

fn fields(body: &[u8], what: &'static str) -> Result<ErrorFields, ProtocolError> {
    let mut r = Reader::new(body, what);
    let mut out = Vec::new();
    loop {
        let code = r.u8()?;
        if code == 0 {
            break;
        }
        out.push((code, r.cstr()?.to_string()));
    }
    r.finish()?;
    Ok(ErrorFields(out))
}
