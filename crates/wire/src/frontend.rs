//! Messages a client sends after startup, decoded from frames.

use bytes::Bytes;

use crate::frame::{Frame, Reader};
use crate::ProtocolError;

/// Text or binary, per parameter or result column.
pub type ParamFormat = i16;

/// A decoded client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendMessage {
    /// `Q`: a simple query (possibly several statements).
    Query(String),
    /// `P`: prepare `query` as statement `name` ("" is the unnamed statement).
    Parse {
        /// Statement name.
        name: String,
        /// Its text.
        query: String,
        /// Declared parameter type OIDs (0 = unspecified).
        param_types: Vec<u32>,
    },
    /// `B`: bind parameters to a statement, making a portal.
    Bind {
        /// Portal name.
        portal: String,
        /// Statement name.
        statement: String,
        /// Parameter formats.
        param_formats: Vec<ParamFormat>,
        /// Parameter values (None = NULL).
        params: Vec<Option<Bytes>>,
        /// Result column formats.
        result_formats: Vec<ParamFormat>,
    },
    /// `D`: describe a statement (`S`) or portal (`P`).
    Describe {
        /// `S` or `P`.
        kind: u8,
        /// Its name.
        name: String,
    },
    /// `E`: run a portal.
    Execute {
        /// Portal name.
        portal: String,
        /// Row limit (0 = all).
        max_rows: i32,
    },
    /// `C`: close a statement (`S`) or portal (`P`).
    Close {
        /// `S` or `P`.
        kind: u8,
        /// Its name.
        name: String,
    },
    /// `S`: end of an extended-protocol batch.
    Sync,
    /// `H`: flush pending results.
    Flush,
    /// `X`: the client is leaving.
    Terminate,
    /// `p`: a password, SASL initial response or SASL response (meaning depends on state).
    Password(Bytes),
    /// `d`: COPY data.
    CopyData(Bytes),
    /// `c`: COPY done.
    CopyDone,
    /// `f`: COPY failed, with a message.
    CopyFail(String),
    /// `F`: the legacy function-call protocol (refused by the gateway).
    FunctionCall,
}

impl FrontendMessage {
    /// Decodes a frame received from a client.
    pub fn decode(frame: &Frame) -> Result<FrontendMessage, ProtocolError> {
        let body = &frame.body;
        let msg = match frame.tag {
            b'Q' => {
                let mut r = Reader::new(body, "Query");
                let q = r.cstr()?.to_string();
                r.finish()?;
                FrontendMessage::Query(q)
            }
            b'P' => {
                let mut r = Reader::new(body, "Parse");
                let name = r.cstr()?.to_string();
                let query = r.cstr()?.to_string();
                let n = r.count(4)?;
                let mut param_types = Vec::with_capacity(n);
                for _ in 0..n {
                    param_types.push(r.i32()? as u32);
                }
                r.finish()?;
                FrontendMessage::Parse {
                    name,
                    query,
                    param_types,
                }
            }
            b'B' => decode_bind(body)?,
            b'D' | b'C' => {
                let what = if frame.tag == b'D' {
                    "Describe"
                } else {
                    "Close"
                };
                let mut r = Reader::new(body, what);
                let kind = r.u8()?;
                if kind != b'S' && kind != b'P' {
                    return Err(ProtocolError::Malformed {
                        what,
                        detail: "kind must be 'S' or 'P'",
                    });
                }
                let name = r.cstr()?.to_string();
                r.finish()?;
                if frame.tag == b'D' {
                    FrontendMessage::Describe { kind, name }
                } else {
                    FrontendMessage::Close { kind, name }
                }
            }
            b'E' => {
                let mut r = Reader::new(body, "Execute");
                let portal = r.cstr()?.to_string();
                let max_rows = r.i32()?;
                r.finish()?;
                FrontendMessage::Execute { portal, max_rows }
            }
            b'S' => empty(body, "Sync", FrontendMessage::Sync)?,
            b'H' => empty(body, "Flush", FrontendMessage::Flush)?,
            b'X' => empty(body, "Terminate", FrontendMessage::Terminate)?,
            b'c' => empty(body, "CopyDone", FrontendMessage::CopyDone)?,
            b'p' => FrontendMessage::Password(body.clone()),
            b'd' => FrontendMessage::CopyData(body.clone()),
            b'f' => {
                let mut r = Reader::new(body, "CopyFail");
                let m = r.cstr()?.to_string();
                r.finish()?;
                FrontendMessage::CopyFail(m)
            }
            b'F' => FrontendMessage::FunctionCall,
            other => return Err(ProtocolError::UnknownTag(other as char)),
        };
        Ok(msg)
    }

    /// Reads a SASLInitialResponse body: the chosen mechanism and the client's first message.
    pub fn sasl_initial(body: &[u8]) -> Result<(String, Vec<u8>), ProtocolError> {
        let mut r = Reader::new(body, "SASLInitialResponse");
        let mechanism = r.cstr()?.to_string();
        let len = r.i32()?;
        let data = if len < 0 {
            Vec::new()
        } else {
            r.bytes(len as usize)?.to_vec()
        };
        r.finish()?;
        Ok((mechanism, data))
    }

    /// Reads a cleartext password body.
    pub fn password_text(body: &[u8]) -> Result<String, ProtocolError> {
        let mut r = Reader::new(body, "PasswordMessage");
        let p = r.cstr()?.to_string();
        r.finish()?;
        Ok(p)
    }
}

fn empty(
    body: &[u8],
    what: &'static str,
    msg: FrontendMessage,
) -> Result<FrontendMessage, ProtocolError> {
    Reader::new(body, what).finish()?;
    Ok(msg)
}

fn decode_bind(body: &[u8]) -> Result<FrontendMessage, ProtocolError> {
    let mut r = Reader::new(body, "Bind");
    let portal = r.cstr()?.to_string();
    let statement = r.cstr()?.to_string();
    let nf = r.count(2)?;
    let mut param_formats = Vec::with_capacity(nf);
    for _ in 0..nf {
        param_formats.push(r.i16()?);
    }
    let np = r.count(4)?;
    let mut params = Vec::with_capacity(np);
    for _ in 0..np {
        let len = r.i32()?;
        if len == -1 {
            params.push(None);
        } else if len < 0 {
            return Err(ProtocolError::Malformed {
                what: "Bind",
                detail: "negative parameter length",
            });
        } else {
            params.push(Some(Bytes::copy_from_slice(r.bytes(len as usize)?)));
        }
    }
    let nr = r.count(2)?;
    let mut result_formats = Vec::with_capacity(nr);
    for _ in 0..nr {
        result_formats.push(r.i16()?);
    }
    if !r.is_empty() {
        return Err(ProtocolError::Malformed {
            what: "Bind",
            detail: "trailing bytes",
        });
    }
    Ok(FrontendMessage::Bind {
        portal,
        statement,
        param_formats,
        params,
        result_formats,
    })
}
