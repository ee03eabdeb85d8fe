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
pub mod resolve;
pub mod routes;
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

/// An identity as its owner sees it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct IdentityView {
    pub id: Uuid,
    /// `clerk` or `supabase`.
    pub provider: String,
    /// The provider's user id.
    pub subject: String,
    /// The email the provider held at last sight.
    pub email: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
}

impl From<&Identity> for IdentityView {
    fn from(i: &Identity) -> Self {
        IdentityView {
            id: i.id,
            provider: i.provider.clone(),
            subject: i.subject.clone(),
            email: i.email.clone(),
            created_at: i.created_at,
            last_seen_at: i.last_seen_at,
        }
    }
}

/// Why an unlink was refused.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Not one of the caller's identities (someone else's is not found either).
    #[error("no such identity")]
    NotFound,
    /// The account has no password and no other identity: unlinking would lock its owner out.
    #[error("the only way to sign in")]
    OnlyWayToSignIn,
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<diesel::result::Error> for LinkError {
    fn from(error: diesel::result::Error) -> Self {
        LinkError::App(error.into())
    }
}

impl From<LinkError> for AppError {
    fn from(error: LinkError) -> Self {
        match error {
            LinkError::NotFound => AppError::NotFound,
            LinkError::OnlyWayToSignIn => AppError::Conflict(vec![crate::error::FieldError::new(
                "id",
                "is the account's only way to sign in (it has no password and no other identity); \
                 set a password or link another identity first",
            )]),
            LinkError::App(error) => error,
        }
    }
}

/// The caller's linked identities, oldest first.
pub async fn list_own(
    state: &crate::state::AppState,
    user_id: Uuid,
) -> Result<Vec<IdentityView>, AppError> {
    let rows = state
        .pool
        .run(move |conn| Ok(store::of_user(conn, user_id)?))
        .await?;
    Ok(rows.iter().map(IdentityView::from).collect())
}

/// One identity, by id (the console's unlink page).
pub async fn get(state: &crate::state::AppState, id: Uuid) -> Result<Identity, LinkError> {
    state
        .pool
        .run(move |conn| Ok(store::get(conn, id)?))
        .await?
        .ok_or(LinkError::NotFound)
}

/// Account erasure: unlinks every identity of the user inside the caller's transaction (no "last
/// way to sign in" rule: the account is going). Returns what was unlinked, so the caller can
/// redact what else mentions it; a provider token of the erased account then resolves to nobody.
pub fn unlink_all_in_tx(conn: &mut PgConnection, user_id: Uuid) -> Result<Vec<Identity>, AppError> {
    let identities = store::of_user(conn, user_id)?;
    store::delete_all_of_user(conn, user_id)?;
    Ok(identities)
}

/// Which of `ids` are identities still linked to an active user (live delivery closes the sockets
/// of provider tokens whose identity was unlinked or whose user was disabled or erased).
pub fn active_among(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Uuid>, AppError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(store::active_among(conn, ids)?)
}

/// An admin unlinks any user's identity (same rule: never the last way to sign in).
pub async fn unlink_any(
    state: &crate::state::AppState,
    id: Uuid,
    admin_id: Uuid,
    meta: crate::audit::RequestMeta,
) -> Result<Identity, LinkError> {
    let identity = get(state, id).await?;
    unlink_own(
        state,
        identity.user_id,
        id,
        crate::audit::Actor::admin(admin_id),
        meta,
    )
    .await?;
    Ok(identity)
}

/// Unlinks one of `user_id`'s identities, unless it is their only way to sign in. The user row
/// is locked first, so two unlinks racing for an account's last two identities cannot both pass
/// the check. Audited as `identity.unlinked` with `actor` (the owner, or an admin).
pub async fn unlink_own(
    state: &crate::state::AppState,
    user_id: Uuid,
    id: Uuid,
    actor: crate::audit::Actor,
    meta: crate::audit::RequestMeta,
) -> Result<(), LinkError> {
    use diesel::Connection;
    let auditor = state.auditor.clone();
    state
        .pool
        .run(move |conn| {
            let outcome = conn.transaction::<_, LinkError, _>(|conn| {
                let Some(user) = crate::users::store::lock(conn, user_id)? else {
                    return Err(LinkError::NotFound);
                };
                let identities = store::of_user(conn, user_id)?;
                let Some(target) = identities.iter().find(|i| i.id == id) else {
                    return Err(LinkError::NotFound);
                };
                if user.password_hash.is_none() && identities.len() == 1 {
                    return Err(LinkError::OnlyWayToSignIn);
                }
                store::delete(conn, id, user_id)?;
                let subject = auditor.pseudonym(conn, Some(user_id), &target.subject)?;
                auditor.record(
                    conn,
                    &meta,
                    crate::audit::Event::new(
                        crate::audit::Action::IdentityUnlinked,
                        crate::audit::Outcome::Success,
                        actor,
                    )
                    .target("user", user_id)
                    .metadata(serde_json::json!({
                        "identity_id": id,
                        "provider": target.provider,
                        "subject_pseudonym": subject,
                    })),
                )?;
                Ok(())
            });
            match outcome {
                Err(LinkError::App(error)) => Err(error),
                other => Ok(other),
            }
        })
        .await?
}

/// The principal of a provider token: verified, then resolved to its local user (provisioned at
/// first sight when allowed). Invalid tokens are the same 401 as any bad credential.
pub async fn authenticate(
    state: &crate::state::AppState,
    providers: &Providers,
    token: &str,
    meta: crate::audit::RequestMeta,
) -> Result<crate::auth::Principal, AppError> {
    let (user, identity_id, assurance) = verify_and_resolve(state, providers, token, meta).await?;
    Ok(crate::auth::Principal {
        user_id: user.id,
        role: user.role(),
        credential: crate::auth::Credential::Provider { identity_id },
        user: Some(std::sync::Arc::new(user)),
        authentication: assurance,
    })
}

/// Verifies a provider token and resolves its local user (see [`resolve`]).
pub async fn verify_and_resolve(
    state: &crate::state::AppState,
    providers: &Providers,
    token: &str,
    meta: crate::audit::RequestMeta,
) -> Result<(crate::users::User, Uuid, crate::auth::Authentication), AppError> {
    let now = state.clock.now();
    let claims = providers
        .verify(token, now)
        .await
        .map_err(|_| AppError::Unauthorized)?;
    let authentication = claims.authentication();
    let auditor = state.auditor.clone();
    let policy = resolve::Policy {
        auto_provision: state.settings.identity.auto_provision,
        admin_emails: state.settings.admin_emails.clone(),
        admin_by_email: state.settings.identity_admin_by_email,
    };
    let (user, identity_id) = state
        .pool
        .run(move |conn| resolve::resolve(conn, &auditor, &policy, &claims, &meta, now))
        .await?;
    Ok((user, identity_id, authentication))
}

/// How recently a provider token used to re-authenticate must have been issued.
pub const REAUTH_MAX_AGE_SECONDS: i64 = 300;

/// Re-authentication through an identity provider (account erasure, for a user who signs in only
/// through one): `token` must verify, have been issued within [`REAUTH_MAX_AGE_SECONDS`], and
/// belong to an identity linked to `user_id`. Any failure is the same 401 (`Unauthorized`).
pub async fn confirm_token(
    state: &crate::state::AppState,
    providers: &Providers,
    token: &str,
    user_id: Uuid,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let claims = providers
        .verify(token, now)
        .await
        .map_err(|_| AppError::Unauthorized)?;
    if claims.issued_at < now.unix_timestamp() - REAUTH_MAX_AGE_SECONDS {
        return Err(AppError::Unauthorized);
    }
    let linked = state
        .pool
        .run(move |conn| find(conn, &claims.issuer_key, &claims.subject))
        .await?;
    match linked {
        Some(identity) if identity.user_id == user_id => Ok(()),
        _ => Err(AppError::Unauthorized),
    }
}

/// `POST /api/v1/auth/exchange`: a provider token for a rampart session (the login response). The
/// session then lives and dies by rampart's rules (refresh rotation, revocation), whatever becomes
/// of the provider token. Audited as `auth.exchange.succeeded` with the provider.
pub async fn exchange(
    state: &crate::state::AppState,
    providers: &Providers,
    token: &str,
    meta: crate::audit::RequestMeta,
) -> Result<crate::sessions::TokenPair, AppError> {
    use diesel::Connection;
    if !providers.is_provider_token(token) {
        return Err(AppError::Unauthorized);
    }
    let (user, identity_id, authentication) =
        verify_and_resolve(state, providers, token, meta.clone()).await?;
    // The session is as strong as the provider says the sign-in was; its authentication time is
    // now (the exchange is a sign-in to rampart).
    let assurance = crate::sessions::Assurance {
        aal: authentication.aal,
        amr: if authentication.aal >= 2 {
            vec!["fed".into(), "mfa".into()]
        } else {
            vec!["fed".into()]
        },
    };
    let now = state.clock.now();
    let tx_state = crate::sessions::AppStateRef::from(state);
    let ttl = state.settings.auth.refresh_token_ttl;
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                let (session, refresh) =
                    crate::sessions::start(conn, user.id, &meta, now, ttl, &assurance)?;
                let provider = store::provider_of(conn, identity_id)?;
                tx_state.auditor.record(
                    conn,
                    &meta,
                    crate::audit::Event::new(
                        crate::audit::Action::AuthExchangeSucceeded,
                        crate::audit::Outcome::Success,
                        crate::audit::Actor::user(user.id),
                    )
                    .target("session", session.id)
                    .metadata(serde_json::json!({
                        "provider": provider,
                        "identity_id": identity_id,
                    })),
                )?;
                tx_state.token_pair(user.id, session.id, user.role(), refresh, now, &assurance)
            })
        })
        .await
}

/// `POST /api/v1/me/identities`: links the identity of a provider token to the signed-in caller
/// (how an existing local account takes over its provider sign-in: never by matching emails). An
/// identity already linked to the caller is answered as it is (`false`: nothing new); one linked
/// to another account is a 409. Audited as `identity.linked`.
pub async fn link_own(
    state: &crate::state::AppState,
    providers: &Providers,
    user_id: Uuid,
    token: &str,
    actor: crate::audit::Actor,
    meta: crate::audit::RequestMeta,
) -> Result<(IdentityView, bool), AppError> {
    use diesel::Connection;
    let invalid = || {
        AppError::Validation(vec![crate::error::FieldError::new(
            "provider_token",
            "is not a valid token of a configured identity provider",
        )])
    };
    if !providers.is_provider_token(token) {
        return Err(invalid());
    }
    let now = state.clock.now();
    let claims = providers.verify(token, now).await.map_err(|_| invalid())?;
    let auditor = state.auditor.clone();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                let email = claims
                    .email
                    .as_deref()
                    .and_then(|e| crate::users::Email::parse(e).ok());
                let wanted = Wanted {
                    provider: claims.provider,
                    issuer: &claims.issuer_key,
                    subject: &claims.subject,
                    email: email.as_ref().map(crate::users::Email::as_str),
                };
                let (identity, created) =
                    link_in_tx(conn, &auditor, &meta, user_id, wanted, actor, now)?;
                Ok((IdentityView::from(&identity), created))
            })
        })
        .await
}

/// The issuer key identities of `provider` are stored under here (`None`: not configured).
pub fn issuer_key(settings: &crate::config::Settings, provider: Provider) -> Option<String> {
    match provider {
        Provider::Clerk => settings
            .identity
            .clerk_issuer
            .as_ref()
            .map(|_| CLERK.to_string()),
        Provider::Supabase => settings
            .identity
            .supabase_url
            .as_ref()
            .map(|url| format!("{url}/auth/v1")),
    }
}

/// An admin links a provider account (by its user id at the provider) to a user: for an existing
/// account whose owner signs in through the provider. A subject already linked to another account
/// is a conflict; one already linked to this user changes nothing (`false`). Audited as
/// `identity.linked` with the admin.
pub async fn link_by_admin(
    state: &crate::state::AppState,
    user_id: Uuid,
    provider: Provider,
    subject: String,
    admin_id: Uuid,
    meta: crate::audit::RequestMeta,
) -> Result<(Identity, bool), AppError> {
    use diesel::Connection;
    let field = |message: &str| {
        AppError::Validation(vec![crate::error::FieldError::new("subject", message)])
    };
    let subject = subject.trim().to_string();
    if subject.is_empty()
        || subject.len() > 255
        || !subject
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'|'))
    {
        return Err(field(
            "must be the provider's user id: 1–255 letters, digits and _ - . : |",
        ));
    }
    let Some(issuer) = issuer_key(&state.settings, provider) else {
        return Err(AppError::Validation(vec![crate::error::FieldError::new(
            "provider",
            "is not configured here",
        )]));
    };
    let now = state.clock.now();
    let auditor = state.auditor.clone();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                let wanted = Wanted {
                    provider,
                    issuer: &issuer,
                    subject: &subject,
                    email: None,
                };
                let actor = crate::audit::Actor::admin(admin_id);
                link_in_tx(conn, &auditor, &meta, user_id, wanted, actor, now)
            })
        })
        .await
}

/// The identity to link: which provider account, and the email it shows.
struct Wanted<'a> {
    provider: Provider,
    issuer: &'a str,
    subject: &'a str,
    email: Option<&'a str>,
}

/// Links `wanted` to `user_id` inside the caller's transaction (the one rule for the user's own
/// link and an admin's): the user row is locked; an identity already linked to this user changes
/// nothing (`false`); one linked to another account is a conflict; a new link is audited as
/// `identity.linked` with `actor`. A missing user is 404.
fn link_in_tx(
    conn: &mut PgConnection,
    auditor: &crate::audit::Auditor,
    meta: &crate::audit::RequestMeta,
    user_id: Uuid,
    wanted: Wanted<'_>,
    actor: crate::audit::Actor,
    now: OffsetDateTime,
) -> Result<(Identity, bool), AppError> {
    if crate::users::store::lock(conn, user_id)?.is_none() {
        return Err(AppError::NotFound);
    }
    if let Some(existing) = store::find(conn, wanted.issuer, wanted.subject)? {
        if existing.user_id == user_id {
            return Ok((existing, false));
        }
        return Err(AppError::Conflict(vec![crate::error::FieldError::new(
            "subject",
            "is linked to another account",
        )]));
    }
    let identity = link(
        conn,
        wanted.provider,
        wanted.issuer,
        wanted.subject,
        user_id,
        wanted.email,
        now,
    )?;
    let subject = auditor.pseudonym(conn, Some(user_id), &identity.subject)?;
    auditor.record(
        conn,
        meta,
        crate::audit::Event::new(
            crate::audit::Action::IdentityLinked,
            crate::audit::Outcome::Success,
            actor,
        )
        .target("user", user_id)
        .metadata(serde_json::json!({
            "identity_id": identity.id,
            "provider": identity.provider,
            "subject_pseudonym": subject,
        })),
    )?;
    Ok((identity, true))
}
