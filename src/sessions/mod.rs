//! Sessions: one per login, each with a family of opaque refresh tokens (256-bit random, stored as
//! SHA-256 only, rotated on every use). Owns issuing token pairs, refresh rotation with reuse
//! detection, the per-request liveness check, listing and revocation. Does not check passwords
//! (accounts does) and never sees a token in plain text after handing it out.

pub mod model;
pub mod routes;
pub mod store;

pub use self::model::{AdminSessionRow, NewAdminSession, SessionView};

use diesel::prelude::*;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use self::model::{NewSession, Session};
use crate::audit::{Action, Actor, Event, Outcome, RequestMeta};
use crate::auth::{Authentication, Principal, Role};
use crate::clock;
use crate::crypto::hmac::hash_token;
pub use crate::crypto::jwt::Assurance;
use crate::error::AppError;
use crate::state::AppState;

/// A spent refresh token presented again within this window is a client's double submit: it fails
/// cleanly without revoking the session. Later, it is treated as theft.
pub const REUSE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The login/refresh response body (DESIGN §4).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub session_id: Uuid,
    /// After a sign-in completed with a recovery code: how many unused codes are left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes_left: Option<i64>,
}

/// A fresh refresh token and the SHA-256 that is stored.
pub fn new_refresh_token() -> Result<(String, Vec<u8>), AppError> {
    use base64::Engine;
    let bytes = crate::crypto::random::bytes(32).map_err(AppError::internal)?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_token(&token);
    Ok((token, hash))
}

/// Starts a session inside the caller's transaction and returns it with its first refresh token.
pub fn start(
    conn: &mut PgConnection,
    user_id: Uuid,
    meta: &RequestMeta,
    now: OffsetDateTime,
    ttl: std::time::Duration,
    assurance: &Assurance,
) -> Result<(Session, String), AppError> {
    let ip = meta.ip.map(|ip| ip.to_string());
    let session = store::insert(
        conn,
        &NewSession {
            id: Uuid::now_v7(),
            user_id,
            created_at: now,
            last_used_at: now,
            expires_at: clock::after(now, ttl),
            ip: ip.as_deref(),
            user_agent: meta.user_agent.as_deref(),
            aal: i16::from(assurance.aal),
            amr: assurance.amr.clone(),
            authenticated_at: now,
        },
    )?;
    let (token, hash) = new_refresh_token()?;
    store::insert_refresh(conn, &hash, session.id, now)?;
    Ok((session, token))
}

/// Whether the session is live (not revoked, within its absolute and idle limits) and its user
/// active; the user's current row and the session's assurance if so. One query, by primary keys.
pub async fn live_session(
    state: &AppState,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<Option<(crate::users::User, Authentication)>, AppError> {
    let now = state.clock.now();
    let idle = state.settings.auth.refresh_token_idle;
    let row = state
        .pool
        .run(move |conn| Ok(store::live_check(conn, user_id, session_id)?))
        .await?;
    Ok(row.and_then(|row| {
        let live = row.revoked_at.is_none()
            && row.expires_at > now
            && clock::after(row.last_used_at, idle) > now
            && row.user.active;
        let authentication = Authentication {
            aal: u8::try_from(row.aal).unwrap_or(1),
            at: Some(row.authenticated_at),
        };
        live.then_some((row.user, authentication))
    }))
}

enum RefreshOutcome {
    Rotated(TokenPair),
    Refused,
    ReuseDetected,
}

/// Rotates a refresh token. A spent token presented again after the grace window revokes the
/// whole session (and is audited); within it, the request fails without side effects.
pub async fn refresh(
    state: &AppState,
    token: String,
    meta: RequestMeta,
) -> Result<TokenPair, AppError> {
    let now = state.clock.now();
    let idle = state.settings.auth.refresh_token_idle;
    let state_for_tx = AppStateRef::from(state);
    let outcome = state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                let hash = hash_token(&token);
                let Some((rt, session)) = store::lock_refresh(conn, &hash)? else {
                    return Ok(RefreshOutcome::Refused);
                };
                let Some(user) = crate::users::store::find(conn, session.user_id)? else {
                    return Ok(RefreshOutcome::Refused);
                };
                let expired =
                    session.expires_at <= now || clock::after(session.last_used_at, idle) <= now;
                if session.revoked_at.is_some() || expired || !user.active {
                    return Ok(RefreshOutcome::Refused);
                }
                if let Some(spent_at) = rt.spent_at {
                    if clock::after(spent_at, REUSE_GRACE) > now {
                        return Ok(RefreshOutcome::Refused);
                    }
                    store::revoke(conn, session.id, "refresh_token_reuse", now)?;
                    state_for_tx.auditor.record(
                        conn,
                        &meta,
                        Event {
                            action: Action::AuthRefreshReuseDetected,
                            outcome: Outcome::Denied,
                            actor: Actor::user(user.id),
                            target: Some(("session".into(), session.id.to_string())),
                            metadata: serde_json::json!({ "spent_at": spent_at.unix_timestamp() }),
                        },
                    )?;
                    return Ok(RefreshOutcome::ReuseDetected);
                }
                store::spend_refresh(conn, &hash, now)?;
                let (new_token, new_hash) = new_refresh_token()?;
                store::insert_refresh(conn, &new_hash, session.id, now)?;
                store::touch(conn, session.id, now)?;
                state_for_tx.auditor.record(
                    conn,
                    &meta,
                    Event {
                        action: Action::AuthRefreshRotated,
                        outcome: Outcome::Success,
                        actor: Actor::user(user.id),
                        target: Some(("session".into(), session.id.to_string())),
                        metadata: serde_json::json!({}),
                    },
                )?;
                let pair = state_for_tx.token_pair(
                    user.id,
                    session.id,
                    user.role(),
                    new_token,
                    now,
                    &session.assurance(),
                )?;
                Ok(RefreshOutcome::Rotated(pair))
            })
        })
        .await?;
    match outcome {
        RefreshOutcome::Rotated(pair) => Ok(pair),
        RefreshOutcome::Refused | RefreshOutcome::ReuseDetected => Err(AppError::Unauthorized),
    }
}

/// The parts of `AppState` a blocking transaction needs (cheap clones).
#[derive(Clone)]
pub(crate) struct AppStateRef {
    pub auditor: crate::audit::Auditor,
    pub jwt: std::sync::Arc<crate::crypto::jwt::JwtKeys>,
}

impl From<&AppState> for AppStateRef {
    fn from(state: &AppState) -> Self {
        AppStateRef {
            auditor: state.auditor.clone(),
            jwt: state.jwt.clone(),
        }
    }
}

impl AppStateRef {
    pub fn token_pair(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        role: Role,
        refresh_token: String,
        now: OffsetDateTime,
        assurance: &Assurance,
    ) -> Result<TokenPair, AppError> {
        let (access_token, _) = self
            .jwt
            .sign_assured(user_id, session_id, role.as_str(), now, assurance)
            .map_err(|e| {
                AppError::internal(anyhow::anyhow!("signing an access token failed: {e}"))
            })?;
        Ok(TokenPair {
            access_token,
            token_type: "Bearer",
            expires_in: self.jwt.ttl().as_secs(),
            refresh_token,
            session_id,
            recovery_codes_left: None,
        })
    }
}

/// Revokes one of the caller's own sessions. Another user's session id is indistinguishable from
/// a missing one (404).
pub async fn revoke_own(
    state: &AppState,
    principal: &Principal,
    session_id: Uuid,
    reason: &'static str,
    meta: RequestMeta,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let user_id = principal.user_id;
    let auditor = state.auditor.clone();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                let Some(session) = store::find_for_user(conn, user_id, session_id)? else {
                    return Err(AppError::NotFound);
                };
                if store::revoke(conn, session.id, reason, now)? > 0 {
                    auditor.record(
                        conn,
                        &meta,
                        Event {
                            action: if reason == "logout" {
                                Action::AuthLogout
                            } else {
                                Action::SessionRevoked
                            },
                            outcome: Outcome::Success,
                            actor: Actor::user(user_id),
                            target: Some(("session".into(), session.id.to_string())),
                            metadata: serde_json::json!({ "reason": reason }),
                        },
                    )?;
                }
                Ok(())
            })
        })
        .await
}

/// Which sessions to revoke, by whom and why.
pub struct RevokeAll<'a> {
    pub user_id: Uuid,
    /// A session to spare (the caller's own), if any.
    pub keep: Option<Uuid>,
    pub reason: &'a str,
    pub actor: Actor,
}

/// Ends the user's sessions inside the caller's transaction: every live API session except `keep`
/// (one audit record each) and every console session. The one place that decides "end the
/// sessions of user X" — password change, sign out other sessions, an admin's disable or sign-out
/// all come here, so no kind of session can be forgotten. Returns the API sessions revoked.
pub fn revoke_all_in_tx(
    conn: &mut PgConnection,
    auditor: &crate::audit::Auditor,
    meta: &RequestMeta,
    what: RevokeAll<'_>,
    now: OffsetDateTime,
) -> Result<usize, AppError> {
    let RevokeAll {
        user_id,
        keep,
        reason,
        actor,
    } = what;
    let revoked = store::revoke_all_except(conn, user_id, keep, reason, now)?;
    let console = store::delete_console_sessions(conn, user_id)?;
    if console > 0 {
        auditor.record(
            conn,
            meta,
            Event::new(Action::SessionRevoked, Outcome::Success, actor.clone())
                .target("user", user_id)
                .metadata(serde_json::json!({
                    "reason": reason,
                    "console_sessions": console,
                })),
        )?;
    }
    for id in &revoked {
        auditor.record(
            conn,
            meta,
            Event {
                action: Action::SessionRevoked,
                outcome: Outcome::Success,
                actor: actor.clone(),
                target: Some(("session".into(), id.to_string())),
                metadata: serde_json::json!({ "reason": reason }),
            },
        )?;
    }
    Ok(revoked.len())
}

pub async fn revoke_others(
    state: &AppState,
    principal: &Principal,
    meta: RequestMeta,
) -> Result<usize, AppError> {
    let now = state.clock.now();
    let user_id = principal.user_id;
    let keep = principal.session_id();
    let auditor = state.auditor.clone();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                revoke_all_in_tx(
                    conn,
                    &auditor,
                    &meta,
                    RevokeAll {
                        user_id,
                        keep,
                        reason: "revoke_others",
                        actor: Actor::user(user_id),
                    },
                    now,
                )
            })
        })
        .await
}

/// Account erasure, after [`revoke_all_in_tx`]: the user's session rows stay (ended, as the audit
/// trail refers to them) without the IP address and user agent they were used from. Returns the
/// rows scrubbed.
pub fn scrub_for_erasure_in_tx(conn: &mut PgConnection, user_id: Uuid) -> Result<usize, AppError> {
    Ok(store::scrub_client_details(conn, user_id)?)
}

/// Which of `ids` are still live sessions of active users (live delivery closes the sockets of
/// the others within a second).
pub fn live_among(
    conn: &mut PgConnection,
    ids: &[Uuid],
    now: OffsetDateTime,
    idle: std::time::Duration,
) -> Result<Vec<Uuid>, AppError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(store::live_among(conn, ids, now, clock::before(now, idle))?)
}

/// Every session of the user (for their data export), inside the caller's connection.
pub fn all_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    current: Option<Uuid>,
) -> Result<Vec<SessionView>, AppError> {
    Ok(store::all_for_user(conn, user_id, EXPORT_LIMIT)?
        .iter()
        .map(|s| SessionView::new(s, current))
        .collect())
}

/// Rows of one kind a data export carries at most.
pub const EXPORT_LIMIT: i64 = 10_000;

pub async fn list(
    state: &AppState,
    principal: &Principal,
    cursor: Option<Uuid>,
    limit: i64,
) -> Result<(Vec<SessionView>, Option<Uuid>), AppError> {
    let now = state.clock.now();
    let user_id = principal.user_id;
    let current = principal.session_id();
    let idle_since = clock::before(now, state.settings.auth.refresh_token_idle);
    let rows = state
        .pool
        .run(move |conn| {
            Ok(store::list_live(
                conn,
                user_id,
                now,
                idle_since,
                cursor,
                limit + 1,
            )?)
        })
        .await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<SessionView> = rows
        .iter()
        .take(limit as usize)
        .map(|s| SessionView::new(s, current))
        .collect();
    let next = if more {
        items.last().map(|s| s.id)
    } else {
        None
    };
    Ok((items, next))
}

/// A live session as an admin sees it: the session and whose it is.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AdminSessionView {
    #[serde(flatten)]
    pub session: SessionView,
    pub user_id: Uuid,
    pub username: String,
}

/// One page of live sessions across users, newest first, with the neighbouring pages' cursors.
#[derive(Debug, Clone, Serialize)]
pub struct SessionPage {
    pub items: Vec<AdminSessionView>,
    pub older: Option<Uuid>,
    pub newer: Option<Uuid>,
}

/// Live sessions of every user (or of `user`), for admins.
pub async fn admin_list(
    state: &AppState,
    user: Option<Uuid>,
    page: (Option<Uuid>, Option<Uuid>),
    limit: i64,
) -> Result<SessionPage, AppError> {
    let now = state.clock.now();
    let idle_since = clock::before(now, state.settings.auth.refresh_token_idle);
    let limit = limit.clamp(1, 100);
    let (before, after) = page;
    let rows = state
        .pool
        .run(move |conn| {
            Ok(store::list_live_all(
                conn,
                user,
                now,
                idle_since,
                page,
                limit + 1,
            )?)
        })
        .await?;
    let (rows, older, newer) =
        crate::http::pagination::keyset_page(rows, limit, after.is_some(), before, |(s, _)| s.id);
    let items = rows
        .iter()
        .map(|(s, username)| AdminSessionView {
            session: SessionView::new(s, None),
            user_id: s.user_id,
            username: username.clone(),
        })
        .collect();
    Ok(SessionPage {
        items,
        older,
        newer,
    })
}

/// One session of any user, as an admin sees it.
pub async fn admin_get(state: &AppState, id: Uuid) -> Result<AdminSessionView, AppError> {
    let (session, username) = state
        .pool
        .run(move |conn| Ok(store::find_with_user(conn, id)?))
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(AdminSessionView {
        session: SessionView::new(&session, None),
        user_id: session.user_id,
        username,
    })
}

/// Live sessions across users (for the dashboard).
pub fn count_live(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    idle: std::time::Duration,
) -> Result<i64, AppError> {
    Ok(store::count_live(conn, now, clock::before(now, idle))?)
}

/// An admin revokes any session (idempotent; audited with the admin as actor).
pub async fn admin_revoke(
    state: &AppState,
    admin_id: Uuid,
    session_id: Uuid,
    reason: Option<String>,
    meta: RequestMeta,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let auditor = state.auditor.clone();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                let Some(session) = store::lock(conn, session_id)? else {
                    return Err(AppError::NotFound);
                };
                if store::revoke(conn, session.id, "revoked_by_admin", now)? > 0 {
                    auditor.record(
                        conn,
                        &meta,
                        Event::new(
                            Action::SessionRevoked,
                            Outcome::Success,
                            Actor::admin(admin_id),
                        )
                        .target("session", session.id)
                        .metadata(serde_json::json!({
                            "reason": "revoked_by_admin",
                            "note": reason,
                            "user_id": session.user_id,
                        })),
                    )?;
                }
                Ok(())
            })
        })
        .await
}

// --- console (admin) sessions: the console owns the cookie and CSRF; the rows live here, with the
// API sessions, so that ending a user's sessions is one rule (`revoke_all_in_tx`).

/// Stores a new console session, inside the caller's transaction.
pub fn insert_console_session(
    conn: &mut PgConnection,
    session: &NewAdminSession<'_>,
) -> Result<(), AppError> {
    store::insert_console(conn, session)?;
    Ok(())
}

/// The console session whose token hashes to `token_hash`, with its user (one indexed query).
pub fn find_console_session(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<(AdminSessionRow, crate::users::User)>, AppError> {
    Ok(store::find_console_with_user(conn, token_hash)?)
}

/// Records that the console session was used at `now`.
pub fn touch_console_session(
    conn: &mut PgConnection,
    token_hash: &[u8],
    now: OffsetDateTime,
) -> Result<(), AppError> {
    store::touch_console(conn, token_hash, now)?;
    Ok(())
}

/// Step-up: records that the user re-authenticated on their API session `session_id` at `now`
/// (`aal` 2 when a second factor was used); the session's level now. `None` when the session is
/// gone or not theirs.
pub fn reauthenticated_in_tx(
    conn: &mut PgConnection,
    session_id: Uuid,
    user_id: Uuid,
    aal: u8,
    now: OffsetDateTime,
) -> Result<Option<u8>, AppError> {
    Ok(
        store::reauthenticated(conn, session_id, user_id, i16::from(aal), now)?
            .map(|level| u8::try_from(level).unwrap_or(1)),
    )
}

/// Step-up for a console session.
pub fn console_reauthenticated_in_tx(
    conn: &mut PgConnection,
    token_hash: &[u8],
    aal: u8,
    now: OffsetDateTime,
) -> Result<bool, AppError> {
    Ok(store::console_reauthenticated(conn, token_hash, i16::from(aal), now)? == 1)
}

/// Ends one console session (sign-out, expiry, a replaced cookie).
pub fn end_console_session(conn: &mut PgConnection, token_hash: &[u8]) -> Result<(), AppError> {
    store::delete_console(conn, token_hash)?;
    Ok(())
}
