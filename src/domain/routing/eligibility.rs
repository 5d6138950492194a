//! The one answer to "may this provider take this job now". Routing (and so quotes) asks it
//! for every provider a caller reaches; a failover to the next candidate when a provider is
//! full or fails, and a resubmit after an upstream failure, ask it again for the candidate
//! they are about to use, because what held at create time may not hold now (a circuit
//! opened, a refusal was learned). A job therefore never lands on a provider that routing
//! would refuse at that moment.
//!
//! What the caller chose (its routing policy, `routing.providers`) is not this module's
//! business: routing applies it once, and a job's fallbacks are the candidates it allowed.

use std::sync::Arc;

use crate::domain::services::Services;
use crate::providers::{sandbox, Provider};
use crate::types::ids::ProviderId;
use crate::types::money::Mode;
use crate::types::video::NewVideo;

/// The providers a caller of `mode` reaches, in configuration order: test keys the sandbox
/// alone, live keys the providers enabled for them.
pub fn reachable(state: &Services, mode: Mode) -> Vec<ProviderId> {
    match mode {
        Mode::Test => vec![sandbox::ID],
        Mode::Live => state.providers.live().collect(),
    }
}

/// The provider, when it may take `request` from a caller of `mode` now; else why not.
pub fn check<'a>(
    state: &'a Services,
    mode: Mode,
    provider: ProviderId,
    request: &NewVideo,
) -> Result<&'a Arc<dyn Provider>, String> {
    if !reachable(state, mode).contains(&provider) {
        return Err(match mode {
            Mode::Test => "is not the sandbox, where test keys run".into(),
            Mode::Live => "is not enabled for live keys".into(),
        });
    }
    let Some(handler) = state.providers.get(provider) else {
        return Err("is not configured".into());
    };
    handler.capabilities().check(request)?;
    state.providers.refusals.check(provider, request)?;
    state.providers.circuits.check(provider)?;
    let has_upload = request.inputs.first_frame_upload.is_some();
    if has_upload && provider != sandbox::ID && state.config.server.public_base_url.is_none() {
        return Err("needs server.public_base_url to fetch an uploaded file".into());
    }
    Ok(handler)
}
