//! The client's socket: framed reads with a size limit, buffered writes.

use bulkhead_wire::{to_client, Frame, SqlState};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::GatewayError;

/// A client connection.
pub struct ClientIo {
    stream: TcpStream,
    /// Bytes read and not yet framed.
    pub rbuf: BytesMut,
    /// Bytes to send at the next flush.
    pub wbuf: BytesMut,
    max_message: usize,
}

impl ClientIo {
    /// Wraps a socket.
    pub fn new(stream: TcpStream, max_message: usize) -> Self {
        let _ = stream.set_nodelay(true);
        Self {
            stream,
            rbuf: BytesMut::with_capacity(4096),
            wbuf: BytesMut::with_capacity(8192),
            max_message,
        }
    }

    /// Reads more bytes; `ClientGone` at end of stream.
    pub async fn fill(&mut self) -> Result<(), GatewayError> {
        match self.stream.read_buf(&mut self.rbuf).await {
            Ok(0) | Err(_) => Err(GatewayError::ClientGone),
            Ok(_) => Ok(()),
        }
    }

    /// The next message from the client.
    pub async fn read_frame(&mut self) -> Result<Frame, GatewayError> {
        loop {
            if let Some(frame) = Frame::parse(&mut self.rbuf, self.max_message)? {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }

    /// Sends what is buffered.
    pub async fn flush(&mut self) -> Result<(), GatewayError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let out = self.wbuf.split();
        self.stream
            .write_all(&out)
            .await
            .map_err(|_| GatewayError::ClientGone)
    }

    /// Writes raw bytes straight away (e.g. the one-byte SSL answer).
    pub async fn write_now(&mut self, bytes: &[u8]) -> Result<(), GatewayError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|_| GatewayError::ClientGone)
    }

    /// Queues an ErrorResponse.
    pub fn error(&mut self, severity: &str, code: SqlState, message: &str) {
        to_client::error_response(&mut self.wbuf, severity, code, message, None);
    }
}
