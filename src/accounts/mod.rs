//! Accounts: registration, login (with lockout and hash upgrades), profile, password change,
//! and the operator paths (create-admin, import). Owns the `users` table. Sessions and tokens are
//! issued through `sessions`; every security event is audited in the same transaction as its
//! change. Never returns or logs a password hash.

pub mod admin;
pub mod cli;
pub mod factors;
pub mod login;
pub mod routes;

pub use self::factors::{
    ConsoleSignIn, MfaChallenge, Proof, Reauth, StepUp, begin_console_sign_in, complete_login,
    complete_password_reset, disable_mfa, has_second_factor, reauthenticate,
    request_password_reset, reset_mfa_in_tx, second_step, step_up,
};
use self::login::{FailureReason, record_failure, release, reserve, reset_failures};
pub use self::login::{
    LoginOutcome, SignIn, Verified, lockout_duration, login, record_success, verify_credentials,
};

use diesel::Connection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{Action, Actor, Event, Outcome, RequestMeta};
use crate::auth::{Principal, Role};
use crate::crypto::passwords::HashError;
use crate::error::{AppError, FieldError};
use crate::sessions;
use crate::state::AppState;
use crate::users::store;
use crate::users::{AdminGrant, Email, NewPassword, NewUser, User, UserView, Username};

impl From<HashError> for AppError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy => AppError::Unavailable {
                retry_after: 1,
                reason: "password hashing",
            },
            other => AppError::internal(anyhow::anyhow!("password hashing failed: {other}")),
        }
    }
}

pub struct Registration {
    pub username: String,
    pub email: String,
    pub password: SecretString,
}

/// Validates every field (all errors at once), hashes, and creates the account.
pub async fn register(
    state: &AppState,
    input: Registration,
    meta: RequestMeta,
) -> Result<UserView, AppError> {
    let mut errors = Vec::new();
    let username = Username::parse(&input.username)
        .map_err(|e| errors.push(e))
        .ok();
    let email = Email::parse(&input.email).map_err(|e| errors.push(e)).ok();
    let password = match NewPassword::parse(
        input.password,
        state.settings.auth.password_policy,
        username.as_ref().map(Username::as_str),
        email.as_ref(),
        "password",
    ) {
        Ok(p) => Some(p),
        Err(mut e) => {
            errors.append(&mut e);
            None
        }
    };
    let (Some(username), Some(email), Some(password)) = (username, email, password) else {
        return Err(AppError::Validation(errors));
    };
    let hash = state.hasher.hash(password.into_secret()).await?;
    // Registering an ADMIN_EMAILS address proves nothing about owning it: the account is an
    // ordinary one, and the attempt is put on record. It becomes admin when the address is
    // verified (the link mailed to it, `email::verify`) — or an operator promotes it.
    let claims_admin_email = state
        .settings
        .admin_emails
        .iter()
        .any(|e| e.eq_ignore_ascii_case(email.as_str()))
        || state
            .settings
            .super_admin_email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(email.as_str()));
    let now = state.clock.now();
    let auditor = state.auditor.clone();
    let email_settings = state.settings.email.clone();
    let user = state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                let user = create_user(
                    conn,
                    &username,
                    &email,
                    Some(&hash),
                    Role::DEFAULT,
                    None,
                    now,
                )?;
                crate::email::send_verification_in_tx(conn, &email_settings, &user, now)?;
                auditor.record(
                    conn,
                    &meta,
                    Event {
                        action: Action::UserRegistered,
                        outcome: Outcome::Success,
                        actor: Actor::user(user.id),
                        target: Some(("user".into(), user.id.to_string())),
                        metadata: serde_json::json!({ "role": user.role }),
                    },
                )?;
                if claims_admin_email {
                    auditor.record(
                        conn,
                        &meta,
                        Event::new(
                            Action::AdminEmailUnverified,
                            Outcome::Denied,
                            Actor::user(user.id),
                        )
                        .target("user", user.id)
                        .metadata(serde_json::json!({
                            "severity": "high",
                            "role_granted": user.role,
                            "reason": "self-registration with an address listed as an admin \
                                       address; not verified yet, so no admin role was \
                                       granted (verifying the address grants it)",
                        })),
                    )?;
                }
                Ok(user)
            })
        })
        .await?;
    Ok(UserView::from(&user))
}

/// Inserts a user; duplicate username (any case) or email become field errors (409). `granted`
/// says how an admin was made one (`None` for other roles).
pub fn create_user(
    conn: &mut diesel::PgConnection,
    username: &Username,
    email: &Email,
    hash: Option<&str>,
    role: Role,
    granted: Option<AdminGrant>,
    now: OffsetDateTime,
) -> Result<User, AppError> {
    let mut conflicts = Vec::new();
    if store::username_taken(conn, username.as_str())? {
        conflicts.push(FieldError::new("username", "is already taken"));
    }
    if store::email_taken(conn, email.as_str())? {
        conflicts.push(FieldError::new("email", "is already registered"));
    }
    if !conflicts.is_empty() {
        return Err(AppError::Conflict(conflicts));
    }
    let new = NewUser {
        id: Uuid::now_v7(),
        username: username.as_str(),
        email: email.as_str(),
        password_hash: hash,
        role: role.as_str(),
        created_at: now,
        updated_at: now,
        admin_granted_by: granted
            .filter(|_| role == Role::Admin)
            .map(AdminGrant::as_str),
        // An operator's account, or one made admin for a verified address: the address is
        // vouched for (so EMAIL_VERIFICATION_REQUIRED never shuts out the bootstrap admin).
        email_verified_at: granted.map(|_| now),
    };
    match store::insert(conn, &new) {
        Ok(user) => Ok(user),
        // A concurrent registration won the race between the check and the insert.
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)) => {
            let field = if info.constraint_name().is_some_and(|c| c.contains("email")) {
                FieldError::new("email", "is already registered")
            } else {
                FieldError::new("username", "is already taken")
            };
            Err(AppError::Conflict(vec![field]))
        }
        Err(e) => Err(e.into()),
    }
}

/// Who disables an account, and why.
pub struct Disable<'a> {
    pub user_id: Uuid,
    pub actor: Actor,
    /// Recorded as the keys' `revoked_by` (an admin; `None` for the system).
    pub by: Option<Uuid>,
    pub reason: &'a str,
    /// The reason recorded on each ended session (`user_disabled`, `deleted_at_provider`).
    pub sessions_reason: &'a str,
}

/// What disabling ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub api_keys: usize,
    pub sessions: usize,
}

/// Disables the account inside the caller's transaction and ends every credential it has: its
/// API keys are revoked (re-enabling restores sign-in only, never the keys) and every API and
/// console session ends. The one rule for "this account is off", used by the admin's disable and
/// by a provider's `user.deleted`. The caller audits the disable itself.
pub fn disable_in_tx(
    conn: &mut diesel::PgConnection,
    auditor: &crate::audit::Auditor,
    meta: &RequestMeta,
    what: Disable<'_>,
    now: OffsetDateTime,
) -> Result<Ended, AppError> {
    store::set_active(conn, what.user_id, false, now)?;
    let api_keys = crate::api_keys::revoke_all_of_user_in_tx(
        conn,
        auditor,
        meta,
        crate::api_keys::RevokeAllKeys {
            user_id: what.user_id,
            actor: what.actor.clone(),
            by: what.by,
            reason: &format!("user_disabled: {}", what.reason),
        },
        now,
    )?;
    let sessions = sessions::revoke_all_in_tx(
        conn,
        auditor,
        meta,
        sessions::RevokeAll {
            user_id: what.user_id,
            keep: None,
            reason: what.sessions_reason,
            actor: what.actor,
        },
        now,
    )?;
    Ok(Ended { api_keys, sessions })
}

/// The newest audit events the user did (as themselves) or that were done to their account, in
/// full: the console's view for admins (a user's own export is `privacy`'s).
pub fn audit_events_of(
    conn: &mut diesel::PgConnection,
    user_id: Uuid,
    limit: i64,
) -> Result<(Vec<crate::audit::AuditEntry>, bool), AppError> {
    use crate::audit::{ActorType, AuditQuery};
    let by = crate::audit::list(
        conn,
        &AuditQuery {
            actor_type: Some(ActorType::User),
            actor_id: Some(user_id.to_string()),
            limit,
            ..AuditQuery::default()
        },
    )?;
    let about = crate::audit::list(
        conn,
        &AuditQuery {
            target: Some(("user".into(), user_id.to_string())),
            limit,
            ..AuditQuery::default()
        },
    )?;
    let truncated = by.next_before_id.is_some() || about.next_before_id.is_some();
    let mut events: Vec<_> = by.items.into_iter().chain(about.items).collect();
    events.sort_by_key(|e| std::cmp::Reverse(e.id));
    events.dedup_by_key(|e| e.id);
    Ok((events, truncated))
}

pub async fn me(state: &AppState, principal: &Principal) -> Result<UserView, AppError> {
    // Usually loaded by the request's authentication query already.
    if let Some(user) = &principal.user {
        return Ok(UserView::from(user.as_ref()));
    }
    let id = principal.user_id;
    let user = state
        .pool
        .run(move |conn| Ok(store::find(conn, id)?))
        .await?;
    user.as_ref().map(UserView::from).ok_or(AppError::NotFound)
}

pub async fn update_display_name(
    state: &AppState,
    principal: &Principal,
    display_name: Option<String>,
    meta: RequestMeta,
) -> Result<UserView, AppError> {
    if let Some(name) = &display_name {
        crate::users::check_visible_name(name, 100).map_err(|message| {
            AppError::Validation(vec![FieldError::new("display_name", message)])
        })?;
    }
    let id = principal.user_id;
    let now = state.clock.now();
    let auditor = state.auditor.clone();
    let user = state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                let user = store::set_display_name(conn, id, display_name.as_deref(), now)?;
                auditor.record(
                    conn,
                    &meta,
                    Event {
                        action: Action::UserUpdated,
                        outcome: Outcome::Success,
                        actor: Actor::user(id),
                        target: Some(("user".into(), id.to_string())),
                        metadata: serde_json::json!({ "fields": ["display_name"] }),
                    },
                )?;
                Ok(user)
            })
        })
        .await?;
    Ok(UserView::from(&user))
}

/// Re-authentication with the current password (password change, account erasure): wrong
/// passwords count towards the account's lockout exactly as failed logins do (a stolen access
/// token is no unlimited password oracle), reserved before hashing; a locked account is 429.
/// A wrong password is a 422 on `current_password`. Returns the user row it was checked against.
pub async fn confirm_password(
    state: &AppState,
    principal: &Principal,
    current: SecretString,
    meta: RequestMeta,
) -> Result<User, AppError> {
    let id = principal.user_id;
    let auth = state.settings.auth.clone();
    let now = state.clock.now();
    // The row came with the request's authentication; look it up only if it did not.
    let known = principal.user.clone();
    let (user, attempt) = state
        .pool
        .run(move |conn| {
            let user = match known {
                Some(user) => user.as_ref().clone(),
                None => store::find(conn, id)?.ok_or(AppError::Unauthorized)?,
            };
            match reserve(conn, &auth, id, now)? {
                Some(attempt) => Ok((user, Ok(attempt))),
                None => Ok((user, Err(store::locked_until(conn, id)?))),
            }
        })
        .await?;
    let attempt = match attempt {
        Ok(attempt) => attempt,
        Err(until) => {
            let seconds = until.map_or(1, |until| (until - now).whole_seconds());
            return Err(AppError::TooManyRequests {
                retry_after: u64::try_from(seconds).unwrap_or(1).max(1),
            });
        }
    };
    let verified_hash = user.password_hash.clone();
    let verification = match state.hasher.verify(current, verified_hash.clone()).await {
        Ok(v) => v,
        Err(error) => {
            release(state, Some(attempt)).await;
            return Err(error.into());
        }
    };
    if !verification.matches {
        record_failure(
            state,
            Some(id),
            &user.username,
            FailureReason::BadPassword,
            Some(attempt),
            meta,
            Action::AuthLoginFailed,
        )
        .await?;
        return Err(AppError::Validation(vec![FieldError::new(
            "current_password",
            "is incorrect",
        )]));
    }
    // The current password is proven: whatever happens next, this attempt was no guess.
    reset_failures(state, id).await?;
    Ok(user)
}

/// Requires the current password; on success stores the new hash and ends every other session
/// of the user (API and console). Wrong current passwords count towards the account's lockout
/// exactly as failed logins do (a stolen access token is no unlimited password oracle), reserved
/// before hashing; two changes racing with the same current password cannot both succeed (the
/// hash is replaced only if it is still the one that was verified).
pub async fn change_password(
    state: &AppState,
    principal: &Principal,
    current: SecretString,
    new: SecretString,
    meta: RequestMeta,
) -> Result<(), AppError> {
    let id = principal.user_id;
    let user = confirm_password(state, principal, current, meta.clone()).await?;
    let verified_hash = user.password_hash.clone();
    let email = Email::parse(&user.email).ok();
    let new = NewPassword::parse(
        new,
        state.settings.auth.password_policy,
        Some(&user.username),
        email.as_ref(),
        "new_password",
    )
    .map_err(AppError::Validation)?;
    let hash = state.hasher.hash(new.into_secret()).await?;
    let now = state.clock.now();
    let keep = principal.session_id();
    let auditor = state.auditor.clone();
    let email_settings = state.settings.email.clone();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                if store::replace_password_hash(
                    conn,
                    id,
                    // Set whenever the current password matched; an account without a password
                    // never gets here (its verification is a mismatch).
                    verified_hash.as_deref().unwrap_or_default(),
                    &hash,
                    now,
                )? == 0
                {
                    // Another change (with the same current password) committed first.
                    return Err(AppError::Conflict(vec![FieldError::new(
                        "current_password",
                        "no longer matches: the password was changed by another request",
                    )]));
                }
                let revoked = sessions::revoke_all_in_tx(
                    conn,
                    &auditor,
                    &meta,
                    sessions::RevokeAll {
                        user_id: id,
                        keep,
                        reason: "password_changed",
                        actor: Actor::user(id),
                    },
                    now,
                )?;
                auditor.record(
                    conn,
                    &meta,
                    Event {
                        action: Action::AuthPasswordChanged,
                        outcome: Outcome::Success,
                        actor: Actor::user(id),
                        target: Some(("user".into(), id.to_string())),
                        metadata: serde_json::json!({ "sessions_revoked": revoked }),
                    },
                )?;
                crate::email::notify_in_tx(
                    conn,
                    &email_settings,
                    id,
                    crate::email::Notice::PasswordChanged,
                    now,
                )?;
                Ok(())
            })
        })
        .await
}
