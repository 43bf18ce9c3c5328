//! Startup and login: answer SSL and GSS requests with `N` (TLS is not configured), read the
//! startup parameters (only `database` and `user` matter; `options` and every other
//! parameter are ignored, so no client can set a server setting that way), ask for a
//! password, authenticate the tenant and resolve its route.

use bulkhead_model::ServiceName;
use bulkhead_wire::{to_client, FrontendMessage, Startup, TransactionStatus};

use super::{ClientIo, GatewayState};
use crate::auth::{authenticate, Identity};
use crate::route::{resolve, Route};
use crate::GatewayError;

/// Logs a client in; returns its identity, route and the cancel key it was given. A cancel
/// request (which comes on a connection of its own) is handled here and ends the connection.
pub(super) async fn login(
    io: &mut ClientIo,
    state: &GatewayState,
) -> Result<(Identity, Route, (i32, [u8; 4]), crate::watch::Seen), GatewayError> {
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
    match state.directory.service(&service).await {
        Ok(_) => {}
        Err(bulkhead_directory::DirectoryError::NotFound { .. }) => {
            return Err(GatewayError::UnknownService(database.to_string()))
        }
        Err(e) => return Err(e.into()),
    }
    to_client::authentication_cleartext(&mut io.wbuf);
    io.flush().await?;
    let frame = io.read_frame().await?;
    let FrontendMessage::Password(body) = FrontendMessage::decode(&frame)? else {
        return Err(GatewayError::BadCredentials(
            "expected a password message".into(),
        ));
    };
    let password = FrontendMessage::password_text(&body)?;
    let identity = authenticate(&state.directory, &service, &password).await?;
    let role = state.gateway_role().await?;
    // Taken before resolving, so a change during resolution is seen at the first query.
    let seen = state.watch.seen(&identity.tenant);
    let route = resolve(&state.directory, &service, &identity.tenant, role).await?;
    to_client::authentication_ok(&mut io.wbuf);
    for (k, v) in [
        ("server_version", route.server_version.as_str()),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("application_name", get("application_name").unwrap_or("")),
    ] {
        to_client::parameter_status(&mut io.wbuf, k, v);
    }
    let secret: [u8; 4] = rand::random();
    let pid = state.next_pid();
    to_client::backend_key_data(&mut io.wbuf, pid, &secret);
    to_client::ready_for_query(&mut io.wbuf, TransactionStatus::Idle);
    io.flush().await?;
    Ok((identity, route, (pid, secret), seen))
}
