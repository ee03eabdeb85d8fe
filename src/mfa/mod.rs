//! Multi-factor authentication: a user's TOTP factor (RFC 6238) and recovery codes, and the
//! pending second step of a password sign-in (`mfa_challenges`). Owns those three tables.
//!
//! - The TOTP secret is Fernet-encrypted under the user's data key (`users::data_keys`): erasure
//!   destroys the key and the secret with it. It is shown once, at enrolment.
//! - A time step is accepted once: [`accept_in_tx`] moves `last_step` forward in one conditional
//!   UPDATE, so a code cannot be replayed within its ±1-step window (ASVS 6.5.1), even by racing
//!   requests.
//! - Recovery codes: ten, 100 random bits each (a 20-bit lookup group and 80 secret bits), shown
//!   once, stored as argon2id hashes (each its own salt, ASVS 6.5.2), each spent by one conditional
//!   UPDATE.
//!
//! **Boundary.** Verifies factors; decides nothing about sign-in, lockout or sessions — `accounts`
//! does (password, lockout, the second step of login, step-up) and calls this module, never the
//! reverse.

pub mod model;
pub mod routes;
pub mod store;

use std::collections::HashSet;

use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use self::model::{NewRecovery, NewTotp};
use crate::audit::{Action, Actor, Auditor, Event, Outcome, RequestMeta};
use crate::crypto::hmac::hash_token;
use crate::crypto::keyring::KeyRing;
use crate::error::{AppError, FieldError};
use crate::state::AppState;
use crate::users::data_keys;

/// How long the second step of a sign-in may wait.
pub const CHALLENGE_TTL: std::time::Duration = std::time::Duration::from_secs(300);
/// The issuer label authenticator apps show.
pub const ISSUER: &str = "rampart";

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    /// Enrolment while a confirmed factor exists (disable it first).
    #[error("a second factor is already enabled")]
    AlreadyEnabled,
    /// Confirmation without a started enrolment.
    #[error("no enrolment is waiting for confirmation")]
    NothingPending,
    /// An operation on the factor of a user who has none.
    #[error("no second factor is enabled")]
    NotEnabled,
    /// The code is not a current code of the pending factor.
    #[error("the code is not valid")]
    InvalidCode,
    /// The user's data key was destroyed (the account was erased).
    #[error("the account's data key is gone")]
    KeyUnavailable,
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<diesel::result::Error> for MfaError {
    fn from(error: diesel::result::Error) -> Self {
        MfaError::App(error.into())
    }
}

impl From<data_keys::DataKeyError> for MfaError {
    fn from(error: data_keys::DataKeyError) -> Self {
        match error {
            data_keys::DataKeyError::Destroyed => MfaError::KeyUnavailable,
            data_keys::DataKeyError::Db(e) => MfaError::App(e.into()),
            other => MfaError::App(AppError::internal(other)),
        }
    }
}

impl From<MfaError> for AppError {
    fn from(error: MfaError) -> Self {
        let conflict =
            |field: &str, message: &str| AppError::Conflict(vec![FieldError::new(field, message)]);
        match error {
            MfaError::AlreadyEnabled => conflict(
                "totp",
                "an authenticator is already enabled; disable it first to enrol another",
            ),
            MfaError::NothingPending => conflict(
                "code",
                "no enrolment is waiting; start one with POST /api/v1/me/mfa/totp",
            ),
            MfaError::NotEnabled => conflict("totp", "no second factor is enabled"),
            MfaError::InvalidCode => AppError::Validation(vec![FieldError::new(
                "code",
                "is not the current 6-digit code of your authenticator",
            )]),
            MfaError::KeyUnavailable => conflict("account", "this account was erased"),
            MfaError::App(e) => e,
        }
    }
}

/// Which factor proved the second step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Totp,
    Recovery,
}

impl Method {
    /// The RFC 8176 `amr` value.
    pub fn amr(self) -> &'static str {
        match self {
            Method::Totp => "otp",
            Method::Recovery => "rec",
        }
    }
}

/// A second factor as a client sent it: a code from the authenticator, or a recovery code.
#[derive(Debug, Clone)]
pub enum SecondFactor {
    Code(String),
    Recovery(SecretString),
}

impl SecondFactor {
    /// Exactly one of `code` / `recovery_code` (422 otherwise).
    pub fn from_fields(
        code: Option<String>,
        recovery_code: Option<SecretString>,
    ) -> Result<SecondFactor, AppError> {
        match (code, recovery_code) {
            (Some(code), None) => Ok(SecondFactor::Code(code)),
            (None, Some(recovery)) => Ok(SecondFactor::Recovery(recovery)),
            (Some(_), Some(_)) => Err(AppError::Validation(vec![FieldError::new(
                "code",
                "send either `code` or `recovery_code`, not both",
            )])),
            (None, None) => Err(AppError::Validation(vec![FieldError::new(
                "code",
                "is required (or `recovery_code`)",
            )])),
        }
    }
}

/// A second factor checked as far as it can be outside the transaction that accepts it: a TOTP
/// code is checked inside (it is cheap and its step must move in the same transaction); a
/// recovery code's argon2 hash is verified here, off the connection.
#[derive(Debug, Clone)]
pub enum Prepared {
    Totp(String),
    /// The recovery code row whose hash matched.
    Recovery(Uuid),
    /// A recovery code that matches nothing.
    Invalid,
}

/// What an accepted second factor was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub method: Method,
    /// Unused recovery codes left, when one was spent.
    pub recovery_codes_left: Option<i64>,
}

/// `POST /api/v1/me/mfa/totp`'s answer: shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Enrolment {
    /// The secret in base32, for apps that cannot scan.
    pub secret: String,
    pub otpauth_uri: String,
    /// The `otpauth_uri` as a QR code (an SVG document drawn by rampart).
    pub qr_svg: String,
}

/// Whether a user has a second factor.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MfaStatus {
    pub totp: bool,
    /// An enrolment started and not yet confirmed.
    pub pending: bool,
    pub recovery_codes_left: i64,
}

/// Recovery codes, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// Starts (or restarts) enrolment: a new 160-bit secret, stored encrypted and pending until a
/// code from it is confirmed. Refused while a confirmed factor exists. Audited.
pub async fn start_enrolment(
    state: &AppState,
    user_id: Uuid,
    account: &str,
    actor: Actor,
    meta: RequestMeta,
) -> Result<Enrolment, MfaError> {
    let secret = crate::crypto::random::bytes(model::SECRET_BYTES).map_err(AppError::internal)?;
    let totp = model::totp(&secret, ISSUER, account)
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("TOTP parameters refused")))?;
    let otpauth_uri = totp
        .to_url()
        .map_err(|e| AppError::internal(anyhow::anyhow!("otpauth uri: {e}")))?;
    let qr_svg = model::qr_svg(&otpauth_uri)
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("QR code could not be drawn")))?;
    let encoded = model::base32(&secret);
    let ring = state.keyring.clone();
    let auditor = state.auditor.clone();
    let now = state.clock.now();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, MfaError, _>(|conn| {
                if store::has_factor(conn, user_id)? {
                    return Err(MfaError::AlreadyEnabled);
                }
                let (key_id, key) = data_keys::for_writing(conn, &ring, user_id, now)?;
                let sealed = key.encrypt(&secret);
                store::put_pending(
                    conn,
                    &NewTotp {
                        user_id,
                        data_key_id: key_id,
                        secret: &sealed,
                        created_at: now,
                        confirmed_at: None,
                        last_step: -1,
                    },
                )?;
                auditor.record(
                    conn,
                    &meta,
                    Event::new(Action::MfaEnrolmentStarted, Outcome::Success, actor)
                        .target("user", user_id)
                        .metadata(serde_json::json!({ "method": "totp" })),
                )?;
                Ok(())
            })
            .map_or_else(split, |v| Ok(Ok(v)))
        })
        .await??;
    Ok(Enrolment {
        secret: encoded,
        otpauth_uri,
        qr_svg,
    })
}

/// Confirms the pending enrolment with a current code: the factor becomes active and ten
/// recovery codes are issued (returned once). Audited as `mfa.enabled`.
pub async fn confirm_enrolment(
    state: &AppState,
    user_id: Uuid,
    code: String,
    actor: Actor,
    meta: RequestMeta,
) -> Result<RecoveryCodes, MfaError> {
    let ring = state.keyring.clone();
    let now = state.clock.now();
    // First the code, in its own transaction (its step is spent even if what follows fails, so a
    // code is never accepted twice); then the hashes (argon2, off the connection).
    let created_at = state
        .pool
        .run(move |conn| {
            conn.transaction::<_, MfaError, _>(|conn| {
                let Some(row) = store::lock_totp(conn, user_id)? else {
                    return Err(MfaError::NothingPending);
                };
                if row.confirmed_at.is_some() {
                    return Err(MfaError::AlreadyEnabled);
                }
                let totp = open_totp(conn, &ring, &row)?;
                let step = model::check(&totp, &code, now).ok_or(MfaError::InvalidCode)?;
                if !store::accept_step(conn, user_id, step, true)? {
                    return Err(MfaError::InvalidCode);
                }
                Ok(row.created_at)
            })
            .map_or_else(split, |v| Ok(Ok(v)))
        })
        .await??;
    let (codes, rows) = new_recovery_codes(state, user_id, now).await?;
    let auditor = state.auditor.clone();
    let email_settings = state.settings.email.clone();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, MfaError, _>(|conn| {
                if !store::confirm(conn, user_id, created_at, now)? {
                    // Confirmed by a racing request, or replaced by a new enrolment meanwhile.
                    return Err(MfaError::NothingPending);
                }
                store::replace_recovery_codes(conn, user_id, &rows)?;
                auditor.record(
                    conn,
                    &meta,
                    Event::new(Action::MfaEnabled, Outcome::Success, actor)
                        .target("user", user_id)
                        .metadata(serde_json::json!({
                            "method": "totp",
                            "recovery_codes": rows.len(),
                        })),
                )?;
                crate::email::notify_in_tx(
                    conn,
                    &email_settings,
                    user_id,
                    crate::email::Notice::MfaEnabled,
                    now,
                )?;
                Ok(())
            })
            .map_or_else(split, |v| Ok(Ok(v)))
        })
        .await??;
    Ok(RecoveryCodes {
        recovery_codes: codes,
    })
}

/// Replaces the user's recovery codes with ten new ones (the old ones stop working). The caller
/// has checked step-up. Audited.
pub async fn regenerate_recovery_codes(
    state: &AppState,
    user_id: Uuid,
    actor: Actor,
    meta: RequestMeta,
) -> Result<RecoveryCodes, MfaError> {
    let now = state.clock.now();
    let enabled = state
        .pool
        .run(move |conn| Ok(store::has_factor(conn, user_id)?))
        .await?;
    if !enabled {
        return Err(MfaError::NotEnabled);
    }
    let (codes, rows) = new_recovery_codes(state, user_id, now).await?;
    let auditor = state.auditor.clone();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, MfaError, _>(|conn| {
                if !store::has_factor(conn, user_id)? {
                    return Err(MfaError::NotEnabled);
                }
                store::replace_recovery_codes(conn, user_id, &rows)?;
                auditor.record(
                    conn,
                    &meta,
                    Event::new(Action::MfaRecoveryCodesRegenerated, Outcome::Success, actor)
                        .target("user", user_id)
                        .metadata(serde_json::json!({ "recovery_codes": rows.len() })),
                )?;
                Ok(())
            })
            .map_or_else(split, |v| Ok(Ok(v)))
        })
        .await??;
    Ok(RecoveryCodes {
        recovery_codes: codes,
    })
}

/// Ten fresh codes and their rows (argon2id hashes, one at a time on the bounded hashing pool).
async fn new_recovery_codes(
    state: &AppState,
    user_id: Uuid,
    now: OffsetDateTime,
) -> Result<(Vec<String>, Vec<NewRecovery>), MfaError> {
    let mut codes = Vec::with_capacity(model::RECOVERY_CODES);
    let mut rows = Vec::with_capacity(model::RECOVERY_CODES);
    for _ in 0..model::RECOVERY_CODES {
        let code = model::new_recovery_code().map_err(AppError::internal)?;
        let canonical = model::canonical(&code);
        let hash = state
            .hasher
            .hash(SecretString::from(canonical.clone()))
            .await
            .map_err(hash_error)?;
        rows.push(NewRecovery {
            id: Uuid::now_v7(),
            user_id,
            lookup: model::lookup_of(&canonical),
            code_hash: hash,
            created_at: now,
        });
        codes.push(code.expose_secret().to_string());
    }
    Ok((codes, rows))
}

fn hash_error(error: crate::crypto::passwords::HashError) -> MfaError {
    match error {
        crate::crypto::passwords::HashError::Busy => MfaError::App(AppError::Unavailable {
            retry_after: 1,
            reason: "password hashing",
        }),
        other => MfaError::App(AppError::internal(anyhow::anyhow!(
            "hashing failed: {other}"
        ))),
    }
}

/// `pool.run` wants `AppError`: an infrastructure failure travels as one, a refusal of this
/// feature as the inner `Err`.
fn split<T>(error: MfaError) -> Result<Result<T, MfaError>, AppError> {
    match error {
        MfaError::App(e) => Err(e),
        other => Ok(Err(other)),
    }
}

/// The generator of a stored factor (its secret decrypted under the user's data key).
fn open_totp(
    conn: &mut PgConnection,
    ring: &KeyRing,
    row: &model::TotpRow,
) -> Result<totp_rs::Totp, MfaError> {
    let keys = data_keys::open(conn, ring, &[row.data_key_id])?;
    let secret = keys
        .decrypt(row.data_key_id, &row.secret)
        .ok_or(MfaError::KeyUnavailable)?;
    // The account name is only a label for apps; checking a code does not read it.
    model::totp(&secret, ISSUER, "user")
        .ok_or_else(|| MfaError::App(AppError::internal(anyhow::anyhow!("stored TOTP secret"))))
}

/// Checks what can be checked off the connection (a recovery code's hash). Unknown lookups still
/// cost one hash verification (no timing difference between "no such code" and "wrong code").
pub async fn prepare(
    state: &AppState,
    user_id: Uuid,
    factor: SecondFactor,
) -> Result<Prepared, AppError> {
    let recovery = match factor {
        SecondFactor::Code(code) => return Ok(Prepared::Totp(code)),
        SecondFactor::Recovery(code) => code,
    };
    let Some(canonical) = model::normalize_recovery_code(recovery.expose_secret()) else {
        state
            .hasher
            .verify(recovery, None)
            .await
            .map_err(AppError::from)?;
        return Ok(Prepared::Invalid);
    };
    let lookup = model::lookup_of(&canonical);
    let candidates = state
        .pool
        .run(move |conn| Ok(store::recovery_candidates(conn, user_id, &lookup)?))
        .await?;
    if candidates.is_empty() {
        state
            .hasher
            .verify(SecretString::from(canonical), None)
            .await
            .map_err(AppError::from)?;
        return Ok(Prepared::Invalid);
    }
    for candidate in candidates {
        let verdict = state
            .hasher
            .verify(
                SecretString::from(canonical.clone()),
                Some(candidate.code_hash.clone()),
            )
            .await
            .map_err(AppError::from)?;
        if verdict.matches {
            return Ok(Prepared::Recovery(candidate.id));
        }
    }
    Ok(Prepared::Invalid)
}

/// Accepts a prepared second factor inside the caller's transaction: a TOTP code of the user's
/// confirmed factor for a step later than any accepted before, or an unused recovery code (spent
/// now, and audited). `None` when it is not accepted; nothing changed then.
#[allow(clippy::too_many_arguments)]
pub fn accept_in_tx(
    conn: &mut PgConnection,
    ring: &KeyRing,
    auditor: &Auditor,
    email: &crate::config::settings::EmailSettings,
    meta: &RequestMeta,
    user_id: Uuid,
    prepared: &Prepared,
    now: OffsetDateTime,
) -> Result<Option<Accepted>, AppError> {
    match prepared {
        Prepared::Invalid => Ok(None),
        Prepared::Totp(code) => {
            let Some(row) = store::find_totp(conn, user_id)? else {
                return Ok(None);
            };
            if row.confirmed_at.is_none() {
                return Ok(None);
            }
            let totp = match open_totp(conn, ring, &row) {
                Ok(totp) => totp,
                Err(MfaError::KeyUnavailable) => return Ok(None),
                Err(other) => return Err(other.into()),
            };
            let Some(step) = model::check(&totp, code, now) else {
                return Ok(None);
            };
            if !store::accept_step(conn, user_id, step, false)? {
                return Ok(None);
            }
            Ok(Some(Accepted {
                method: Method::Totp,
                recovery_codes_left: None,
            }))
        }
        Prepared::Recovery(id) => {
            if !store::spend_recovery_code(conn, *id, user_id, now)? {
                return Ok(None);
            }
            let left = store::recovery_codes_left(conn, user_id)?;
            auditor.record(
                conn,
                meta,
                Event::new(
                    Action::MfaRecoveryCodeUsed,
                    Outcome::Success,
                    Actor::user(user_id),
                )
                .target("user", user_id)
                .metadata(serde_json::json!({ "recovery_codes_left": left })),
            )?;
            crate::email::notify_in_tx(
                conn,
                email,
                user_id,
                crate::email::Notice::RecoveryCodeUsed { left },
                now,
            )?;
            Ok(Some(Accepted {
                method: Method::Recovery,
                recovery_codes_left: Some(left),
            }))
        }
    }
}

/// Whether the user has a confirmed second factor.
pub fn has_factor(conn: &mut PgConnection, user_id: Uuid) -> Result<bool, AppError> {
    Ok(store::has_factor(conn, user_id)?)
}

/// Which of `ids` have a confirmed second factor (console lists).
pub fn with_factor_among(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashSet<Uuid>, AppError> {
    Ok(store::with_factor_among(conn, ids)?)
}

/// Active admins without a second factor (console dashboard).
pub fn admins_without_factor(conn: &mut PgConnection) -> Result<i64, AppError> {
    Ok(store::admins_without_factor(conn)?)
}

/// The user's factor state.
pub async fn status(state: &AppState, user_id: Uuid) -> Result<MfaStatus, AppError> {
    state
        .pool
        .run(move |conn| {
            let row = store::find_totp(conn, user_id)?;
            Ok(MfaStatus {
                totp: row.as_ref().is_some_and(|r| r.confirmed_at.is_some()),
                pending: row.as_ref().is_some_and(|r| r.confirmed_at.is_none()),
                recovery_codes_left: store::recovery_codes_left(conn, user_id)?,
            })
        })
        .await
}

/// Removes the user's factor, recovery codes and pending sign-in challenges, inside the caller's
/// transaction (disable, operator reset, erasure); whether a confirmed factor was removed.
pub fn remove_in_tx(conn: &mut PgConnection, user_id: Uuid) -> Result<bool, AppError> {
    Ok(store::remove_all(conn, user_id)?)
}

/// Where a sign-in challenge was issued; it completes only there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Api,
    Console,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Api => "api",
            Purpose::Console => "console",
        }
    }
}

/// The IP text a challenge is bound to (`-` when the request had none).
fn ip_text(meta: &RequestMeta) -> String {
    meta.ip.map_or_else(|| "-".to_string(), |ip| ip.to_string())
}

/// Issues the second step of a sign-in for `user_id` (inside the caller's transaction): a
/// 256-bit token shown once, bound to the user, the client IP and `purpose`, valid 5 minutes.
pub fn issue_challenge_in_tx(
    conn: &mut PgConnection,
    user_id: Uuid,
    purpose: Purpose,
    meta: &RequestMeta,
    now: OffsetDateTime,
) -> Result<String, AppError> {
    let token = crate::crypto::random::secret_string().map_err(AppError::internal)?;
    store::insert_challenge(
        conn,
        &hash_token(&token),
        user_id,
        purpose.as_str(),
        &ip_text(meta),
        now,
        crate::clock::after(now, CHALLENGE_TTL),
    )?;
    Ok(token)
}

/// The user a challenge token was issued to, if it is unused, unexpired, for `purpose`, and
/// presented from the IP it was issued to.
pub fn challenge_user(
    conn: &mut PgConnection,
    token: &str,
    purpose: Purpose,
    meta: &RequestMeta,
    now: OffsetDateTime,
) -> Result<Option<Uuid>, AppError> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    Ok(store::challenge_user(
        conn,
        &hash_token(token),
        purpose.as_str(),
        &ip_text(meta),
        now,
    )?)
}

/// Spends a challenge inside the caller's transaction: true for exactly one request.
pub fn spend_challenge_in_tx(
    conn: &mut PgConnection,
    token: &str,
    user_id: Uuid,
    now: OffsetDateTime,
) -> Result<bool, AppError> {
    Ok(store::spend_challenge(
        conn,
        &hash_token(token),
        user_id,
        now,
    )?)
}
