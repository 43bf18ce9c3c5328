//! SCRAM-SHA-256 as a server (RFC 5802, RFC 7677), for service logins: the client proves it
//! knows the password of a credential whose verifier the directory stores, and the server
//! proves it knows the verifier. Channel binding is not offered (SCRAM-SHA-256-PLUS); a
//! client that insists on it is refused.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The mechanism offered.
pub const MECHANISM: &str = "SCRAM-SHA-256";

/// Why a SCRAM exchange failed. The client is told only that the login failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// The stored verifier is not in PostgreSQL's format.
    #[error("the stored credential is not a SCRAM-SHA-256 verifier")]
    BadVerifier,
    /// The client's message does not follow the protocol.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The client asked for channel binding, which is not offered.
    #[error("channel binding is not supported; connect without requiring it")]
    ChannelBinding,
    /// The proof does not match: wrong password.
    #[error("password authentication failed")]
    WrongProof,
}

/// A stored verifier: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
#[derive(Debug, Clone)]
pub struct Verifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl std::str::FromStr for Verifier {
    type Err = ScramError;
    fn from_str(s: &str) -> Result<Self, ScramError> {
        let rest = s
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or(ScramError::BadVerifier)?;
        let (params, keys) = rest.split_once('$').ok_or(ScramError::BadVerifier)?;
        let (iterations, salt) = params.split_once(':').ok_or(ScramError::BadVerifier)?;
        let (stored, server) = keys.split_once(':').ok_or(ScramError::BadVerifier)?;
        let decode = |v: &str| B64.decode(v).map_err(|_| ScramError::BadVerifier);
        let v = Verifier {
            iterations: iterations.parse().map_err(|_| ScramError::BadVerifier)?,
            salt: decode(salt)?,
            stored_key: decode(stored)?,
            server_key: decode(server)?,
        };
        if v.stored_key.len() != 32 || v.server_key.len() != 32 || v.iterations == 0 {
            return Err(ScramError::BadVerifier);
        }
        Ok(v)
    }
}

/// The server's state between its first message and the client's final one.
#[derive(Debug)]
pub struct Exchange {
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Reads the client-first-message and answers with the server-first-message.
pub fn server_first(
    verifier: &Verifier,
    client_first: &[u8],
) -> Result<(Exchange, String), ScramError> {
    let text = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    // gs2-header: cbind-flag "," [authzid] ","
    let (flag, rest) = text
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("unknown channel-binding flag")),
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    if !authzid.is_empty() {
        return Err(ScramError::Malformed(
            "authorization identities are not supported",
        ));
    }
    let mut client_nonce = None;
    for attr in bare.split(',') {
        if let Some(n) = attr.strip_prefix("r=") {
            client_nonce = Some(n);
        } else if attr.starts_with("m=") {
            return Err(ScramError::Malformed(
                "mandatory extensions are not supported",
            ));
        }
    }
    let client_nonce = client_nonce
        .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','))
        .ok_or(ScramError::Malformed("missing or invalid nonce"))?;
    let ours: [u8; 18] = rand::random();
    let nonce = format!("{client_nonce}{}", B64.encode(ours));
    let server_first = format!(
        "r={nonce},s={},i={}",
        B64.encode(&verifier.salt),
        verifier.iterations
    );
    Ok((
        Exchange {
            gs2_header: format!("{flag},{authzid},"),
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
        },
        server_first,
    ))
}

/// Checks the client-final-message's proof; returns the server-final-message.
pub fn server_final(
    verifier: &Verifier,
    exchange: &Exchange,
    client_final: &[u8],
) -> Result<String, ScramError> {
    let text = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or(ScramError::Malformed("no proof"))?;
    let mut binding = None;
    let mut nonce = None;
    for attr in without_proof.split(',') {
        if let Some(c) = attr.strip_prefix("c=") {
            binding = Some(c);
        } else if let Some(r) = attr.strip_prefix("r=") {
            nonce = Some(r);
        }
    }
    let binding = B64
        .decode(binding.ok_or(ScramError::Malformed("no channel binding"))?)
        .map_err(|_| ScramError::Malformed("bad channel binding"))?;
    if binding != exchange.gs2_header.as_bytes() {
        return Err(ScramError::Malformed("channel binding does not match"));
    }
    if nonce != Some(exchange.nonce.as_str()) {
        return Err(ScramError::Malformed("nonce does not match"));
    }
    let proof = B64
        .decode(proof)
        .map_err(|_| ScramError::Malformed("bad proof"))?;
    if proof.len() != 32 {
        return Err(ScramError::Malformed("bad proof"));
    }
    let auth_message = format!(
        "{},{},{}",
        exchange.client_first_bare, exchange.server_first, without_proof
    );
    let signature = hmac(&verifier.stored_key, auth_message.as_bytes());
    let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
    let stored = Sha256::digest(&client_key);
    let differs = stored
        .iter()
        .zip(&verifier.stored_key)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if differs != 0 {
        return Err(ScramError::WrongProof);
    }
    let server_signature = hmac(&verifier.server_key, auth_message.as_bytes());
    Ok(format!("v={}", B64.encode(server_signature)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    fn run(password_stored: &str, password_sent: &str) -> Result<(), ScramError> {
        let verifier: Verifier =
            postgres_protocol::password::scram_sha_256(password_stored.as_bytes())
                .parse()
                .expect("verifier");
        let mut client = ScramSha256::new(password_sent.as_bytes(), ChannelBinding::unsupported());
        let (exchange, first) = server_first(&verifier, client.message())?;
        client
            .update(first.as_bytes())
            .expect("client accepts server-first");
        let last = server_final(&verifier, &exchange, client.message())?;
        client
            .finish(last.as_bytes())
            .expect("client verifies the server");
        Ok(())
    }

    #[test]
    fn the_right_password_logs_in_and_the_server_proves_itself() {
        run(
            "correct horse battery staple",
            "correct horse battery staple",
        )
        .expect("login");
    }

    #[test]
    fn a_wrong_password_is_refused() {
        assert_eq!(run("right", "wrong"), Err(ScramError::WrongProof));
    }

    #[test]
    fn malformed_messages_and_channel_binding_are_refused() {
        let verifier: Verifier = postgres_protocol::password::scram_sha_256(b"pw")
            .parse()
            .expect("verifier");
        for bad in [
            &b"garbage"[..],
            b"n,,",
            b"n,,n=,r=",
            b"x,,n=,r=abc",
            b"n,a=admin,n=,r=abc",
        ] {
            assert!(
                server_first(&verifier, bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            server_first(&verifier, b"p=tls-server-end-point,,n=,r=abc").map(|_| ()),
            Err(ScramError::ChannelBinding)
        );
        let (exchange, _) = server_first(&verifier, b"n,,n=,r=abc").expect("first");
        assert!(server_final(&verifier, &exchange, b"c=biws,r=other,p=AAAA").is_err());
        assert!("SCRAM-SHA-256$x".parse::<Verifier>().is_err());
        assert!("md5abc".parse::<Verifier>().is_err());
    }
}
