//! Assembly: connect the database, apply migrations, build the providers, the router and the
//! workers, and serve until shutdown. Tests build the same [`App`] on port 0.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::domain::services::Services;
use crate::providers::Providers;
use crate::storage::Db;

pub use crate::domain::services::KEY_CACHE_TTL;

pub struct App {
    /// The domain's services, lent to the handlers and the workers.
    state: Arc<Services>,
    listener: TcpListener,
    shutdown: CancellationToken,
}

impl App {
    /// Connects, migrates and binds. The server starts with [`App::run`].
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let db = Db::connect(&config.database).await?;
        db.check_integrity().await?;
        db.migrate().await?;
        tracing::info!(database = db.location(), "database opened");
        // Every replica stamps, schedules and expires on the database's clock (`crate::clock`).
        let alignment = db
            .align_clock()
            .await
            .context("reading the database's clock")?;
        if alignment.abs() > 1_000 {
            tracing::warn!(
                alignment_ms = alignment,
                "this machine's clock is off the database's; the gateway keeps the database's time"
            );
        }
        std::fs::create_dir_all(&config.storage.dir).with_context(|| {
            format!(
                "creating storage directory {}",
                config.storage.dir.display()
            )
        })?;
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let objects = crate::storage::objects::Objects::from_config(&config.storage)?;
        let providers = Providers::from_config(&config, &metrics)?;
        let limiter = match &config.limits.redis_url {
            Some(url) => crate::domain::limits::Limiter::redis(url.expose())
                .await
                .context("connecting to Redis for rate limits")?,
            None => crate::domain::limits::Limiter::memory(),
        };
        let jwt = crate::domain::jwt::Issuers::from_config(&config.auth)
            .await
            .context("loading the JWT issuers")?;
        let state = Arc::new(Services {
            config: Arc::new(config),
            db,
            providers: Arc::new(providers),
            wake: Arc::new(Notify::new()),
            instance_id: format!("{}-{}", hostname(), crate::types::ids::random_token(8)).into(),
            draining: Arc::new(AtomicBool::new(false)),
            limiter: Arc::new(limiter),
            tenant_rates: Arc::default(),
            jwt: Arc::new(jwt),
            key_uses: Arc::default(),
            metrics,
            outbox: Arc::new(Notify::new()),
            key_cache: Arc::default(),
            objects,
        });
        Ok(App {
            state,
            listener,
            shutdown: CancellationToken::new(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.server.listen)
    }

    pub fn state(&self) -> &Services {
        &self.state
    }

    /// Cancelling this token drains the server: readiness fails, new work stops, in-flight
    /// requests finish within `server.shutdown_grace_secs`.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The OpenAPI document of the API this app serves (`seedance-gateway openapi`).
    pub fn openapi_document() -> String {
        crate::http::openapi::document()
    }

    pub async fn run(self) -> anyhow::Result<()> {
        let App {
            state,
            listener,
            shutdown,
        } = self;
        let worker = state.config.workers.enabled.then(|| {
            crate::workers::spawn(
                "jobs",
                crate::workers::jobs::run(state.clone(), shutdown.clone()),
            )
        });
        let sender = (state.config.workers.enabled && state.config.webhooks.enabled).then(|| {
            crate::workers::spawn(
                "webhooks",
                crate::workers::webhooks::run(state.clone(), shutdown.clone()),
            )
        });
        let archiver = (state.config.workers.enabled && state.config.storage.archive).then(|| {
            crate::workers::spawn(
                "archive",
                crate::workers::archive::run(state.clone(), shutdown.clone()),
            )
        });
        let clock = crate::workers::spawn(
            "clock",
            crate::workers::clock::run(state.clone(), shutdown.clone()),
        );
        let router = crate::http::router(state.clone());
        tracing::info!(address = %listener.local_addr()?, instance = %state.instance_id, "seedance-gateway listening");
        let draining = state.draining.clone();
        let signal = shutdown.clone();
        let graceful = async move {
            signal.cancelled().await;
            draining.store(true, Ordering::Relaxed);
        };
        let grace = Duration::from_secs(state.config.server.shutdown_grace_secs);
        let limits = crate::http::server::ConnectionLimits {
            header_read_timeout: Duration::from_secs(
                state.config.server.header_read_timeout_secs.max(1),
            ),
            max_connections: state.config.server.max_connections,
            metrics: state.metrics.clone(),
        };
        let server = crate::http::server::serve(listener, router, limits, graceful);
        let server = tokio::spawn(server);
        shutdown.cancelled().await;
        match tokio::time::timeout(grace, server).await {
            Ok(joined) => joined.context("server task")?,
            Err(_) => tracing::warn!("in-flight requests did not finish within the grace period"),
        }
        // The workers were told to stop with the server; they share one grace period.
        let workers = [worker, sender, archiver, Some(clock)]
            .into_iter()
            .flatten();
        if tokio::time::timeout(grace, futures::future::join_all(workers))
            .await
            .is_err()
        {
            tracing::warn!("background workers did not finish within the grace period");
        }
        state.db.close().await;
        tracing::info!("seedance-gateway stopped");
        Ok(())
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gateway".into())
}
