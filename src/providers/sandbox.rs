//! The built-in sandbox provider: runs inside the gateway, costs nothing, and finishes every
//! job after `providers.sandbox.delay_ms` with a real MP4 shipped with the project
//! (`assets/sandbox.mp4`). Test keys always run here.
//!
//! It keeps no state: the upstream id encodes the submit time, the delay and the outcome, so
//! jobs survive restarts like any upstream job. A prompt containing `[sandbox:fail]` (or the
//! `fail_all` switch) makes a job fail, and `[sandbox:reject]` makes the submit itself be
//! refused, so failure paths can be exercised end to end.

use std::time::Duration;

use crate::clock::now_ms;
use crate::config::SandboxConfig;
use crate::providers::capabilities::{Capabilities, Durations, ModelCapabilities, ALL_RATIOS};
use crate::providers::{
    CancelOutcome, Provider, ProviderError, Submission, SubmitRequest, UpstreamStatus, WebhookError,
};
use crate::types::video::{Model, Resolution};

pub const ID: crate::types::ids::ProviderId = crate::types::ids::ProviderId::Sandbox;
pub const NAME: &str = ID.as_str();

/// What a request costs here, in micro-USD, by this provider's price rule (list prices of the
/// day of its documents; `pricing.upstream_usd_per_second` overrides them), or why it cannot be
/// priced. The routing catalog (`domain::routing::catalog`) asks every provider through this.
pub fn upstream_cost(
    _request: &crate::types::video::NewVideo,
    _pricing: &crate::config::PricingConfig,
) -> Result<crate::types::money::MicroUsd, String> {
    // The sandbox generates nothing upstream: it is free.
    Ok(crate::types::money::MicroUsd::ZERO)
}
/// The output URL of every finished sandbox job; served from the embedded asset.
pub const OUTPUT_URL: &str = "sandbox://sandbox.mp4";
pub const VIDEO: &[u8] = include_bytes!("../../assets/sandbox.mp4");
pub const LAST_FRAME: &[u8] = include_bytes!("../../assets/sandbox-last-frame.jpg");

pub const FAIL_MARKER: &str = "[sandbox:fail]";
pub const REJECT_MARKER: &str = "[sandbox:reject]";

pub struct Sandbox {
    delay_ms: u64,
    fail_all: bool,
    capabilities: Capabilities,
}

impl Sandbox {
    pub fn new(config: &SandboxConfig) -> Sandbox {
        let models = Model::ALL
            .into_iter()
            .map(|model| ModelCapabilities {
                model,
                durations: Durations::Range(4, 15),
                resolutions: Resolution::ALL.to_vec(),
                aspect_ratios: ALL_RATIOS.to_vec(),
                first_frame: true,
                last_frame: true,
                max_reference_images: 9,
                max_reference_videos: 3,
                max_reference_audio: 3,
                audio: true,
                seed: true,
                camera_fixed: true,
            })
            .collect();
        Sandbox {
            delay_ms: config.delay_ms,
            fail_all: config.fail_all,
            capabilities: Capabilities { models },
        }
    }
}

struct SandboxJob {
    submitted_ms: i64,
    delay_ms: i64,
    fails: bool,
}

impl SandboxJob {
    fn encode(&self) -> String {
        let outcome = if self.fails { "fail" } else { "ok" };
        format!(
            "sbx.{}.{}.{}.{}",
            self.submitted_ms,
            self.delay_ms,
            outcome,
            crate::types::ids::random_token(8)
        )
    }

    fn decode(raw: &str) -> Option<SandboxJob> {
        let mut parts = raw.split('.');
        (parts.next()? == "sbx").then_some(())?;
        let submitted_ms = parts.next()?.parse().ok()?;
        let delay_ms = parts.next()?.parse().ok()?;
        let fails = match parts.next()? {
            "ok" => false,
            "fail" => true,
            _ => return None,
        };
        Some(SandboxJob {
            submitted_ms,
            delay_ms,
            fails,
        })
    }
}

#[async_trait::async_trait]
impl Provider for Sandbox {
    fn id(&self) -> crate::types::ids::ProviderId {
        ID
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn submit(&self, request: SubmitRequest<'_>) -> Result<Submission, ProviderError> {
        if request.video.prompt.contains(REJECT_MARKER) {
            return Err(ProviderError::Rejected(
                "the sandbox refused this prompt (it contains [sandbox:reject])".into(),
            ));
        }
        let job = SandboxJob {
            submitted_ms: now_ms(),
            delay_ms: self.delay_ms as i64,
            fails: self.fail_all || request.video.prompt.contains(FAIL_MARKER),
        };
        Ok(Submission {
            upstream_id: job.encode(),
            estimated: Some(Duration::from_millis(self.delay_ms)),
            cost: None,
        })
    }

    async fn poll(&self, upstream_id: &str) -> Result<UpstreamStatus, ProviderError> {
        let Some(job) = SandboxJob::decode(upstream_id) else {
            return Ok(UpstreamStatus::Failed {
                code: "upstream_error".into(),
                message: "unknown sandbox job".into(),
            });
        };
        let elapsed = now_ms() - job.submitted_ms;
        if elapsed < job.delay_ms {
            let progress = (elapsed.max(0) * 100 / job.delay_ms.max(1)).min(99);
            return Ok(UpstreamStatus::Running {
                progress: Some(progress),
            });
        }
        if job.fails {
            return Ok(UpstreamStatus::Failed {
                code: "generation_failed".into(),
                message: "the sandbox was asked to fail this job".into(),
            });
        }
        Ok(UpstreamStatus::Completed {
            video_url: OUTPUT_URL.into(),
            seconds: None,
            cost: None,
        })
    }

    async fn cancel(&self, _upstream_id: &str) -> Result<CancelOutcome, ProviderError> {
        Ok(CancelOutcome::Canceled)
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis((self.delay_ms / 4).clamp(50, 2000))
    }

    fn free_polls(&self) -> bool {
        true
    }

    fn webhook_job_id(
        &self,
        _headers: &http::HeaderMap,
        _body: &[u8],
    ) -> Result<String, WebhookError> {
        Err(WebhookError::Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_video_is_an_mp4() {
        assert_eq!(&VIDEO[4..8], b"ftyp");
        assert_eq!(&LAST_FRAME[..3], &[0xFF, 0xD8, 0xFF]);
    }

    #[test]
    fn job_state_round_trips_through_the_upstream_id() {
        let job = SandboxJob {
            submitted_ms: 1_700_000_000_000,
            delay_ms: 1500,
            fails: true,
        };
        let decoded = SandboxJob::decode(&job.encode()).expect("decodes");
        assert_eq!(
            (decoded.submitted_ms, decoded.delay_ms, decoded.fails),
            (1_700_000_000_000, 1500, true)
        );
        assert!(SandboxJob::decode("sbx.x.1.ok.a").is_none());
    }
}
