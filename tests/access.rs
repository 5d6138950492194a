//! Every principal in its lane: a walk over every operation of the served OpenAPI document,
//! with each kind of principal (a tenant's live key, its test key, each single-scope key, a
//! JWT bound to end user alice, another tenant's key) against objects of the others, checked
//! against the table in `docs/access.md`; then what the table cannot show: a test key changes
//! nothing live, and deliveries and their secrets stay in their mode.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::receiver::Receiver;
use common::TestApp;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use seedance_gateway::config::{JwtIssuerConfig, Secret};
use serde_json::{json, Value};

const ISSUER: &str = "https://users.idp.example.com";
const SECRET: &str = "end-user-issuer-secret-0123456789abcdef";
const SCOPES: [&str; 5] = [
    "videos:write",
    "videos:read",
    "billing:read",
    "end_users:write",
    "webhooks:write",
];

fn issuer() -> JwtIssuerConfig {
    JwtIssuerConfig {
        issuer: ISSUER.into(),
        audience: "seedance-gateway".into(),
        algorithm: "HS256".into(),
        secret: Some(Secret::new(SECRET)),
        public_key_pem: None,
        public_key_file: None,
        jwks_file: None,
        jwks_url: None,
        tenant_claim: None,
        user_claim: Some("sub_user".into()),
        admin_claim: None,
        admin_value: None,
        mode: None,
        leeway_secs: None,
    }
}

fn token(claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

fn end_user_token(tenant: &str, user: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    token(
        json!({"iss": ISSUER, "aud": "seedance-gateway", "exp": exp, "sub": format!("app-{user}"),
                 "tenant": tenant, "sub_user": user}),
    )
}

/// One row of the table in `docs/access.md`.
#[derive(Debug, Clone)]
struct Row {
    method: String,
    path: String,
    scope: Option<String>,
    tenant: String,
    end_user: String,
}

fn table() -> Vec<Row> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/access.md"))
        .expect("docs/access.md");
    text.lines()
        .filter(|line| line.starts_with("| "))
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|cells| cells.len() == 5 && cells[0] != "Method")
        .map(|cells| Row {
            method: cells[0].clone(),
            path: cells[1].clone(),
            scope: Some(cells[2].clone()).filter(|s| s != "-"),
            tenant: cells[3].clone(),
            end_user: cells[4].clone(),
        })
        .collect()
}

fn row_for<'a>(rows: &'a [Row], method: &str, path: &str) -> Option<&'a Row> {
    rows.iter().find(|row| {
        (row.method == method && row.path == path)
            || (row.method == "any"
                && row
                    .path
                    .strip_suffix('…')
                    .is_some_and(|prefix| path.starts_with(prefix)))
    })
}

/// Who calls.
#[derive(Debug, Clone, PartialEq)]
enum Who {
    Live,
    Test,
    Scoped(&'static str),
    Alice,
    Other,
}

/// Whose object it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    LiveAlice,
    LiveBob,
    Test,
    Other,
}

impl Who {
    fn owns(&self, owner: Owner, kind: &str) -> bool {
        if kind == "user_id" {
            // A tenant's end users exist in each of its modes, for each tenant alike.
            return *self != Who::Alice || owner == Owner::LiveAlice;
        }
        match self {
            Who::Live | Who::Scoped(_) => matches!(owner, Owner::LiveAlice | Owner::LiveBob),
            Who::Test => owner == Owner::Test,
            Who::Other => owner == Owner::Other,
            // Endpoints and messages are the tenant's, not one user's.
            Who::Alice => {
                owner == Owner::LiveAlice || (kind != "video_id" && owner == Owner::LiveBob)
            }
        }
    }
}

struct World {
    app: TestApp,
    tenant: String,
    keys: BTreeMap<String, String>,
    /// Objects by the name of their path parameter, then owner.
    objects: BTreeMap<&'static str, BTreeMap<Owner, String>>,
    /// Secrets only their own mode and tenant may ever read.
    secrets: BTreeMap<Owner, Vec<String>>,
}

impl World {
    fn key(&self, who: &Who) -> String {
        let name = match who {
            Who::Live => "live".to_string(),
            Who::Test => "test".to_string(),
            Who::Scoped(scope) => scope.to_string(),
            Who::Alice => "alice".to_string(),
            Who::Other => "other".to_string(),
        };
        self.keys[&name].clone()
    }

    async fn call(
        &self,
        who: &Who,
        method: &Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut request = self
            .app
            .client
            .request(method.clone(), self.app.url(path))
            .bearer_auth(self.key(who));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        (status, response.text().await.unwrap_or_default())
    }
}

fn video_body(user: Option<&str>) -> Value {
    let mut body = json!({"model": "seedance-2.0-fast", "prompt": "a lane", "seconds": 4});
    if let Some(user) = user {
        body["user"] = json!(user);
    }
    body
}

/// A body the route accepts, so that what answers is the access rule, not validation.
fn body_for(method: &str, template: &str) -> Option<Value> {
    match (method, template) {
        ("POST", "/v1/videos" | "/v1/videos/quote") => Some(video_body(None)),
        ("PUT", "/v1/end_users/{user_id}") => Some(json!({"credits_per_day": 5000})),
        ("POST", "/v1/end_users/{user_id}/wallet") => Some(json!({"amount": 1})),
        ("POST", "/v1/webhook_endpoints") => Some(json!({"url": "https://hooks.example.com/walk"})),
        ("POST", path) if path.starts_with("/admin/") => Some(json!({})),
        ("PUT", path) if path.starts_with("/admin/") => Some(json!({})),
        _ => None,
    }
}

/// A new key of the tenant, as the operator creates it (`body`: mode, scopes); its secret.
async fn new_key(app: &TestApp, tenant: &str, body: Value) -> String {
    app.admin_post(&format!("/admin/v1/tenants/{tenant}/keys"), body)
        .await
        .json::<Value>()
        .await
        .expect("key")["secret"]
        .as_str()
        .expect("secret")
        .to_string()
}

async fn create(app: &TestApp, key: &str, user: Option<&str>) -> String {
    let response = app.create_video(key, video_body(user)).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json::<Value>().await.expect("video")["id"]
        .as_str()
        .expect("id")
        .to_string()
}

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> Value {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.expect("json")
}

/// An endpoint and one message to it in the key's world (a canceled video announces itself).
async fn webhook_objects(app: &TestApp, key: &str) -> (String, String, String) {
    let endpoint = post(
        app,
        key,
        "/v1/webhook_endpoints",
        json!({"url": "https://hooks.example.com/lane"}),
    )
    .await;
    let video = create(app, key, None).await;
    post(app, key, &format!("/v1/videos/{video}/cancel"), json!({})).await;
    let (_, messages) = app.get_json(key, "/v1/webhook_messages").await;
    let message = messages["data"][0]["id"]
        .as_str()
        .expect("a message about the canceled video")
        .to_string();
    let secret = endpoint["secret"].as_str().expect("secret").to_string();
    (
        endpoint["id"].as_str().expect("id").to_string(),
        message,
        secret,
    )
}

async fn world() -> World {
    let app = TestApp::spawn_with(|config| {
        config.providers.sandbox.delay_ms = 600_000;
        config.auth.jwt_issuers = vec![issuer()];
        // Every tenant principal is refused on every admin route: hundreds of refusals from
        // one address, which the failed-authentication throttle would otherwise answer.
        config.limits.failed_auth_per_minute = 1_000_000;
    })
    .await;
    let (tenant, live) = app.tenant_with_key("live", 1_000_000).await;
    let mut keys = BTreeMap::new();
    for (name, body) in [("test", json!({"mode": "test"}))]
        .into_iter()
        .chain(SCOPES.map(|scope| (scope, json!({"mode": "live", "scopes": [scope]}))))
    {
        keys.insert(name.to_string(), new_key(&app, &tenant, body).await);
    }
    let (_, other) = app.tenant_with_key("live", 1_000_000).await;
    keys.insert("live".into(), live.clone());
    keys.insert("other".into(), other.clone());
    keys.insert("alice".into(), end_user_token(&tenant, "alice"));
    let test = keys["test"].clone();

    let mut videos = BTreeMap::new();
    videos.insert(Owner::LiveAlice, create(&app, &live, Some("alice")).await);
    videos.insert(Owner::LiveBob, create(&app, &live, Some("bob")).await);
    videos.insert(Owner::Test, create(&app, &test, Some("bob")).await);
    videos.insert(Owner::Other, create(&app, &other, Some("bob")).await);
    let mut endpoints = BTreeMap::new();
    let mut messages = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    for (owner, key) in [
        (Owner::LiveBob, &live),
        (Owner::Test, &test),
        (Owner::Other, &other),
    ] {
        let (endpoint, message, endpoint_secret) = webhook_objects(&app, key).await;
        let (_, request_secret) = app.get_json(key, "/v1/webhook_secret").await;
        endpoints.insert(owner, endpoint);
        messages.insert(owner, message);
        secrets.insert(
            owner,
            vec![
                endpoint_secret,
                request_secret["secret"]
                    .as_str()
                    .expect("secret")
                    .to_string(),
            ],
        );
    }
    // Each mode has its own request secret.
    assert_ne!(secrets[&Owner::LiveBob][1], secrets[&Owner::Test][1]);
    let mut objects = BTreeMap::new();
    objects.insert("video_id", videos);
    objects.insert("endpoint_id", endpoints);
    objects.insert("message_id", messages);
    let mut users = BTreeMap::new();
    users.insert(Owner::LiveAlice, "alice".to_string());
    users.insert(Owner::LiveBob, "bob".to_string());
    objects.insert("user_id", users);
    World {
        app,
        tenant,
        keys,
        objects,
        secrets,
    }
}

/// The served document's operations: (method, path template, the path parameter's name).
async fn operations(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    let document: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("document")
        .json()
        .await
        .expect("json");
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_none() {
                continue;
            }
            let param = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .next_back()
                .map(str::to_string);
            operations.push((method.to_uppercase(), path.clone(), param));
        }
    }
    operations.sort();
    operations
}

fn principals() -> Vec<Who> {
    let mut all = vec![Who::Live, Who::Test, Who::Alice, Who::Other];
    all.extend(SCOPES.map(Who::Scoped));
    all
}

/// The path with its last parameter set to `id` and any other to an object of the caller.
fn fill(world: &World, template: &str, id: &str) -> String {
    let mut path = template.to_string();
    if template.starts_with("/admin/") {
        path = path.replace("{tenant_id}", &world.tenant);
    }
    let last = template.rfind('{').expect("a parameter");
    let end = last + template[last..].find('}').expect("closed") + 1;
    let name = &template[last..end];
    path.replace(name, id)
}

/// A refusal, or an answer from a route the caller may use.
fn denied(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN
            | StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
    )
}

/// The secrets `who` must never read.
fn foreign_secrets(world: &World, who: &Who) -> Vec<String> {
    world
        .secrets
        .iter()
        .filter(|(owner, _)| !who.owns(**owner, "secret") || *who == Who::Alice)
        .flat_map(|(_, secrets)| secrets.clone())
        .collect()
}

fn foreign_ids(world: &World, who: &Who) -> Vec<String> {
    world
        .objects
        .iter()
        .filter(|(kind, _)| **kind != "user_id")
        .flat_map(|(kind, by_owner)| {
            by_owner
                .iter()
                .filter(|(owner, _)| !who.owns(**owner, kind))
                .map(|(_, id)| id.clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn every_operation_answers_each_principal_as_the_access_table_says() {
    let world = world().await;
    let rows = table();
    let operations = operations(&world.app).await;
    assert!(operations.len() > 40, "the document lists every route");
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut allowed_calls = Vec::new();
    for (method, template, param) in &operations {
        let Some(row) = row_for(&rows, method, template) else {
            failures.push(format!("{method} {template} has no row in docs/access.md"));
            continue;
        };
        if row.tenant == "public" {
            continue;
        }
        let verb = Method::from_bytes(method.as_bytes()).expect("method");
        for who in principals() {
            let cell = if who == Who::Alice {
                &row.end_user
            } else {
                &row.tenant
            };
            let lacks_scope = match (&who, &row.scope) {
                (Who::Scoped(has), Some(needs)) => has != needs,
                _ => false,
            };
            let objects: Vec<(Owner, String)> = match param.as_deref() {
                Some(name) if world.objects.contains_key(name) => world.objects[name]
                    .iter()
                    .map(|(owner, id)| (*owner, id.clone()))
                    .collect(),
                // Admin routes: any id; none is the tenant caller's to reach.
                Some(_) => vec![(Owner::Other, "x_unknown".to_string())],
                None => vec![(Owner::LiveBob, String::new())],
            };
            for (owner, id) in objects {
                let path = match param {
                    Some(_) => fill(&world, template, &id),
                    None => template.clone(),
                };
                let kind = param.as_deref().unwrap_or("");
                let own = param.is_none() || who.owns(owner, kind);
                let expected = match (cell.as_str(), lacks_scope, own) {
                    ("operator", _, _) => Some(StatusCode::UNAUTHORIZED),
                    (_, true, _) | ("refused", _, _) => Some(StatusCode::FORBIDDEN),
                    (_, false, false) => Some(StatusCode::NOT_FOUND),
                    ("allowed" | "own", false, true) => None,
                    (other, _, _) => panic!("unknown cell `{other}` for {method} {template}"),
                };
                match expected {
                    Some(status) => {
                        let (got, body) = world
                            .call(&who, &verb, &path, body_for(method, template))
                            .await;
                        checked += 1;
                        if got != status {
                            failures.push(format!(
                                "{who:?} {method} {path} ({owner:?}'s): expected {status}, got {got} {body}"
                            ));
                        }
                    }
                    None => allowed_calls.push((who.clone(), verb.clone(), path, template.clone())),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The refusals changed nothing: every object is as its owner left it.
    for (owner, key) in [
        (Owner::LiveAlice, "live"),
        (Owner::LiveBob, "live"),
        (Owner::Test, "test"),
        (Owner::Other, "other"),
    ] {
        let id = &world.objects["video_id"][&owner];
        let (status, video) = world
            .app
            .get_json(&world.keys[key], &format!("/v1/videos/{id}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{owner:?}'s video is still there");
        assert_eq!(
            video["status"], "in_progress",
            "{owner:?}'s video was not touched"
        );
    }
    for (owner, key) in [
        (Owner::LiveBob, "live"),
        (Owner::Test, "test"),
        (Owner::Other, "other"),
    ] {
        let id = &world.objects["endpoint_id"][&owner];
        let (_, endpoint) = world
            .app
            .get_json(&world.keys[key], &format!("/v1/webhook_endpoints/{id}"))
            .await;
        assert_eq!(endpoint["status"], "enabled", "{owner:?}'s endpoint");
        assert_eq!(endpoint["previous_secret_expires_at"], Value::Null);
        let (_, secret) = world
            .app
            .get_json(&world.keys[key], "/v1/webhook_secret")
            .await;
        assert_eq!(secret["secret"], json!(world.secrets[&owner][1]));
    }
    let (_, bob) = world
        .app
        .get_json(&world.keys["live"], "/v1/end_users/bob")
        .await;
    assert_eq!(
        bob["credits_per_day"],
        Value::Null,
        "bob's limits are untouched"
    );
    assert_eq!(bob["wallet_balance"], 0);

    // What each principal may call answers it, and shows it nothing of the others.
    allowed_calls.sort_by_key(|(_, verb, _, _)| *verb == Method::DELETE);
    for (who, verb, path, template) in allowed_calls {
        let (status, body) = world
            .call(&who, &verb, &path, body_for(verb.as_str(), &template))
            .await;
        checked += 1;
        if denied(status) && !(verb == Method::DELETE && status == StatusCode::NOT_FOUND) {
            failures.push(format!(
                "{who:?} {verb} {path}: allowed, but got {status} {body}"
            ));
        }
        for id in foreign_ids(&world, &who) {
            if body.contains(&id) {
                failures.push(format!("{who:?} {verb} {path} shows {id}, not its own"));
            }
        }
        for secret in foreign_secrets(&world, &who) {
            if body.contains(&secret) {
                failures.push(format!(
                    "{who:?} {verb} {path} shows another world's secret"
                ));
            }
        }
    }
    // A list filtered on another end user shows an end-user token nothing.
    let (status, list) = world
        .app
        .get_json(&world.keys["alice"], "/v1/videos?user=bob")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"], json!([]));
    assert!(checked > 400, "walked {checked} calls");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_test_key_changes_nothing_that_live_traffic_uses() {
    let app = TestApp::spawn_with(|config| config.providers.sandbox.delay_ms = 600_000).await;
    let (tenant, live) = app.tenant_with_key("live", 100_000).await;
    let test = new_key(&app, &tenant, json!({"mode": "test"})).await;
    // Alice's test settings are the test key's to set; her live ones stay as they were.
    let response = app
        .client
        .put(app.url("/v1/end_users/alice"))
        .bearer_auth(&test)
        .json(&json!({"credits_per_day": 1, "max_concurrent": 0}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let (_, live_alice) = app.get_json(&live, "/v1/end_users/alice").await;
    assert_eq!(live_alice["credits_per_day"], Value::Null);
    let created = app.create_video(&live, video_body(Some("alice"))).await;
    assert_eq!(
        created.status(),
        StatusCode::OK,
        "alice's live creates go on"
    );
    let refused = app.create_video(&test, video_body(Some("alice"))).await;
    assert_eq!(
        refused.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "her test limits hold"
    );

    // Test jobs count against the test side of the tenant's caps only.
    let response = app
        .client
        .put(app.url(&format!("/admin/v1/tenants/{tenant}/quotas")))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"max_concurrent": 2}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    for _ in 0..2 {
        let response = app.create_video(&test, video_body(None)).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let full = app.create_video(&test, video_body(None)).await;
    assert_eq!(full.status(), StatusCode::TOO_MANY_REQUESTS);
    let live_create = app.create_video(&live, video_body(None)).await;
    assert_eq!(
        live_create.status(),
        StatusCode::OK,
        "live has its own count"
    );

    // The test key's secret is not the one that signs live deliveries.
    let (_, live_secret) = app.get_json(&live, "/v1/webhook_secret").await;
    let (_, test_secret) = app.get_json(&test, "/v1/webhook_secret").await;
    assert_ne!(live_secret["secret"], test_secret["secret"]);
    let rotated = app
        .client
        .post(app.url("/v1/webhook_secret/rotate"))
        .bearer_auth(&test)
        .send()
        .await
        .expect("request");
    assert_eq!(rotated.status(), StatusCode::OK);
    let (_, still) = app.get_json(&live, "/v1/webhook_secret").await;
    assert_eq!(
        still["secret"], live_secret["secret"],
        "live secret unchanged"
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn each_mode_s_events_reach_only_that_mode_s_endpoints() {
    let app = TestApp::spawn_with(|config| {
        config.security.url_allowlist.push("127.0.0.1".into());
        config.providers.sandbox.delay_ms = 100;
    })
    .await;
    let (receiver, base) = Receiver::start().await;
    let (tenant, live) = app.tenant_with_key("live", 100_000).await;
    let test = new_key(&app, &tenant, json!({"mode": "test"})).await;
    let live_endpoint = post(
        &app,
        &live,
        "/v1/webhook_endpoints",
        json!({"url": format!("{base}/hooks/live")}),
    )
    .await;
    assert_eq!(live_endpoint["mode"], "live");
    let test_endpoint = post(
        &app,
        &test,
        "/v1/webhook_endpoints",
        json!({"url": format!("{base}/hooks/test")}),
    )
    .await;
    assert_eq!(test_endpoint["mode"], "test");
    // A test key cannot make a live endpoint.
    let response = app
        .client
        .post(app.url("/v1/webhook_endpoints"))
        .bearer_auth(&test)
        .json(&json!({"url": format!("{base}/hooks/sneaky"), "mode": "live"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let live_video = create(&app, &live, None).await;
    let test_video = create(&app, &test, None).await;
    app.wait_terminal(&live, &live_video).await;
    app.wait_terminal(&test, &test_video).await;
    receiver.wait_for("live", 1, Duration::from_secs(20)).await;
    receiver.wait_for("test", 1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let to_live: Vec<_> = receiver.on("live").into_iter().map(|r| r.body).collect();
    let to_test: Vec<_> = receiver.on("test").into_iter().map(|r| r.body).collect();
    assert!(to_live.iter().all(|body| body.contains(&live_video)));
    assert!(to_test.iter().all(|body| body.contains(&test_video)));
    assert!(!to_live.iter().any(|body| body.contains(&test_video)));
    assert!(!to_test.iter().any(|body| body.contains(&live_video)));

    // Each mode's log lists its own messages.
    let (_, live_log) = app.get_json(&live, "/v1/webhook_messages").await;
    let (_, test_log) = app.get_json(&test, "/v1/webhook_messages").await;
    assert!(live_log["data"]
        .as_array()
        .expect("list")
        .iter()
        .all(|m| m["video_id"] == json!(live_video)));
    assert!(test_log["data"]
        .as_array()
        .expect("list")
        .iter()
        .all(|m| m["video_id"] == json!(test_video)));
}
