//! Startup and login: answer SSL requests (TLS when configured, `N` otherwise) and GSS
//! requests with `N`, read the startup parameters (`database`, `user`, and the session
//! settings a client may choose — `TimeZone`, `DateStyle`, `application_name`, `-c` options of
//! allowed names … — which become its virtual session, see `session/settings.rs`; every
//! other parameter is ignored, so no client can set who it is that way), then authenticate: SCRAM-SHA-256 when the user name
//! is one of the service's credentials, a cleartext tenant key or token otherwise.

use bulkhead_model::ServiceName;
use bulkhead_wire::{to_client, FrontendMessage, Startup, TransactionStatus};

use super::{scram, ClientIo, GatewayState};
use crate::auth::{authenticate, Identity, Login};
use crate::GatewayError;

/// A logged-in client.
pub(super) struct LoggedIn {
    pub identity: Identity,
    pub service: String,
    /// What it is told once its session starts.
    pub greeting: Greeting,
    /// The session settings of its startup packet.
    pub settings: crate::session::ClientSettings,
}

/// Logs a client in. A cancel request (which comes on a connection of its own) is handled
/// here and ends the connection.
pub(super) async fn login(
    io: &mut ClientIo,
    state: &GatewayState,
) -> Result<LoggedIn, GatewayError> {
    let params = loop {
        let startup = loop {
            if let Some(s) = Startup::parse(&mut io.rbuf)? {
                break s;
            }
            io.fill().await?;
        };
        match startup {
            Startup::SslRequest => {
                // Bytes sent after SSLRequest but before the handshake would be read as if
                // they had been encrypted (CVE-2021-23222): refuse them.
                if !io.rbuf.is_empty() {
                    return Err(GatewayError::Protocol(
                        bulkhead_wire::ProtocolError::Malformed {
                            what: "SSLRequest",
                            detail: "data sent before the TLS handshake",
                        },
                    ));
                }
                match &state.settings.tls {
                    Some(acceptor) if !io.is_tls() => {
                        io.write_now(b"S").await?;
                        io.upgrade(acceptor).await?;
                    }
                    _ => io.write_now(b"N").await?,
                }
            }
            Startup::GssEncRequest => io.write_now(b"N").await?,
            Startup::Cancel { pid, secret } => {
                state.cancels.cancel(pid, &secret).await;
                return Err(GatewayError::ClientGone);
            }
            Startup::Startup { params, .. } => break params,
        }
    };
    if state.settings.tls_required && !io.is_tls() {
        return Err(GatewayError::NotAuthorized(
            "this gateway requires TLS: connect with sslmode=require (or stricter)".into(),
        ));
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let database = get("database").or_else(|| get("user")).unwrap_or_default();
    let service: ServiceName = database
        .parse()
        .map_err(|_| GatewayError::UnknownService(database.to_string()))?;
    let (dir, watch) = (&state.directory, &state.watch);
    let service_version = state.cache.service_version(dir, watch, &service).await?;
    let user = get("user").unwrap_or_default();
    let (identity, server_version) =
        match state.cache.credential(dir, watch, &service, user).await? {
            Some(credential) => {
                scram_exchange(io, &credential.verifier).await?;
                (
                    Identity::Service {
                        user: user.to_string(),
                        may_ddl: credential.may_ddl,
                    },
                    service_version.to_string(),
                )
            }
            None => {
                to_client::authentication_cleartext(&mut io.wbuf);
                io.flush().await?;
                let frame = io.read_frame().await?;
                let FrontendMessage::Password(body) = FrontendMessage::decode(&frame)? else {
                    return Err(GatewayError::BadCredentials(
                        "expected a password message".into(),
                    ));
                };
                let password = FrontendMessage::password_text(&body)?;
                // An unknown or suspended tenant, or one without a place, is refused now; a
                // token's unknown tenant may be provisioned first (just in time).
                let identity = match authenticate(state, &service, &password).await? {
                    Login::Key(tenant) => {
                        state.route(service.as_str(), &tenant).await?;
                        Identity::Tenant(tenant)
                    }
                    Login::Token(token) if token.tenants.len() == 1 => {
                        crate::jit::ensure(state, &service, &token, token.tenant).await?;
                        Identity::Tenant(token.tenant)
                    }
                    // Each is checked when a transaction chooses it.
                    Login::Token(token) => Identity::Tenants(token.tenants.into()),
                };
                (identity, service_version.to_string())
            }
        };
    let settings = crate::session::ClientSettings::from_startup(&params);
    let secret: [u8; 4] = rand::random();
    let pid = state.next_pid();
    Ok(LoggedIn {
        identity,
        service: service.to_string(),
        greeting: Greeting {
            server_version,
            pid,
            secret,
        },
        settings,
    })
}

/// What a client is told once its session can start: AuthenticationOk, the ParameterStatus
/// of its own session, its cancel key and ReadyForQuery.
pub(crate) struct Greeting {
    /// The service's `server_version` (its PostgreSQL's).
    pub server_version: String,
    pub pid: i32,
    pub secret: [u8; 4],
}

impl Greeting {
    /// Writes the greeting (the caller flushes).
    pub(crate) fn write(&self, io: &mut ClientIo, settings: &crate::session::ClientSettings) {
        to_client::authentication_ok(&mut io.wbuf);
        // The whole string, as PostgreSQL reports it (`15.18 (Debian 15.18-0+deb12u1)`).
        let version = match self.server_version.trim() {
            "" => "15",
            v => v,
        };
        let chosen = |name: &str, default: &'static str| -> String {
            settings
                .values
                .get(name)
                .cloned()
                .unwrap_or_else(|| default.to_string())
        };
        let mut reported = vec![
            ("server_version", version.to_string()),
            ("server_encoding", "UTF8".into()),
            ("client_encoding", "UTF8".into()),
            ("DateStyle", chosen("datestyle", "ISO, MDY")),
            ("IntervalStyle", chosen("intervalstyle", "postgres")),
            ("integer_datetimes", "on".into()),
            ("standard_conforming_strings", "on".into()),
            ("is_superuser", "off".into()),
            ("application_name", settings.app_name.clone()),
        ];
        if let Some(tz) = settings.values.get("timezone") {
            reported.push(("TimeZone", tz.clone()));
        }
        for (k, v) in &reported {
            to_client::parameter_status(&mut io.wbuf, k, v);
        }
        to_client::backend_key_data(&mut io.wbuf, self.pid, &self.secret);
        to_client::ready_for_query(&mut io.wbuf, TransactionStatus::Idle);
    }
}

/// Runs SCRAM-SHA-256 with the client against a stored verifier.
async fn scram_exchange(io: &mut ClientIo, verifier: &str) -> Result<(), GatewayError> {
    let failed = |e: scram::ScramError| match e {
        scram::ScramError::WrongProof => GatewayError::BadCredentials(
            "password authentication failed for the service credential".into(),
        ),
        scram::ScramError::BadVerifier => GatewayError::Directory(e.to_string()),
        other => GatewayError::BadCredentials(other.to_string()),
    };
    let verifier: scram::Verifier = verifier.parse().map_err(failed)?;
    to_client::authentication_sasl(&mut io.wbuf, &[scram::MECHANISM]);
    io.flush().await?;
    let frame = io.read_frame().await?;
    let FrontendMessage::Password(body) = FrontendMessage::decode(&frame)? else {
        return Err(GatewayError::BadCredentials(
            "expected a SASL response".into(),
        ));
    };
    let (mechanism, first) = FrontendMessage::sasl_initial(&body)?;
    if mechanism != scram::MECHANISM {
        return Err(GatewayError::BadCredentials(format!(
            "SASL mechanism {mechanism} is not offered (SCRAM-SHA-256 is)"
        )));
    }
    let (exchange, server_first) = scram::server_first(&verifier, &first).map_err(failed)?;
    to_client::sasl_continue(&mut io.wbuf, server_first.as_bytes());
    io.flush().await?;
    let frame = io.read_frame().await?;
    let FrontendMessage::Password(body) = FrontendMessage::decode(&frame)? else {
        return Err(GatewayError::BadCredentials(
            "expected a SASL response".into(),
        ));
    };
    let server_final = scram::server_final(&verifier, &exchange, &body).map_err(failed)?;
    to_client::sasl_final(&mut io.wbuf, server_final.as_bytes());
    Ok(())
}
