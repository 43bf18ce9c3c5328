//! The OpenAPI document of this API, served at `/openapi.json`. A test checks that every
//! route of the router appears in it.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

/// The document, as shipped.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub(crate) async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_valid_json_and_lists_every_v1_route() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).expect("valid JSON");
        let paths = doc["paths"].as_object().expect("paths");
        for route in [
            "/v1/clusters",
            "/v1/clusters/{name}",
            "/v1/services",
            "/v1/services/{name}",
            "/v1/tenants",
            "/v1/tenants/{tenant}",
            "/v1/tenants/{tenant}/suspend",
            "/v1/tenants/{tenant}/resume",
            "/v1/tenants/{tenant}/rename",
            "/v1/services/{name}/migrations",
            "/v1/services/{name}/migrate",
            "/v1/services/{name}/migrations/status",
            "/v1/services/{name}/definers/{function}",
            "/v1/verify",
            "/v1/probe",
            "/v1/audit",
            "/v1/audit/verify",
            "/v1/usage",
            "/v1/usage/export",
            "/v1/usage/collect",
            "/v1/cost",
        ] {
            assert!(
                paths.contains_key(route),
                "{route} missing from openapi.json"
            );
        }
    }
}
