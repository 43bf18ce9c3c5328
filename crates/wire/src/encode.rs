//! Encoders: `backend` writes what a server says (the gateway speaking to its clients),
//! `frontend` writes what a client says (the gateway speaking to PostgreSQL).

use bytes::{BufMut, BytesMut};

/// Writes one message: tag, length placeholder, body via `f`, then the real length.
fn message(buf: &mut BytesMut, tag: u8, f: impl FnOnce(&mut BytesMut)) {
    buf.put_u8(tag);
    let at = buf.len();
    buf.put_i32(0);
    f(buf);
    let len = (buf.len() - at) as i32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn cstr(buf: &mut BytesMut, s: &str) {
    // A NUL inside would end the string early on the other side; cut it there instead.
    let s = s.split('\0').next().unwrap_or_default();
    buf.put_slice(s.as_bytes());
    buf.put_u8(0);
}

/// Messages a server sends; the gateway sends them to its clients.
pub mod backend {
    use super::{cstr, message};
    use crate::{SqlState, TransactionStatus};
    use bytes::{BufMut, BytesMut};

    /// AuthenticationOk.
    pub fn authentication_ok(buf: &mut BytesMut) {
        message(buf, b'R', |b| b.put_i32(0));
    }
    /// AuthenticationCleartextPassword.
    pub fn authentication_cleartext(buf: &mut BytesMut) {
        message(buf, b'R', |b| b.put_i32(3));
    }
    /// AuthenticationSASL with the offered mechanisms.
    pub fn authentication_sasl(buf: &mut BytesMut, mechanisms: &[&str]) {
        message(buf, b'R', |b| {
            b.put_i32(10);
            for m in mechanisms {
                cstr(b, m);
            }
            b.put_u8(0);
        });
    }
    /// AuthenticationSASLContinue.
    pub fn sasl_continue(buf: &mut BytesMut, data: &[u8]) {
        message(buf, b'R', |b| {
            b.put_i32(11);
            b.put_slice(data);
        });
    }
    /// AuthenticationSASLFinal.
    pub fn sasl_final(buf: &mut BytesMut, data: &[u8]) {
        message(buf, b'R', |b| {
            b.put_i32(12);
            b.put_slice(data);
        });
    }
    /// ParameterStatus.
    pub fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
        message(buf, b'S', |b| {
            cstr(b, name);
            cstr(b, value);
        });
    }
    /// BackendKeyData.
    pub fn backend_key_data(buf: &mut BytesMut, pid: i32, secret: &[u8]) {
        message(buf, b'K', |b| {
            b.put_i32(pid);
            b.put_slice(secret);
        });
    }
    /// ReadyForQuery.
    pub fn ready_for_query(buf: &mut BytesMut, status: TransactionStatus) {
        message(buf, b'Z', |b| b.put_u8(status.byte()));
    }
    /// ErrorResponse (`severity` is ERROR or FATAL).
    pub fn error_response(
        buf: &mut BytesMut,
        severity: &str,
        code: SqlState,
        text: &str,
        hint: Option<&str>,
    ) {
        fields(buf, b'E', severity, code.code(), text, hint);
    }
    /// NoticeResponse with a severity (`WARNING`, `NOTICE`, ...).
    pub fn notice_response(buf: &mut BytesMut, severity: &str, code: SqlState, text: &str) {
        fields(buf, b'N', severity, code.code(), text, None);
    }
    fn fields(
        buf: &mut BytesMut,
        tag: u8,
        severity: &str,
        code: &str,
        text: &str,
        hint: Option<&str>,
    ) {
        message(buf, tag, |b| {
            for (k, v) in [
                (b'S', severity),
                (b'V', severity),
                (b'C', code),
                (b'M', text),
            ] {
                b.put_u8(k);
                cstr(b, v);
            }
            if let Some(h) = hint {
                b.put_u8(b'H');
                cstr(b, h);
            }
            b.put_u8(0);
        });
    }
    /// RowDescription of text columns of type `type_oid` (25 = text, 2278 = void).
    pub fn row_description(buf: &mut BytesMut, columns: &[(&str, u32)]) {
        message(buf, b'T', |b| {
            b.put_i16(columns.len() as i16);
            for (name, oid) in columns {
                cstr(b, name);
                b.put_i32(0); // table oid
                b.put_i16(0); // column number
                b.put_u32(*oid);
                b.put_i16(-1); // type size
                b.put_i32(-1); // type modifier
                b.put_i16(0); // text format
            }
        });
    }
    /// DataRow of text values (None: NULL).
    pub fn data_row(buf: &mut BytesMut, values: &[Option<&str>]) {
        message(buf, b'D', |b| {
            b.put_i16(values.len() as i16);
            for v in values {
                match v {
                    Some(v) => {
                        b.put_i32(v.len() as i32);
                        b.put_slice(v.as_bytes());
                    }
                    None => b.put_i32(-1),
                }
            }
        });
    }
    /// CommandComplete.
    pub fn command_complete(buf: &mut BytesMut, tag: &str) {
        message(buf, b'C', |b| cstr(b, tag));
    }
    /// EmptyQueryResponse.
    pub fn empty_query_response(buf: &mut BytesMut) {
        message(buf, b'I', |_| {});
    }
    /// ParseComplete.
    pub fn parse_complete(buf: &mut BytesMut) {
        message(buf, b'1', |_| {});
    }
    /// BindComplete.
    pub fn bind_complete(buf: &mut BytesMut) {
        message(buf, b'2', |_| {});
    }
    /// CloseComplete.
    pub fn close_complete(buf: &mut BytesMut) {
        message(buf, b'3', |_| {});
    }
    /// NoData.
    pub fn no_data(buf: &mut BytesMut) {
        message(buf, b'n', |_| {});
    }
    /// NegotiateProtocolVersion: the newest minor we speak and options we did not recognise.
    pub fn negotiate_protocol_version(buf: &mut BytesMut, minor: i32, unrecognized: &[&str]) {
        message(buf, b'v', |b| {
            b.put_i32(minor);
            b.put_i32(unrecognized.len() as i32);
            for o in unrecognized {
                cstr(b, o);
            }
        });
    }
}

/// Messages a client sends; the gateway sends them to PostgreSQL.
pub mod frontend {
    use super::{cstr, message};
    use bytes::{BufMut, BytesMut};

    fn untyped(buf: &mut BytesMut, f: impl FnOnce(&mut BytesMut)) {
        let at = buf.len();
        buf.put_i32(0);
        f(buf);
        let len = (buf.len() - at) as i32;
        buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    /// A protocol 3.0 startup message.
    pub fn startup(buf: &mut BytesMut, params: &[(&str, &str)]) {
        untyped(buf, |b| {
            b.put_i32(crate::PROTOCOL_3_0);
            for (k, v) in params {
                cstr(b, k);
                cstr(b, v);
            }
            b.put_u8(0);
        });
    }
    /// SSLRequest.
    pub fn ssl_request(buf: &mut BytesMut) {
        untyped(buf, |b| b.put_i32(80_877_103));
    }
    /// CancelRequest.
    pub fn cancel_request(buf: &mut BytesMut, pid: i32, secret: &[u8]) {
        untyped(buf, |b| {
            b.put_i32(80_877_102);
            b.put_i32(pid);
            b.put_slice(secret);
        });
    }
    /// PasswordMessage with a cleartext password.
    pub fn password(buf: &mut BytesMut, password: &str) {
        message(buf, b'p', |b| cstr(b, password));
    }
    /// SASLInitialResponse.
    pub fn sasl_initial_response(buf: &mut BytesMut, mechanism: &str, data: &[u8]) {
        message(buf, b'p', |b| {
            cstr(b, mechanism);
            b.put_i32(data.len() as i32);
            b.put_slice(data);
        });
    }
    /// SASLResponse.
    pub fn sasl_response(buf: &mut BytesMut, data: &[u8]) {
        message(buf, b'p', |b| b.put_slice(data));
    }
    /// Query.
    pub fn query(buf: &mut BytesMut, sql: &str) {
        message(buf, b'Q', |b| cstr(b, sql));
    }
    /// Parse.
    pub fn parse(buf: &mut BytesMut, name: &str, sql: &str, param_types: &[u32]) {
        message(buf, b'P', |b| {
            cstr(b, name);
            cstr(b, sql);
            b.put_i16(param_types.len() as i16);
            for t in param_types {
                b.put_u32(*t);
            }
        });
    }
    /// Bind.
    pub fn bind(
        buf: &mut BytesMut,
        portal: &str,
        statement: &str,
        param_formats: &[i16],
        params: &[Option<&[u8]>],
        result_formats: &[i16],
    ) {
        message(buf, b'B', |b| {
            cstr(b, portal);
            cstr(b, statement);
            b.put_i16(param_formats.len() as i16);
            for f in param_formats {
                b.put_i16(*f);
            }
            b.put_i16(params.len() as i16);
            for p in params {
                match p {
                    Some(v) => {
                        b.put_i32(v.len() as i32);
                        b.put_slice(v);
                    }
                    None => b.put_i32(-1),
                }
            }
            b.put_i16(result_formats.len() as i16);
            for f in result_formats {
                b.put_i16(*f);
            }
        });
    }
    /// Describe a statement (`S`) or portal (`P`).
    pub fn describe(buf: &mut BytesMut, kind: u8, name: &str) {
        message(buf, b'D', |b| {
            b.put_u8(kind);
            cstr(b, name);
        });
    }
    /// Execute.
    pub fn execute(buf: &mut BytesMut, portal: &str, max_rows: i32) {
        message(buf, b'E', |b| {
            cstr(b, portal);
            b.put_i32(max_rows);
        });
    }
    /// Close a statement (`S`) or portal (`P`).
    pub fn close(buf: &mut BytesMut, kind: u8, name: &str) {
        message(buf, b'C', |b| {
            b.put_u8(kind);
            cstr(b, name);
        });
    }
    /// Sync.
    pub fn sync(buf: &mut BytesMut) {
        message(buf, b'S', |_| {});
    }
    /// Flush.
    pub fn flush(buf: &mut BytesMut) {
        message(buf, b'H', |_| {});
    }
    /// Terminate.
    pub fn terminate(buf: &mut BytesMut) {
        message(buf, b'X', |_| {});
    }
}
