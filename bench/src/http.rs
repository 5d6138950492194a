//! A small HTTP/1.1 client on hyper's connection API. A [`Conn`] is one keep-alive TCP
//! connection (what the load generator's workers each own); a [`Client`] wraps one for control
//! calls (admin API, fake controls) and reconnects when the server closed it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

pub type Body = Full<Bytes>;

/// One keep-alive connection.
pub struct Conn {
    sender: SendRequest<Body>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .context("connect timed out")?
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn { sender })
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(&mut self, request: Request<Body>) -> anyhow::Result<(StatusCode, Bytes)> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// Builds a request with the `Host` header hyper's connection API does not add itself.
pub fn request(
    method: Method,
    addr: SocketAddr,
    path: &str,
    auth: Option<&str>,
    extra: &[(&'static str, String)],
    body: Option<Bytes>,
) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string());
    if let Some(token) = auth {
        builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    if body.is_some() {
        builder = builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    for (name, value) in extra {
        builder = builder.header(*name, value);
    }
    builder
        .body(Full::new(body.unwrap_or_default()))
        .expect("a valid request")
}

/// A connection for control calls, reopened when needed.
pub struct Client {
    pub addr: SocketAddr,
    conn: Option<Conn>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None }
    }

    /// One call; on a transport error the connection is reopened and the call sent once more
    /// (control calls are safe to repeat).
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        let mut last_error = None;
        for _ in 0..2 {
            if self.conn.is_none() {
                self.conn = Some(Conn::connect(self.addr).await?);
            }
            let conn = self.conn.as_mut().expect("connected");
            let request = request(method.clone(), self.addr, path, auth, &[], body.clone());
            match tokio::time::timeout(Duration::from_secs(120), conn.send(request)).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(error)) => last_error = Some(error),
                Err(_) => last_error = Some(anyhow::anyhow!("no answer within 120 s")),
            }
            self.conn = None;
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("request failed"))
            .context(format!("{method} http://{}{path}", self.addr)))
    }

    /// A call whose answer must be a 2xx JSON document.
    pub async fn json(
        &mut self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let (status, bytes) = self.call(method.clone(), path, auth, body).await?;
        if !status.is_success() {
            anyhow::bail!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).with_context(|| format!("{method} {path}: not JSON"))
    }
}
