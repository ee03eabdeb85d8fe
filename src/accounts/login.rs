//! Password sign-in: the account lockout (attempts reserved in Postgres before hashing), the
//! uniform failure, hash upgrades, and the API login that starts a session. The console's sign-in
//! uses [`verify_credentials`] too, so both share one lockout.

use diesel::Connection;
use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{Action, Actor, Event, Outcome, RequestMeta};
use crate::auth::Role;
use crate::clock;
use crate::error::AppError;
use crate::sessions::{self, AppStateRef, Assurance, TokenPair};
use crate::state::AppState;
use crate::users::User;
use crate::users::store;

/// Why a login failed — recorded in the audit log, never told to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailureReason {
    UnknownUser,
    BadPassword,
    Disabled,
    Locked,
    /// The console admits admins only; the password was right.
    NotAdmin,
    /// A wrong TOTP or recovery code (second step, step-up, disabling the factor).
    BadSecondFactor,
}

impl FailureReason {
    fn as_str(self) -> &'static str {
        match self {
            FailureReason::UnknownUser => "unknown_user",
            FailureReason::BadPassword => "bad_password",
            FailureReason::Disabled => "disabled",
            FailureReason::Locked => "locked",
            FailureReason::NotAdmin => "not_admin",
            FailureReason::BadSecondFactor => "bad_second_factor",
        }
    }
}

/// How long the account is locked after `failures` consecutive failures, if at all:
/// threshold → base, doubling per further failure, capped.
pub fn lockout_duration(
    failures: i32,
    threshold: i32,
    base: std::time::Duration,
    max: std::time::Duration,
) -> Option<std::time::Duration> {
    if failures < threshold {
        return None;
    }
    let doublings = u32::try_from(failures - threshold)
        .unwrap_or(u32::MAX)
        .min(30);
    Some(base.saturating_mul(1u32 << doublings).min(max))
}

/// Where a password sign-in comes from: the API, or the admin console (its own audit actions,
/// and only admins get in). Both share one lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    Api,
    Console,
}

impl SignIn {
    fn failed(self) -> Action {
        match self {
            SignIn::Api => Action::AuthLoginFailed,
            SignIn::Console => Action::AdminLoginFailed,
        }
    }
}

/// A user whose password was just verified, with the stronger hash to store if theirs was weak.
pub struct Verified {
    pub user: User,
    pub upgraded_hash: Option<String>,
    /// This verification's reservation against the lockout: reset by [`record_success`] (a
    /// completed sign-in), or given back when the sign-in waits for its second factor.
    pub(super) attempt: Option<Attempt>,
}

/// One password verification reserved against an account's lockout budget, before hashing.
///
/// The lock is read and the failure counted in one conditional UPDATE ([`store::reserve_attempt`]),
/// so however many attempts arrive at once, at most LOCKOUT_THRESHOLD of them reach the real hash
/// per lock window: the attempt that reaches the threshold locks the account as it reserves, and
/// every later one finds it locked. A right password resets the count (as a success always did);
/// a wrong one leaves its reservation as the failure; an attempt that never reached a verdict
/// gives its reservation back ([`release`]).
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    user_id: Uuid,
    /// The failure count including this attempt.
    failures: i32,
    /// The lock this reservation set (it reached the threshold), and for how long.
    lock: Option<(OffsetDateTime, std::time::Duration)>,
}

/// Reserves an attempt for `user_id` at `now`; `None` when the account is locked.
pub(super) fn reserve(
    conn: &mut diesel::PgConnection,
    auth: &crate::config::settings::AuthSettings,
    user_id: Uuid,
    now: OffsetDateTime,
) -> Result<Option<Attempt>, AppError> {
    conn.transaction::<_, AppError, _>(|conn| {
        let Some(failures) = store::reserve_attempt(conn, user_id, now)? else {
            return Ok(None);
        };
        let lock = lockout_duration(
            failures,
            auth.lockout_threshold,
            auth.lockout_base,
            auth.lockout_max,
        )
        .map(|duration| (clock::after(now, duration), duration));
        if let Some((until, _)) = lock {
            store::set_locked_until(conn, user_id, until)?;
        }
        Ok(Some(Attempt {
            user_id,
            failures,
            lock,
        }))
    })
}

/// Gives an attempt's reservation back when its verification never reached a verdict.
pub(super) async fn release(state: &AppState, attempt: Option<Attempt>) {
    let Some(attempt) = attempt else { return };
    let until = attempt.lock.map(|(until, _)| until);
    let released = state
        .pool
        .run(move |conn| Ok(store::release_attempt(conn, attempt.user_id, until)?))
        .await;
    if let Err(error) = released {
        tracing::warn!(%error, "could not release a login attempt reservation");
    }
}

/// Clears the lockout state once a password was proven right (nothing else changes).
pub(super) async fn reset_failures(state: &AppState, user_id: Uuid) -> Result<(), AppError> {
    let now = state.clock.now();
    state
        .pool
        .run(move |conn| Ok(store::record_success(conn, user_id, None, now)?))
        .await
        .map(|_| ())
}

/// Checks username-or-email + password with the lockout rules. Every failure is the same
/// `Unauthorized` (audited with its real reason) and costs one password verification whether or
/// not the account exists. The caller records the success with [`record_success`] in the
/// transaction that starts its session.
pub async fn verify_credentials(
    state: &AppState,
    login: String,
    password: SecretString,
    meta: &RequestMeta,
    sign_in: SignIn,
) -> Result<Verified, AppError> {
    let lookup = login.clone();
    let auth = state.settings.auth.clone();
    let now = state.clock.now();
    let (user, attempt) = state
        .pool
        .run(move |conn| {
            let Some(user) = store::find_by_login(conn, &lookup)? else {
                return Ok((None, None));
            };
            let attempt = reserve(conn, &auth, user.id, now)?;
            Ok((Some(user), attempt))
        })
        .await?;
    let locked = user.is_some() && attempt.is_none();
    // The locked path verifies against the dummy hash: same cost, no information.
    let stored = if locked {
        None
    } else {
        user.as_ref().and_then(|u| u.password_hash.clone())
    };
    let verification = match state.hasher.verify(password.clone(), stored).await {
        Ok(v) => v,
        Err(error) => {
            release(state, attempt).await;
            return Err(error.into());
        }
    };
    let failure = match &user {
        None => Some(FailureReason::UnknownUser),
        Some(_) if locked => Some(FailureReason::Locked),
        Some(_) if !verification.matches => Some(FailureReason::BadPassword),
        Some(u) if !u.active => Some(FailureReason::Disabled),
        Some(u) if sign_in == SignIn::Console && u.role() != Role::Admin => {
            Some(FailureReason::NotAdmin)
        }
        Some(_) => None,
    };
    if let Some(reason) = failure {
        if verification.matches
            && let Some(user) = &user
        {
            // Disabled, or not an admin at the console: the password itself was right.
            reset_failures(state, user.id).await?;
        }
        record_failure(
            state,
            user.as_ref().map(|u| u.id),
            &login,
            reason,
            attempt.filter(|_| reason == FailureReason::BadPassword),
            meta.clone(),
            sign_in.failed(),
        )
        .await?;
        return Err(AppError::Unauthorized);
    }
    let Some(user) = user else {
        return Err(AppError::Unauthorized);
    };
    // Upgrade bcrypt or weak argon2 hashes now that the password is known to be right.
    let upgraded_hash = if verification.needs_rehash {
        match state.hasher.hash(password).await {
            Ok(hash) => Some(hash),
            Err(error) => {
                release(state, attempt).await;
                return Err(error.into());
            }
        }
    } else {
        None
    };
    Ok(Verified {
        user,
        upgraded_hash,
        attempt,
    })
}

/// A successful sign-in, inside the caller's transaction: clears the failure count and stores
/// the upgraded hash, if any.
pub fn record_success(
    conn: &mut diesel::PgConnection,
    verified: &Verified,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    store::record_success(
        conn,
        verified.user.id,
        verified.upgraded_hash.as_deref(),
        now,
    )?;
    Ok(())
}

/// What a right password leads to: tokens, or — when the account has a second factor — the
/// challenge for the second step.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LoginOutcome {
    Tokens(TokenPair),
    Mfa(super::factors::MfaChallenge),
}

/// Username-or-email + password → a new session, or the second step when the account has a
/// factor (no token, no session; the right password neither counts as a failure nor resets the
/// count — only a completed second step does). Every failure is the same `Unauthorized`, and costs
/// one password verification whether or not the account exists.
pub async fn login(
    state: &AppState,
    login: String,
    password: SecretString,
    meta: RequestMeta,
) -> Result<LoginOutcome, AppError> {
    let verified = verify_credentials(state, login, password, &meta, SignIn::Api).await?;
    let now = state.clock.now();
    let tx_state = AppStateRef::from(state);
    let session_ttl = state.settings.auth.refresh_token_ttl;
    let email_settings = state.settings.email.clone();
    let attempt = verified.attempt;
    let outcome = state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                let user = &verified.user;
                if crate::mfa::has_factor(conn, user.id)? {
                    if let Some(hash) = &verified.upgraded_hash {
                        store::upgrade_password_hash(conn, user.id, hash, now)?;
                    }
                    let challenge = super::factors::challenge_in_tx(
                        conn,
                        &tx_state,
                        user.id,
                        crate::mfa::Purpose::Api,
                        &meta,
                        now,
                    )?;
                    return Ok(LoginOutcome::Mfa(challenge));
                }
                record_success(conn, &verified, now)?;
                crate::email::device_seen_in_tx(conn, &email_settings, user.id, &meta, now)?;
                let assurance = Assurance::password();
                let (session, refresh) =
                    sessions::start(conn, user.id, &meta, now, session_ttl, &assurance)?;
                tx_state.auditor.record(
                    conn,
                    &meta,
                    Event {
                        action: Action::AuthLoginSucceeded,
                        outcome: Outcome::Success,
                        actor: Actor::user(user.id),
                        target: Some(("session".into(), session.id.to_string())),
                        metadata: serde_json::json!({
                            "hash_upgraded": verified.upgraded_hash.is_some()
                        }),
                    },
                )?;
                let pair = tx_state.token_pair(
                    user.id,
                    session.id,
                    user.role(),
                    refresh,
                    now,
                    &assurance,
                )?;
                Ok(LoginOutcome::Tokens(pair))
            })
        })
        .await;
    match &outcome {
        // Neither a failure nor a completed sign-in: the reservation is given back.
        Ok(LoginOutcome::Mfa(_)) | Err(_) => release(state, attempt).await,
        Ok(LoginOutcome::Tokens(_)) => {}
    }
    outcome
}

/// Audits a failed verification. A wrong password was already counted when its attempt was
/// reserved; when that reservation locked the account, the lockout is audited here too.
pub(super) async fn record_failure(
    state: &AppState,
    user_id: Option<Uuid>,
    login: &str,
    reason: FailureReason,
    counted: Option<Attempt>,
    meta: RequestMeta,
    action: Action,
) -> Result<(), AppError> {
    let auditor = state.auditor.clone();
    let email_settings = state.settings.email.clone();
    let now = state.clock.now();
    // The login name is attacker-chosen: bounded, and only recorded for unknown users.
    let attempted: String = login.chars().take(100).collect();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                let actor = match user_id {
                    Some(id) => Actor::user(id),
                    None => Actor::anonymous(),
                };
                let mut metadata = serde_json::json!({ "reason": reason.as_str() });
                // Audit rows name people by id; the name an unknown login tried is kept only as
                // a keyed pseudonym (`audit::pseudonym`), so erasure never needs a row rewritten.
                if user_id.is_none() {
                    metadata["login_pseudonym"] =
                        serde_json::Value::String(auditor.anonymous_pseudonym(&attempted));
                }
                auditor.record(
                    conn,
                    &meta,
                    Event {
                        action,
                        outcome: Outcome::Failure,
                        actor: actor.clone(),
                        target: user_id.map(|id| ("user".into(), id.to_string())),
                        metadata,
                    },
                )?;
                if let Some(Attempt {
                    user_id,
                    failures,
                    lock: Some((until, duration)),
                }) = counted
                {
                    crate::email::notify_in_tx(
                        conn,
                        &email_settings,
                        user_id,
                        crate::email::Notice::AccountLocked { until },
                        now,
                    )?;
                    auditor.record(
                        conn,
                        &meta,
                        Event {
                            action: Action::AuthLockout,
                            outcome: Outcome::Denied,
                            actor,
                            target: Some(("user".into(), user_id.to_string())),
                            metadata: serde_json::json!({
                                "failures": failures,
                                "locked_seconds": duration.as_secs(),
                            }),
                        },
                    )?;
                }
                Ok(())
            })
        })
        .await
}
