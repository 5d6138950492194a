//! Logging: human-readable lines by default, JSON with `--log-format json`; `RUST_LOG`
//! overrides the configured filter. Request lines carry the request id from their span.
//! Lines are written to stderr by a thread of their own, through a buffer flushed whenever it
//! has caught up: a request only formats its line, and a busy gateway writes many lines per
//! system call. When the writer falls behind, requests wait for it rather than lines being
//! dropped; lines still buffered when the process is killed outright are lost.
//!
//! Traces: when `log.otlp_endpoint` is set, every span (each request, with its request id,
//! method and path) is also exported over OTLP/HTTP (protobuf) to that collector, in batches
//! from a background thread, so a slow or absent collector never delays a request. The
//! returned [`Telemetry`] flushes what is buffered when it is dropped at exit.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogConfig, LogFormat};

/// Keeps the trace exporter alive; flushes it on drop.
#[derive(Default)]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    /// Flushes the log writer's buffer when dropped.
    _log_writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Flushing blocks, and the exporter's client must not be dropped on an async
            // thread: both happen on a thread of their own.
            let flushed = std::thread::spawn(move || provider.shutdown()).join();
            if let Ok(Err(error)) = flushed {
                eprintln!("flushing traces failed: {error}");
            }
        }
    }
}

fn tracer_provider(
    config: &LogConfig,
) -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    let Some(endpoint) = config.otlp_endpoint.as_deref().filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    let base = endpoint.trim_end_matches('/');
    let endpoint = if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    };
    // The batch processor exports from its own thread, hence the blocking client; it runs a
    // small runtime of its own, which may not be created (or dropped) on an async thread.
    let client = std::thread::spawn(|| {
        reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("building the trace export client panicked"))??;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.otlp_service_name.clone())
        .build();
    Ok(Some(
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    ))
}

pub fn init(config: &LogConfig) -> Telemetry {
    let filter = || {
        EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(&config.filter))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    let (writer, log_writer) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    // Colour only on a terminal: a file or a pipe gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(colour);
    let fmt = match config.format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    let (provider, trace_error) = match tracer_provider(config) {
        Ok(provider) => (provider, None),
        Err(error) => (None, Some(error)),
    };
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("seedance-gateway"))
            .with_filter(filter())
    });
    let result = tracing_subscriber::registry()
        .with(fmt.with_filter(filter()))
        .with(otel)
        .try_init();
    if result.is_err() {
        tracing::debug!("logging was already initialised");
    }
    if let Some(error) = trace_error {
        tracing::error!(error = %error, "trace export is off: the OTLP exporter could not be set up");
    } else if provider.is_some() {
        tracing::info!("exporting traces over OTLP/HTTP");
    }
    Telemetry {
        provider,
        _log_writer: Some(log_writer),
    }
}

/// Runs a short best-effort task (an upstream cancel, a key's last-used time) in the
/// background. A panic inside it is contained by the runtime and logged here.
pub fn spawn_detached<F>(name: &'static str, work: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let handle = tokio::spawn(work);
    tokio::spawn(async move {
        if let Err(error) = handle.await {
            tracing::error!(task = name, %error, "background task failed");
        }
    });
}
