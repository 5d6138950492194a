//! The OpenAPI document, generated from the handlers' annotations. It is committed at
//! `openapi/openapi.json`; a test fails when the two differ.

use axum::response::Html;
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::{
    admin, billing, end_users, files, health, provider_webhooks, routing, videos, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "seedance-gateway",
        description = "One normalized /v1/videos API in front of the resellers of ByteDance Seedance 2.0, with API keys, an exact credit ledger and quotas. Shaped after OpenAI's Videos API.",
        license(name = "Apache-2.0"),
    ),
    paths(
        videos::create_video, videos::list_videos, videos::get_video, videos::delete_video,
        videos::cancel_video, videos::video_content, routing::quote, routing::models,
        billing::balance, billing::entries, billing::usage,
        end_users::get, end_users::put, end_users::wallet,
        admin::tenants::create_tenant, admin::tenants::list_tenants, admin::tenants::get_tenant,
        admin::keys::create_key, admin::keys::list_keys, admin::keys::revoke_key,
        admin::credits::grant, admin::reports::audit, admin::videos::get_video,
        admin::providers::list_providers, admin::providers::reset_circuit,
        admin::routing::put_tenant_routing, admin::routing::get_tenant_routing,
        admin::routing::put_key_routing, admin::reports::savings, admin::prices::put_prices,
        admin::reports::margin, admin::reports::cost_mismatches, admin::credits::adjust,
        admin::credits::refund, admin::keys::rotate_key, admin::limits::put_limits,
        admin::limits::put_quotas,
        webhooks::create_endpoint, webhooks::list_endpoints, webhooks::get_endpoint,
        webhooks::disable_endpoint, webhooks::enable_endpoint, webhooks::rotate_endpoint,
        webhooks::get_request_secret, webhooks::rotate_request_secret, webhooks::list_messages,
        webhooks::get_message, webhooks::redeliver, webhooks::admin_create_endpoint,
        webhooks::admin_list_endpoints, webhooks::admin_endpoint_action,
        health::healthz, health::readyz, health::metrics, files::upload, provider_webhooks::receive,
    ),
    modifiers(&SecuritySchemes, &CommonResponses),
    tags(
        (name = "videos", description = "Create and follow video jobs"),
        (name = "billing", description = "The caller's balance and journal"),
        (name = "end_users", description = "The caller's end users: limits and wallets"),
        (name = "webhooks", description = "Signed notifications of finished videos (Standard Webhooks)"),
        (name = "admin", description = "Operator API (admin token)"),
        (name = "operations", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sgw_live_… or sgw_test_…")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Declares, through one place, the error answers that do not depend on the handler, each with
/// the error envelope: 401 (no or bad credentials), 403 (a scope the key lacks) and 429 (a rate
/// or cap) on `/v1`; 401 on `/admin/v1`; and on every operation of either that takes a body,
/// 400 (`invalid_request`: malformed or schema-violating), 413 (`request_too_large`) and 415
/// (`unsupported_media_type`), or that takes query parameters, 400; on every operation
/// taking an `Idempotency-Key`, 409; and on every operation of any path that takes a path
/// parameter, 400 (one that is not UTF-8 once percent-decoded). A response an annotation
/// already declares is kept.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        const BAD_BODY: (&str, &str) = (
            "400",
            "The body or a parameter is malformed or violates its schema (`invalid_request`)",
        );
        const BAD_QUERY: (&str, &str) = (
            "400",
            "A parameter is malformed or violates its schema (`invalid_request`)",
        );
        const TOO_LARGE: (&str, &str) = (
            "413",
            "The body is larger than `server.max_body_bytes` (`request_too_large`)",
        );
        const MEDIA_TYPE: (&str, &str) = (
            "415",
            "The body's Content-Type is not one this route takes (`unsupported_media_type`)",
        );
        const IDEMPOTENCY: (&str, &str) = (
            "409",
            "The Idempotency-Key was used with a different request, or its first request is still being processed",
        );
        const BAD_PATH: (&str, &str) = (
            "400",
            "A path parameter is malformed, e.g. not UTF-8 once percent-decoded (`invalid_request`)",
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let auth: &[(&str, &str)] = if path.starts_with("/v1/") {
                &[
                    ("401", "Missing, invalid, expired or revoked credentials"),
                    ("403", "The key or token lacks the scope this route needs"),
                    (
                        "429",
                        "A request rate or cap was reached (Retry-After, RateLimit headers)",
                    ),
                ]
            } else if path.starts_with("/admin/v1/") {
                &[("401", "Missing or invalid operator credentials")]
            } else {
                continue;
            };
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let mut codes = auth.to_vec();
                if operation.request_body.is_some() {
                    codes.extend([BAD_BODY, TOO_LARGE, MEDIA_TYPE]);
                } else if operation
                    .parameters
                    .iter()
                    .flatten()
                    .any(|parameter| matches!(parameter.parameter_in, ParameterIn::Query))
                {
                    codes.push(BAD_QUERY);
                }
                let idempotent = operation.parameters.iter().flatten().any(|parameter| {
                    matches!(parameter.parameter_in, ParameterIn::Header)
                        && parameter.name.eq_ignore_ascii_case("idempotency-key")
                });
                if idempotent {
                    codes.push(IDEMPOTENCY);
                }
                for (code, description) in codes {
                    operation
                        .responses
                        .responses
                        .entry(code.to_string())
                        .or_insert_with(|| error(description));
                }
            }
        }
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let takes_path = operation
                    .parameters
                    .iter()
                    .flatten()
                    .any(|parameter| matches!(parameter.parameter_in, ParameterIn::Path));
                if takes_path {
                    let (code, description) = BAD_PATH;
                    operation
                        .responses
                        .responses
                        .entry(code.to_string())
                        .or_insert_with(|| error(description));
                }
            }
        }
    }
}

/// The document as pretty JSON with a trailing newline, exactly as committed.
pub fn document() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// A human-readable reference rendered by Redoc (loaded from its CDN by the browser).
pub async fn docs() -> Html<&'static str> {
    Html(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>seedance-gateway API</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="https://cdn.redoc.ly/redoc/latest/bundles/redoc.standalone.js"></script>
<noscript>The API reference needs JavaScript; the raw document is at <a href="/openapi.json">/openapi.json</a>.</noscript>
</body></html>"#,
    )
}
