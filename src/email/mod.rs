//! Email through a transactional outbox: owns `email_outbox`, `email_tokens` (one-time links)
//! and `known_devices`.
//!
//! - **Writing.** Every mail is rendered (askama, text + HTML, product name and links from
//!   `PUBLIC_BASE_URL`) and inserted *inside the caller's transaction*: no mail for a change that
//!   rolled back, no change without its mail. Callers pass only ids and facts; the recipient is
//!   read here, so a mail never carries another user's data, a password, or a token other than
//!   its own one-time link.
//! - **Sending** ([`sender`]): a background task claims due rows with `FOR UPDATE SKIP LOCKED`,
//!   delivers them over SMTP (lettre; STARTTLS or implicit TLS) or to the log and
//!   `EMAIL_LOG_DIR` (`EMAIL_BACKEND=log`, development), and marks them sent (bodies emptied) or
//!   due again with exponential back-off, `failed` after `EMAIL_MAX_ATTEMPTS`. Delivery is at
//!   least once: a process that dies between the SMTP answer and its commit sends that mail again.
//! - **Links**: 256 random bits, SHA-256 stored, single use (one conditional UPDATE), 24 h for
//!   address verification and change, 30 min for password reset.
//!
//! **Boundary.** Imports no feature: accounts, mfa and api_keys call it (`*_in_tx`), never the
//! reverse. Decides nothing about passwords or sessions.

pub mod model;
pub mod routes;
pub mod sender;
pub mod store;

use askama::Template;
use diesel::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use self::model::NewOutbox;
pub use self::model::{Kind, OutboxRow, Purpose, Status, mask};
use crate::audit::{Action, Actor, Event, Outcome, RequestMeta};
use crate::config::settings::EmailSettings;
use crate::crypto::hmac::hash_token;
use crate::error::{AppError, FieldError};
use crate::state::AppState;
use crate::users::User;

/// How long an address verification or change link works.
pub const VERIFY_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// How long a password-reset link works.
pub const RESET_TTL: std::time::Duration = std::time::Duration::from_secs(30 * 60);
/// A device not seen for this long is new again.
pub const DEVICE_MEMORY: std::time::Duration = std::time::Duration::from_secs(90 * 86_400);

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The link is unknown, used, expired, or not for this.
    #[error("the link is invalid, expired or already used")]
    InvalidLink,
    /// The address is already verified (nothing to resend).
    #[error("the address is already verified")]
    AlreadyVerified,
    /// The new address belongs to another account.
    #[error("the address is taken")]
    AddressTaken,
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<diesel::result::Error> for EmailError {
    fn from(error: diesel::result::Error) -> Self {
        EmailError::App(error.into())
    }
}

impl From<EmailError> for AppError {
    fn from(error: EmailError) -> Self {
        match error {
            EmailError::InvalidLink => AppError::BadRequest(
                "This link is invalid, has expired or was already used; ask for a new one.".into(),
            ),
            EmailError::AlreadyVerified => {
                AppError::Conflict(vec![FieldError::new("email", "is already verified")])
            }
            EmailError::AddressTaken => {
                AppError::Conflict(vec![FieldError::new("email", "belongs to another account")])
            }
            EmailError::App(e) => e,
        }
    }
}

/// A security notice: what happened, in facts of the recipient's own account.
#[derive(Debug, Clone)]
pub enum Notice {
    PasswordChanged,
    /// To the old address, once the new one is confirmed.
    EmailChanged {
        new_address: String,
    },
    MfaEnabled,
    MfaDisabled,
    RecoveryCodeUsed {
        left: i64,
    },
    ApiKeyCreated {
        name: String,
        prefix: String,
    },
    NewDevice {
        agent: String,
        network: String,
    },
    AccountLocked {
        until: OffsetDateTime,
    },
}

impl Notice {
    pub fn kind(&self) -> Kind {
        match self {
            Notice::PasswordChanged => Kind::PasswordChanged,
            Notice::EmailChanged { .. } => Kind::EmailChanged,
            Notice::MfaEnabled => Kind::MfaEnabled,
            Notice::MfaDisabled => Kind::MfaDisabled,
            Notice::RecoveryCodeUsed { .. } => Kind::RecoveryCodeUsed,
            Notice::ApiKeyCreated { .. } => Kind::ApiKeyCreated,
            Notice::NewDevice { .. } => Kind::NewDevice,
            Notice::AccountLocked { .. } => Kind::AccountLocked,
        }
    }
}

#[derive(Template)]
#[template(path = "email/message.txt", escape = "none")]
struct TextMail<'a> {
    product: &'a str,
    greeting: &'a str,
    paragraphs: &'a [String],
    link: Option<&'a str>,
    link_label: &'a str,
    footer: &'a str,
}

#[derive(Template)]
#[template(path = "email/message.html")]
struct HtmlMail<'a> {
    subject: &'a str,
    product: &'a str,
    greeting: &'a str,
    paragraphs: &'a [String],
    link: Option<&'a str>,
    link_label: &'a str,
    footer: &'a str,
}

/// A mail before rendering.
struct Draft {
    kind: Kind,
    subject: String,
    paragraphs: Vec<String>,
    link: Option<(String, &'static str)>,
}

const FOOTER: &str = "You receive this mail because of activity on your account; it was sent \
                      automatically, replies are not read.";

fn when(at: OffsetDateTime) -> String {
    crate::clock::rfc3339(at)
}

/// Renders `draft` for `to` (greeted by `username`) and queues it in the caller's transaction.
fn enqueue(
    conn: &mut PgConnection,
    settings: &EmailSettings,
    user_id: Option<Uuid>,
    username: &str,
    to: &str,
    draft: Draft,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let greeting = format!("Hello {username},");
    let (link, link_label) = match &draft.link {
        Some((url, label)) => (Some(url.as_str()), *label),
        None => (None, ""),
    };
    let render = |e: askama::Error| AppError::internal(anyhow::anyhow!("mail template: {e}"));
    let text = TextMail {
        product: &settings.product_name,
        greeting: &greeting,
        paragraphs: &draft.paragraphs,
        link,
        link_label,
        footer: FOOTER,
    }
    .render()
    .map_err(render)?;
    let html = HtmlMail {
        subject: &draft.subject,
        product: &settings.product_name,
        greeting: &greeting,
        paragraphs: &draft.paragraphs,
        link,
        link_label,
        footer: FOOTER,
    }
    .render()
    .map_err(render)?;
    store::insert(
        conn,
        &NewOutbox {
            id: Uuid::now_v7(),
            kind: draft.kind.as_str(),
            recipient: to,
            user_id,
            subject: &draft.subject,
            text_body: &text,
            html_body: &html,
            status: Status::Pending.as_str(),
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
        },
    )?;
    Ok(())
}

/// `PUBLIC_BASE_URL` + `path` + `?token=`.
fn link(settings: &EmailSettings, path: &str, token: &str) -> String {
    format!(
        "{}{path}?token={token}",
        settings.public_base_url.trim_end_matches('/')
    )
}

/// A new one-time link token for `purpose`: (token, its hash stored).
fn new_token(
    conn: &mut PgConnection,
    user_id: Uuid,
    purpose: Purpose,
    email: &str,
    now: OffsetDateTime,
    ttl: std::time::Duration,
) -> Result<String, AppError> {
    let token = crate::crypto::random::secret_string().map_err(AppError::internal)?;
    store::insert_token(
        conn,
        &hash_token(&token),
        user_id,
        purpose.as_str(),
        email,
        now,
        crate::clock::after(now, ttl),
    )?;
    Ok(token)
}

/// A security notice to the user's current address, queued inside the caller's transaction.
/// Nothing is queued when the operator switched that kind off (`EMAIL_NOTIFICATIONS_OFF`) or the
/// account has no address any more (erased). Whether a mail was queued.
pub fn notify_in_tx(
    conn: &mut PgConnection,
    settings: &EmailSettings,
    user_id: Uuid,
    notice: Notice,
    now: OffsetDateTime,
) -> Result<bool, AppError> {
    if settings.is_off(notice.kind().as_str()) {
        return Ok(false);
    }
    let Some(user) = crate::users::store::find(conn, user_id)? else {
        return Ok(false);
    };
    if user.erased_at.is_some() {
        return Ok(false);
    }
    let to = match &notice {
        // Told to the address that is losing the account, not the new one.
        Notice::EmailChanged { .. } => return Ok(false),
        _ => user.email.clone(),
    };
    let draft = notice_draft(settings, &notice, now);
    enqueue(
        conn,
        settings,
        Some(user.id),
        &user.username,
        &to,
        draft,
        now,
    )?;
    Ok(true)
}

fn notice_draft(settings: &EmailSettings, notice: &Notice, now: OffsetDateTime) -> Draft {
    let product = &settings.product_name;
    let not_you = "If this was not you, reset your password now and review your sessions and \
                   API keys.";
    let (subject, paragraphs) = match notice {
        Notice::PasswordChanged => (
            format!("Your {product} password was changed"),
            vec![
                format!("The password of your account was changed at {}.", when(now)),
                "Every other session of your account was signed out.".into(),
                not_you.into(),
            ],
        ),
        Notice::EmailChanged { new_address } => (
            format!("Your {product} email address was changed"),
            vec![
                format!(
                    "The address of your account was changed to {} at {}; mail goes there from \
                     now on.",
                    mask(new_address),
                    when(now)
                ),
                "If this was not you, contact support at once.".into(),
            ],
        ),
        Notice::MfaEnabled => (
            format!("Two-factor sign-in was turned on for your {product} account"),
            vec![
                format!(
                    "An authenticator app was enabled for your account at {}.",
                    when(now)
                ),
                not_you.into(),
            ],
        ),
        Notice::MfaDisabled => (
            format!("Two-factor sign-in was turned off for your {product} account"),
            vec![
                format!(
                    "The second factor of your account was removed at {}; a password alone \
                     signs in now.",
                    when(now)
                ),
                not_you.into(),
            ],
        ),
        Notice::RecoveryCodeUsed { left } => (
            format!("A recovery code was used for your {product} account"),
            vec![
                format!(
                    "One of your recovery codes was used at {}. {left} unused codes are left.",
                    when(now)
                ),
                "When few are left, create new ones in your account's security settings.".into(),
                not_you.into(),
            ],
        ),
        Notice::ApiKeyCreated { name, prefix } => (
            format!("A new API key was created for your {product} account"),
            vec![
                format!(
                    "The API key \u{201c}{name}\u{201d} ({prefix}\u{2026}) was created at {}.",
                    when(now)
                ),
                "If this was not you, revoke it and reset your password.".into(),
            ],
        ),
        Notice::NewDevice { agent, network } => (
            format!("New sign-in to your {product} account"),
            vec![
                format!(
                    "Your account was signed in to at {} from {agent}, network {network}, which \
                     has not signed in to it in the last 90 days.",
                    when(now)
                ),
                not_you.into(),
            ],
        ),
        Notice::AccountLocked { until } => (
            format!("Your {product} account was locked"),
            vec![
                format!(
                    "After repeated failed sign-ins, your account is locked until {}.",
                    when(*until)
                ),
                "If these attempts were not yours, someone may be guessing your password: \
                 choose a stronger one once you are back in."
                    .into(),
            ],
        ),
    };
    Draft {
        kind: notice.kind(),
        subject,
        paragraphs,
        link: None,
    }
}

/// Queues the verification link for `user`'s current address (registration, resend).
pub fn send_verification_in_tx(
    conn: &mut PgConnection,
    settings: &EmailSettings,
    user: &User,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let token = new_token(conn, user.id, Purpose::Verify, &user.email, now, VERIFY_TTL)?;
    let product = &settings.product_name;
    let draft = Draft {
        kind: Kind::VerifyEmail,
        subject: format!("Confirm your email address for {product}"),
        paragraphs: vec![
            format!("Please confirm that this address belongs to your {product} account."),
            "The link works once, for 24 hours. If you did not create an account, ignore this \
             mail."
                .into(),
        ],
        link: Some((
            link(settings, "/verify-email", &token),
            "Confirm this address",
        )),
    };
    enqueue(
        conn,
        settings,
        Some(user.id),
        &user.username,
        &user.email,
        draft,
        now,
    )
}

/// Queues an address change for `user`: a link to the new address (the change applies when it
/// is used) and a notice to the current one.
pub fn request_email_change_in_tx(
    conn: &mut PgConnection,
    settings: &EmailSettings,
    user: &User,
    new_address: &str,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let token = new_token(
        conn,
        user.id,
        Purpose::ChangeEmail,
        new_address,
        now,
        VERIFY_TTL,
    )?;
    let product = &settings.product_name;
    let confirm = Draft {
        kind: Kind::EmailChangeConfirm,
        subject: format!("Confirm your new email address for {product}"),
        paragraphs: vec![
            format!(
                "The {product} account {} asked to use this address from now on.",
                user.username
            ),
            "Confirm it with the link below (once, within 24 hours); until then the account \
             keeps its old address. If you did not ask for this, ignore this mail."
                .into(),
        ],
        link: Some((
            link(settings, "/verify-email", &token),
            "Confirm this address",
        )),
    };
    enqueue(
        conn,
        settings,
        Some(user.id),
        &user.username,
        new_address,
        confirm,
        now,
    )?;
    let notice = Draft {
        kind: Kind::EmailChangeRequested,
        subject: format!("Your {product} email address is being changed"),
        paragraphs: vec![
            format!(
                "A change of your account's address to {} was requested at {}. It takes effect \
                 only when the new address is confirmed.",
                mask(new_address),
                when(now)
            ),
            "If this was not you, reset your password now: the change can still be stopped by \
             not confirming it."
                .into(),
        ],
        link: None,
    };
    if !settings.is_off(Kind::EmailChangeRequested.as_str()) {
        enqueue(
            conn,
            settings,
            Some(user.id),
            &user.username,
            &user.email,
            notice,
            now,
        )?;
    }
    Ok(())
}

/// Queues a password-reset link for `user`, unless `RESET_PER_ADDRESS_PER_HOUR` links went to the
/// address in the last hour (the caller answers the same either way). Whether one was queued.
pub fn request_password_reset_in_tx(
    conn: &mut PgConnection,
    settings: &EmailSettings,
    user: &User,
    now: OffsetDateTime,
) -> Result<bool, AppError> {
    // The user's row lock serialises racing requests, so the count below is the truth.
    crate::users::store::lock(conn, user.id)?;
    let hour_ago = crate::clock::before(now, std::time::Duration::from_secs(3600));
    let recent = store::issued_since(conn, &user.email, Purpose::PasswordReset.as_str(), hour_ago)?;
    if recent >= i64::from(settings.links_per_hour) {
        return Ok(false);
    }
    let token = new_token(
        conn,
        user.id,
        Purpose::PasswordReset,
        &user.email,
        now,
        RESET_TTL,
    )?;
    let product = &settings.product_name;
    let draft = Draft {
        kind: Kind::PasswordReset,
        subject: format!("Reset your {product} password"),
        paragraphs: vec![
            "Someone (hopefully you) asked to reset the password of your account.".into(),
            "The link works once, for 30 minutes; every session of the account is signed out \
             when the new password is set. If you did not ask for this, ignore this mail: your \
             password is unchanged."
                .into(),
        ],
        link: Some((
            link(settings, "/reset-password", &token),
            "Choose a new password",
        )),
    };
    enqueue(
        conn,
        settings,
        Some(user.id),
        &user.username,
        &user.email,
        draft,
        now,
    )?;
    Ok(true)
}

/// The unused, unexpired token of `purpose`, without spending it (to check it before the work
/// that follows, e.g. hashing a new password).
pub fn peek_token(
    conn: &mut PgConnection,
    token: &str,
    purpose: Purpose,
    now: OffsetDateTime,
) -> Result<Option<model::TokenRow>, AppError> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    Ok(store::find_token(
        conn,
        &hash_token(token),
        purpose.as_str(),
        now,
    )?)
}

/// Spends a token of `purpose` inside the caller's transaction: its row for exactly one caller.
pub fn spend_token_in_tx(
    conn: &mut PgConnection,
    token: &str,
    purpose: Purpose,
    now: OffsetDateTime,
) -> Result<Option<model::TokenRow>, AppError> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    Ok(store::spend_token(
        conn,
        &hash_token(token),
        purpose.as_str(),
        now,
    )?)
}

/// Ends every unused link of `purpose` for the user.
pub fn spend_all_in_tx(
    conn: &mut PgConnection,
    user_id: Uuid,
    purpose: Purpose,
    now: OffsetDateTime,
) -> Result<usize, AppError> {
    Ok(store::spend_all(conn, user_id, purpose.as_str(), now)?)
}

/// Records a successful sign-in's device (browser family + /24 or /48 network) and, when the
/// account has signed in before but not from it in 90 days, queues the "new device" notice.
pub fn device_seen_in_tx(
    conn: &mut PgConnection,
    settings: &EmailSettings,
    user_id: Uuid,
    meta: &RequestMeta,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let agent = model::agent_family(meta.user_agent.as_deref());
    let network = model::network_of(meta.ip);
    let since = crate::clock::before(now, DEVICE_MEMORY);
    let (known_any, recent) = store::saw_device(conn, user_id, &agent, &network, now, since)?;
    if known_any && !recent {
        notify_in_tx(
            conn,
            settings,
            user_id,
            Notice::NewDevice { agent, network },
            now,
        )?;
    }
    Ok(())
}

/// Erasure: the user's queued and sent mails, link tokens (they hold addresses) and devices go.
pub fn forget_user_in_tx(
    conn: &mut PgConnection,
    user_id: Uuid,
    email: &str,
) -> Result<usize, AppError> {
    let mails = store::delete_for_user(conn, user_id, email)?;
    store::delete_tokens(conn, user_id)?;
    diesel::delete(
        crate::db::schema::known_devices::table
            .filter(crate::db::schema::known_devices::user_id.eq(user_id)),
    )
    .execute(conn)?;
    Ok(mails)
}

/// The verification or address-change link `token` is used: the address is verified (and, for
/// a change, becomes the account's). An account whose verified address is in `ADMIN_EMAILS` (or
/// is `SUPER_ADMIN_EMAIL`) becomes admin now — never before. Audited.
pub async fn verify(
    state: &AppState,
    token: String,
    meta: RequestMeta,
) -> Result<crate::users::UserView, EmailError> {
    let now = state.clock.now();
    let settings = state.settings.clone();
    let auditor = state.auditor.clone();
    state
        .pool
        .run(move |conn| {
            let result = conn.transaction::<_, EmailError, _>(|conn| {
                let spent = match spend_token_in_tx(conn, &token, Purpose::Verify, now)? {
                    Some(row) => Some(row),
                    None => spend_token_in_tx(conn, &token, Purpose::ChangeEmail, now)?,
                };
                let row = spent.ok_or(EmailError::InvalidLink)?;
                let user = crate::users::store::lock(conn, row.user_id)?
                    .filter(|u| u.erased_at.is_none())
                    .ok_or(EmailError::InvalidLink)?;
                let change = row.purpose == Purpose::ChangeEmail.as_str();
                let old_address = user.email.clone();
                if change {
                    let email = crate::users::Email::parse(&row.email)
                        .map_err(|_| EmailError::InvalidLink)?;
                    if crate::users::store::email_taken_by_other(conn, email.as_str(), user.id)? {
                        return Err(EmailError::AddressTaken);
                    }
                    // A registration racing this change for the same address loses to the unique
                    // index; that is the same answer as "taken", never a 500.
                    match crate::users::store::set_email(conn, user.id, email.as_str(), now) {
                        Err(diesel::result::Error::DatabaseError(
                            diesel::result::DatabaseErrorKind::UniqueViolation,
                            _,
                        )) => return Err(EmailError::AddressTaken),
                        other => other?,
                    };
                    spend_all_in_tx(conn, user.id, Purpose::ChangeEmail, now)?;
                    spend_all_in_tx(conn, user.id, Purpose::Verify, now)?;
                } else if !row.email.eq_ignore_ascii_case(&user.email) {
                    // The address changed since this link was sent: it verifies nothing.
                    return Err(EmailError::InvalidLink);
                }
                crate::users::store::set_email_verified(conn, user.id, now)?;
                auditor.record(
                    conn,
                    &meta,
                    Event::new(
                        if change {
                            Action::UserEmailChanged
                        } else {
                            Action::UserEmailVerified
                        },
                        Outcome::Success,
                        Actor::user(user.id),
                    )
                    .target("user", user.id),
                )?;
                if change && !settings.email.is_off(Kind::EmailChanged.as_str()) {
                    let notice = Notice::EmailChanged {
                        new_address: row.email.clone(),
                    };
                    let draft = notice_draft(&settings.email, &notice, now);
                    enqueue(
                        conn,
                        &settings.email,
                        Some(user.id),
                        &user.username,
                        &old_address,
                        draft,
                        now,
                    )?;
                }
                let address = row.email.to_lowercase();
                let listed = settings
                    .admin_emails
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case(&address))
                    || settings
                        .super_admin_email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(&address));
                if listed && user.role != "admin" {
                    crate::users::store::promote_admin(
                        conn,
                        user.id,
                        crate::users::AdminGrant::VerifiedEmail.as_str(),
                        now,
                    )?;
                    auditor.record(
                        conn,
                        &meta,
                        Event::new(Action::UserRoleChanged, Outcome::Success, Actor::system())
                            .target("user", user.id)
                            .metadata(serde_json::json!({
                                "from": user.role,
                                "to": "admin",
                                "via": "verified_admin_email",
                            })),
                    )?;
                }
                let user =
                    crate::users::store::find(conn, user.id)?.ok_or(EmailError::InvalidLink)?;
                Ok(crate::users::UserView::from(&user))
            });
            split(result)
        })
        .await?
}

/// `pool.run` wants `AppError`: an infrastructure failure travels as one, a refusal of this
/// feature as the inner `Err`.
fn split<T>(result: Result<T, EmailError>) -> Result<Result<T, EmailError>, AppError> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(EmailError::App(e)) => Err(e),
        Err(other) => Ok(Err(other)),
    }
}

/// Sends a new verification link to the caller's address (202); 409 when it is verified.
pub async fn resend_verification(state: &AppState, user_id: Uuid) -> Result<(), EmailError> {
    let now = state.clock.now();
    let settings = state.settings.email.clone();
    state
        .pool
        .run(move |conn| {
            let result = conn.transaction::<_, EmailError, _>(|conn| {
                // Locked: racing resends see each other's links in the count.
                let user = crate::users::store::lock(conn, user_id)?
                    .ok_or(EmailError::App(AppError::Unauthorized))?;
                if user.email_verified_at.is_some() {
                    return Err(EmailError::AlreadyVerified);
                }
                let hour_ago = crate::clock::before(now, std::time::Duration::from_secs(3600));
                let recent =
                    store::issued_since(conn, &user.email, Purpose::Verify.as_str(), hour_ago)?;
                if recent >= i64::from(settings.links_per_hour) {
                    return Err(EmailError::App(AppError::TooManyRequests {
                        retry_after: 3600,
                    }));
                }
                send_verification_in_tx(conn, &settings, &user, now)?;
                Ok(())
            });
            split(result)
        })
        .await?
}

/// Starts an address change for the caller (the guard checked step-up): the new address must be
/// valid, different and free; a link goes to it and a notice to the current one.
pub async fn change_address(
    state: &AppState,
    user_id: Uuid,
    new_address: &str,
    meta: RequestMeta,
) -> Result<(), EmailError> {
    let email = crate::users::Email::parse(new_address)
        .map_err(|e| EmailError::App(AppError::Validation(vec![e])))?;
    let now = state.clock.now();
    let settings = state.settings.email.clone();
    let auditor = state.auditor.clone();
    state
        .pool
        .run(move |conn| {
            let result = conn.transaction::<_, EmailError, _>(|conn| {
                let user = crate::users::store::lock(conn, user_id)?
                    .ok_or(EmailError::App(AppError::Unauthorized))?;
                if user.email.eq_ignore_ascii_case(email.as_str()) {
                    return Err(EmailError::App(AppError::Validation(vec![
                        FieldError::new("email", "is already the account's address"),
                    ])));
                }
                if crate::users::store::email_taken_by_other(conn, email.as_str(), user.id)? {
                    return Err(EmailError::AddressTaken);
                }
                request_email_change_in_tx(conn, &settings, &user, email.as_str(), now)?;
                auditor.record(
                    conn,
                    &meta,
                    Event::new(
                        Action::UserEmailChangeRequested,
                        Outcome::Success,
                        Actor::user(user.id),
                    )
                    .target("user", user.id),
                )?;
                Ok(())
            });
            split(result)
        })
        .await?
}

/// One page of pending and failed mails for the console (newest first).
pub async fn open_mails(
    state: &AppState,
    status: Option<Status>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<(Vec<OutboxRow>, i64, i64), AppError> {
    state
        .pool
        .run(move |conn| {
            let rows = store::list_open(conn, status.map(Status::as_str), before, limit)?;
            let (pending, failed) = store::open_counts(conn)?;
            Ok((rows, pending, failed))
        })
        .await
}

/// Puts a failed mail back in the queue (an admin's decision; audited). `NotFound` unless it
/// exists and failed.
pub async fn retry(
    state: &AppState,
    id: Uuid,
    actor: Actor,
    meta: RequestMeta,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let auditor = state.auditor.clone();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                let Some(row) = store::find(conn, id)? else {
                    return Err(AppError::NotFound);
                };
                if !store::retry(conn, id, now)? {
                    return Err(AppError::Conflict(vec![FieldError::new(
                        "status",
                        "only a failed mail can be retried",
                    )]));
                }
                auditor.record(
                    conn,
                    &meta,
                    Event::new(Action::EmailRetried, Outcome::Success, actor)
                        .target("email", id)
                        .metadata(serde_json::json!({
                            "kind": row.kind,
                            "attempts": row.attempts,
                        })),
                )?;
                Ok(())
            })
        })
        .await
}
