//! Who a client is. A tenant login's password is a tenant API key (`bhk_...`) or a token
//! signed for the service (HS256, RS256, ES256, or a key of the service's JWKS document)
//! whose tenant claim pins the session to one tenant. A service login is a SCRAM-SHA-256
//! credential (see `frontend/scram.rs`) and names tenants per transaction, by id, slug or
//! token. Every failure says which check failed and nothing else.

use bulkhead_directory::ServiceAuth;
use bulkhead_model::{ServiceName, TenantId};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::GatewayError;

/// Who a session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Pinned to one tenant by its API key or token.
    Tenant(TenantId),
    /// A token naming several tenants: each transaction chooses one of exactly those.
    Tenants(std::sync::Arc<[TenantId]>),
    /// A service credential: the tenant is chosen per transaction or per session.
    Service {
        /// The credential's user name.
        user: String,
        /// It may send DDL (the migration capability).
        may_ddl: bool,
    },
}

/// Tenants one token may name at most (a consultant's token names its customers).
pub const MAX_TOKEN_TENANTS: usize = 64;

/// A verified token: the tenants it names and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenTenant {
    /// The tenant, or the first of several.
    pub tenant: TenantId,
    /// Every tenant it names (the tenant claim may be a list).
    pub tenants: Vec<TenantId>,
    /// Its `exp`, in seconds since the Unix epoch.
    pub expires_at: i64,
    /// Its `tier` claim, if any (used when it provisions its tenant).
    pub tier: Option<String>,
    /// Its `tenant_slug` claim, if any (used when it provisions its tenant).
    pub slug: Option<String>,
}

/// What a tenant login's password proved.
pub(crate) enum Login {
    /// A tenant API key.
    Key(TenantId),
    /// A token signed for the service.
    Token(TokenTenant),
}

/// Checks the password presented for `service` by a tenant login. Whether its tenants may be
/// served is decided when their routes are resolved.
pub(crate) async fn authenticate(
    state: &crate::GatewayState,
    service: &ServiceName,
    password: &str,
) -> Result<Login, GatewayError> {
    let (dir, watch) = (&state.directory, &state.watch);
    if password.starts_with("bhk_") {
        state
            .cache
            .tenant_of_key(dir, watch, password)
            .await?
            .map(Login::Key)
            .ok_or_else(|| GatewayError::BadCredentials("API key not recognised or revoked".into()))
    } else if password.split('.').count() == 3 {
        let auth = state
            .cache
            .service_auth(dir, watch, service.as_str())
            .await?;
        tenant_from_token(&auth, password).map(Login::Token)
    } else {
        Err(GatewayError::BadCredentials(
            "the password must be a tenant API key or a token signed for this service".into(),
        ))
    }
}

/// Checks that a service's token settings are usable before they are stored: the PEM keys
/// parse and the JWKS document is a key set of RS256/ES256 keys with ids.
pub fn validate_service_auth(auth: &ServiceAuth) -> Result<(), String> {
    if auth.hs256_secret.as_ref().is_some_and(|s| s.len() < 32) {
        return Err("hs256_secret must have at least 32 characters".into());
    }
    if let Some(pem) = &auth.rs256_public_key {
        DecodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| format!("rs256_public_key is not an RSA public key in PEM: {e}"))?;
    }
    if let Some(pem) = &auth.es256_public_key {
        DecodingKey::from_ec_pem(pem.as_bytes())
            .map_err(|e| format!("es256_public_key is not an EC public key in PEM: {e}"))?;
    }
    if let Some(doc) = &auth.jwks {
        let set: JwkSet = serde_json::from_value(doc.clone())
            .map_err(|e| format!("jwks is not a JWKS document: {e}"))?;
        if set.keys.is_empty() {
            return Err("jwks has no keys".into());
        }
        for k in &set.keys {
            if k.common.key_id.is_none() {
                return Err("every key of jwks needs a `kid`".into());
            }
            if !matches!(
                k.algorithm,
                AlgorithmParameters::RSA(_) | AlgorithmParameters::EllipticCurve(_)
            ) {
                return Err("jwks keys must be RSA or EC public keys".into());
            }
            DecodingKey::from_jwk(k).map_err(|e| format!("a jwks key is unusable: {e}"))?;
        }
    }
    Ok(())
}

/// The key of the service's JWKS document a token's `kid` names, for RS256 or ES256.
fn jwks_key(
    auth: &ServiceAuth,
    alg: Algorithm,
    kid: &str,
) -> Result<Option<DecodingKey>, GatewayError> {
    let Some(doc) = &auth.jwks else {
        return Ok(None);
    };
    let set: JwkSet = serde_json::from_value(doc.clone()).map_err(|_| {
        GatewayError::BadCredentials("the service's JWKS document is unusable".into())
    })?;
    let Some(jwk) = set.find(kid) else {
        return Err(GatewayError::BadCredentials(format!(
            "the token's key id `{kid}` is not in the service's JWKS"
        )));
    };
    let fits = matches!(
        (alg, &jwk.algorithm),
        (Algorithm::RS256, AlgorithmParameters::RSA(_))
            | (Algorithm::ES256, AlgorithmParameters::EllipticCurve(_))
    );
    let declared_other = jwk
        .common
        .key_algorithm
        .is_some_and(|a| format!("{a:?}") != format!("{alg:?}"));
    if !fits || declared_other {
        return Err(GatewayError::BadCredentials(
            "the token's algorithm does not match its key".into(),
        ));
    }
    DecodingKey::from_jwk(jwk)
        .map(Some)
        .map_err(|_| GatewayError::BadCredentials("the service's JWKS key is unusable".into()))
}

/// The key a token's algorithm must verify against. Each algorithm has its own configured
/// key, so an RS256 public key can never be taken for an HS256 secret.
fn key_for(auth: &ServiceAuth, token: &str) -> Result<(Algorithm, DecodingKey), GatewayError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| GatewayError::BadCredentials("the token is malformed".into()))?;
    let missing = |alg: &str| {
        GatewayError::BadCredentials(format!(
            "this service accepts no {alg} tokens (no key configured)"
        ))
    };
    let bad_key = |e: jsonwebtoken::errors::Error| {
        GatewayError::BadCredentials(format!("the service's token key is unusable: {e}"))
    };
    if let (Algorithm::RS256 | Algorithm::ES256, Some(kid)) = (header.alg, &header.kid) {
        if let Some(key) = jwks_key(auth, header.alg, kid)? {
            return Ok((header.alg, key));
        }
    }
    match header.alg {
        Algorithm::HS256 => {
            let secret = auth.hs256_secret.as_ref().ok_or_else(|| missing("HS256"))?;
            Ok((
                Algorithm::HS256,
                DecodingKey::from_secret(secret.as_bytes()),
            ))
        }
        Algorithm::RS256 => {
            let pem = auth
                .rs256_public_key
                .as_ref()
                .ok_or_else(|| missing("RS256"))?;
            Ok((
                Algorithm::RS256,
                DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(bad_key)?,
            ))
        }
        Algorithm::ES256 => {
            let pem = auth
                .es256_public_key
                .as_ref()
                .ok_or_else(|| missing("ES256"))?;
            Ok((
                Algorithm::ES256,
                DecodingKey::from_ec_pem(pem.as_bytes()).map_err(bad_key)?,
            ))
        }
        other => Err(GatewayError::BadCredentials(format!(
            "the token's algorithm {other:?} is not accepted (HS256, RS256 or ES256)"
        ))),
    }
}

/// Verifies a token (HS256, RS256 or ES256, each against its own configured key) against the
/// service's settings and reads its tenant claim.
pub fn tenant_from_token(auth: &ServiceAuth, token: &str) -> Result<TokenTenant, GatewayError> {
    let (algorithm, key) = key_for(auth, token)?;
    let mut validation = Validation::new(algorithm);
    validation.leeway = 30;
    validation.validate_nbf = true;
    validation.required_spec_claims.clear();
    validation.required_spec_claims.insert("exp".into());
    if let Some(iss) = &auth.issuer {
        validation.set_issuer(&[iss]);
        validation.required_spec_claims.insert("iss".into());
    }
    match &auth.audience {
        Some(aud) => {
            validation.set_audience(&[aud]);
            validation.required_spec_claims.insert("aud".into());
        }
        None => validation.validate_aud = false,
    }
    let data = decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind::*;
        let why = match e.kind() {
            ExpiredSignature => "the token has expired",
            ImmatureSignature => "the token is not valid yet (nbf)",
            InvalidSignature => "the token's signature does not verify",
            InvalidIssuer => "the token's issuer is not accepted",
            InvalidAudience => "the token's audience is not accepted",
            InvalidAlgorithm => "the token's algorithm does not match its key",
            MissingRequiredClaim(_) => "the token lacks a required claim (exp, iss or aud)",
            _ => "the token is malformed",
        };
        GatewayError::BadCredentials(why.into())
    })?;
    let names: Vec<&str> = match &auth.tenant_claim {
        Some(c) => vec![c.as_str()],
        None => vec!["tenant_id", "tenantId"],
    };
    let claim = names
        .iter()
        .find_map(|n| data.claims.get(*n))
        .ok_or_else(|| {
            GatewayError::NotAuthorized(format!("the token has no `{}` claim", names[0]))
        })?;
    let not_ids = || {
        GatewayError::NotAuthorized(format!(
            "the token's `{}` claim is neither a tenant id nor a list of at most {MAX_TOKEN_TENANTS} tenant ids",
            names[0]
        ))
    };
    let texts: Vec<&str> = match claim {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) if !items.is_empty() && items.len() <= MAX_TOKEN_TENANTS => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(not_ids)?,
        _ => return Err(not_ids()),
    };
    let mut tenants = Vec::with_capacity(texts.len());
    for t in texts {
        let id = t.parse::<TenantId>().map_err(|_| not_ids())?;
        if !tenants.contains(&id) {
            tenants.push(id);
        }
    }
    let text_claim = |name: &str| {
        data.claims
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let expires_at = data
        .claims
        .get("exp")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    Ok(TokenTenant {
        tenant: tenants[0],
        tenants,
        expires_at,
        tier: text_claim(auth.tier_claim.as_deref().unwrap_or("tier")),
        slug: text_claim("tenant_slug"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn auth() -> ServiceAuth {
        ServiceAuth {
            hs256_secret: Some("a-long-enough-test-secret-for-hs256".into()),
            rs256_public_key: None,
            es256_public_key: None,
            issuer: Some("https://issuer.example".into()),
            audience: Some("billing".into()),
            tenant_claim: None,
            ..ServiceAuth::default()
        }
    }

    fn token(claims: Value, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encode")
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default()
    }

    const SECRET: &str = "a-long-enough-test-secret-for-hs256";
    const TENANT: &str = "3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4b";

    #[test]
    fn a_valid_token_names_its_tenant_in_either_claim_spelling() {
        let ok = json!({"tenant_id": TENANT, "exp": now() + 60, "iss": "https://issuer.example", "aud": "billing"});
        assert_eq!(
            tenant_from_token(&auth(), &token(ok, SECRET))
                .expect("valid")
                .tenant
                .to_string(),
            TENANT
        );
        let camel = json!({"tenantId": TENANT, "exp": now() + 60, "iss": "https://issuer.example", "aud": "billing"});
        assert!(tenant_from_token(&auth(), &token(camel, SECRET)).is_ok());
    }

    #[test]
    fn a_token_may_name_several_tenants_and_carry_a_tier() {
        let other = "0b7d7a52-5c1e-4f8e-9d2a-1f3e5d7c9b11";
        let claims = json!({"tenant_id": [TENANT, other, TENANT], "exp": now() + 60,
            "iss": "https://issuer.example", "aud": "billing", "tier": "business", "tenant_slug": "acme"});
        let t = tenant_from_token(&auth(), &token(claims, SECRET)).expect("valid");
        let want: Vec<TenantId> = [TENANT, other]
            .iter()
            .map(|s| s.parse().expect("id"))
            .collect();
        assert_eq!(t.tenants, want, "in order, without repeats");
        assert_eq!(t.tenant, want[0]);
        assert_eq!(t.tier.as_deref(), Some("business"));
        assert_eq!(t.slug.as_deref(), Some("acme"));
        let many: Vec<String> = (0..=MAX_TOKEN_TENANTS)
            .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
            .collect();
        let claims = json!({"tenant_id": many, "exp": now() + 60, "iss": "https://issuer.example", "aud": "billing"});
        assert!(
            tenant_from_token(&auth(), &token(claims, SECRET)).is_err(),
            "too many tenants"
        );
    }

    #[test]
    fn every_bad_token_says_why() {
        let base = |extra: Value| {
            let mut c = json!({"tenant_id": TENANT, "exp": now() + 60, "iss": "https://issuer.example", "aud": "billing"});
            if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
                for (k, v) in e {
                    c.insert(k.clone(), v.clone());
                }
            }
            c
        };
        let cases = [
            (token(base(json!({"exp": now() - 3600})), SECRET), "expired"),
            (
                token(base(json!({"nbf": now() + 3600})), SECRET),
                "not valid yet",
            ),
            (
                token(base(json!({})), "another-secret-another-secret-xx"),
                "signature",
            ),
            (
                token(base(json!({"iss": "https://evil.example"})), SECRET),
                "issuer",
            ),
            (token(base(json!({"aud": "other"})), SECRET), "audience"),
            (
                token(base(json!({"tenant_id": "acme"})), SECRET),
                "neither a tenant id",
            ),
            (
                token(base(json!({"tenant_id": []})), SECRET),
                "neither a tenant id",
            ),
            (
                token(base(json!({"tenant_id": [TENANT, 7]})), SECRET),
                "neither a tenant id",
            ),
            ("not.a.token".to_string(), "malformed"),
        ];
        for (t, why) in cases {
            let err = tenant_from_token(&auth(), &t).expect_err(why);
            assert!(err.to_string().contains(why), "{why}: {err}");
        }
        let no_exp = token(
            json!({"tenant_id": TENANT, "iss": "https://issuer.example", "aud": "billing"}),
            SECRET,
        );
        assert!(tenant_from_token(&auth(), &no_exp)
            .expect_err("no exp")
            .to_string()
            .contains("required claim"));
        let none = ServiceAuth::default();
        assert!(tenant_from_token(&none, &token(base(json!({})), SECRET)).is_err());
    }

    fn openssl(args: &[&str]) -> Vec<u8> {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A new private key (PEM) of `algorithm` in `dir`, made with openssl.
    fn private_key(dir: &std::path::Path, algorithm: &str, option: &str) -> std::path::PathBuf {
        let path = dir.join(format!("{}.pem", algorithm.to_lowercase()));
        let out = path.to_str().expect("path");
        openssl(&[
            "genpkey",
            "-algorithm",
            algorithm,
            "-pkeyopt",
            option,
            "-out",
            out,
        ]);
        path
    }

    #[test]
    fn rs256_and_es256_tokens_verify_against_their_own_keys_only() {
        let dir = std::env::temp_dir().join(format!("bulkhead-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let rsa = private_key(&dir, "RSA", "rsa_keygen_bits:2048");
        let ec = private_key(&dir, "EC", "ec_paramgen_curve:P-256");
        let rsa_pub = openssl(&["pkey", "-in", rsa.to_str().expect("p"), "-pubout"]);
        let ec_pub = openssl(&["pkey", "-in", ec.to_str().expect("p"), "-pubout"]);
        let rsa_priv = std::fs::read(&rsa).expect("read");
        let ec_priv = std::fs::read(&ec).expect("read");
        let auth = ServiceAuth {
            rs256_public_key: Some(String::from_utf8(rsa_pub.clone()).expect("utf8")),
            es256_public_key: Some(String::from_utf8(ec_pub).expect("utf8")),
            ..ServiceAuth::default()
        };
        let claims = json!({"tenant_id": TENANT, "exp": now() + 60});
        let rs = encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(&rsa_priv).expect("rsa"),
        )
        .expect("rs");
        let es = encode(
            &Header::new(Algorithm::ES256),
            &claims,
            &EncodingKey::from_ec_pem(&ec_priv).expect("ec"),
        )
        .expect("es");
        assert_eq!(
            tenant_from_token(&auth, &rs)
                .expect("rs256")
                .tenant
                .to_string(),
            TENANT
        );
        assert_eq!(
            tenant_from_token(&auth, &es)
                .expect("es256")
                .tenant
                .to_string(),
            TENANT
        );
        // Algorithm confusion: an HS256 token "signed" with the RSA public key is refused,
        // because HS256 has no configured secret here.
        let confused = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&rsa_pub),
        )
        .expect("hs");
        assert!(tenant_from_token(&auth, &confused).is_err());
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(b"whatever"),
        )
        .expect("hs512");
        assert!(tenant_from_token(&auth, &hs512)
            .expect_err("hs512")
            .to_string()
            .contains("not accepted"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn jwks_keys_verify_tokens_by_kid_and_nothing_else() {
        use base64::Engine;
        let dir = std::env::temp_dir().join(format!("bulkhead-jwks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let key = private_key(&dir, "RSA", "rsa_keygen_bits:2048");
        let modulus = String::from_utf8(openssl(&[
            "rsa",
            "-in",
            key.to_str().expect("p"),
            "-modulus",
            "-noout",
        ]))
        .expect("utf8");
        let hex_n = modulus.trim().trim_start_matches("Modulus=");
        let n = hex::decode(hex_n).expect("hex");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwks = json!({"keys": [{
            "kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
            "n": b64.encode(&n), "e": b64.encode([1u8, 0, 1]),
        }]});
        let auth = ServiceAuth {
            jwks: Some(jwks),
            ..ServiceAuth::default()
        };
        validate_service_auth(&auth).expect("a valid JWKS");
        let private = std::fs::read(&key).expect("read");
        let sign = |kid: Option<&str>| {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = kid.map(str::to_string);
            encode(
                &header,
                &json!({"tenant_id": TENANT, "exp": now() + 60}),
                &EncodingKey::from_rsa_pem(&private).expect("rsa"),
            )
            .expect("sign")
        };
        assert_eq!(
            tenant_from_token(&auth, &sign(Some("k1")))
                .expect("by kid")
                .tenant
                .to_string(),
            TENANT
        );
        assert!(tenant_from_token(&auth, &sign(Some("k2")))
            .expect_err("unknown kid")
            .to_string()
            .contains("not in the service's JWKS"));
        assert!(
            tenant_from_token(&auth, &sign(None)).is_err(),
            "no kid and no PEM key"
        );
        let bad = ServiceAuth {
            jwks: Some(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]})),
            ..ServiceAuth::default()
        };
        assert!(
            validate_service_auth(&bad).is_err(),
            "symmetric keys are refused"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
