//! The `.bhk` archive: a portable file holding one tenant's rows.
//!
//! ```text
//! "BHK1" | u32 header length | header (JSON, in the clear: tenant, service, version, mode)
//! frame* : u32 length | nonce (12) | AES-256-GCM ciphertext + tag of (kind byte | payload)
//! ```
//!
//! Every frame is sealed under the tenant's data key with the SHA-256 of the header and the
//! frame's number as associated data, so a flipped byte anywhere, a changed header, frames
//! swapped, dropped or added, or a cut-off file all fail to open. Kinds: `T` a table starts
//! (its name and columns), `D` a chunk of its rows (PostgreSQL's binary COPY format, zstd
//! compressed), `E` the table ends, `M` the manifest (per table rows, bytes, SHA-256 of its
//! COPY stream), `Z` the end (the number of frames before it).

use std::io::{Read, Write};

use aes_gcm::Aes256Gcm;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::{open, seal, DataKey};
use crate::BackupError;

const MAGIC: &[u8; 4] = b"BHK1";
/// Frames larger than this are refused before being read.
const MAX_FRAME: usize = 64 << 20;

/// The archive's header: what is needed to find the key and check the fit before reading.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    /// Archive format.
    pub format: u32,
    /// The tenant whose rows these are.
    pub tenant_id: String,
    /// Its slug then.
    pub slug: String,
    /// The service.
    pub service: String,
    /// The service migration version of the rows.
    pub version: i64,
    /// The mode it was in.
    pub mode: String,
    /// When the backup started.
    pub created_at: String,
}

/// One table in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableEntry {
    /// Its name.
    pub name: String,
    /// Its columns, in the order of the COPY stream.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: u64,
    /// Bytes of the COPY stream.
    pub bytes: u64,
    /// SHA-256 of the COPY stream, hex.
    pub sha256: String,
}

/// The manifest, written after the data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// The header again (sealed this time).
    pub header: Header,
    /// Every table.
    pub tables: Vec<TableEntry>,
    /// When the backup finished.
    pub finished_at: String,
}

impl Manifest {
    /// What the audit log keeps of a backup.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "service": self.header.service, "version": self.header.version,
            "tables": self.tables.len(), "rows": self.tables.iter().map(|t| t.rows).sum::<u64>(),
        })
    }
}

/// A table's start frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableStart {
    /// Its name.
    pub name: String,
    /// Its columns.
    pub columns: Vec<String>,
}

/// A decoded frame.
pub enum Frame {
    /// A table starts.
    Table(TableStart),
    /// Rows (decompressed COPY bytes).
    Data(Vec<u8>),
    /// The table ends.
    End,
    /// The manifest.
    Manifest(Manifest),
    /// The archive ends.
    Finish,
}

fn aad(header_hash: &[u8; 32], frame: u64) -> [u8; 40] {
    let mut a = [0u8; 40];
    a[..32].copy_from_slice(header_hash);
    a[32..].copy_from_slice(&frame.to_be_bytes());
    a
}

/// Writes an archive.
pub struct Writer<W: Write> {
    out: W,
    cipher: Aes256Gcm,
    header_hash: [u8; 32],
    frames: u64,
    /// Bytes written so far.
    pub written: u64,
}

impl<W: Write> Writer<W> {
    /// Starts an archive with its header.
    pub fn new(mut out: W, key: &DataKey, header: &Header) -> Result<Self, BackupError> {
        let h = serde_json::to_vec(header).map_err(|e| BackupError::Corrupt(e.to_string()))?;
        let io = BackupError::io("writing the archive");
        out.write_all(MAGIC)
            .and_then(|_| out.write_all(&(h.len() as u32).to_be_bytes()))
            .and_then(|_| out.write_all(&h))
            .map_err(io)?;
        Ok(Self {
            out,
            cipher: key.0.clone(),
            header_hash: Sha256::digest(&h).into(),
            frames: 0,
            written: (8 + h.len()) as u64,
        })
    }

    fn frame(&mut self, kind: u8, payload: &[u8]) -> Result<(), BackupError> {
        let mut plain = Vec::with_capacity(payload.len() + 1);
        plain.push(kind);
        plain.extend_from_slice(payload);
        let sealed = seal(&self.cipher, &plain, &aad(&self.header_hash, self.frames));
        self.out
            .write_all(&(sealed.len() as u32).to_be_bytes())
            .and_then(|_| self.out.write_all(&sealed))
            .map_err(BackupError::io("writing the archive"))?;
        self.frames += 1;
        self.written += 4 + sealed.len() as u64;
        Ok(())
    }

    /// A table starts.
    pub fn table(&mut self, start: &TableStart) -> Result<(), BackupError> {
        let j = serde_json::to_vec(start).map_err(|e| BackupError::Corrupt(e.to_string()))?;
        self.frame(b'T', &j)
    }

    /// A chunk of COPY bytes.
    pub fn data(&mut self, raw: &[u8]) -> Result<(), BackupError> {
        let packed = zstd::bulk::compress(raw, 1).map_err(BackupError::io("compressing"))?;
        self.frame(b'D', &packed)
    }

    /// The table ends.
    pub fn end_table(&mut self) -> Result<(), BackupError> {
        self.frame(b'E', &[])
    }

    /// The manifest, then the end; returns the output.
    pub fn finish(mut self, manifest: &Manifest) -> Result<W, BackupError> {
        let j = serde_json::to_vec(manifest).map_err(|e| BackupError::Corrupt(e.to_string()))?;
        self.frame(b'M', &j)?;
        let count = self.frames;
        self.frame(b'Z', &count.to_be_bytes())?;
        self.out
            .flush()
            .map_err(BackupError::io("writing the archive"))?;
        Ok(self.out)
    }
}

/// Reads the header of an archive, leaving `input` at the first frame.
pub fn read_header(input: &mut impl Read) -> Result<(Header, [u8; 32]), BackupError> {
    let mut magic = [0u8; 4];
    read_exact(input, &mut magic, "its first bytes")?;
    if &magic != MAGIC {
        return Err(BackupError::Corrupt(
            "this is not a Bulkhead archive (.bhk)".into(),
        ));
    }
    let mut len = [0u8; 4];
    read_exact(input, &mut len, "its header length")?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 1 << 20 {
        return Err(BackupError::Corrupt("its header length is absurd".into()));
    }
    let mut h = vec![0u8; len];
    read_exact(input, &mut h, "its header")?;
    let header: Header = serde_json::from_slice(&h)
        .map_err(|e| BackupError::Corrupt(format!("its header does not parse: {e}")))?;
    if header.format != 1 {
        return Err(BackupError::Refused(format!(
            "archive format {} is newer than this Bulkhead reads (1)",
            header.format
        )));
    }
    Ok((header, Sha256::digest(&h).into()))
}

fn read_exact(input: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), BackupError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            BackupError::Corrupt(format!("it is truncated (it ends inside {what})"))
        }
        _ => BackupError::io("reading the archive")(e),
    })
}

/// Reads frames after the header.
pub struct Reader<R: Read> {
    input: R,
    cipher: Aes256Gcm,
    header_hash: [u8; 32],
    frames: u64,
    done: bool,
}

impl<R: Read> Reader<R> {
    /// A reader of the frames following a header read with [`read_header`].
    pub fn new(input: R, key: &DataKey, header_hash: [u8; 32]) -> Self {
        Self {
            input,
            cipher: key.0.clone(),
            header_hash,
            frames: 0,
            done: false,
        }
    }

    /// The next frame; after [`Frame::Finish`], checks nothing follows.
    pub fn next_frame(&mut self) -> Result<Frame, BackupError> {
        if self.done {
            return Err(BackupError::Corrupt("frames after its end".into()));
        }
        let mut len = [0u8; 4];
        read_exact(
            &mut self.input,
            &mut len,
            "a frame's length (its end is missing)",
        )?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(BackupError::Corrupt(format!(
                "frame {} is too large",
                self.frames
            )));
        }
        let mut sealed = vec![0u8; len];
        read_exact(&mut self.input, &mut sealed, "a frame")?;
        let plain =
            open(&self.cipher, &sealed, &aad(&self.header_hash, self.frames)).ok_or_else(|| {
                BackupError::Corrupt(format!(
                    "frame {} does not authenticate (altered, moved, or another tenant's key)",
                    self.frames
                ))
            })?;
        let n = self.frames;
        self.frames += 1;
        let (kind, payload) = plain
            .split_first()
            .ok_or_else(|| BackupError::Corrupt(format!("frame {n} is empty")))?;
        let bad = |e: String| BackupError::Corrupt(format!("frame {n}: {e}"));
        Ok(match kind {
            b'T' => Frame::Table(serde_json::from_slice(payload).map_err(|e| bad(e.to_string()))?),
            b'D' => Frame::Data(zstd::stream::decode_all(payload).map_err(|e| bad(e.to_string()))?),
            b'E' => Frame::End,
            b'M' => {
                Frame::Manifest(serde_json::from_slice(payload).map_err(|e| bad(e.to_string()))?)
            }
            b'Z' => {
                let count: [u8; 8] = payload.try_into().map_err(|_| bad("a bad end".into()))?;
                if u64::from_be_bytes(count) != n {
                    return Err(bad("the frame count does not match".into()));
                }
                let mut rest = [0u8; 1];
                match self.input.read(&mut rest) {
                    Ok(0) => {}
                    Ok(_) => return Err(BackupError::Corrupt("bytes after its end".into())),
                    Err(e) => return Err(BackupError::io("reading the archive")(e)),
                }
                self.done = true;
                Frame::Finish
            }
            other => return Err(bad(format!("unknown kind {other}"))),
        })
    }
}
