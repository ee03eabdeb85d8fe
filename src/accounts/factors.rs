//! The authentication events that involve a second factor: the second step of a password sign-in
//! (API and console), step-up re-authentication, disabling a factor, and the operator's reset.
//! Factors are verified by `mfa`; the lockout, sessions and audit rules stay here, so a wrong
//! code counts towards the same lockout as a wrong password.

use diesel::Connection;
use secrecy::SecretString;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::login::{Attempt, FailureReason, record_failure, release, reserve};
use crate::audit::{Action, Actor, Event, Outcome, RequestMeta};
use crate::auth::{Credential, Principal};
use crate::error::{AppError, FieldError};
use crate::mfa::{self, Accepted, Prepared, Purpose, SecondFactor};
use crate::sessions::{self, AppStateRef, Assurance, TokenPair};
use crate::state::AppState;
use crate::users::User;
use crate::users::store;

/// The answer to a right password when the account has a second factor: no token yet.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MfaChallenge {
    /// Always `true`.
    pub mfa_required: bool,
    /// Single use, valid 5 minutes, only from this client IP: send it to `POST /api/v1/auth/mfa`.
    pub mfa_token: String,
    /// `totp` and `recovery_code`.
    pub methods: Vec<&'static str>,
    pub expires_in: u64,
}

/// What proves the person: the password, a second factor, or both.
pub struct Proof {
    pub password: Option<SecretString>,
    pub factor: Option<SecondFactor>,
}

/// How a proof ended.
pub(super) enum Proved<T> {
    Done(T),
    /// A wrong password or code (counted, audited).
    Wrong,
    /// The account is locked until then (nothing checked).
    Locked(Option<OffsetDateTime>),
}

/// Checks `proof` for `user_id` under the account lockout: the attempt is reserved before any
/// hashing; a wrong password or code stays counted (and is audited as `failed`, with the lockout
/// when it locked the account); a right one resets the count inside the transaction in which
/// `finish` then runs. An error from `finish` (e.g. a challenge spent by a racing request) is no
/// verdict: the reservation is given back and the error returned.
pub(super) async fn prove<F, T>(
    state: &AppState,
    user: User,
    proof: Proof,
    meta: &RequestMeta,
    failed: Action,
    finish: F,
) -> Result<Proved<T>, AppError>
where
    F: FnOnce(&mut diesel::PgConnection, &User, Option<Accepted>) -> Result<T, AppError>
        + Send
        + 'static,
    T: Send + 'static,
{
    let user_id = user.id;
    let auth = state.settings.auth.clone();
    let now = state.clock.now();
    let attempt = state
        .pool
        .run(move |conn| match reserve(conn, &auth, user_id, now)? {
            Some(attempt) => Ok(Ok(attempt)),
            None => Ok(Err(store::locked_until(conn, user_id)?)),
        })
        .await?;
    let attempt = match attempt {
        Ok(attempt) => attempt,
        Err(until) => {
            record_failure(
                state,
                Some(user_id),
                &user.username,
                FailureReason::Locked,
                None,
                meta.clone(),
                failed,
            )
            .await?;
            return Ok(Proved::Locked(until));
        }
    };
    match check(state, &user, proof, attempt).await? {
        Ok(prepared) => {
            let ring = state.keyring.clone();
            let auditor = state.auditor.clone();
            let email = state.settings.email.clone();
            let tx_meta = meta.clone();
            let done = state
                .pool
                .run(move |conn| {
                    conn.transaction::<_, AppError, _>(|conn| {
                        let accepted = match &prepared {
                            None => None,
                            Some(prepared) => {
                                match mfa::accept_in_tx(
                                    conn, &ring, &auditor, &email, &tx_meta, user_id, prepared, now,
                                )? {
                                    Some(accepted) => Some(accepted),
                                    None => return Ok(None),
                                }
                            }
                        };
                        store::record_success(conn, user_id, None, now)?;
                        finish(conn, &user, accepted).map(Some)
                    })
                })
                .await;
            match done {
                Ok(Some(value)) => Ok(Proved::Done(value)),
                Ok(None) => {
                    let reason = FailureReason::BadSecondFactor;
                    wrong(state, user_id, attempt, meta, failed, reason).await?;
                    Ok(Proved::Wrong)
                }
                Err(error) => {
                    release(state, Some(attempt)).await;
                    Err(error)
                }
            }
        }
        Err(reason) => {
            wrong(state, user_id, attempt, meta, failed, reason).await?;
            Ok(Proved::Wrong)
        }
    }
}

/// The password (when part of the proof) and the factor's off-connection part: what to accept in
/// the transaction (`None` when only a password was asked for and it matched), or why the proof
/// is certainly wrong (nothing accepted yet).
async fn check(
    state: &AppState,
    user: &User,
    proof: Proof,
    attempt: Attempt,
) -> Result<Result<Option<Prepared>, FailureReason>, AppError> {
    let outcome = async {
        if let Some(password) = proof.password {
            let verification = state
                .hasher
                .verify(password, user.password_hash.clone())
                .await?;
            if !verification.matches {
                return Ok(Err(FailureReason::BadPassword));
            }
        }
        match proof.factor {
            None => Ok(Ok(None)),
            Some(factor) => match mfa::prepare(state, user.id, factor).await? {
                Prepared::Invalid => Ok(Err(FailureReason::BadSecondFactor)),
                prepared => Ok(Ok(Some(prepared))),
            },
        }
    }
    .await;
    if outcome.is_err() {
        release(state, Some(attempt)).await;
    }
    outcome
}

async fn wrong(
    state: &AppState,
    user_id: Uuid,
    attempt: Attempt,
    meta: &RequestMeta,
    failed: Action,
    reason: FailureReason,
) -> Result<(), AppError> {
    record_failure(
        state,
        Some(user_id),
        "",
        reason,
        Some(attempt),
        meta.clone(),
        failed,
    )
    .await
}

/// Issues the second step of a password sign-in (inside the caller's transaction): the
/// challenge and its audit row.
pub(super) fn challenge_in_tx(
    conn: &mut diesel::PgConnection,
    tx_state: &AppStateRef,
    user_id: Uuid,
    purpose: Purpose,
    meta: &RequestMeta,
    now: OffsetDateTime,
) -> Result<MfaChallenge, AppError> {
    let token = mfa::issue_challenge_in_tx(conn, user_id, purpose, meta, now)?;
    tx_state.auditor.record(
        conn,
        meta,
        Event::new(
            Action::AuthMfaChallenged,
            Outcome::Success,
            Actor::user(user_id),
        )
        .target("user", user_id)
        .metadata(serde_json::json!({
            "via": match purpose { Purpose::Api => "api", Purpose::Console => "console" },
        })),
    )?;
    Ok(MfaChallenge {
        mfa_required: true,
        mfa_token: token,
        methods: vec!["totp", "recovery_code"],
        expires_in: mfa::CHALLENGE_TTL.as_secs(),
    })
}

/// Completes a sign-in's second step: the challenge must be unused, unexpired, issued for
/// `purpose` to this IP; the factor is checked under the lockout; then, in one transaction, the
/// challenge is spent (exactly one racing request wins), the failure count reset, and `finish`
/// starts the session. Every refusal is the same 401.
pub async fn second_step<F, T>(
    state: &AppState,
    token: String,
    factor: SecondFactor,
    purpose: Purpose,
    meta: RequestMeta,
    finish: F,
) -> Result<T, AppError>
where
    F: FnOnce(&mut diesel::PgConnection, &User, Accepted) -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    let now = state.clock.now();
    let lookup_token = token.clone();
    let lookup_meta = meta.clone();
    let user = state
        .pool
        .run(move |conn| {
            let Some(user_id) =
                mfa::challenge_user(conn, &lookup_token, purpose, &lookup_meta, now)?
            else {
                return Ok(None);
            };
            Ok(store::find(conn, user_id)?.filter(|u| u.active))
        })
        .await?;
    let Some(user) = user else {
        return Err(AppError::Unauthorized);
    };
    let failed = match purpose {
        Purpose::Api => Action::AuthMfaFailed,
        Purpose::Console => Action::AdminLoginFailed,
    };
    let proof = Proof {
        password: None,
        factor: Some(factor),
    };
    let proved = prove(
        state,
        user,
        proof,
        &meta,
        failed,
        move |conn, user, accepted| {
            if !mfa::spend_challenge_in_tx(conn, &token, user.id, now)? {
                return Err(AppError::Unauthorized);
            }
            let accepted = accepted.ok_or_else(|| {
                AppError::internal(anyhow::anyhow!("a second step without a factor"))
            })?;
            finish(conn, user, accepted)
        },
    )
    .await?;
    match proved {
        Proved::Done(value) => Ok(value),
        Proved::Wrong | Proved::Locked(_) => Err(AppError::Unauthorized),
    }
}

/// `POST /api/v1/auth/mfa`: the API sign-in's second step → the usual token pair, for a session
/// at `aal2` whose `amr` names the password and the factor.
pub async fn complete_login(
    state: &AppState,
    token: String,
    factor: SecondFactor,
    meta: RequestMeta,
) -> Result<TokenPair, AppError> {
    let now = state.clock.now();
    let tx_state = AppStateRef::from(state);
    let ttl = state.settings.auth.refresh_token_ttl;
    let email_settings = state.settings.email.clone();
    let tx_meta = meta.clone();
    second_step(
        state,
        token,
        factor,
        Purpose::Api,
        meta,
        move |conn, user, accepted| {
            let assurance = Assurance {
                aal: 2,
                amr: vec!["pwd".into(), accepted.method.amr().into()],
            };
            let (session, refresh) =
                sessions::start(conn, user.id, &tx_meta, now, ttl, &assurance)?;
            crate::email::device_seen_in_tx(conn, &email_settings, user.id, &tx_meta, now)?;
            tx_state.auditor.record(
                conn,
                &tx_meta,
                Event::new(
                    Action::AuthLoginSucceeded,
                    Outcome::Success,
                    Actor::user(user.id),
                )
                .target("session", session.id)
                .metadata(serde_json::json!({ "amr": assurance.amr, "aal": 2 })),
            )?;
            let mut pair =
                tx_state.token_pair(user.id, session.id, user.role(), refresh, now, &assurance)?;
            pair.recovery_codes_left = accepted.recovery_codes_left;
            Ok(pair)
        },
    )
    .await
}

/// The caller's user row (usually loaded by the request's authentication already) and whether
/// they have a second factor.
async fn user_and_factor(
    state: &AppState,
    principal: &Principal,
) -> Result<(User, bool), AppError> {
    let user_id = principal.user_id;
    let known = principal.user.clone();
    state
        .pool
        .run(move |conn| {
            let user = match known {
                Some(user) => user.as_ref().clone(),
                None => store::find(conn, user_id)?.ok_or(AppError::Unauthorized)?,
            };
            Ok((user, mfa::has_factor(conn, user_id)?))
        })
        .await
}

/// The one rule for what a step-up must prove: an account with a second factor sends a code (or
/// recovery code), one without sends its password (and no code). The field error says what is
/// missing or out of place.
fn step_up_proof_fits(has_factor: bool, proof: &Proof) -> Result<(), FieldError> {
    match (has_factor, proof.password.is_some(), proof.factor.is_some()) {
        (true, _, false) => Err(FieldError::new(
            "code",
            "this account has a second factor: send a current `code` (or a `recovery_code`)",
        )),
        (false, _, true) => Err(FieldError::new(
            "code",
            "this account has no second factor; send `password`",
        )),
        (false, false, false) => Err(FieldError::new("password", "is required")),
        _ => Ok(()),
    }
}

/// `POST /api/v1/auth/step-up`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StepUp {
    /// `aal1` or `aal2`: the session's level now.
    pub aal: String,
    #[serde(with = "time::serde::rfc3339")]
    pub authenticated_at: OffsetDateTime,
    /// Sensitive operations are allowed until then.
    #[serde(with = "time::serde::rfc3339")]
    pub valid_until: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes_left: Option<i64>,
}

/// Step-up ("sudo") on the caller's API session: the password, or — when the account has a second
/// factor — a code (or recovery code), which is then required. Refreshes the session's
/// authentication time (and raises it to `aal2` with a factor). Wrong proofs count towards the
/// lockout; a locked account is 429. Only a signed-in session steps up (an API key is no person;
/// a provider's token is re-issued by its provider).
pub async fn step_up(
    state: &AppState,
    principal: &Principal,
    proof: Proof,
    meta: RequestMeta,
) -> Result<StepUp, AppError> {
    let Credential::Session { session_id } = principal.credential else {
        return Err(AppError::BadRequest(
            "Only a signed-in session can step up: an API key cannot re-authenticate, and a \
             provider's token is renewed by signing in again at the provider."
                .into(),
        ));
    };
    let (user, has_factor) = user_and_factor(state, principal).await?;
    step_up_proof_fits(has_factor, &proof).map_err(|e| AppError::Validation(vec![e]))?;
    let now = state.clock.now();
    let max_age = state.settings.auth.step_up_max_age;
    let auditor = state.auditor.clone();
    let tx_meta = meta.clone();
    let proved = prove(
        state,
        user,
        proof,
        &meta,
        Action::AuthStepUpFailed,
        move |conn, user, accepted| {
            let aal = if accepted.is_some() { 2 } else { 1 };
            let Some(level) = sessions::reauthenticated_in_tx(conn, session_id, user.id, aal, now)?
            else {
                return Err(AppError::Unauthorized);
            };
            auditor.record(
                conn,
                &tx_meta,
                Event::new(Action::AuthStepUp, Outcome::Success, Actor::user(user.id))
                    .target("session", session_id)
                    .metadata(serde_json::json!({
                        "method": accepted.map_or("pwd", |a| a.method.amr()),
                    })),
            )?;
            Ok(StepUp {
                aal: format!("aal{level}"),
                authenticated_at: now,
                valid_until: crate::clock::after(now, max_age),
                recovery_codes_left: accepted.and_then(|a| a.recovery_codes_left),
            })
        },
    )
    .await?;
    match proved {
        Proved::Done(step_up) => Ok(step_up),
        Proved::Wrong => Err(AppError::Unauthorized),
        Proved::Locked(until) => Err(locked(until, now)),
    }
}

/// 429 with the seconds until the lock ends.
pub(super) fn locked(until: Option<OffsetDateTime>, now: OffsetDateTime) -> AppError {
    let seconds = until.map_or(1, |until| (until - now).whole_seconds());
    AppError::TooManyRequests {
        retry_after: u64::try_from(seconds).unwrap_or(1).max(1),
    }
}

/// Disables the caller's second factor: needs the password AND a current code or a recovery
/// code (under the lockout). Factor, recovery codes and pending challenges go; audited.
pub async fn disable_mfa(
    state: &AppState,
    principal: &Principal,
    password: SecretString,
    factor: SecondFactor,
    meta: RequestMeta,
) -> Result<(), AppError> {
    let (user, has_factor) = user_and_factor(state, principal).await?;
    if !has_factor {
        return Err(mfa::MfaError::NotEnabled.into());
    }
    let now = state.clock.now();
    let auditor = state.auditor.clone();
    let email_settings = state.settings.email.clone();
    let tx_meta = meta.clone();
    let actor = principal.actor();
    let proof = Proof {
        password: Some(password),
        factor: Some(factor),
    };
    let proved = prove(
        state,
        user,
        proof,
        &meta,
        Action::AuthStepUpFailed,
        move |conn, user, accepted| {
            mfa::remove_in_tx(conn, user.id)?;
            auditor.record(
                conn,
                &tx_meta,
                Event::new(Action::MfaDisabled, Outcome::Success, actor)
                    .target("user", user.id)
                    .metadata(serde_json::json!({
                        "method": "totp",
                        "proved_with": accepted.map_or("pwd", |a| a.method.amr()),
                    })),
            )?;
            crate::email::notify_in_tx(
                conn,
                &email_settings,
                user.id,
                crate::email::Notice::MfaDisabled,
                now,
            )?;
            Ok(())
        },
    )
    .await?;
    match proved {
        Proved::Done(()) => Ok(()),
        Proved::Wrong => Err(AppError::Validation(vec![FieldError::new(
            "password",
            "the password, or the code, is incorrect",
        )])),
        Proved::Locked(until) => Err(locked(until, now)),
    }
}

/// The operator's reset (`rampart users reset-mfa`), inside the caller's transaction: removes the
/// user's factor, recovery codes and challenges, and ends their API and console sessions (they
/// were signed in with the factor being reset). Audited as `mfa.reset` with `metadata` (the
/// reason, the OS user and host). `false` when there was no factor (nothing changed, nothing
/// audited); `NotFound` for no such user.
#[allow(clippy::too_many_arguments)]
pub fn reset_mfa_in_tx(
    conn: &mut diesel::PgConnection,
    auditor: &crate::audit::Auditor,
    email: &crate::config::settings::EmailSettings,
    meta: &RequestMeta,
    user_id: Uuid,
    actor: Actor,
    metadata: serde_json::Value,
    now: OffsetDateTime,
) -> Result<bool, AppError> {
    if store::lock(conn, user_id)?.is_none() {
        return Err(AppError::NotFound);
    }
    if !mfa::remove_in_tx(conn, user_id)? {
        return Ok(false);
    }
    let ended = sessions::revoke_all_in_tx(
        conn,
        auditor,
        meta,
        sessions::RevokeAll {
            user_id,
            keep: None,
            reason: "mfa_reset",
            actor: actor.clone(),
        },
        now,
    )?;
    let mut metadata = metadata;
    metadata["sessions_revoked"] = serde_json::json!(ended);
    auditor.record(
        conn,
        meta,
        Event::new(Action::MfaReset, Outcome::Success, actor)
            .target("user", user_id)
            .metadata(metadata),
    )?;
    crate::email::notify_in_tx(conn, email, user_id, crate::email::Notice::MfaDisabled, now)?;
    Ok(true)
}

/// Where a console sign-in goes after a right password.
pub enum ConsoleSignIn {
    /// No second factor: start the session.
    Ready(Box<super::Verified>),
    /// The admin has a factor: ask for it (nothing counted or reset yet).
    SecondStep(MfaChallenge),
}

/// The console's branch after [`super::verify_credentials`]: an admin with a second factor gets a
/// console challenge (and their reservation back, as for the API login); one without goes on.
pub async fn begin_console_sign_in(
    state: &AppState,
    verified: super::Verified,
    meta: RequestMeta,
) -> Result<ConsoleSignIn, AppError> {
    let now = state.clock.now();
    let tx_state = AppStateRef::from(state);
    let attempt = verified.attempt;
    let outcome = state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                let user_id = verified.user.id;
                if !mfa::has_factor(conn, user_id)? {
                    return Ok(ConsoleSignIn::Ready(Box::new(verified)));
                }
                if let Some(hash) = &verified.upgraded_hash {
                    store::upgrade_password_hash(conn, user_id, hash, now)?;
                }
                let challenge =
                    challenge_in_tx(conn, &tx_state, user_id, Purpose::Console, &meta, now)?;
                Ok(ConsoleSignIn::SecondStep(challenge))
            })
        })
        .await;
    if !matches!(outcome, Ok(ConsoleSignIn::Ready(_))) {
        release(state, attempt).await;
    }
    outcome
}

/// How a re-authentication ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reauth {
    Done,
    /// Wrong password or code (counted towards the lockout, audited).
    Wrong,
    /// The account is locked until then.
    Locked(Option<OffsetDateTime>),
}

/// Step-up for a caller that is not an API session (the console): `proof` must be the password
/// for an account without a second factor, and a code (or recovery code) for one with it; wrong
/// proofs count towards the lockout; on success `finish` records it in the same transaction.
pub async fn reauthenticate<F>(
    state: &AppState,
    user: User,
    proof: Proof,
    meta: RequestMeta,
    finish: F,
) -> Result<Reauth, AppError>
where
    F: FnOnce(&mut diesel::PgConnection, &User, Option<Accepted>) -> Result<(), AppError>
        + Send
        + 'static,
{
    let user_id = user.id;
    let has_factor = state
        .pool
        .run(move |conn| mfa::has_factor(conn, user_id))
        .await?;
    if step_up_proof_fits(has_factor, &proof).is_err() {
        return Ok(Reauth::Wrong);
    }
    let auditor = state.auditor.clone();
    let tx_meta = meta.clone();
    let proved = prove(
        state,
        user,
        proof,
        &meta,
        Action::AuthStepUpFailed,
        move |conn, user, accepted| {
            finish(conn, user, accepted)?;
            auditor.record(
                conn,
                &tx_meta,
                Event::new(Action::AuthStepUp, Outcome::Success, Actor::admin(user.id))
                    .target("user", user.id)
                    .metadata(serde_json::json!({
                        "via": "console",
                        "method": accepted.map_or("pwd", |a| a.method.amr()),
                    })),
            )?;
            Ok(())
        },
    )
    .await?;
    Ok(match proved {
        Proved::Done(()) => Reauth::Done,
        Proved::Wrong => Reauth::Wrong,
        Proved::Locked(until) => Reauth::Locked(until),
    })
}

/// Whether the user has a second factor (the console's re-authentication page asks for it).
pub async fn has_second_factor(state: &AppState, user_id: Uuid) -> Result<bool, AppError> {
    state
        .pool
        .run(move |conn| mfa::has_factor(conn, user_id))
        .await
}

/// `POST /api/v1/auth/password-reset`: queues a reset link when `email` is an active account's
/// address (and fewer than `EMAIL_LINKS_PER_HOUR` went there in the last hour); otherwise does
/// nothing. The caller answers the same 202 before this runs, so neither the answer nor its
/// timing says whether the account exists.
pub async fn request_password_reset(
    state: &AppState,
    email: String,
    meta: RequestMeta,
) -> Result<(), AppError> {
    let Ok(email) = crate::users::Email::parse(&email) else {
        return Ok(());
    };
    let now = state.clock.now();
    let settings = state.settings.email.clone();
    let auditor = state.auditor.clone();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                let Some(user) = store::find_by_login(conn, email.as_str())?
                    .filter(|u| u.active && u.erased_at.is_none())
                    .filter(|u| u.email.eq_ignore_ascii_case(email.as_str()))
                else {
                    return Ok(());
                };
                let sent = crate::email::request_password_reset_in_tx(conn, &settings, &user, now)?;
                auditor.record(
                    conn,
                    &meta,
                    Event::new(
                        Action::AuthPasswordResetRequested,
                        if sent {
                            Outcome::Success
                        } else {
                            Outcome::Denied
                        },
                        Actor::anonymous(),
                    )
                    .target("user", user.id)
                    .metadata(serde_json::json!({
                        "mailed": sent,
                        "reason": if sent { "link sent" } else { "per-address limit" },
                    })),
                )?;
                Ok(())
            })
        })
        .await
}

/// `POST /api/v1/auth/password-reset/complete`: the link's token, a new password (the policy
/// applies) and — when the account has a second factor — a code or recovery code (a reset never
/// bypasses MFA; wrong codes count towards the lockout). The token is spent, every unused reset
/// link of the account dies, the password is replaced, the lockout cleared, every API and console
/// session ends; audited, and the owner is told.
pub async fn complete_password_reset(
    state: &AppState,
    token: String,
    new_password: SecretString,
    factor: Option<SecondFactor>,
    meta: RequestMeta,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let peek = token.clone();
    let found = state
        .pool
        .run(move |conn| {
            let Some(row) =
                crate::email::peek_token(conn, &peek, crate::email::Purpose::PasswordReset, now)?
            else {
                return Ok(None);
            };
            let user =
                store::find(conn, row.user_id)?.filter(|u| u.active && u.erased_at.is_none());
            match user {
                Some(user) => {
                    let has_factor = mfa::has_factor(conn, user.id)?;
                    Ok(Some((user, has_factor)))
                }
                None => Ok(None),
            }
        })
        .await?;
    let Some((user, has_factor)) = found else {
        return Err(invalid_link());
    };
    let email = crate::users::Email::parse(&user.email).ok();
    let new = crate::users::NewPassword::parse(
        new_password,
        state.settings.auth.password_policy,
        Some(&user.username),
        email.as_ref(),
        "new_password",
    )
    .map_err(AppError::Validation)?;
    if has_factor && factor.is_none() {
        return Err(AppError::Validation(vec![FieldError::new(
            "code",
            "this account has a second factor: send a current `code` (or a `recovery_code`) \
             with the new password",
        )]));
    }
    let hash = state.hasher.hash(new.into_secret()).await?;
    let auditor = state.auditor.clone();
    let email_settings = state.settings.email.clone();
    let tx_meta = meta.clone();
    let apply = move |conn: &mut diesel::PgConnection,
                      user: &User,
                      accepted: Option<Accepted>|
          -> Result<(), AppError> {
        let Some(row) = crate::email::spend_token_in_tx(
            conn,
            &token,
            crate::email::Purpose::PasswordReset,
            now,
        )?
        else {
            return Err(invalid_link());
        };
        if row.user_id != user.id {
            return Err(invalid_link());
        }
        crate::email::spend_all_in_tx(conn, user.id, crate::email::Purpose::PasswordReset, now)?;
        store::record_success(conn, user.id, Some(&hash), now)?;
        let ended = sessions::revoke_all_in_tx(
            conn,
            &auditor,
            &tx_meta,
            sessions::RevokeAll {
                user_id: user.id,
                keep: None,
                reason: "password_reset",
                actor: Actor::user(user.id),
            },
            now,
        )?;
        auditor.record(
            conn,
            &tx_meta,
            Event::new(
                Action::AuthPasswordReset,
                Outcome::Success,
                Actor::user(user.id),
            )
            .target("user", user.id)
            .metadata(serde_json::json!({
                "sessions_revoked": ended,
                "second_factor": accepted.map(|a| a.method.amr()),
            })),
        )?;
        crate::email::notify_in_tx(
            conn,
            &email_settings,
            user.id,
            crate::email::Notice::PasswordChanged,
            now,
        )?;
        Ok(())
    };
    if !has_factor {
        return state
            .pool
            .run(move |conn| {
                conn.transaction::<_, AppError, _>(|conn| {
                    let user = store::lock(conn, user.id)?.ok_or_else(invalid_link)?;
                    apply(conn, &user, None)
                })
            })
            .await;
    }
    let proof = Proof {
        password: None,
        factor,
    };
    let proved = prove(state, user, proof, &meta, Action::AuthMfaFailed, apply).await?;
    match proved {
        Proved::Done(()) => Ok(()),
        Proved::Wrong => Err(AppError::Validation(vec![FieldError::new(
            "code",
            "is not a current code of the account's authenticator (nor an unused recovery code)",
        )])),
        Proved::Locked(until) => Err(locked(until, now)),
    }
}

fn invalid_link() -> AppError {
    AppError::BadRequest(
        "This reset link is invalid, has expired or was already used; ask for a new one.".into(),
    )
}
