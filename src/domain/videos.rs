//! The video job service: create (price, hold and job row in one transaction), read, list,
//! cancel and delete, and what a completed video's content is (stored copy, sandbox bytes or
//! the upstream's URL), always scoped to the caller's tenant.

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};

use crate::domain::access::{Reach, UserFilter};
use crate::domain::billing::ledger;
use crate::domain::jobs::EndedBy;
use crate::domain::routing;
use crate::domain::services::Services;
use crate::domain::tenants::Principal;
use crate::error::{Error, Result};
use crate::providers::sandbox;
use crate::storage::leases::Due;
use crate::storage::now_ms;
use crate::types::ids::{ProviderId, VideoId};
use crate::types::video::{ArchiveState, NewVideo, PollCause, Video, VideoStatus};

/// Which page of a tenant's videos to read: storage's query, filled in here.
pub use crate::storage::videos::ListQuery;

/// A created job and the routing decision behind it.
pub struct Created {
    pub video: Video,
    pub route: &'static str,
}

/// A first frame sent with the request itself (multipart), kept on disk for as long as its job
/// needs it.
pub struct FirstFrame {
    pub bytes: bytes::Bytes,
    pub extension: &'static str,
}

/// Admits a validated request for this caller, before anything is kept: every URL it names
/// must pass the SSRF check, and a token that speaks for one end user creates only that user's
/// videos (the request is made that user's when it names none).
pub async fn admit(
    state: &Services,
    principal: &Principal,
    mut request: NewVideo,
) -> Result<NewVideo> {
    crate::domain::ssrf::check_request(&request, &state.config.security.url_allowlist).await?;
    if let Some(end_user) = &principal.end_user {
        match &request.user {
            Some(user) if user != end_user => {
                return Err(Error::Forbidden(
                    "this token may only create videos for its own end user".into(),
                ))
            }
            _ => request.user = Some(end_user.clone()),
        }
    }
    Ok(request)
}

/// Creates an admitted request's job (see [`admit`]). Its uploaded first frame, if any, is
/// saved first and removed again when the create is refused, so a refusal leaves nothing behind.
pub async fn create(
    state: &Services,
    principal: &Principal,
    mut request: NewVideo,
    first_frame: Option<FirstFrame>,
    idempotency: Option<&crate::domain::idempotency::Claim>,
) -> Result<Created> {
    let Some(frame) = first_frame else {
        return create_job(state, principal, request, idempotency).await;
    };
    let dir = &state.config.storage.dir;
    let name = crate::storage::files::save_upload(dir, frame.extension, &frame.bytes).await?;
    request.inputs.first_frame_upload = Some(name.clone());
    let outcome = create_job(state, principal, request, idempotency).await;
    if outcome.is_err() {
        crate::storage::files::remove(dir, &name).await;
    }
    outcome
}

/// Prices, holds and records the job in one transaction, then submits it at once when its
/// provider has a free slot.
async fn create_job(
    state: &Services,
    principal: &Principal,
    mut request: NewVideo,
    idempotency: Option<&crate::domain::idempotency::Claim>,
) -> Result<Created> {
    let decision = routing::decide(state, principal, &request).await?;
    request.routing.fallback = decision.fallback;
    let baseline_cost = state
        .config
        .routing
        .baseline_provider
        .as_deref()
        .and_then(ProviderId::parse)
        .and_then(|b| routing::catalog::upstream_cost(b, &request, &state.config.pricing).ok());
    request.routing.resubmit = decision.resubmit;
    let provider = decision.require_pick()?.provider;
    let route = decision.route;
    let price = routing::price(state, principal, &request, &decision).await?;
    let tenant = state
        .db
        .get_tenant(&principal.tenant_id)
        .await?
        .ok_or(Error::Unauthorized(
            "invalid_api_key",
            "this API key's tenant no longer exists".into(),
        ))?;
    let floor = tenant.floor(principal.mode);
    let now = now_ms();
    let video = Video {
        id: VideoId::generate(),
        tenant_id: principal.tenant_id.clone(),
        api_key_id: Some(principal.key_id.clone()),
        mode: principal.mode,
        request,
        status: crate::domain::jobs::transitions::Transition::Create.to(),
        progress: 0,
        provider: Some(provider),
        upstream_id: None,
        error: None,
        cost_reserved: price,
        cost_charged: None,
        output_url: None,
        created_at_ms: now,
        submitted_at_ms: None,
        completed_at_ms: None,
        expires_at_ms: None,
        archive_state: None,
        attempts: 0,
        callback_token: Some(crate::types::ids::random_token(32)),
        slot_provider: None,
        cost_ceiling_micro: decision.ranked.iter().filter_map(|c| c.upstream_cost).max(),
        cost_baseline_micro: baseline_cost,
        fallbacks: decision.ranked.iter().skip(1).map(|c| c.provider).collect(),
        upstream_cost: None,
        upstream_cost_micro_usd: None,
        upstream_estimate_micro: None,
        poll_cause: PollCause::Scheduled,
        upstream_requests: 0,
    };
    // The job, its admission and its hold, in one transaction (run again if it loses a
    // conflict with a concurrent one).
    let template = &video;
    let (video, inline) = crate::storage::retry_conflicts(|| async move {
        let mut video = template.clone();
        let mut tx = state.db.begin().await?;
        // The tenant's caps, then the end user's limits (which choose the paying account), are
        // checked in this transaction.
        crate::domain::end_users::admit_tenant(
            &mut tx,
            &video.tenant_id,
            video.mode,
            price,
            video.request.seconds.get(),
            now,
        )
        .await?;
        let (source, floor) = match &video.request.user {
            Some(user) => {
                let admission = crate::domain::end_users::Admission {
                    tenant: &video.tenant_id,
                    tenant_floor: floor,
                    mode: video.mode,
                    user,
                    price,
                    now,
                };
                crate::domain::end_users::admit(&mut tx, &state.db, &admission).await?
            }
            None => (
                ledger::available_account(&video.tenant_id, video.mode),
                floor,
            ),
        };
        // The job takes its provider's slot here, so the request can submit it at once; when the
        // jobs already waiting need the free slots, it joins them in the worker's queue instead.
        let inline = match state.providers.limit(provider) {
            None => true,
            Some(limit) => {
                let taken =
                    crate::domain::jobs::take_slot_for_new_job(&mut tx, provider, limit).await?;
                if taken {
                    video.slot_provider = Some(provider);
                }
                taken
            }
        };
        let lease_ms = (state.config.workers.lease_secs * 1000) as i64;
        let lease = inline.then_some((state.instance_id.as_ref(), lease_ms));
        crate::storage::Db::insert_video(&mut tx, &video, now, lease).await?;
        if let Some(claim) = idempotency {
            crate::domain::idempotency::insert(&mut tx, claim, Some(video.id.as_str())).await?;
        }
        ledger::hold(
            &mut tx,
            &video.tenant_id,
            video.mode,
            &source,
            floor,
            &video.id,
            price,
        )
        .await?;
        tx.commit().await?;
        Ok::<_, Error>((video, inline))
    })
    .await?;
    if !inline {
        state.wake_workers();
        return Ok(Created { video, route });
    }
    let dispatched = match crate::domain::jobs::dispatch_now(state, video.clone()).await {
        Ok(dispatched) => dispatched,
        Err(error) => {
            // The job is stored and held; hand it to the worker.
            tracing::warn!(video = %video.id, error = ?error, "inline dispatch failed; the worker will retry");
            if let Err(error) = state
                .db
                .reschedule(
                    &video.id,
                    &state.instance_id,
                    crate::domain::jobs::transitions::IN_FLIGHT,
                    Due::at(now_ms(), PollCause::Scheduled),
                )
                .await
            {
                tracing::warn!(video = %video.id, %error, "releasing the job failed; it waits for its lease to expire");
            }
            state.wake_workers();
            None
        }
    };
    let Some(video) = dispatched else {
        return Ok(Created { video, route });
    };
    match (&video.status, &video.error) {
        (VideoStatus::Failed, Some(error)) if error.code == "upstream_rejected" => {
            Err(Error::InvalidRequest {
                message: error.message.clone(),
                param: None,
            })
        }
        (VideoStatus::Failed, Some(error)) if error.code == "upstream_unsupported" => {
            Err(Error::UnsupportedCapability {
                message: error.message.clone(),
                param: None,
            })
        }
        (VideoStatus::Failed, Some(error)) if error.code == "upstream_unavailable" => {
            Err(Error::UpstreamUnavailable(error.message.clone()))
        }
        _ => {
            if video.status == VideoStatus::Queued {
                state.wake_workers();
            }
            Ok(Created { video, route })
        }
    }
}

/// A video within the caller's reach; any other reads as not found.
pub async fn get(state: &Services, reach: &Reach, id: &VideoId) -> Result<Video> {
    state
        .db
        .get_video(&reach.tenant, id)
        .await?
        .filter(|video| reach.sees_video(video))
        .ok_or(Error::NotFound("video"))
}

pub struct Page {
    pub videos: Vec<Video>,
    pub has_more: bool,
}

pub async fn list(state: &Services, query: &ListQuery<'_>) -> Result<Page> {
    if query.user == UserFilter::Nobody {
        return Ok(Page {
            videos: Vec::new(),
            has_more: false,
        });
    }
    let (videos, has_more) = state
        .db
        .list_videos(query)
        .await?
        .ok_or_else(|| Error::invalid("after", "no video with this id to page after"))?;
    Ok(Page { videos, has_more })
}

/// Cancels a queued or running job: the job ends `canceled` and its hold is voided in one
/// transaction; the upstream is then asked to cancel too, where it can. A result the upstream
/// sends later is ignored, because only running jobs can change state.
pub async fn cancel(state: &Services, reach: &Reach, id: &VideoId) -> Result<Video> {
    let video = get(state, reach, id).await?;
    if video.status.is_terminal() {
        return Err(Error::Conflict(
            "video_not_cancelable",
            format!("video {id} is already {}", video.status.as_str()),
        ));
    }
    crate::domain::jobs::end_job(
        state,
        &video,
        VideoStatus::Canceled,
        None,
        EndedBy::Tenant(&reach.tenant),
    )
    .await
    .map_err(Error::Internal)?;
    get(state, reach, id).await
}

/// Deletes a video: a running one is canceled first (its hold voided), then it disappears
/// from every read.
pub async fn delete(state: &Services, reach: &Reach, id: &VideoId) -> Result<()> {
    let video = get(state, reach, id).await?;
    if !video.status.is_terminal() {
        match cancel(state, reach, id).await {
            Ok(_) | Err(Error::Conflict(..)) => {}
            Err(other) => return Err(other),
        }
    }
    let finished = crate::domain::jobs::transitions::finished();
    if !state
        .db
        .soft_delete_video(&reach.tenant, id, &finished)
        .await?
    {
        return Err(Error::NotFound("video"));
    }
    // The stored copy goes with it. A copy still in progress is dropped by the archiver when
    // it finds the video no longer pending; a failed removal here is retried by its sweep.
    match video.archive_state {
        Some(ArchiveState::Stored) => {
            let key = crate::storage::objects::object_key(id.as_str());
            match state.objects.delete(&key).await {
                Ok(()) => {
                    state
                        .db
                        .set_archive_state(id.as_str(), ArchiveState::Deleted)
                        .await?
                }
                Err(error) => {
                    tracing::warn!(video = %id, error = ?error, "removing the stored output failed; the sweep retries")
                }
            }
        }
        Some(ArchiveState::Pending) => {
            state
                .db
                .set_archive_state(id.as_str(), ArchiveState::Deleted)
                .await?
        }
        _ => {}
    }
    Ok(())
}

/// Which file of a completed video to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The MP4.
    Video,
    /// The last frame, as JPEG (where the provider returns one).
    Thumbnail,
}

/// What `GET /v1/videos/{id}/content` serves for a completed video whose content has not
/// expired, in order of preference.
pub enum Content {
    /// The gateway's own copy of the MP4: `size` bytes under `key` in object storage, read
    /// with [`read_stored`].
    Stored { key: String, size: u64 },
    /// Bytes the gateway holds itself (the sandbox's output).
    Bytes {
        bytes: &'static [u8],
        content_type: &'static str,
        extension: &'static str,
    },
    /// The upstream's copy, while the gateway's own is pending or was never made.
    Redirect(String),
}

/// The content of a video within the caller's reach: not ready (409) until it is completed,
/// gone (410) once it has expired, otherwise the stored copy first, then the sandbox's bytes,
/// then the upstream's URL. `variant` is the request's, parsed at the edge; a malformed one is
/// reported after the video's own state, as the API always has.
pub async fn content(
    state: &Services,
    reach: &Reach,
    id: &VideoId,
    variant: Result<Variant>,
) -> Result<(Video, Content)> {
    let video = get(state, reach, id).await?;
    if video.status != VideoStatus::Completed {
        return Err(Error::Conflict(
            "video_not_ready",
            format!(
                "video {} is {}; content exists once it is completed",
                video.id,
                video.status.as_str()
            ),
        ));
    }
    let variant = variant?;
    if video
        .expires_at_ms
        .is_some_and(|at| at <= crate::clock::now_ms())
        || video.archive_state == Some(ArchiveState::Expired)
    {
        return Err(Error::Gone(
            "video_expired",
            format!("the content of video {} has expired", video.id),
        ));
    }
    if variant == Variant::Video && video.archive_state == Some(ArchiveState::Stored) {
        let key = crate::storage::objects::object_key(video.id.as_str());
        // A stored copy that went missing falls back to the upstream's, as before archiving.
        if let Some(size) = state.objects.size(&key).await? {
            return Ok((video, Content::Stored { key, size }));
        }
    }
    let output = video.output_url.clone().unwrap_or_default();
    if output == sandbox::OUTPUT_URL {
        let content = match variant {
            Variant::Thumbnail => Content::Bytes {
                bytes: sandbox::LAST_FRAME,
                content_type: "image/jpeg",
                extension: "jpg",
            },
            Variant::Video => Content::Bytes {
                bytes: sandbox::VIDEO,
                content_type: "video/mp4",
                extension: "mp4",
            },
        };
        return Ok((video, content));
    }
    if variant == Variant::Thumbnail {
        return Err(Error::NotFound(
            "thumbnail (this video's provider returns no last frame)",
        ));
    }
    Ok((video, Content::Redirect(output)))
}

/// The bytes `start..end` (end exclusive) of a stored copy, as a stream.
pub async fn read_stored(
    state: &Services,
    key: &str,
    start: u64,
    end: u64,
) -> Result<BoxStream<'static, std::io::Result<Bytes>>> {
    let stream = state
        .objects
        .read(key, start, end)
        .await
        .map_err(Error::Internal)?;
    Ok(stream
        .map(|chunk| chunk.map_err(std::io::Error::other))
        .boxed())
}
