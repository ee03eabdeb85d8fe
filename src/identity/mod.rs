//! External identities: which local user an identity-provider account (a Clerk user, a Supabase
//! user) is. One row per (issuer, subject) in `user_identities`; a local user is found by that
//! pair and **never by email** (ASVS 6.8.1), so an attacker who registers a provider account with
//! someone else's address gets no access to their rampart account.
//!
//! The Clerk webhook sync (`webhooks`) creates and updates these links today; provider tokens
//! (the identity-provider issue) resolve through the same table.
//!
//! Provider tokens (part A of issue 14): [`Providers`] is built once at start from the settings
//! ([`Providers::from_settings`]); [`Providers::is_provider_token`] routes a bearer token by its
//! (unverified) issuer, [`Providers::verify`] checks it fully (keys from the provider's JWKS,
//! `jwks`, or a configured key) and returns [`ProviderClaims`]; [`Providers::health`] feeds
//! `/ready`.
//!
//! Clerk's webhooks do not carry the instance's issuer URL, so Clerk identities are keyed under
//! the issuer [`CLERK`] (one Clerk instance per deployment); Supabase identities under their
//! issuer URL.

pub mod jwks;
pub mod model;
pub mod providers;
pub mod store;

pub use jwks::Health;
pub use model::{Identity, Provider};
pub use providers::{IdentityError, ProviderClaims, Providers};

use diesel::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::AppError;

/// The issuer key of Clerk identities.
pub const CLERK: &str = "clerk";

/// The local user linked to (`issuer`, `subject`), with the link.
pub fn find(
    conn: &mut PgConnection,
    issuer: &str,
    subject: &str,
) -> Result<Option<Identity>, AppError> {
    Ok(store::find(conn, issuer, subject)?)
}

/// Links (`issuer`, `subject`) to `user_id`. Inside the caller's transaction; a link that already
/// exists (a concurrent first sight) is a conflict the caller's transaction rolls back on.
pub fn link(
    conn: &mut PgConnection,
    provider: Provider,
    issuer: &str,
    subject: &str,
    user_id: Uuid,
    email: Option<&str>,
    now: OffsetDateTime,
) -> Result<Identity, AppError> {
    let row = model::NewIdentity {
        id: Uuid::now_v7(),
        provider: provider.as_str(),
        issuer,
        subject,
        user_id,
        email,
        created_at: now,
        last_seen_at: now,
    };
    match store::insert(conn, &row) {
        Ok(identity) => Ok(identity),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Err(AppError::Conflict(vec![crate::error::FieldError::new(
            "identity",
            "is already linked to an account",
        )])),
        Err(other) => Err(other.into()),
    }
}

/// Records that the identity was seen now, with the email the provider holds for it.
pub fn seen(
    conn: &mut PgConnection,
    id: Uuid,
    email: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    store::touch(conn, id, email, now)?;
    Ok(())
}

/// Every identity linked to `user_id` (oldest first).
pub fn of_user(conn: &mut PgConnection, user_id: Uuid) -> Result<Vec<Identity>, AppError> {
    Ok(store::of_user(conn, user_id)?)
}
