//! One connection from the gateway to PostgreSQL, as `bulkhead_gateway`: startup,
//! authentication (SCRAM-SHA-256, MD5 or cleartext, as the server asks), the server's
//! version checked against a floor, then raw frames both ways.

use std::collections::HashSet;
use std::time::Duration;

use bulkhead_wire::{to_server, BackendMessage, Frame, MAX_MESSAGE_LEN};
use bytes::{Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{HeldContext, Signer};
use crate::GatewayError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A backend that stops acknowledging (a partition, a frozen host) fails the connection
/// after `timeout` instead of leaving its client waiting for TCP's own retries (minutes):
/// `TCP_USER_TIMEOUT` for data in flight, keepalive probes for a connection at rest.
fn bound_network_waits(stream: &TcpStream, timeout: Duration) {
    let sock = socket2::SockRef::from(stream);
    let probe = (timeout / 3).max(Duration::from_secs(1));
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(probe)
        .with_interval(probe)
        .with_retries(3);
    if let Err(e) = sock.set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "setting keepalives on a backend connection");
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = sock.set_tcp_user_timeout(Some(timeout)) {
        tracing::debug!(error = %e, "setting TCP_USER_TIMEOUT on a backend connection");
    }
}

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackendTarget {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Login role.
    pub user: String,
    /// Its password.
    pub password: String,
    /// Database.
    pub database: String,
    /// A database tenant's own database: its connections serve that one tenant. A pool
    /// database's serve every tenant placed there, and the pool closes them last (see
    /// `pool::ClusterPool::evict_for`).
    pub single_tenant: bool,
}

/// A live, authenticated server connection.
pub struct ServerConn {
    stream: TcpStream,
    rbuf: BytesMut,
    /// `server_version_num` of the server.
    pub version_num: i32,
    /// Its cancel key (pid, secret).
    pub key: (i32, Bytes),
    /// Names of the statements prepared on this connection.
    pub prepared: HashSet<String>,
    /// The tenant context its session holds.
    pub held: HeldContext,
    /// The client session settings its session holds (see `session/settings.rs`).
    pub settings: SessionValues,
    /// When it was last given back to its pool.
    pub idle_since: std::time::Instant,
    /// The database's signer of shared tenants' contexts, if it has one.
    pub signer: Option<std::sync::Arc<Signer>>,
    /// The search paths its session has run under (see `affinity.rs`).
    pub warmth: super::affinity::Warmth,
    /// Its affinity group.
    pub group: u32,
}

/// Session settings a backend connection holds, as far as the gateway knows: a name absent
/// is at the server's default; `Some(v)` holds `v`; `None` is unknown (a client changed it
/// and the value has not been read back).
#[derive(Debug, Default, Clone)]
pub struct SessionValues(pub std::collections::BTreeMap<String, Option<String>>);

fn backend_err(what: &str, e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Backend(format!("{what}: {e}"))
}

impl ServerConn {
    /// True when an idle connection can no longer serve: the server closed it (a terminated
    /// backend, a dropped database) or sent something unasked while idle (which, with LISTEN
    /// refused, only a server about to close does). Never blocks.
    pub fn is_unusable(&self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.try_read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => !self.rbuf.is_empty(),
            _ => true,
        }
    }

    /// Connects, authenticates and waits for the first ReadyForQuery. Refuses servers older
    /// than `min_version_num` (RLS fixes of CVE-2024-10976/10978 are in 15.9).
    pub async fn connect(
        target: &BackendTarget,
        min_version_num: i32,
        network_timeout: Duration,
    ) -> Result<ServerConn, GatewayError> {
        let stream = tokio::time::timeout(
            network_timeout.min(CONNECT_TIMEOUT),
            TcpStream::connect((target.host.as_str(), target.port)),
        )
        .await
        .map_err(|_| backend_err("connect", "timed out"))?
        .map_err(|e| backend_err("connect", e))?;
        let _ = stream.set_nodelay(true);
        bound_network_waits(&stream, network_timeout);
        let mut conn = ServerConn {
            stream,
            rbuf: BytesMut::with_capacity(16 * 1024),
            version_num: 0,
            key: (0, Bytes::new()),
            prepared: HashSet::new(),
            held: HeldContext::default(),
            settings: SessionValues::default(),
            idle_since: std::time::Instant::now(),
            signer: None,
            warmth: Default::default(),
            group: super::affinity::next_group(),
        };
        let mut out = BytesMut::new();
        to_server::startup(
            &mut out,
            &[
                ("user", &target.user),
                ("database", &target.database),
                ("application_name", "bulkhead-gateway"),
                ("client_encoding", "UTF8"),
            ],
        );
        conn.send(&out).await?;
        tokio::time::timeout(CONNECT_TIMEOUT, conn.handshake(target))
            .await
            .map_err(|_| backend_err("startup", "timed out"))??;
        if conn.version_num < min_version_num {
            return Err(GatewayError::Backend(format!(
                "server version {} is below the minimum {min_version_num}",
                conn.version_num
            )));
        }
        conn.signer = tokio::time::timeout(CONNECT_TIMEOUT, conn.read_signer())
            .await
            .map_err(|_| backend_err("reading the context key", "timed out"))??
            .map(std::sync::Arc::new);
        Ok(conn)
    }

    /// The database's signer ([`super::signer::SIGNER_QUERY`]); None when it has none or its
    /// helpers predate signed contexts (an error, answered before ReadyForQuery).
    async fn read_signer(&mut self) -> Result<Option<Signer>, GatewayError> {
        let mut out = BytesMut::new();
        to_server::query(&mut out, super::signer::SIGNER_QUERY);
        self.send(&out).await?;
        let mut signer = None;
        loop {
            let frame = self.recv().await?;
            match frame.tag {
                b'D' => {
                    if let Some(row) = bulkhead_wire::data_row_texts(&frame) {
                        if let [Some(role), Some(key)] = row.as_slice() {
                            signer = Signer::from_row(role.clone(), key);
                        }
                    }
                }
                b'Z' => return Ok(signer),
                b'S' => {
                    if let BackendMessage::ParameterStatus(name, value) =
                        BackendMessage::decode(&frame)?
                    {
                        self.held.on_parameter(&name, &value);
                    }
                }
                _ => {}
            }
        }
    }

    async fn handshake(&mut self, target: &BackendTarget) -> Result<(), GatewayError> {
        let mut scram: Option<ScramSha256> = None;
        loop {
            let frame = self.recv().await?;
            match BackendMessage::decode(&frame)? {
                BackendMessage::Authentication(0, _) => {}
                BackendMessage::Authentication(3, _) => {
                    let mut out = BytesMut::new();
                    to_server::password(&mut out, &target.password);
                    self.send(&out).await?;
                }
                BackendMessage::Authentication(5, salt) => {
                    let salt: [u8; 4] = salt
                        .as_ref()
                        .try_into()
                        .map_err(|_| backend_err("md5", "bad salt"))?;
                    let hash = postgres_protocol::authentication::md5_hash(
                        target.user.as_bytes(),
                        target.password.as_bytes(),
                        salt,
                    );
                    let mut out = BytesMut::new();
                    to_server::password(&mut out, &hash);
                    self.send(&out).await?;
                }
                BackendMessage::Authentication(10, mechanisms) => {
                    if !mechanisms.split(|b| *b == 0).any(|m| m == b"SCRAM-SHA-256") {
                        return Err(backend_err("auth", "server offers no SCRAM-SHA-256"));
                    }
                    let s =
                        ScramSha256::new(target.password.as_bytes(), ChannelBinding::unsupported());
                    let mut out = BytesMut::new();
                    to_server::sasl_initial_response(&mut out, "SCRAM-SHA-256", s.message());
                    self.send(&out).await?;
                    scram = Some(s);
                }
                BackendMessage::Authentication(11, data) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| backend_err("auth", "SASL continue before start"))?;
                    s.update(&data).map_err(|e| backend_err("scram", e))?;
                    let mut out = BytesMut::new();
                    to_server::sasl_response(&mut out, s.message());
                    self.send(&out).await?;
                }
                BackendMessage::Authentication(12, data) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| backend_err("auth", "SASL final before start"))?;
                    s.finish(&data).map_err(|e| backend_err("scram", e))?;
                }
                BackendMessage::Authentication(code, _) => {
                    return Err(backend_err("auth", format!("unsupported method {code}")))
                }
                BackendMessage::ParameterStatus(name, value) => {
                    if name == "server_version" {
                        self.version_num = version_num(&value);
                    }
                    self.held.on_parameter(&name, &value);
                }
                BackendMessage::BackendKeyData(pid, secret) => self.key = (pid, secret),
                BackendMessage::Error(fields) => {
                    return Err(backend_err(
                        "startup",
                        fields.message().unwrap_or("refused"),
                    ))
                }
                BackendMessage::ReadyForQuery(_) => return Ok(()),
                _ => {}
            }
        }
    }

    /// Writes bytes to the server.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), GatewayError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| backend_err("write", e))
    }

    /// Reads the next frame from the server.
    pub async fn recv(&mut self) -> Result<Frame, GatewayError> {
        loop {
            if let Some(frame) = Frame::parse(&mut self.rbuf, MAX_MESSAGE_LEN)? {
                return Ok(frame);
            }
            let n = self
                .stream
                .read_buf(&mut self.rbuf)
                .await
                .map_err(|e| backend_err("read", e))?;
            if n == 0 {
                return Err(GatewayError::Backend(
                    "the server closed the connection".into(),
                ));
            }
        }
    }

    /// Whether an idle connection is still usable: the server has neither closed it nor sent
    /// anything unasked (an idle server speaks only to say it is terminating the session).
    /// Does not block.
    pub fn is_healthy(&mut self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// True when bytes from the server wait unread (a connection returned to the pool must
    /// have none).
    pub fn has_buffered(&self) -> bool {
        !self.rbuf.is_empty()
    }
}

/// `15.18 (Debian 15.18-0+deb12u1)` → 150018; `16beta1` → 160000.
fn version_num(text: &str) -> i32 {
    let numeric: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = numeric.split('.').map(|p| p.parse::<i32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    major * 10_000 + minor
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_versions_are_numbered_like_server_version_num() {
        assert_eq!(super::version_num("15.18 (Debian 15.18-0+deb12u1)"), 150018);
        assert_eq!(super::version_num("16.4"), 160004);
        assert_eq!(super::version_num("17beta1"), 170000);
    }
}
