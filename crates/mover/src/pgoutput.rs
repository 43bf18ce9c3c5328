//! A decoder of PostgreSQL's `pgoutput` logical replication messages (protocol version 1,
//! text values), as `pg_logical_slot_peek_binary_changes` hands them out: one message per
//! row. Only what a move replays is kept; anything malformed is an error, never a guess.

use crate::MoveError;

/// A column as a Relation message describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Part of the replica identity (the key deletes and updates name rows by).
    pub key: bool,
}

/// One value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A TOASTed value the change left alone (not sent).
    Unchanged,
    /// The value's text form.
    Text(String),
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A transaction begins.
    Begin,
    /// A transaction committed; `end_lsn` is where replay may resume after it.
    Commit {
        /// The end of the commit record.
        end_lsn: u64,
    },
    /// The columns of a relation, sent before its first change in a session.
    Relation {
        /// The relation's oid on the source.
        id: u32,
        /// Its schema.
        namespace: String,
        /// Its name.
        name: String,
        /// Its columns, in order.
        columns: Vec<Column>,
    },
    /// A row inserted.
    Insert {
        /// The relation.
        id: u32,
        /// The new row.
        new: Vec<Value>,
    },
    /// A row updated; `old` is its old key (or whole old row) when the key changed.
    Update {
        /// The relation.
        id: u32,
        /// The old key or row, when sent.
        old: Option<Vec<Value>>,
        /// The new row.
        new: Vec<Value>,
    },
    /// A row deleted, named by its key (or whole row).
    Delete {
        /// The relation.
        id: u32,
        /// The old key or row.
        old: Vec<Value>,
    },
    /// Relations truncated.
    Truncate {
        /// The relations.
        ids: Vec<u32>,
    },
    /// Something a move does not replay (origin, type, logical message).
    Other,
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn bad(&self, what: &str) -> MoveError {
        MoveError::Decode(format!("{what} at byte {} of a pgoutput message", self.at))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], MoveError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.buf.len());
        let Some(end) = end else {
            return Err(self.bad("message ends early"));
        };
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, MoveError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, MoveError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, MoveError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, MoveError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn cstr(&mut self) -> Result<String, MoveError> {
        let rest = &self.buf[self.at..];
        let Some(nul) = rest.iter().position(|b| *b == 0) else {
            return Err(self.bad("unterminated string"));
        };
        let s = std::str::from_utf8(&rest[..nul])
            .map_err(|_| self.bad("a name that is not UTF-8"))?
            .to_string();
        self.at += nul + 1;
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Vec<Value>, MoveError> {
        let n = self.u16()?;
        let mut values = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            values.push(match self.u8()? {
                b'n' => Value::Null,
                b'u' => Value::Unchanged,
                b't' => {
                    let len = self.u32()? as usize;
                    let bytes = self.take(len)?;
                    Value::Text(
                        std::str::from_utf8(bytes)
                            .map_err(|_| self.bad("a text value that is not UTF-8"))?
                            .to_string(),
                    )
                }
                b'b' => return Err(self.bad("a binary value (binary mode is not asked for)")),
                _ => return Err(self.bad("an unknown tuple value kind")),
            });
        }
        Ok(values)
    }
}

/// Decodes one message.
pub fn decode(buf: &[u8]) -> Result<Message, MoveError> {
    let mut r = Reader { buf, at: 0 };
    let msg = match r.u8()? {
        b'B' => {
            r.take(8 + 8 + 4)?;
            Message::Begin
        }
        b'C' => {
            r.u8()?;
            r.u64()?;
            let end_lsn = r.u64()?;
            r.u64()?;
            Message::Commit { end_lsn }
        }
        b'R' => {
            let id = r.u32()?;
            let namespace = r.cstr()?;
            let name = r.cstr()?;
            r.u8()?;
            let n = r.u16()?;
            let mut columns = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                let flags = r.u8()?;
                let cname = r.cstr()?;
                r.u32()?;
                r.u32()?;
                columns.push(Column {
                    name: cname,
                    key: flags & 1 == 1,
                });
            }
            Message::Relation {
                id,
                namespace,
                name,
                columns,
            }
        }
        b'I' => {
            let id = r.u32()?;
            if r.u8()? != b'N' {
                return Err(r.bad("an insert without its new tuple"));
            }
            Message::Insert {
                id,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let id = r.u32()?;
            let mut old = None;
            let mut kind = r.u8()?;
            if kind == b'K' || kind == b'O' {
                old = Some(r.tuple()?);
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err(r.bad("an update without its new tuple"));
            }
            Message::Update {
                id,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let id = r.u32()?;
            let kind = r.u8()?;
            if kind != b'K' && kind != b'O' {
                return Err(r.bad("a delete without its old key"));
            }
            Message::Delete {
                id,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.u32()?;
            r.u8()?;
            let mut ids = Vec::new();
            for _ in 0..n {
                ids.push(r.u32()?);
            }
            Message::Truncate { ids }
        }
        b'O' | b'Y' | b'M' => Message::Other,
        other => {
            return Err(MoveError::Decode(format!(
                "unknown pgoutput message type {:?}",
                other as char
            )))
        }
    };
    Ok(msg)
}

/// `X/Y` text form of an LSN.
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// Parses an LSN's `X/Y` text form.
pub fn parse_lsn(text: &str) -> Result<u64, MoveError> {
    let bad = || MoveError::Decode(format!("`{text}` is not an LSN"));
    let (hi, lo) = text.split_once('/').ok_or_else(bad)?;
    let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
    let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
    Ok((hi << 32) | lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(values: &[Option<&str>]) -> Vec<u8> {
        let mut b = (values.len() as u16).to_be_bytes().to_vec();
        for v in values {
            match v {
                None => b.push(b'n'),
                Some(s) => {
                    b.push(b't');
                    b.extend_from_slice(&(s.len() as u32).to_be_bytes());
                    b.extend_from_slice(s.as_bytes());
                }
            }
        }
        b
    }

    #[test]
    fn decodes_relation_insert_update_delete() {
        let mut rel = vec![b'R'];
        rel.extend_from_slice(&16384u32.to_be_bytes());
        rel.extend_from_slice(b"public\0orders\0d");
        rel.extend_from_slice(&2u16.to_be_bytes());
        rel.extend_from_slice(b"\x01id\0");
        rel.extend_from_slice(&[0, 0, 0, 23, 255, 255, 255, 255]);
        rel.extend_from_slice(b"\x00note\0");
        rel.extend_from_slice(&[0, 0, 0, 25, 255, 255, 255, 255]);
        assert_eq!(
            decode(&rel).expect("relation"),
            Message::Relation {
                id: 16384,
                namespace: "public".into(),
                name: "orders".into(),
                columns: vec![
                    Column {
                        name: "id".into(),
                        key: true
                    },
                    Column {
                        name: "note".into(),
                        key: false
                    }
                ],
            }
        );
        let mut ins = vec![b'I'];
        ins.extend_from_slice(&16384u32.to_be_bytes());
        ins.push(b'N');
        ins.extend(tuple(&[Some("1"), None]));
        assert_eq!(
            decode(&ins).expect("insert"),
            Message::Insert {
                id: 16384,
                new: vec![Value::Text("1".into()), Value::Null]
            }
        );
        let mut upd = vec![b'U'];
        upd.extend_from_slice(&16384u32.to_be_bytes());
        upd.push(b'K');
        upd.extend(tuple(&[Some("1"), None]));
        upd.push(b'N');
        upd.extend(tuple(&[Some("2"), Some("it's")]));
        assert!(matches!(
            decode(&upd),
            Ok(Message::Update { old: Some(_), .. })
        ));
        let mut del = vec![b'D'];
        del.extend_from_slice(&16384u32.to_be_bytes());
        del.push(b'K');
        del.extend(tuple(&[Some("2"), None]));
        assert!(matches!(decode(&del), Ok(Message::Delete { .. })));
    }

    #[test]
    fn truncated_or_unknown_messages_are_errors() {
        assert!(decode(b"").is_err());
        assert!(decode(b"I\0\0").is_err());
        assert!(decode(b"Z").is_err());
        let mut ins = vec![b'I'];
        ins.extend_from_slice(&1u32.to_be_bytes());
        ins.push(b'N');
        ins.extend_from_slice(&1u16.to_be_bytes());
        ins.push(b't');
        ins.extend_from_slice(&100u32.to_be_bytes());
        assert!(decode(&ins).is_err(), "a length past the end");
    }

    #[test]
    fn lsns_round_trip() {
        assert_eq!(parse_lsn("16/B374D848").expect("lsn"), 0x16_B374_D848);
        assert_eq!(lsn_text(0x16_B374_D848), "16/B374D848");
        assert!(parse_lsn("nope").is_err());
    }
}
