//! Who may do what, one function per resource. Every tenant-facing handler asks here before
//! it acts, and gets back the [`Reach`] it acts within; the domain functions it then calls
//! take that reach, so a new caller (the console, the CLI) cannot act outside it either.
//!
//! Three lines are drawn inside a tenant, after the tenant line itself:
//!
//! - **Scopes.** A key or token with a scope list may use only the routes of those scopes.
//! - **Modes.** A caller's mode (its key's `live`/`test`, or its JWT issuer's) is a world of
//!   its own, as at Stripe: its videos, end-user settings and wallets, webhook endpoints,
//!   per-request webhook secret and delivery log. Objects of the other mode answer 404.
//! - **End users.** A token bound to one end user sees and acts on that user's videos only
//!   (others answer 404, as another tenant's do), reads its own end user's standing, and
//!   reaches nothing of the tenant's: no balance, journal or usage, no limits or wallet moves
//!   (which spend or set the tenant's money), no webhook endpoints or secrets.
//!
//! `docs/access.md` is this module as a table of routes and callers; `tests/access.rs` walks
//! every operation of the served OpenAPI document against it.

use crate::domain::tenants::{Principal, Scope};
use crate::error::{Error, Result};
use crate::types::ids::{EndUserId, TenantId};
use crate::types::money::Mode;
use crate::types::video::Video;

/// Whose videos a list may show: storage's filter, chosen here.
pub use crate::storage::videos::UserFilter;

/// What a caller may reach: one tenant, one mode, and, for a token bound to an end user, that
/// user's objects only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub tenant: TenantId,
    pub mode: Mode,
    /// `Some`: only this end user's objects.
    pub end_user: Option<EndUserId>,
}

impl Reach {
    /// The operator acting on one tenant's data in one mode.
    pub fn operator(tenant: TenantId, mode: Mode) -> Reach {
        Reach {
            tenant,
            mode,
            end_user: None,
        }
    }

    /// Whether a video is within reach; one that is not must read as not found.
    pub fn sees_video(&self, video: &Video) -> bool {
        video.tenant_id == self.tenant
            && video.mode == self.mode
            && self
                .end_user
                .as_ref()
                .is_none_or(|user| video.request.user.as_ref() == Some(user))
    }

    /// Whether an end user is within reach.
    pub fn sees_end_user(&self, user: &EndUserId) -> bool {
        self.end_user.as_ref().is_none_or(|own| own == user)
    }

    /// The end user a list must be confined to: the bound user whatever was asked (a filter
    /// naming another user then matches nothing), else the asked one.
    pub fn user_filter<'a>(&'a self, asked: Option<&'a str>) -> UserFilter<'a> {
        match (&self.end_user, asked) {
            (Some(own), Some(asked)) if own.as_str() != asked => UserFilter::Nobody,
            (Some(own), _) => UserFilter::Only(own.as_str()),
            (None, Some(asked)) => UserFilter::Only(asked),
            (None, None) => UserFilter::Anyone,
        }
    }
}

fn reach(principal: &Principal) -> Reach {
    Reach {
        tenant: principal.tenant_id.clone(),
        mode: principal.mode,
        end_user: principal.end_user.clone(),
    }
}

/// 403 for a token bound to one end user, on what belongs to the whole tenant.
fn tenant_level(principal: &Principal, what: &str) -> Result<()> {
    match &principal.end_user {
        Some(_) => Err(Error::Forbidden(format!(
            "a token bound to an end user cannot {what}"
        ))),
        None => Ok(()),
    }
}

/// What is done to videos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoAction {
    /// Retrieve, list, download; quotes and the model list.
    Read,
    /// Create, cancel, delete.
    Write,
}

/// Videos: `videos:read` or `videos:write`; an end-user token reaches its own user's only.
pub fn videos(principal: &Principal, action: VideoAction) -> Result<Reach> {
    principal.require(match action {
        VideoAction::Read => Scope::VideosRead,
        VideoAction::Write => Scope::VideosWrite,
    })?;
    Ok(reach(principal))
}

/// What is done to an end user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndUserAction {
    /// Its limits, wallet and spend (`billing:read`).
    Read,
    /// Set its limits and wallet mode (`end_users:write`).
    SetLimits,
    /// Move credits between the tenant's balance and its wallet (`end_users:write`).
    MoveWallet,
}

/// End users: an end-user token reads its own user only (another is 404) and changes
/// nothing: limits bound what it may spend, and a wallet move spends the tenant's money.
pub fn end_user(principal: &Principal, action: EndUserAction, user: &EndUserId) -> Result<Reach> {
    let reach = reach(principal);
    match action {
        EndUserAction::Read => principal.require(Scope::BillingRead)?,
        EndUserAction::SetLimits => {
            principal.require(Scope::EndUsersWrite)?;
            tenant_level(principal, "change an end user's limits or wallet mode")?;
        }
        EndUserAction::MoveWallet => {
            principal.require(Scope::EndUsersWrite)?;
            tenant_level(principal, "move credits to or from a wallet")?;
        }
    }
    if !reach.sees_end_user(user) {
        return Err(Error::NotFound("end user"));
    }
    Ok(reach)
}

/// The tenant's money: balance, journal and usage (`billing:read`), never to an end-user
/// token.
pub fn billing(principal: &Principal) -> Result<Reach> {
    principal.require(Scope::BillingRead)?;
    tenant_level(principal, "read the tenant's balance, journal or usage")?;
    Ok(reach(principal))
}

/// Webhook endpoints, secrets and the delivery log of the caller's mode (`webhooks:write`),
/// never to an end-user token.
pub fn webhooks(principal: &Principal) -> Result<Reach> {
    principal.require(Scope::WebhooksWrite)?;
    tenant_level(
        principal,
        "reach the tenant's webhook endpoints, secrets or deliveries",
    )?;
    Ok(reach(principal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ids::ApiKeyId;

    fn principal(mode: Mode, end_user: Option<&str>, scopes: Option<Vec<Scope>>) -> Principal {
        Principal {
            tenant_id: TenantId::from_db("ten_a".into()),
            key_id: ApiKeyId::from_db("key_a".into()),
            mode,
            scopes,
            end_user: end_user.and_then(EndUserId::parse),
            expires_at_ms: None,
        }
    }

    #[test]
    fn an_end_user_token_reaches_only_its_own_user() {
        let alice = principal(Mode::Live, Some("alice"), None);
        let bob = EndUserId::parse("bob").expect("valid");
        let own = EndUserId::parse("alice").expect("valid");
        assert!(end_user(&alice, EndUserAction::Read, &own).is_ok());
        assert!(matches!(
            end_user(&alice, EndUserAction::Read, &bob),
            Err(Error::NotFound(_))
        ));
        for action in [EndUserAction::SetLimits, EndUserAction::MoveWallet] {
            assert!(matches!(
                end_user(&alice, action, &own),
                Err(Error::Forbidden(_))
            ));
        }
        assert!(matches!(billing(&alice), Err(Error::Forbidden(_))));
        assert!(matches!(webhooks(&alice), Err(Error::Forbidden(_))));
        let reach = videos(&alice, VideoAction::Read).expect("videos are reachable");
        assert_eq!(reach.user_filter(None), UserFilter::Only("alice"));
        assert_eq!(reach.user_filter(Some("bob")), UserFilter::Nobody);
    }

    #[test]
    fn scopes_bound_every_resource() {
        let reader = principal(Mode::Live, None, Some(vec![Scope::VideosRead]));
        assert!(videos(&reader, VideoAction::Read).is_ok());
        assert!(matches!(
            videos(&reader, VideoAction::Write),
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(billing(&reader), Err(Error::Forbidden(_))));
        assert!(matches!(webhooks(&reader), Err(Error::Forbidden(_))));
        let bob = EndUserId::parse("bob").expect("valid");
        assert!(matches!(
            end_user(&reader, EndUserAction::SetLimits, &bob),
            Err(Error::Forbidden(_))
        ));
        let none = principal(Mode::Live, None, Some(vec![]));
        assert!(matches!(
            videos(&none, VideoAction::Read),
            Err(Error::Forbidden(_))
        ));
    }

    #[test]
    fn a_tenant_key_lists_anyone_or_the_user_it_asks_for() {
        let key = principal(Mode::Test, None, None);
        let reach = videos(&key, VideoAction::Read).expect("reachable");
        assert_eq!(reach.mode, Mode::Test);
        assert_eq!(reach.user_filter(None), UserFilter::Anyone);
        assert_eq!(reach.user_filter(Some("bob")), UserFilter::Only("bob"));
    }
}
