//! The state every handler receives.

use std::sync::Arc;

use crate::domain::services::Services;

/// What every handler receives: the domain's [`Services`], shared. Cloning it (the router
/// does, several times per request) is one reference count. It lives here, with the handlers,
/// so that the composition root only assembles and nothing at the edge points back at it.
pub type AppState = Arc<Services>;
