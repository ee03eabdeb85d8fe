//! Privacy: a user's complete data export, and account erasure by crypto-shredding.
//!
//! **Boundary.** Owns no table. It reaches every feature that holds a user's data only through
//! that feature's `mod.rs`: each contributes its part of the export (`sessions::all_for_user`,
//! `conversations::export_*`…) and its part of an erasure (`*::forget_user_in_tx`,
//! `*::scrub_for_erasure_in_tx`), so the rule for a table stays with the module that owns it.
//! No other feature imports this one.
//!
//! **Erasure** ([`erase_in_tx`]) runs in one transaction under the user's row lock: unlink the
//! identities, scrub the subscription and the webhook bodies that mention the user, drop blocks,
//! destroy the wrapped data key (everything encrypted under it — message bodies, titles,
//! attachment names and bytes — becomes unreadable everywhere, backups included, since backups
//! hold only ciphertext) and the audit-pseudonym salt, disable the account (every API and console
//! session ends, every API key is revoked), scrub the sessions' client details and the keys'
//! names, turn the username and email into `deleted-<12 hex>` tombstones (freeing the originals),
//! and write `user.erased`. The work that scans (webhook bodies) runs before the first audit row,
//! so the audit chain lock is held only for the short tail. Erasing an erased account is a no-op.
//!
//! The audit log keeps every row and verifies afterwards: rows name people by id (the console
//! looks names up when it shows a row, so it shows the tombstone), and the only names metadata
//! carries are keyed pseudonyms (`audit::pseudonym`), whose per-user salt erasure destroys.
//!
//! **Export** ([`export::start`]) streams one JSON document (or a zip) a page at a time from a
//! blocking producer through a bounded channel: memory stays flat however long the history, and
//! a client that stops reading stops the producer (it never holds a database connection while
//! waiting).

pub mod cli;
pub mod export;
pub mod model;
pub mod routes;
pub mod store;

use diesel::Connection;
use diesel::PgConnection;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

pub use model::{Erased, ErasureReport, ExportFormat, Reauth, RemainingRows};

use crate::audit::{Action, Actor, Auditor, Event, Outcome, RequestMeta};
use crate::auth::{Credential, Principal};
use crate::error::{AppError, FieldError};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("no such user")]
    NotFound,
    /// The account was erased: nothing of it can be exported.
    #[error("the account was erased")]
    Erased,
    /// SUPER_ADMIN_EMAIL's account is never erased (change the setting first).
    #[error("the super admin cannot be erased")]
    SuperAdmin,
    /// An admin erasing their own account from the console (use `DELETE /api/v1/me`).
    #[error("an admin cannot erase their own account here")]
    SelfErasure,
    /// Only a person signed in (a session or a provider token) erases their account.
    #[error("an API key cannot erase its owner's account")]
    ApiKey,
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<diesel::result::Error> for PrivacyError {
    fn from(error: diesel::result::Error) -> Self {
        PrivacyError::App(error.into())
    }
}

impl PrivacyError {
    /// The sentence a person reads (console page, CLI line, problem detail).
    pub fn sentence(&self) -> String {
        match self {
            PrivacyError::NotFound => "There is no such account.".into(),
            PrivacyError::Erased => {
                "This account was erased; nothing of it is left to export.".into()
            }
            PrivacyError::SuperAdmin => "This account is the super admin (SUPER_ADMIN_EMAIL), who \
                                         cannot be erased. Nothing was changed."
                .into(),
            PrivacyError::SelfErasure => "This is your own account; erase it with DELETE \
                                          /api/v1/me. Nothing was changed."
                .into(),
            PrivacyError::ApiKey => "An API key cannot erase its owner's account; sign in as \
                                     the user."
                .into(),
            PrivacyError::App(e) => e.to_string(),
        }
    }
}

impl From<PrivacyError> for AppError {
    fn from(error: PrivacyError) -> Self {
        match error {
            PrivacyError::NotFound => AppError::NotFound,
            PrivacyError::ApiKey => AppError::Forbidden,
            PrivacyError::App(e) => e,
            other => AppError::Conflict(vec![FieldError::new("user", other.sentence())]),
        }
    }
}

/// Who erases an account, and why.
pub struct Erasure {
    pub user_id: Uuid,
    pub actor: Actor,
    /// The admin's id (recorded as the keys' `revoked_by`); `None` for the user or an operator.
    pub by: Option<Uuid>,
    /// Required from admins and operators; `None` when users erase themselves.
    pub reason: Option<String>,
    /// `self`, `console`, `cli`.
    pub via: &'static str,
    /// Extra audit metadata (the operator's OS user and host).
    pub extra: serde_json::Value,
}

/// Erases the account inside the caller's transaction (see the module doc for every step).
pub fn erase_in_tx(
    conn: &mut PgConnection,
    auditor: &Auditor,
    meta: &RequestMeta,
    what: Erasure,
    super_admin_email: Option<&str>,
    now: OffsetDateTime,
) -> Result<Erased, PrivacyError> {
    let id = what.user_id;
    let Some(user) = crate::users::store::lock(conn, id)? else {
        return Err(PrivacyError::NotFound);
    };
    if user.erased_at.is_some() {
        return Ok(Erased {
            user_id: id,
            already: true,
            ..Erased::default()
        });
    }
    if user.is_super_admin(super_admin_email) {
        return Err(PrivacyError::SuperAdmin);
    }
    // The scans first: the audit chain lock (taken by the first audit row) is then held only for
    // the short tail of the transaction.
    let identities = crate::identity::unlink_all_in_tx(conn, id)?;
    let mut needles = vec![user.email.clone()];
    for identity in &identities {
        needles.push(identity.subject.clone());
        needles.extend(identity.email.clone());
    }
    let webhooks = crate::webhooks::forget_user_in_tx(conn, id, &needles, now)?;
    let blocks_dropped = crate::conversations::forget_user_in_tx(conn, id)?;
    crate::mfa::remove_in_tx(conn, id)?;
    crate::email::forget_user_in_tx(conn, id, &user.email)?;
    let data_key_destroyed = crate::users::data_keys::destroy(conn, id, now)?;
    let audit_salt_destroyed = crate::audit::forget_salt(conn, id)?;
    let ended = crate::accounts::disable_in_tx(
        conn,
        auditor,
        meta,
        crate::accounts::Disable {
            user_id: id,
            actor: what.actor.clone(),
            by: what.by,
            reason: "account erased",
            sessions_reason: "user_erased",
        },
        now,
    )?;
    crate::sessions::scrub_for_erasure_in_tx(conn, id)?;
    crate::api_keys::scrub_for_erasure_in_tx(conn, id)?;
    crate::users::store::tombstone(conn, id, now)?;
    let erased = Erased {
        user_id: id,
        already: false,
        sessions_revoked: ended.sessions,
        api_keys_revoked: ended.api_keys,
        identities_unlinked: identities.len(),
        blocks_dropped,
        data_key_destroyed,
        audit_salt_destroyed,
        subscription_scrubbed: webhooks.subscription_scrubbed,
        webhook_events_redacted: webhooks.events_redacted,
    };
    let mut metadata = json!({
        "via": what.via,
        "sessions_revoked": erased.sessions_revoked,
        "api_keys_revoked": erased.api_keys_revoked,
        "identities_unlinked": erased.identities_unlinked,
        "blocks_dropped": erased.blocks_dropped,
        "data_key_destroyed": erased.data_key_destroyed,
        "subscription_scrubbed": erased.subscription_scrubbed,
        "webhook_events_redacted": erased.webhook_events_redacted,
    });
    if let Some(reason) = &what.reason {
        metadata["reason"] = json!(reason);
    }
    if let (serde_json::Value::Object(m), serde_json::Value::Object(extra)) =
        (&mut metadata, what.extra)
    {
        m.extend(extra);
    }
    auditor.record(
        conn,
        meta,
        Event::new(Action::UserErased, Outcome::Success, what.actor)
            .target("user", id)
            .metadata(metadata),
    )?;
    Ok(erased)
}

/// [`erase_in_tx`] in a transaction of its own, off the async workers.
pub async fn erase(
    state: &AppState,
    what: Erasure,
    meta: RequestMeta,
) -> Result<Erased, PrivacyError> {
    let auditor = state.auditor.clone();
    let super_admin = state.settings.super_admin_email.clone();
    let now = state.clock.now();
    state
        .pool
        .run(move |conn| {
            let outcome = conn.transaction::<_, PrivacyError, _>(|conn| {
                erase_in_tx(conn, &auditor, &meta, what, super_admin.as_deref(), now)
            });
            // Infrastructure errors go back to the pool (a lost connection is marked broken).
            match outcome {
                Err(PrivacyError::App(error)) => Err(error),
                other => Ok(other),
            }
        })
        .await?
}

/// `DELETE /api/v1/me`: the signed-in user erases their own account after proving, again, that
/// it is them — their current password (wrong ones count towards the lockout), or a fresh token
/// of a linked identity provider. An API key cannot (403).
pub async fn erase_self(
    state: &AppState,
    principal: &Principal,
    reauth: Reauth,
    providers: Option<&crate::identity::Providers>,
    meta: RequestMeta,
) -> Result<Erased, PrivacyError> {
    if matches!(principal.credential, Credential::ApiKey { .. }) {
        return Err(PrivacyError::ApiKey);
    }
    match reauth {
        Reauth::Password(password) => {
            crate::accounts::confirm_password(state, principal, password, meta.clone()).await?;
        }
        Reauth::ProviderToken(token) => {
            let refused = || {
                AppError::Validation(vec![FieldError::new(
                    "provider_token",
                    "is not a token issued in the last 5 minutes for an identity linked to \
                     this account",
                )])
            };
            let providers = providers.ok_or_else(refused)?;
            crate::identity::confirm_token(state, providers, &token, principal.user_id)
                .await
                .map_err(|e| match e {
                    AppError::Unauthorized => refused(),
                    other => other,
                })?;
        }
    }
    erase(
        state,
        Erasure {
            user_id: principal.user_id,
            actor: principal.actor(),
            by: None,
            reason: None,
            via: "self",
            extra: json!({}),
        },
        meta,
    )
    .await
}

/// What remains about a user (the operator's evidence for an erasure request): rows by table and
/// column, found through every foreign key to `users` plus the audit log and quota counters.
pub fn erasure_report(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<ErasureReport, PrivacyError> {
    let user = crate::users::store::find(conn, user_id)?.ok_or(PrivacyError::NotFound)?;
    let mut tables = Vec::new();
    for (table, column) in store::user_references(conn)? {
        let rows = store::count_uuid(conn, &table, &column, user_id)?;
        if rows > 0 {
            let shows = shows(&table, &column);
            tables.push(RemainingRows {
                table,
                column,
                rows,
                shows,
            });
        }
    }
    let (as_actor, as_target) = store::audit_rows(conn, user_id)?;
    for (column, rows) in [("actor_id", as_actor), ("target_id", as_target)] {
        if rows > 0 {
            tables.push(RemainingRows {
                table: "audit_logs".into(),
                column: column.into(),
                rows,
                shows: "the id, action, time, client IP and user agent (until AUDIT_RETENTION_DAYS); \
                        names only as pseudonyms",
            });
        }
    }
    let quota = store::quota_rows(conn, user_id)?;
    if quota > 0 {
        tables.push(RemainingRows {
            table: "quota_usage".into(),
            column: "subject_id".into(),
            rows: quota,
            shows: "daily counters only",
        });
    }
    let data_key_present = crate::users::data_keys::present(conn, user_id)?;
    Ok(ErasureReport {
        user_id,
        username: user.username,
        erased_at: user.erased_at,
        data_key_present,
        audit_salt_present: crate::audit::has_salt(conn, user_id)?,
        tables,
    })
}

/// What rows of `table.column` still show about an erased person.
fn shows(table: &str, column: &str) -> &'static str {
    match (table, column) {
        ("users", _) => "the tombstone: id, role, dates",
        ("sessions", _) => "ended sessions: ids and dates, no IP or user agent",
        ("api_keys", "user_id") => "revoked keys: prefix, scopes, dates; names replaced",
        ("api_keys", _) => "keys this admin revoked",
        ("data_keys", _) => "the key's id and dates; the key itself destroyed",
        ("messages", _) => "ciphertext under the destroyed key, sequence numbers and dates",
        ("conversations", _) => {
            "conversations they created: title ciphertext under the destroyed key"
        }
        ("conversation_members", _) => "membership and read marker (shown as [deleted user])",
        ("subscriptions", _) => "status and dates; customer and subscription ids removed",
        _ => "ids and dates",
    }
}

/// Who asks for an export.
pub enum Requester {
    /// The user themselves (spends their daily `data_exports` quota).
    Owner(Principal),
    /// An admin in the console, with the reason they gave.
    Admin { admin_id: Uuid, reason: String },
}

/// Checks and records an export (in one transaction: the quota, the account is there and not
/// erased, `user.exported`), then starts streaming it. The audit row names the requester as the
/// actor (the admin, with their reason) and the user as the target.
pub async fn start_export(
    state: &AppState,
    user_id: Uuid,
    requester: Requester,
    format: ExportFormat,
    meta: RequestMeta,
) -> Result<export::Body, AppError> {
    let now = state.clock.now();
    let quotas = state.settings.quotas.clone();
    let auditor = state.auditor.clone();
    let (owner, actor, reason) = match &requester {
        Requester::Owner(principal) => (Some(principal.clone()), principal.actor(), None),
        Requester::Admin { admin_id, reason } => {
            (None, Actor::admin(*admin_id), Some(reason.clone()))
        }
    };
    let caller = owner.clone();
    let tx_meta = meta.clone();
    let result = state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                if let Some(principal) = &caller {
                    crate::rate_limit::consume_quota(
                        conn,
                        &quotas,
                        principal,
                        crate::rate_limit::QuotaKind::DataExports,
                        now,
                    )?;
                }
                let user = crate::users::store::find(conn, user_id)?.ok_or(AppError::NotFound)?;
                if user.erased_at.is_some() {
                    return Err(PrivacyError::Erased.into());
                }
                let mut metadata = json!({ "format": format.as_str() });
                if let Some(reason) = &reason {
                    metadata["reason"] = json!(reason);
                }
                auditor.record(
                    conn,
                    &tx_meta,
                    Event::new(Action::UserExported, Outcome::Success, actor)
                        .target("user", user_id)
                        .metadata(metadata),
                )?;
                Ok(())
            })
        })
        .await;
    match &owner {
        Some(principal) => crate::rate_limit::quota_audited(state, principal, meta, result).await?,
        None => result?,
    }
    let job = export::Job {
        user_id,
        current_session: owner.as_ref().and_then(Principal::session_id),
        format,
        now,
    };
    Ok(export::spawn(
        state.pool.clone(),
        state.keyring.clone(),
        job,
    ))
}
