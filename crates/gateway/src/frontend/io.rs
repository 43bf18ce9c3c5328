//! The client's socket, plain or TLS: framed reads with a size limit, buffered writes.

use bulkhead_wire::{to_client, Frame, SqlState};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::GatewayError;

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while upgrading.
    Gone,
}

/// Write buffer capacity kept between messages.
const KEPT_CAPACITY: usize = 64 * 1024;

async fn write_all(stream: &mut Stream, bytes: &[u8]) -> Result<(), GatewayError> {
    let written = match stream {
        Stream::Plain(s) => s.write_all(bytes).await,
        Stream::Tls(s) => match s.write_all(bytes).await {
            Ok(()) => s.flush().await,
            Err(e) => Err(e),
        },
        Stream::Gone => Ok(()),
    };
    written.map_err(|_| GatewayError::ClientGone)
}

/// A client connection.
pub struct ClientIo {
    stream: Stream,
    /// Bytes read and not yet framed.
    pub rbuf: BytesMut,
    /// Bytes to send at the next flush.
    pub wbuf: BytesMut,
    max_message: usize,
    /// Bytes read from the client so far (metering).
    pub bytes_in: u64,
    /// Bytes sent to the client so far (metering).
    pub bytes_out: u64,
}

impl ClientIo {
    /// Wraps a socket.
    pub fn new(stream: TcpStream, max_message: usize) -> Self {
        let _ = stream.set_nodelay(true);
        Self {
            stream: Stream::Plain(stream),
            rbuf: BytesMut::with_capacity(4096),
            wbuf: BytesMut::with_capacity(8192),
            max_message,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Runs the TLS handshake on a plain connection.
    pub async fn upgrade(&mut self, acceptor: &TlsAcceptor) -> Result<(), GatewayError> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(GatewayError::Unsupported(
                "TLS was already negotiated".into(),
            ));
        };
        let tls = acceptor
            .accept(tcp)
            .await
            .map_err(|_| GatewayError::ClientGone)?;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// Reads more bytes; `ClientGone` at end of stream.
    pub async fn fill(&mut self) -> Result<(), GatewayError> {
        let read = match &mut self.stream {
            Stream::Plain(s) => s.read_buf(&mut self.rbuf).await,
            Stream::Tls(s) => s.read_buf(&mut self.rbuf).await,
            Stream::Gone => Ok(0),
        };
        match read {
            Ok(0) | Err(_) => Err(GatewayError::ClientGone),
            Ok(n) => {
                self.bytes_in += n as u64;
                Ok(())
            }
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

    /// Sends what is buffered (the buffer is kept for the next messages).
    pub async fn flush(&mut self) -> Result<(), GatewayError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let written = write_all(&mut self.stream, &self.wbuf).await;
        self.bytes_out += self.wbuf.len() as u64;
        self.wbuf.clear();
        if self.wbuf.capacity() > KEPT_CAPACITY {
            // A large result once must not make an idle client cost that much for good.
            self.wbuf = BytesMut::with_capacity(8192);
        }
        written
    }

    /// Writes raw bytes straight away (e.g. the one-byte SSL answer).
    pub async fn write_now(&mut self, bytes: &[u8]) -> Result<(), GatewayError> {
        self.bytes_out += bytes.len() as u64;
        write_all(&mut self.stream, bytes).await
    }

    /// Queues a NoticeResponse (a warning or notice).
    pub fn notice(&mut self, severity: &str, code: SqlState, message: &str) {
        to_client::notice_response(&mut self.wbuf, severity, code, message);
    }

    /// Queues an ErrorResponse.
    pub fn error(&mut self, severity: &str, code: SqlState, message: &str) {
        to_client::error_response(&mut self.wbuf, severity, code, message, None);
    }
}
