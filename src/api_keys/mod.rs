//! API keys: issuing (shown once), listing, revocation by the owner or an admin, rotation with a
//! grace period, and authenticating requests that carry a key. Owns the `api_keys` table.
//!
//! **Boundary.** Other features reach keys only through this module's functions; `auth` calls
//! [`authenticate`] and receives a `Principal` whose credential carries the key's scopes —
//! deciding what a route needs stays with `auth`. This module never stores, logs or audits a key:
//! only its display prefix, its id and HMAC-SHA256(API_KEY_HASH_SECRET, key) leave [`format`].
//!
//! Verification order (cheapest first): shape and CRC32 checksum (no database, no allocation) →
//! HMAC → one indexed query by HMAC joined to the owner → constant-time comparison → revoked,
//! owner disabled, expired, rotated-past-grace. Every refusal is the same 401.

pub mod format;
pub mod model;
pub mod routes;
pub mod store;

use diesel::Connection;
use secrecy::ExposeSecret;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

pub use self::format::{ApiKeyHasher, PREFIX as KEY_PREFIX};
pub use self::model::ApiKeyView;
use self::model::{ApiKeyRow, CreatedKey, KeyName, KeyStatus, NewApiKey, Scopes};
pub use self::store::KeyQuery;
use crate::audit::{Action, Actor, Event, Outcome, RequestMeta};
use crate::auth::{Credential, Permission, Principal};
use crate::clock;
use crate::clock::rfc3339;
use crate::error::{AppError, FieldError};
use crate::rate_limit::{self, QuotaKind};
use crate::state::AppState;

/// `last_used_at` is refreshed when older than this.
pub const LAST_USED_RESOLUTION: time::Duration = time::Duration::minutes(1);

/// Timestamps are stored with microsecond precision; hand out the same value that is stored.
fn micros(at: OffsetDateTime) -> OffsetDateTime {
    at - time::Duration::nanoseconds(i64::from(at.nanosecond() % 1000))
}

/// A create request as received (validated here).
pub struct NewKeyRequest {
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_in_days: Option<i64>,
}

/// Issues a key for the caller. Scopes must be within what the caller can do; the live-key limit
/// is checked under a per-user lock so concurrent requests cannot exceed it.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    input: NewKeyRequest,
    meta: RequestMeta,
) -> Result<CreatedKey, AppError> {
    let mut errors = Vec::new();
    let name = KeyName::parse(&input.name).map_err(|e| errors.push(e)).ok();
    let scopes = Scopes::parse(&input.scopes, principal)
        .map_err(|mut e| errors.append(&mut e))
        .ok();
    let lifetime = match input.expires_in_days {
        None => Ok(None),
        Some(days) if (1..=model::MAX_EXPIRES_IN_DAYS).contains(&days) => {
            Ok(Some(time::Duration::days(days)))
        }
        Some(_) => {
            errors.push(FieldError::new(
                "expires_in_days",
                format!("must be between 1 and {}", model::MAX_EXPIRES_IN_DAYS),
            ));
            Err(())
        }
    };
    let (Some(name), Some(scopes), Ok(lifetime)) = (name, scopes, lifetime) else {
        return Err(AppError::Validation(errors));
    };
    let generated = format::generate().map_err(AppError::internal)?;
    let hash = format::key_hash(&state.api_key_hmac, generated.key.expose_secret());
    let prefix = generated.prefix.clone();
    let now = micros(state.clock.now());
    let expires_at = lifetime.map(|d| now.saturating_add(d));
    let max = i64::from(state.settings.api_keys.max_per_user);
    let user_id = principal.user_id;
    let actor = principal.actor();
    let auditor = state.auditor.clone();
    let quotas = state.settings.quotas.clone();
    let email_settings = state.settings.email.clone();
    let caller = principal.clone();
    let tx_meta = meta.clone();
    let result = state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                store::lock_user(conn, user_id)?;
                if store::count_live(conn, user_id, now)? >= max {
                    return Err(live_key_cap(max));
                }
                rate_limit::consume_quota(conn, &quotas, &caller, QuotaKind::ApiKeysCreated, now)?;
                let row = store::insert(
                    conn,
                    &NewApiKey {
                        id: Uuid::now_v7(),
                        user_id,
                        name: name.as_str(),
                        prefix: &prefix,
                        key_hash: &hash,
                        scopes: scopes.names(),
                        created_at: now,
                        expires_at,
                    },
                )?;
                auditor.record(
                    conn,
                    &tx_meta,
                    Event::new(Action::ApiKeyCreated, Outcome::Success, actor)
                        .target("api_key", row.id)
                        .metadata(json!({
                            "user_id": user_id,
                            "prefix": row.prefix,
                            "name": row.name,
                            "scopes": row.scopes,
                            "expires_at": row.expires_at.map(rfc3339),
                        })),
                )?;
                crate::email::notify_in_tx(
                    conn,
                    &email_settings,
                    user_id,
                    crate::email::Notice::ApiKeyCreated {
                        name: row.name.clone(),
                        prefix: row.prefix.clone(),
                    },
                    now,
                )?;
                Ok(row)
            })
        })
        .await;
    let row = rate_limit::quota_audited(state, principal, meta, result).await?;
    Ok(created(row, generated.key))
}

fn created(row: ApiKeyRow, key: secrecy::SecretString) -> CreatedKey {
    CreatedKey {
        id: row.id,
        key,
        prefix: row.prefix,
        name: row.name,
        scopes: row.scopes,
        created_at: row.created_at,
        expires_at: row.expires_at,
    }
}

/// The caller's keys (metadata only), newest first.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    cursor: Option<Uuid>,
    limit: i64,
) -> Result<(Vec<ApiKeyView>, Option<Uuid>), AppError> {
    let now = state.clock.now();
    let user_id = principal.user_id;
    let rows = state
        .pool
        .run(move |conn| Ok(store::list_for_user(conn, user_id, cursor, limit + 1)?))
        .await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<ApiKeyView> = rows
        .iter()
        .take(limit as usize)
        .map(|row| ApiKeyView::new(row, now))
        .collect();
    let next = if more {
        items.last().map(|k| k.id)
    } else {
        None
    };
    Ok((items, next))
}

/// Every key of the user (metadata only; for their data export), inside the caller's connection.
pub fn all_for_user(
    conn: &mut diesel::PgConnection,
    user_id: Uuid,
    now: OffsetDateTime,
) -> Result<Vec<ApiKeyView>, AppError> {
    Ok(
        store::list_for_user(conn, user_id, None, crate::sessions::EXPORT_LIMIT)?
            .iter()
            .map(|row| ApiKeyView::new(row, now))
            .collect(),
    )
}

/// A key as an admin sees it: its metadata and its owner.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AdminKeyView {
    #[serde(flatten)]
    pub key: ApiKeyView,
    pub owner_id: Uuid,
    pub owner_username: String,
}

/// One page of every user's keys, newest first, with the cursors of the neighbouring pages.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyPage {
    pub items: Vec<AdminKeyView>,
    pub older: Option<Uuid>,
    pub newer: Option<Uuid>,
}

/// Every user's keys matching `query` (admins only; metadata only).
pub async fn admin_list(
    state: &AppState,
    query: store::KeyQuery,
    limit: i64,
) -> Result<KeyPage, AppError> {
    let now = state.clock.now();
    let limit = limit.clamp(1, 100);
    let paging_newer = query.after.is_some();
    let before = query.before;
    let rows = state
        .pool
        .run(move |conn| Ok(store::list_all(conn, &query, now, limit + 1)?))
        .await?;
    let (rows, older, newer) =
        crate::http::pagination::keyset_page(rows, limit, paging_newer, before, |(row, _)| row.id);
    let items = rows
        .iter()
        .map(|(row, owner)| AdminKeyView {
            key: ApiKeyView::new(row, now),
            owner_id: row.user_id,
            owner_username: owner.clone(),
        })
        .collect();
    Ok(KeyPage {
        items,
        older,
        newer,
    })
}

/// One key of any user, as an admin sees it.
pub async fn admin_get(state: &AppState, id: Uuid) -> Result<AdminKeyView, AppError> {
    let now = state.clock.now();
    let (row, owner) = state
        .pool
        .run(move |conn| Ok(store::find_with_owner(conn, id)?))
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(AdminKeyView {
        key: ApiKeyView::new(&row, now),
        owner_id: row.user_id,
        owner_username: owner,
    })
}

/// Keys that accept requests now, across all users (for the dashboard).
pub fn count_accepting(
    conn: &mut diesel::PgConnection,
    now: OffsetDateTime,
) -> Result<i64, AppError> {
    Ok(store::count_accepting(conn, now)?)
}

/// Which of `ids` still accept requests (live delivery closes the sockets of the others).
pub fn accepting_among(
    conn: &mut diesel::PgConnection,
    ids: &[Uuid],
    now: OffsetDateTime,
) -> Result<Vec<Uuid>, AppError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(store::accepting_among(conn, ids, now)?)
}

/// Revokes one of the caller's keys. Idempotent; another user's key is indistinguishable from a
/// missing one (404).
pub async fn revoke_own(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    meta: RequestMeta,
) -> Result<(), AppError> {
    let now = micros(state.clock.now());
    let user_id = principal.user_id;
    let actor = principal.actor();
    let auditor = state.auditor.clone();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                let Some(key) = store::lock_for_user(conn, user_id, id)? else {
                    return Err(AppError::NotFound);
                };
                if store::revoke(conn, key.id, user_id, "revoked_by_owner", now)? > 0 {
                    auditor.record(
                        conn,
                        &meta,
                        Event::new(Action::ApiKeyRevoked, Outcome::Success, actor)
                            .target("api_key", key.id)
                            .metadata(json!({
                                "by": "owner",
                                "reason": "revoked_by_owner",
                                "user_id": user_id,
                                "prefix": key.prefix,
                            })),
                    )?;
                }
                Ok(())
            })
        })
        .await
}

/// An admin revokes any user's key, with a reason the owner will see. Idempotent.
pub async fn revoke_any(
    state: &AppState,
    admin_id: Uuid,
    id: Uuid,
    reason: String,
    meta: RequestMeta,
) -> Result<(), AppError> {
    let now = micros(state.clock.now());
    let auditor = state.auditor.clone();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                let Some(key) = store::lock_any(conn, id)? else {
                    return Err(AppError::NotFound);
                };
                if store::revoke(conn, key.id, admin_id, &reason, now)? > 0 {
                    auditor.record(
                        conn,
                        &meta,
                        Event::new(
                            Action::ApiKeyRevoked,
                            Outcome::Success,
                            Actor::admin(admin_id),
                        )
                        .target("api_key", key.id)
                        .metadata(json!({
                            "by": "admin",
                            "reason": reason,
                            "user_id": key.user_id,
                            "prefix": key.prefix,
                        })),
                    )?;
                }
                Ok(())
            })
        })
        .await
}

/// Replaces one of the caller's keys with a new one of the same name and scopes (and the same
/// lifetime, counted from now). The old key keeps working until the grace period ends.
pub async fn rotate(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    meta: RequestMeta,
) -> Result<CreatedKey, AppError> {
    let generated = format::generate().map_err(AppError::internal)?;
    let hash = format::key_hash(&state.api_key_hmac, generated.key.expose_secret());
    let prefix = generated.prefix.clone();
    let now = micros(state.clock.now());
    let grace_until = clock::after(now, state.settings.api_keys.rotation_grace);
    let max = i64::from(state.settings.api_keys.max_per_user);
    let caller = principal.clone();
    let auditor = state.auditor.clone();
    let row = state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                let user_id = caller.user_id;
                // The same per-user lock as creation: a rotation adds a working key (the old one
                // keeps working through its grace), so it is held to the same cap. It spends no
                // daily quota (a leaked key can always be replaced); the cap bounds any chain.
                store::lock_user(conn, user_id)?;
                let Some(old) = store::lock_for_user(conn, user_id, id)? else {
                    return Err(AppError::NotFound);
                };
                let refusal = match old.status(now) {
                    KeyStatus::Active => None,
                    KeyStatus::Revoked => Some("is revoked"),
                    KeyStatus::Expired => Some("has expired"),
                    KeyStatus::RotationGrace | KeyStatus::Rotated => {
                        Some("has already been rotated")
                    }
                };
                if let Some(message) = refusal {
                    return Err(AppError::Conflict(vec![FieldError::new("id", message)]));
                }
                // Only what the owner may still grant (a demotion since creation narrows it).
                let scopes: Vec<Permission> = old
                    .permissions()
                    .into_iter()
                    .filter(|p| caller.role.has(*p) && !p.is_admin_only())
                    .collect();
                // A key rotating another key must not obtain a broader one than itself.
                if scopes.iter().any(|p| !caller.can(*p)) {
                    return Err(AppError::Forbidden);
                }
                if scopes.is_empty() {
                    return Err(AppError::Conflict(vec![FieldError::new(
                        "scopes",
                        "none of this key's scopes is among your permissions any more",
                    )]));
                }
                if grace_until > now && store::count_live(conn, user_id, now)? >= max {
                    return Err(live_key_cap(max));
                }
                let scopes = Scopes::from_permissions(scopes);
                let expires_at = old
                    .expires_at
                    .map(|at| now.saturating_add(at - old.created_at));
                let new = store::insert(
                    conn,
                    &NewApiKey {
                        id: Uuid::now_v7(),
                        user_id,
                        name: &old.name,
                        prefix: &prefix,
                        key_hash: &hash,
                        scopes: scopes.names(),
                        created_at: now,
                        expires_at,
                    },
                )?;
                store::mark_rotated(conn, old.id, new.id, grace_until)?;
                auditor.record(
                    conn,
                    &meta,
                    Event::new(Action::ApiKeyRotated, Outcome::Success, caller.actor())
                        .target("api_key", old.id)
                        .metadata(json!({
                            "user_id": user_id,
                            "prefix": old.prefix,
                            "new_key_id": new.id,
                            "new_prefix": new.prefix,
                            "scopes": new.scopes,
                            "grace_until": rfc3339(grace_until),
                        })),
                )?;
                Ok(new)
            })
        })
        .await?;
    Ok(created(row, generated.key))
}

fn live_key_cap(max: i64) -> AppError {
    AppError::Conflict(vec![FieldError::new(
        "api_keys",
        format!(
            "at most {max} live keys per user (keys in their rotation grace count); \
             revoke one first"
        ),
    )])
}

/// Revokes every key of the user (an admin disabled the account, or an operator responded to an
/// incident), inside the caller's transaction, one audit record per key. Re-enabling the user
/// later restores sign-in only: revoked keys stay revoked.
/// Which keys to revoke (all of one user's), by whom and why.
pub struct RevokeAllKeys<'a> {
    pub user_id: Uuid,
    pub actor: Actor,
    /// Recorded as `revoked_by` (the admin's id; `None` for the system, e.g. a provider's
    /// `user.deleted`).
    pub by: Option<Uuid>,
    pub reason: &'a str,
}

pub fn revoke_all_of_user_in_tx(
    conn: &mut diesel::PgConnection,
    auditor: &crate::audit::Auditor,
    meta: &RequestMeta,
    what: RevokeAllKeys<'_>,
    now: OffsetDateTime,
) -> Result<usize, AppError> {
    let RevokeAllKeys {
        user_id,
        actor,
        by,
        reason,
    } = what;
    let revoked = store::revoke_all_for_user(conn, user_id, by, reason, micros(now))?;
    for (id, prefix) in &revoked {
        auditor.record(
            conn,
            meta,
            Event::new(Action::ApiKeyRevoked, Outcome::Success, actor.clone())
                .target("api_key", *id)
                .metadata(json!({
                    "by": actor.kind.as_str(),
                    "reason": reason,
                    "user_id": user_id,
                    "prefix": prefix,
                })),
        )?;
    }
    Ok(revoked.len())
}

/// Account erasure, after the keys were revoked: the names the user gave their keys (free text,
/// possibly personal) become `[erased]`; prefixes, scopes and dates stay for the audit trail.
pub fn scrub_for_erasure_in_tx(
    conn: &mut diesel::PgConnection,
    user_id: Uuid,
) -> Result<usize, AppError> {
    Ok(store::scrub_names(conn, user_id, "[erased]")?)
}

/// Why a well-formed key was refused (audited, never told to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Revoked,
    OwnerDisabled,
    Expired,
    RotatedOut,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown_key",
            Refusal::Revoked => "revoked",
            Refusal::OwnerDisabled => "owner_disabled",
            Refusal::Expired => "expired",
            Refusal::RotatedOut => "rotation_grace_over",
        }
    }
}

/// The outcome of looking a key up.
#[derive(Debug)]
pub enum Verdict {
    Accepted(Principal),
    Refused {
        reason: Refusal,
        /// (key id, owner id) when the key exists.
        key: Option<(Uuid, Uuid)>,
    },
}

/// Decides on a looked-up row. The comparison runs over the full hash whether or not a row was
/// found (against an all-zero stand-in when not), so both paths do the same work.
pub fn judge(
    found: Option<store::AuthRow>,
    computed: &[u8; format::HASH_LEN],
    now: OffsetDateTime,
) -> Verdict {
    const STAND_IN: [u8; format::HASH_LEN] = [0; format::HASH_LEN];
    let stored = found
        .as_ref()
        .map_or(&STAND_IN[..], |(row, _)| row.key_hash.as_slice());
    let matches = format::hashes_match(stored, computed);
    let Some((row, user)) = found.filter(|_| matches) else {
        return Verdict::Refused {
            reason: Refusal::Unknown,
            key: None,
        };
    };
    let key = Some((row.id, row.user_id));
    let refusal = match row.status(now) {
        KeyStatus::Revoked => Some(Refusal::Revoked),
        _ if !user.active => Some(Refusal::OwnerDisabled),
        KeyStatus::Expired => Some(Refusal::Expired),
        KeyStatus::Rotated => Some(Refusal::RotatedOut),
        KeyStatus::Active | KeyStatus::RotationGrace => None,
    };
    if let Some(reason) = refusal {
        return Verdict::Refused { reason, key };
    }
    Verdict::Accepted(Principal {
        user_id: row.user_id,
        role: user.role(),
        credential: Credential::ApiKey {
            key_id: row.id,
            scopes: row.permissions(),
        },
        user: Some(std::sync::Arc::new(user)),
        authentication: crate::auth::Authentication::NONE,
    })
}

/// Authenticates a request carrying `presented` (from `X-API-Key` or a Bearer value starting with
/// `rk_`). A malformed key is refused before any database access; every refusal is the same 401.
pub async fn authenticate(
    state: &AppState,
    presented: &str,
    meta: RequestMeta,
) -> Result<Principal, AppError> {
    let key = match format::parse(presented) {
        Ok(key) => key,
        Err(reason) => {
            // Not audited: recording garbage would hand every sender a database write.
            tracing::debug!(reason = %reason, "malformed API key refused");
            return Err(AppError::Unauthorized);
        }
    };
    let hash = format::key_hash(&state.api_key_hmac, key.as_str());
    let prefix = key.display_prefix().to_string();
    let now = micros(state.clock.now());
    let verdict = state
        .pool
        .run(move |conn| {
            let found = store::find_for_auth(conn, &hash)?;
            let stale = found.as_ref().is_some_and(|(row, _)| {
                row.last_used_at
                    .is_none_or(|at| at <= now - LAST_USED_RESOLUTION)
            });
            let verdict = judge(found, &hash, now);
            if let Verdict::Accepted(principal) = &verdict
                && stale
                && let Credential::ApiKey { key_id, .. } = principal.credential
            {
                store::touch(conn, key_id, now)?;
            }
            Ok(verdict)
        })
        .await?;
    match verdict {
        Verdict::Accepted(principal) => Ok(principal),
        Verdict::Refused { reason, key } => {
            audit_refusal(state, reason, key, prefix, meta).await;
            Err(AppError::Unauthorized)
        }
    }
}

/// Expired and rotated-out keys are recorded one by one (`api_key.expired_used`: a client still
/// holding an old key is worth seeing); every other refusal is `api_key.auth_failed`, aggregated
/// per IP per minute so a flood costs one row a minute.
async fn audit_refusal(
    state: &AppState,
    reason: Refusal,
    key: Option<(Uuid, Uuid)>,
    prefix: String,
    meta: RequestMeta,
) {
    let auditor = state.auditor.clone();
    let expired = matches!(reason, Refusal::Expired | Refusal::RotatedOut);
    let mut metadata = json!({ "reason": reason.as_str(), "prefix": prefix });
    let mut event = match key {
        Some((key_id, user_id)) => {
            metadata["user_id"] = json!(user_id);
            Event::new(
                if expired {
                    Action::ApiKeyExpiredUsed
                } else {
                    Action::ApiKeyAuthFailed
                },
                Outcome::Denied,
                Actor::api_key(key_id),
            )
            .target("api_key", key_id)
        }
        None => Event::new(
            Action::ApiKeyAuthFailed,
            Outcome::Failure,
            Actor::anonymous(),
        ),
    };
    event = event.metadata(metadata);
    let result = state
        .pool
        .run(move |conn| {
            if expired {
                auditor.record_standalone(conn, &meta, event)?;
            } else {
                auditor.record_aggregated(conn, &meta, event)?;
            }
            Ok(())
        })
        .await;
    if let Err(error) = result {
        tracing::warn!(error = %error, "could not record an API key refusal");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-06-01 12:00 UTC);

    fn row(hash: [u8; format::HASH_LEN]) -> ApiKeyRow {
        ApiKeyRow {
            id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            name: "k".into(),
            prefix: "rk_abcdefgh".into(),
            key_hash: hash.to_vec(),
            scopes: vec!["profile:read".into(), "no:such".into()],
            created_at: NOW - time::Duration::days(1),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
            rotated_to: None,
            grace_until: None,
        }
    }

    use crate::auth::Role;

    fn reason(verdict: Verdict) -> Option<Refusal> {
        match verdict {
            Verdict::Accepted(_) => None,
            Verdict::Refused { reason, .. } => Some(reason),
        }
    }

    #[test]
    fn judge_accepts_only_a_matching_live_key_of_an_active_owner() {
        let hasher = ApiKeyHasher::from_bytes(b"test");
        let hash = hasher.hash(&format::assemble("AbCdEfGhIjKlMnOpQrStUvWxYz012345"));
        let found = |r: ApiKeyRow, active: bool| {
            let now = OffsetDateTime::UNIX_EPOCH;
            let owner = crate::users::User {
                id: r.user_id,
                username: "owner".into(),
                email: "owner@example.org".into(),
                password_hash: None,
                role: "team_member".into(),
                active,
                display_name: None,
                failed_logins: 0,
                locked_until: None,
                created_at: now,
                updated_at: now,
                admin_granted_by: None,
                erased_at: None,
                email_verified_at: None,
            };
            Some((r, owner))
        };

        let Verdict::Accepted(principal) = judge(found(row(hash), true), &hash, NOW) else {
            panic!("a live key is accepted");
        };
        assert_eq!(principal.role, Role::TeamMember);
        assert_eq!(principal.session_id(), None);
        assert!(principal.can(Permission::ProfileRead));
        assert!(
            !principal.can(Permission::ProfileWrite),
            "outside the scopes"
        );

        // The index returned a row whose hash does not match (cannot happen with a unique index
        // on the hash, but the comparison must hold on its own): unknown.
        let mut other = hash;
        other[31] ^= 1;
        assert_eq!(
            reason(judge(found(row(other), true), &hash, NOW)),
            Some(Refusal::Unknown)
        );
        assert_eq!(reason(judge(None, &hash, NOW)), Some(Refusal::Unknown));

        let mut revoked = row(hash);
        revoked.revoked_at = Some(NOW);
        assert_eq!(
            reason(judge(found(revoked, true), &hash, NOW)),
            Some(Refusal::Revoked)
        );
        assert_eq!(
            reason(judge(found(row(hash), false), &hash, NOW)),
            Some(Refusal::OwnerDisabled)
        );
        let mut expired = row(hash);
        expired.expires_at = Some(NOW);
        assert_eq!(
            reason(judge(found(expired, true), &hash, NOW)),
            Some(Refusal::Expired)
        );

        let mut rotating = row(hash);
        rotating.rotated_to = Some(Uuid::now_v7());
        rotating.grace_until = Some(NOW + time::Duration::seconds(1));
        assert!(reason(judge(found(rotating.clone(), true), &hash, NOW)).is_none());
        rotating.grace_until = Some(NOW);
        assert_eq!(
            reason(judge(found(rotating, true), &hash, NOW)),
            Some(Refusal::RotatedOut)
        );
    }

    #[test]
    fn keys_never_pass_admin_only_permissions() {
        let principal = Principal {
            user_id: Uuid::now_v7(),
            role: Role::Admin,
            credential: Credential::ApiKey {
                key_id: Uuid::now_v7(),
                scopes: Permission::ALL.to_vec(),
            },
            user: None,
            authentication: crate::auth::Authentication::NONE,
        };
        for p in Permission::ALL {
            assert_eq!(principal.can(p), !p.is_admin_only(), "{p}");
        }
        let demo_key = Principal {
            role: Role::Demo,
            ..principal.clone()
        };
        assert!(!demo_key.can(Permission::ProfileWrite), "role ∩ scopes");
        assert!(demo_key.can(Permission::ProfileRead));
    }
}
