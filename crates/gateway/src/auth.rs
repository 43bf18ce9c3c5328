//! Tenant login: the password is either a tenant API key (`bhk_...`) or a JWT signed for the
//! service (HS256 here), whose tenant claim pins the session to one tenant. Every failure
//! says which check failed and nothing else.

use bulkhead_directory::{Directory, ServiceAuth};
use bulkhead_model::{ServiceName, TenantId};
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::GatewayError;

/// Who a session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The tenant the session is pinned to.
    pub tenant: TenantId,
}

/// Checks the password presented for `service` and returns the tenant it names. Whether
/// that tenant may be served is decided when its route is resolved.
pub async fn authenticate(
    dir: &Directory,
    service: &ServiceName,
    password: &str,
) -> Result<Identity, GatewayError> {
    let tenant = if password.starts_with("bhk_") {
        dir.tenant_of_key(password).await?.ok_or_else(|| {
            GatewayError::BadCredentials("API key not recognised or revoked".into())
        })?
    } else if password.split('.').count() == 3 {
        let auth = dir.service_auth(service).await?;
        tenant_from_token(&auth, password)?
    } else {
        return Err(GatewayError::BadCredentials(
            "the password must be a tenant API key or a token signed for this service".into(),
        ));
    };
    Ok(Identity { tenant })
}

/// Verifies an HS256 token against the service's settings and reads its tenant claim.
pub fn tenant_from_token(auth: &ServiceAuth, token: &str) -> Result<TenantId, GatewayError> {
    let secret = auth.hs256_secret.as_ref().ok_or_else(|| {
        GatewayError::BadCredentials(
            "this service accepts no tokens (no signing key configured)".into(),
        )
    })?;
    let mut validation = Validation::new(Algorithm::HS256);
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
    let data = decode::<Map<String, Value>>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| {
        use jsonwebtoken::errors::ErrorKind::*;
        let why = match e.kind() {
            ExpiredSignature => "the token has expired",
            ImmatureSignature => "the token is not valid yet (nbf)",
            InvalidSignature => "the token's signature does not verify",
            InvalidIssuer => "the token's issuer is not accepted",
            InvalidAudience => "the token's audience is not accepted",
            InvalidAlgorithm => "the token's algorithm is not accepted (HS256 expected)",
            MissingRequiredClaim(_) => "the token lacks a required claim (exp, iss or aud)",
            _ => "the token is malformed",
        };
        GatewayError::BadCredentials(why.into())
    })?;
    let names: Vec<&str> = match &auth.tenant_claim {
        Some(c) => vec![c.as_str()],
        None => vec!["tenant_id", "tenantId"],
    };
    let value = names
        .iter()
        .find_map(|n| data.claims.get(*n))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            GatewayError::NotAuthorized(format!("the token has no `{}` claim", names[0]))
        })?;
    value.parse::<TenantId>().map_err(|_| {
        GatewayError::NotAuthorized(format!(
            "the token's `{}` claim is not a tenant id",
            names[0]
        ))
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
            issuer: Some("https://issuer.example".into()),
            audience: Some("billing".into()),
            tenant_claim: None,
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
                .to_string(),
            TENANT
        );
        let camel = json!({"tenantId": TENANT, "exp": now() + 60, "iss": "https://issuer.example", "aud": "billing"});
        assert!(tenant_from_token(&auth(), &token(camel, SECRET)).is_ok());
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
                "not a tenant id",
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
}
