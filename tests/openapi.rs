//! The committed OpenAPI document is exactly what the code generates, and it is served.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use common::TestApp;
use serde_json::Value;

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .expect("openapi/openapi.json is committed");
    let generated = seedance_gateway::http::openapi::document();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale; regenerate it with `cargo run -q -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_route_and_error_response_is_described() {
    let doc: Value =
        serde_json::from_str(&seedance_gateway::http::openapi::document()).expect("json");
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/v1/videos",
        "/v1/videos/{video_id}",
        "/v1/videos/{video_id}/cancel",
        "/v1/videos/{video_id}/content",
        "/admin/v1/tenants",
        "/admin/v1/tenants/{tenant_id}/keys",
        "/admin/v1/tenants/{tenant_id}/grants",
        "/admin/v1/keys/{key_id}/revoke",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} is missing from the OpenAPI document"
        );
    }
    let create = &doc["paths"]["/v1/videos"]["post"];
    for status in ["200", "400", "401", "402", "413"] {
        assert!(
            create["responses"][status].is_object(),
            "create lacks a {status} response"
        );
    }
    assert!(create["requestBody"]["content"]["multipart/form-data"].is_object());
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            if path.starts_with("/v1/") {
                for status in ["401", "403", "429"] {
                    assert!(
                        operation["responses"][status].is_object(),
                        "{method} {path} lacks {status}"
                    );
                }
            }
        }
    }
    assert!(doc["components"]["schemas"]["ErrorBody"]["example"].is_object());
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}

#[tokio::test]
async fn the_document_and_docs_page_are_served() {
    let app = TestApp::spawn().await;
    let served: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let generated: Value =
        serde_json::from_str(&seedance_gateway::http::openapi::document()).expect("json");
    assert_eq!(served, generated);
    let docs = app
        .client
        .get(app.url("/docs"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(docs.contains("/openapi.json"));
}

#[test]
fn parameters_file_bodies_and_body_errors_are_described_as_served() {
    let doc: Value =
        serde_json::from_str(&seedance_gateway::http::openapi::document()).expect("json");
    for parameter in doc["paths"]["/v1/webhook_messages"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
    {
        assert_eq!(parameter["in"], "query", "{parameter}");
        assert_eq!(parameter["required"], false, "{parameter}");
    }
    let binary = |path: &str, status: &str, content_type: &str| {
        let schema =
            &doc["paths"][path]["get"]["responses"][status]["content"][content_type]["schema"];
        let name = schema["$ref"]
            .as_str()
            .and_then(|r| r.rsplit('/').next())
            .unwrap_or_else(|| panic!("{path} {status} {content_type}: {schema}"));
        let target = &doc["components"]["schemas"][name];
        assert_eq!(target["type"], "string", "{path} {content_type}");
        assert_eq!(target["format"], "binary", "{path} {content_type}");
    };
    binary("/v1/videos/{video_id}/content", "200", "video/mp4");
    binary("/v1/videos/{video_id}/content", "200", "image/jpeg");
    binary("/v1/videos/{video_id}/content", "206", "video/mp4");
    binary("/files/uploads/{name}", "200", "image/png");
    let usage = &doc["paths"]["/v1/usage"]["get"]["responses"]["200"]["content"];
    assert!(usage["application/json"].is_object() && usage["text/csv"].is_object());
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let authenticated = path.starts_with("/v1/") || path.starts_with("/admin/v1/");
            if authenticated && operation["requestBody"].is_object() {
                for status in ["400", "401", "413", "415"] {
                    assert!(
                        operation["responses"][status].is_object(),
                        "{method} {path} lacks {status}"
                    );
                }
            }
        }
    }
}
