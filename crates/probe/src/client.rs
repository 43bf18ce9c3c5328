//! Reaching the gateway as a throwaway tenant: with a driver (tokio-postgres), or with raw
//! protocol messages where an attack needs what a driver never sends.

use std::net::SocketAddr;
use std::time::Duration;

use bulkhead_wire::{to_server, BackendMessage, Frame, MAX_MESSAGE_LEN};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// How long any one step of an attack may take.
pub(crate) const STEP: Duration = Duration::from_secs(10);

/// The gateway and the probe's service.
#[derive(Clone)]
pub(crate) struct Gateway {
    pub addr: SocketAddr,
    pub service: String,
}

/// A failure, as SQLSTATE and message.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} {}", d.code().code(), d.message()),
        None => e.to_string(),
    }
}

/// The SQLSTATE of a failure, if the server (or gateway) sent one.
pub(crate) fn code(e: &tokio_postgres::Error) -> Option<String> {
    e.code().map(|c| c.code().to_string())
}

impl Gateway {
    pub(crate) fn new(addr: SocketAddr, service: String) -> Self {
        Self { addr, service }
    }

    /// Logs in as a tenant (API key or token).
    pub(crate) async fn login(&self, password: &str) -> Result<Client, tokio_postgres::Error> {
        self.login_to(&self.service.clone(), "probe", password)
            .await
    }

    /// Logs in with any user and database name.
    pub(crate) async fn login_to(
        &self,
        database: &str,
        user: &str,
        password: &str,
    ) -> Result<Client, tokio_postgres::Error> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(self.addr.ip().to_string())
            .port(self.addr.port())
            .dbname(database)
            .user(user)
            .password(password)
            .connect_timeout(STEP);
        let (client, conn) = config.connect(NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// Logs in with a startup `options` parameter (which the gateway must ignore).
    pub(crate) async fn login_with_options(
        &self,
        password: &str,
        options: &str,
    ) -> Result<Client, tokio_postgres::Error> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(self.addr.ip().to_string())
            .port(self.addr.port())
            .dbname(&self.service)
            .user("probe")
            .password(password)
            .options(options)
            .connect_timeout(STEP);
        let (client, conn) = config.connect(NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }
}

/// Every text value a simple query returned.
pub(crate) async fn texts(c: &Client, sql: &str) -> Result<Vec<String>, tokio_postgres::Error> {
    let msgs = tokio::time::timeout(STEP, c.simple_query(sql))
        .await
        .unwrap_or_else(|_| Ok(Vec::new()))?;
    let mut out = Vec::new();
    for m in msgs {
        if let SimpleQueryMessage::Row(r) = m {
            for i in 0..r.len() {
                if let Some(v) = r.get(i) {
                    out.push(v.to_string());
                }
            }
        }
    }
    Ok(out)
}

/// A raw protocol connection, logged in with a cleartext password.
pub(crate) struct Raw {
    stream: TcpStream,
    buf: BytesMut,
    /// The key the gateway gave this session (pid, secret).
    pub key: (i32, Vec<u8>),
}

impl Raw {
    pub(crate) async fn login(gw: &Gateway, password: &str) -> Result<Raw, String> {
        let stream = tokio::time::timeout(STEP, TcpStream::connect(gw.addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let mut raw = Raw {
            stream,
            buf: BytesMut::new(),
            key: (0, Vec::new()),
        };
        let mut out = BytesMut::new();
        to_server::startup(&mut out, &[("user", "probe"), ("database", &gw.service)]);
        raw.send(&out).await?;
        loop {
            let frame = raw.recv().await?;
            match BackendMessage::decode(&frame).map_err(|e| e.to_string())? {
                BackendMessage::Authentication(3, _) => {
                    let mut out = BytesMut::new();
                    to_server::password(&mut out, password);
                    raw.send(&out).await?;
                }
                BackendMessage::BackendKeyData(pid, secret) => raw.key = (pid, secret.to_vec()),
                BackendMessage::Error(f) => {
                    return Err(f.message().unwrap_or("refused").to_string())
                }
                BackendMessage::ReadyForQuery(_) => return Ok(raw),
                _ => {}
            }
        }
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| e.to_string())
    }

    pub(crate) async fn recv(&mut self) -> Result<Frame, String> {
        loop {
            if let Some(f) =
                Frame::parse(&mut self.buf, MAX_MESSAGE_LEN).map_err(|e| e.to_string())?
            {
                return Ok(f);
            }
            let n = tokio::time::timeout(STEP, self.stream.read_buf(&mut self.buf))
                .await
                .map_err(|_| "timed out".to_string())?
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed".into());
            }
        }
    }

    /// Reads until ReadyForQuery; returns the SQLSTATEs of the errors seen.
    pub(crate) async fn until_ready(&mut self) -> Result<Vec<String>, String> {
        let mut errors = Vec::new();
        loop {
            let frame = self.recv().await?;
            if frame.tag == b'E' {
                if let Ok(BackendMessage::Error(f)) = BackendMessage::decode(&frame) {
                    errors.push(f.code().unwrap_or_default().to_string());
                }
            }
            if frame.tag == b'Z' {
                return Ok(errors);
            }
        }
    }
}

/// Sends a CancelRequest with `key` to the gateway.
pub(crate) async fn cancel(gw: &Gateway, pid: i32, secret: &[u8]) -> Result<(), String> {
    let mut s = TcpStream::connect(gw.addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = BytesMut::new();
    to_server::cancel_request(&mut out, pid, secret);
    s.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut sink = [0u8; 1];
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut sink)).await;
    Ok(())
}
