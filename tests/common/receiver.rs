//! A webhook receiver for tests: records every delivery; some paths misbehave on purpose.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
    pub at: Instant,
}

#[derive(Clone, Default)]
pub struct Receiver {
    pub received: Arc<Mutex<Vec<Received>>>,
    /// While set, `/hooks/unstable` answers 500.
    pub failing: Arc<std::sync::atomic::AtomicBool>,
    port: Arc<Mutex<u16>>,
}

async fn hook(
    State(receiver): State<Receiver>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let port = *receiver.port.lock().expect("port");
    let seen = {
        let mut received = receiver.received.lock().expect("received");
        received.push(Received {
            path: path.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body,
            at: Instant::now(),
        });
        received.iter().filter(|r| r.path == path).count()
    };
    match path.as_str() {
        // Fails twice (once asking for a 1 s pause), then accepts.
        "flaky" if seen == 1 => (AxumStatus::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "flaky" if seen == 2 => (
            AxumStatus::SERVICE_UNAVAILABLE,
            [("retry-after", "1")],
            "busy",
        )
            .into_response(),
        "gone" => (AxumStatus::GONE, "gone").into_response(),
        "unstable" if receiver.failing.load(std::sync::atomic::Ordering::SeqCst) => {
            (AxumStatus::INTERNAL_SERVER_ERROR, "down").into_response()
        }
        "redirect-internal" => {
            (AxumStatus::FOUND, [("location", "http://10.0.0.1/hook")]).into_response()
        }
        "redirect-localhost" => (
            AxumStatus::FOUND,
            [("location", format!("http://localhost:{port}/hooks/ok"))],
        )
            .into_response(),
        "redirect-metadata" => (
            AxumStatus::TEMPORARY_REDIRECT,
            [(
                "location",
                "http://[::ffff:169.254.169.254]/latest/meta-data/",
            )],
        )
            .into_response(),
        _ => (AxumStatus::OK, "thanks").into_response(),
    }
}

impl Receiver {
    pub async fn start() -> (Receiver, String) {
        let receiver = Receiver::default();
        let app = Router::new()
            .route("/hooks/{path}", post(hook))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        *receiver.port.lock().expect("port") = address.port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, format!("http://127.0.0.1:{}", address.port()))
    }

    pub fn on(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .expect("received")
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub async fn wait_for(&self, path: &str, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.on(path);
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{count} deliveries to /hooks/{path} expected, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
