//! JWT authentication: pinned algorithms, iss/aud/exp checks, key selection, claims.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::TestApp;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use seedance_gateway::config::{JwtIssuerConfig, Secret};
use serde_json::{json, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const HS_SECRET: &str = "hs-secret-for-tests-0123456789abcdef";

fn issuer(name: &str, algorithm: &str) -> JwtIssuerConfig {
    JwtIssuerConfig {
        issuer: name.into(),
        audience: "seedance-gateway".into(),
        algorithm: algorithm.into(),
        secret: None,
        public_key_pem: None,
        public_key_file: None,
        jwks_file: None,
        jwks_url: None,
        tenant_claim: Some("team".into()),
        user_claim: Some("end_user".into()),
        admin_claim: Some("roles".into()),
        admin_value: Some("gateway-admin".into()),
        mode: Some("test".into()),
        leeway_secs: Some(5),
    }
}

async fn app_with_issuers() -> TestApp {
    TestApp::spawn_with(|config| {
        let mut hs = issuer("https://hs.idp.example.com", "HS256");
        hs.secret = Some(Secret::new(HS_SECRET));
        let mut rs = issuer("https://rs.idp.example.com", "RS256");
        rs.public_key_file = Some(format!("{FIXTURES}/jwt-rs256-public.pem").into());
        let mut es = issuer("https://es.idp.example.com", "ES256");
        es.public_key_file = Some(format!("{FIXTURES}/jwt-es256-public.pem").into());
        let mut jwks = issuer("https://jwks.idp.example.com", "RS256");
        jwks.jwks_file = Some(format!("{FIXTURES}/jwt-rs256-jwks.json").into());
        config.auth.jwt_issuers = vec![hs, rs, es, jwks];
        // These tests present many refused tokens from one address; the throttle on failed
        // authentication has its own tests (limits.rs).
        config.limits.failed_auth_per_minute = 1_000_000;
    })
    .await
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn claims(iss: &str, tenant: &str) -> Value {
    json!({"iss": iss, "aud": "seedance-gateway", "sub": "svc-render", "team": tenant, "exp": now() + 600, "nbf": now() - 10})
}

fn hs(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .expect("sign")
}

fn rs(claims: &Value, kid: Option<&str>) -> String {
    let pem = std::fs::read(format!("{FIXTURES}/jwt-rs256-private.pem")).expect("key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_string);
    encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(&pem).expect("rsa"),
    )
    .expect("sign")
}

fn es(claims: &Value) -> String {
    let pem = std::fs::read(format!("{FIXTURES}/jwt-es256-private.pem")).expect("key");
    encode(
        &Header::new(Algorithm::ES256),
        claims,
        &EncodingKey::from_ec_pem(&pem).expect("ec"),
    )
    .expect("sign")
}

async fn status(app: &TestApp, token: &str) -> StatusCode {
    app.client
        .get(app.url("/v1/videos"))
        .bearer_auth(token)
        .send()
        .await
        .expect("send")
        .status()
}

#[tokio::test]
async fn valid_tokens_of_each_kind_authenticate_their_tenant() {
    let app = app_with_issuers().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let (bystander, _) = app.tenant_with_key("test", 1000).await;
    assert_eq!(
        status(&app, &hs(&claims("https://hs.idp.example.com", &tenant))).await,
        StatusCode::OK
    );
    assert_eq!(
        status(
            &app,
            &rs(&claims("https://rs.idp.example.com", &tenant), None)
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        status(&app, &es(&claims("https://es.idp.example.com", &tenant))).await,
        StatusCode::OK
    );
    assert_eq!(
        status(
            &app,
            &rs(&claims("https://jwks.idp.example.com", &tenant), Some("k1"))
        )
        .await,
        StatusCode::OK
    );
    let created = app
        .create_video(
            &hs(&claims("https://hs.idp.example.com", &tenant)),
            json!({"prompt": "x", "seconds": 4}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    let created: Value = created.json().await.expect("json");

    // The token's tenant paid, in the issuer's mode (test), and no one else did.
    let video = app
        .wait_terminal(&key, created["id"].as_str().expect("id"))
        .await;
    assert_eq!(video["status"], "completed");
    assert_eq!(video["cost"]["charged"], 240);
    let paid = app.balance(&tenant).await;
    assert_eq!(
        (
            paid["test_available"].as_i64(),
            paid["test_held"].as_i64(),
            paid["available"].as_i64()
        ),
        (Some(1000 - 240), Some(0), Some(1000))
    );
    let untouched = app.balance(&bystander).await;
    assert_eq!(
        (
            untouched["test_available"].as_i64(),
            untouched["available"].as_i64()
        ),
        (Some(1000), Some(1000))
    );
}

#[tokio::test]
async fn forged_expired_misdirected_and_confused_tokens_are_refused() {
    let app = app_with_issuers().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    let good = claims("https://hs.idp.example.com", &tenant);
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 3600);
    let mut not_yet = good.clone();
    not_yet["nbf"] = json!(now() + 3600);
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    let mut unknown_iss = good.clone();
    unknown_iss["iss"] = json!("https://evil.example.com");
    let wrong_key = encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(b"not-the-secret"),
    )
    .expect("sign");
    // HS/RS confusion: an HS256 token for the RS256 issuer, keyed with its public key.
    let public_pem = std::fs::read(format!("{FIXTURES}/jwt-rs256-public.pem")).expect("pem");
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims("https://rs.idp.example.com", &tenant),
        &EncodingKey::from_secret(&public_pem),
    )
    .expect("sign");
    let unknown_kid = rs(&claims("https://jwks.idp.example.com", &tenant), Some("k9"));
    let no_kid = rs(&claims("https://jwks.idp.example.com", &tenant), None);
    let mut no_tenant = good.clone();
    no_tenant["team"] = json!("ten_doesnotexist");
    let tokens = [
        ("alg none", none),
        ("expired", hs(&expired)),
        ("not yet valid", hs(&not_yet)),
        ("wrong audience", hs(&wrong_aud)),
        ("unknown issuer", hs(&unknown_iss)),
        ("wrong key", wrong_key),
        ("HS/RS confusion", confused),
        ("unknown kid", unknown_kid),
        ("missing kid", no_kid),
        ("unknown tenant", hs(&no_tenant)),
    ];
    for (what, token) in tokens {
        assert_eq!(
            status(&app, &token).await,
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
    }
}

#[tokio::test]
async fn claims_map_to_scopes_the_end_user_and_the_operator_role() {
    let app = app_with_issuers().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    let mut scoped = claims("https://hs.idp.example.com", &tenant);
    scoped["scope"] = json!("videos:read");
    let reader = hs(&scoped);
    assert_eq!(status(&app, &reader).await, StatusCode::OK);
    assert_eq!(
        app.create_video(&reader, json!({"prompt": "x"}))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );

    let mut user = claims("https://hs.idp.example.com", &tenant);
    user["end_user"] = json!("customer-7");
    let as_user = hs(&user);
    let created: Value = app
        .create_video(&as_user, json!({"prompt": "x", "seconds": 4}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(created["user"], "customer-7");
    let other = app
        .create_video(
            &as_user,
            json!({"prompt": "x", "seconds": 4, "user": "customer-8"}),
        )
        .await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);

    let plain = hs(&claims("https://hs.idp.example.com", &tenant));
    let admin_denied = app
        .client
        .get(app.url("/admin/v1/tenants"))
        .bearer_auth(&plain)
        .send()
        .await
        .expect("send");
    assert_eq!(admin_denied.status(), StatusCode::UNAUTHORIZED);
    let mut operator = claims("https://hs.idp.example.com", &tenant);
    operator["roles"] = json!(["viewer", "gateway-admin"]);
    let admin = app
        .client
        .get(app.url("/admin/v1/tenants"))
        .bearer_auth(hs(&operator))
        .send()
        .await
        .expect("send");
    assert_eq!(admin.status(), StatusCode::OK);
}

/// An HS256 token signed by hand, with any header.
fn hs_with_header(header: &Value, claims: &Value) -> String {
    use base64::Engine;
    use hmac::Mac;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(v).expect("json"))
    };
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(HS_SECRET.as_bytes()).expect("hmac key");
    mac.update(signing_input.as_bytes());
    let signature =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

#[tokio::test]
async fn a_token_with_critical_extensions_is_refused() {
    let app = app_with_issuers().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    let claims = claims("https://hs.idp.example.com", &tenant);
    // The same hand-signed token without `crit` is accepted: only the extension is refused.
    let plain = hs_with_header(&json!({"alg": "HS256", "typ": "JWT"}), &claims);
    assert_eq!(status(&app, &plain).await, StatusCode::OK);
    for crit in [json!(["exp-ext"]), json!(["b64"]), json!([])] {
        let token = hs_with_header(
            &json!({"alg": "HS256", "typ": "JWT", "crit": crit, "exp-ext": true, "b64": false}),
            &claims,
        );
        let response = app
            .client
            .get(app.url("/v1/videos"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "crit {crit}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "invalid_token");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("crit"),
            "{body}"
        );
    }
}

/// The status and error body of `GET /v1/videos` with a token.
async fn refusal(app: &TestApp, token: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .get(app.url("/v1/videos"))
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_scope_array_limits_the_token_like_a_scope_string() {
    let app = app_with_issuers().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    let mut reader = claims("https://hs.idp.example.com", &tenant);
    reader["scope"] = json!(["videos:read"]);
    let reader = hs(&reader);
    assert_eq!(status(&app, &reader).await, StatusCode::OK);
    assert_eq!(
        app.create_video(&reader, json!({"prompt": "x", "seconds": 4}))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.balance(&tenant).await["test_held"].as_i64(),
        Some(0),
        "a refused create reserved credits"
    );
    let mut writer = claims("https://hs.idp.example.com", &tenant);
    writer["scope"] = json!(["videos:read", "videos:write"]);
    assert_eq!(
        app.create_video(&hs(&writer), json!({"prompt": "x", "seconds": 4}))
            .await
            .status(),
        StatusCode::OK
    );
    let mut empty = claims("https://hs.idp.example.com", &tenant);
    empty["scope"] = json!([]);
    assert_eq!(status(&app, &hs(&empty)).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_scope_of_another_type_or_naming_an_unknown_scope_refuses_the_token() {
    let app = app_with_issuers().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    for scope in [
        json!(42),
        json!(true),
        json!(null),
        json!({"videos:read": true}),
        json!(["videos:read", 7]),
        json!(["videos:read", ["videos:write"]]),
        json!(["videos:read videos:write"]),
        json!(["admin"]),
        json!("videos:read videos:everything"),
    ] {
        let mut token = claims("https://hs.idp.example.com", &tenant);
        token["scope"] = scope.clone();
        let (status, body) = refusal(&app, &hs(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "scope {scope}: {body}");
        assert_eq!(body["error"]["code"], "invalid_token", "scope {scope}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("scope")),
            "scope {scope}: {body}"
        );
    }
}

#[tokio::test]
async fn a_claim_present_with_the_wrong_type_refuses_the_token() {
    let app = app_with_issuers().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    let good = claims("https://hs.idp.example.com", &tenant);
    assert_eq!(status(&app, &hs(&good)).await, StatusCode::OK);
    let cases = [
        ("team", json!([tenant.clone()])),
        ("team", json!(42)),
        ("team", json!(null)),
        ("end_user", json!(7)),
        ("end_user", json!({"id": "customer-7"})),
        ("roles", json!(1)),
        ("roles", json!(["viewer", 3])),
        ("roles", json!({"gateway-admin": true})),
        ("sub", json!(12)),
        ("sub", json!(["svc-render"])),
        ("nbf", json!("tomorrow")),
        ("nbf", json!(-1)),
        ("iat", json!("now")),
        ("exp", json!("later")),
        ("aud", json!(["seedance-gateway", 5])),
    ];
    for (claim, value) in cases {
        let mut token = good.clone();
        token[claim] = value.clone();
        let (status, body) = refusal(&app, &hs(&token)).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{claim} = {value}: {body}"
        );
        assert_eq!(body["error"]["code"], "invalid_token", "{claim} = {value}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(claim)),
            "{claim} = {value}: {body}"
        );
    }
    // The admin route refuses a wrongly typed role claim too, instead of reading it as absent.
    let mut operator = good.clone();
    operator["roles"] = json!(["gateway-admin", false]);
    let admin = app
        .client
        .get(app.url("/admin/v1/tenants"))
        .bearer_auth(hs(&operator))
        .send()
        .await
        .expect("send");
    assert_eq!(admin.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_exp_beyond_any_date_is_refused_as_out_of_range_not_as_missing() {
    let app = app_with_issuers().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    for exp in [
        json!(1e30),
        json!(u64::MAX),
        json!(253_402_300_800_u64),
        json!(-5),
    ] {
        let mut token = claims("https://hs.idp.example.com", &tenant);
        token["exp"] = exp.clone();
        let (status, body) = refusal(&app, &hs(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "exp {exp}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("`exp` is not a valid NumericDate") && !message.contains("Missing"),
            "exp {exp}: {message}"
        );
    }
    // The last second of year 9999 is still a date.
    let mut far = claims("https://hs.idp.example.com", &tenant);
    far["exp"] = json!(253_402_300_799_u64);
    assert_eq!(status(&app, &hs(&far)).await, StatusCode::OK);
}
