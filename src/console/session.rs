//! Console sign-in: server-side sessions, their cookie, CSRF tokens and same-origin checks.
//!
//! The cookie holds an opaque 256-bit random token; the database holds its SHA-256 only. A new
//! token is issued at every sign-in (a cookie planted before sign-in is worthless after it), the
//! row is deleted at sign-out, and every request checks the idle limit (ADMIN_SESSION_IDLE_MINUTES
//! since the last request), the absolute limit (ADMIN_SESSION_ABSOLUTE_HOURS since sign-in), and
//! that the user is still an active admin — all against the service clock.
//!
//! CSRF: every state-changing form carries `csrf_token` = HMAC-SHA256(key from SESSION_SECRET,
//! the session's token hash), so it is bound to one session and useless with another; the
//! sign-in form (no session yet) uses a random nonce that must match a cookie set with the form.
//! POSTs must also come from this origin when the browser says where they come from
//! (`Origin`, else `Referer`).

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::Connection;
use subtle::ConstantTimeEq;

use super::ConsoleError;
use crate::accounts::{self, Verified};
use crate::audit::{Action, Actor, Event, Outcome, RequestMeta};
use crate::auth::Role;
use crate::clock;
use crate::config::Settings;
use crate::crypto::hmac::{HmacKey, hash_token};
use crate::error::AppError;
use crate::sessions::{self, NewAdminSession};
use crate::state::AppState;
use crate::users::User;

/// What an admin who must enrol a second factor may reach.
pub const ENROLMENT_PATHS: &[&str] = &[
    "/admin/mfa",
    "/admin/mfa/start",
    "/admin/mfa/confirm",
    "/admin/logout",
];

/// Last-seen times are written when older than this, not on every request.
const TOUCH_EVERY: time::Duration = time::Duration::seconds(60);

/// The cookie names: `__Host-` (Secure, Path=/, no Domain) in production; development and test
/// run over plain http, where a browser would drop a Secure cookie.
#[derive(Debug, Clone, Copy)]
pub struct CookieNames {
    pub session: &'static str,
    pub login: &'static str,
    pub flash: &'static str,
    pub secure: bool,
}

impl CookieNames {
    pub fn for_settings(settings: &Settings) -> CookieNames {
        if settings.is_production() {
            CookieNames {
                session: "__Host-rampart_admin",
                login: "__Host-rampart_admin_login",
                flash: "__Host-rampart_flash",
                secure: true,
            }
        } else {
            CookieNames {
                session: "rampart_admin",
                login: "rampart_admin_login",
                flash: "rampart_flash",
                secure: false,
            }
        }
    }

    /// A cookie as every console cookie is: HttpOnly, SameSite=Strict, Path=/, Secure in
    /// production.
    pub fn cookie(&self, name: &'static str, value: String) -> Cookie<'static> {
        Cookie::build(name, value)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.secure)
            .finish()
    }

    /// A cookie that tells the browser to forget `name`.
    pub fn removal(&self, name: &'static str) -> Cookie<'static> {
        let mut cookie = self.cookie(name, String::new());
        cookie.make_removal();
        cookie
    }
}

/// The CSRF token of the session whose token hashes to `token_hash`: HMAC(`AppState::csrf_key`,
/// token hash), so it is bound to the session and nobody without SESSION_SECRET can make one.
pub fn csrf_token(key: &HmacKey, token_hash: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(key.mac(&[token_hash]))
}

/// Whether `presented` is that session's token (constant time).
fn check_csrf(key: &HmacKey, token_hash: &[u8], presented: &str) -> bool {
    let expected = csrf_token(key, token_hash);
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// A signed-in admin: what every console page handler receives.
#[derive(Debug, Clone)]
pub struct Admin {
    pub user: User,
    token_hash: Vec<u8>,
    pub csrf: String,
    /// 1: password only; 2: with a second factor.
    pub aal: u8,
    /// When the admin last proved who they are (sign-in, step-up).
    pub authenticated_at: time::OffsetDateTime,
}

impl Admin {
    /// Whether this session proved who the admin is within `max_age` (step-up).
    pub fn is_recent(&self, now: time::OffsetDateTime, max_age: std::time::Duration) -> bool {
        clock::after(self.authenticated_at, max_age) > now
    }

    /// Whether the admin must enrol a second factor before anything else (MFA_REQUIRED_FOR_ADMINS
    /// and a one-factor session).
    pub fn must_enrol(&self, settings: &Settings) -> bool {
        settings.auth.mfa_required_for_admins && self.aal < 2
    }

    /// Whether `presented` is this session's CSRF token and the request same-origin.
    pub fn form_is_ours(&self, state: &AppState, req: &HttpRequest, presented: &str) -> bool {
        same_origin(req) && check_csrf(&state.csrf_key, &self.token_hash, presented)
    }

    /// Records a step-up on this console session (inside the caller's transaction).
    pub fn reauthenticated_in_tx(
        &self,
        conn: &mut diesel::PgConnection,
        aal: u8,
        now: time::OffsetDateTime,
    ) -> Result<bool, AppError> {
        sessions::console_reauthenticated_in_tx(conn, &self.token_hash, aal, now)
    }

    /// Refuses a state-changing request whose CSRF token is missing or not this session's, or
    /// that a browser says came from another origin. Nothing has been changed when this fails.
    pub fn check_form(
        &self,
        state: &AppState,
        req: &HttpRequest,
        presented: &str,
    ) -> Result<(), ConsoleError> {
        if !same_origin(req) {
            return Err(ConsoleError::Forbidden(
                "This form was sent from another site. Nothing was changed.",
            ));
        }
        if !check_csrf(&state.csrf_key, &self.token_hash, presented) {
            return Err(ConsoleError::Forbidden(
                "This form has expired or does not belong to your session. Nothing was changed; \
                 go back, reload the page and try again.",
            ));
        }
        Ok(())
    }
}

/// Whether a browser-sent POST comes from this origin. Browsers send `Origin` on POSTs (else a
/// `Referer`); its host must be the `Host` the request was sent to. A request carrying neither
/// cannot be a cross-site browser form, and still needs its CSRF token.
pub fn same_origin(req: &HttpRequest) -> bool {
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase)
    else {
        return false;
    };
    let source = req
        .headers()
        .get(header::ORIGIN)
        .or_else(|| req.headers().get(header::REFERER));
    let Some(source) = source else {
        return true;
    };
    let Some(url) = source.to_str().ok().and_then(|s| url::Url::parse(s).ok()) else {
        // `Origin: null` (sandboxed frames, some redirects) or garbage.
        return false;
    };
    let Some(origin_host) = url.host_str() else {
        return false;
    };
    let authority = match url.port() {
        Some(port) => format!("{origin_host}:{port}"),
        None => origin_host.to_string(),
    };
    authority.eq_ignore_ascii_case(&host)
}

/// The console session cookie's token, if the request carries one.
pub fn presented_token(req: &HttpRequest, names: &CookieNames) -> Option<String> {
    req.cookie(names.session)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The admin signed in with `token`, if the session is live; an expired session is deleted.
pub async fn resolve(state: &AppState, token: String) -> Result<Option<Admin>, AppError> {
    let now = state.clock.now();
    let limits = state.settings.console.clone();
    let key = state.csrf_key.clone();
    state
        .pool
        .run(move |conn| {
            let hash = hash_token(&token);
            let Some((session, user)) = sessions::find_console_session(conn, &hash)? else {
                return Ok(None);
            };
            let idle_over = clock::after(session.last_seen_at, limits.idle) <= now;
            let absolute_over = session.expires_at <= now;
            if idle_over || absolute_over || !user.active || user.role() != Role::Admin {
                sessions::end_console_session(conn, &hash)?;
                return Ok(None);
            }
            if now - session.last_seen_at >= TOUCH_EVERY {
                sessions::touch_console_session(conn, &hash, now)?;
            }
            Ok(Some(Admin {
                csrf: csrf_token(&key, &hash),
                token_hash: hash,
                user,
                aal: u8::try_from(session.aal).unwrap_or(1),
                authenticated_at: session.authenticated_at,
            }))
        })
        .await
}

/// Starts a console session for a verified admin: records the sign-in and its audit row, and
/// ends the session the browser presented before (the id is never reused). Returns the new
/// cookie token.
pub async fn sign_in(
    state: &AppState,
    verified: Verified,
    previous: Option<String>,
    meta: RequestMeta,
) -> Result<String, AppError> {
    let now = state.clock.now();
    let absolute = state.settings.console.absolute;
    let auditor = state.auditor.clone();
    let email_settings = state.settings.email.clone();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                accounts::record_success(conn, &verified, now)?;
                let started = Started {
                    user_id: verified.user.id,
                    aal: 1,
                    amr: &["pwd"],
                    hash_upgraded: verified.upgraded_hash.is_some(),
                };
                start_in_tx(
                    conn,
                    &auditor,
                    &email_settings,
                    started,
                    previous,
                    &meta,
                    now,
                    absolute,
                )
            })
        })
        .await
}

/// How a console sign-in was proven.
pub struct Started {
    pub user_id: uuid::Uuid,
    pub aal: u8,
    pub amr: &'static [&'static str],
    pub hash_upgraded: bool,
}

/// Stores a new console session (inside the caller's transaction) and audits the sign-in; ends
/// the session the browser presented before. Returns the cookie token.
#[allow(clippy::too_many_arguments)]
pub fn start_in_tx(
    conn: &mut diesel::PgConnection,
    auditor: &crate::audit::Auditor,
    email: &crate::config::settings::EmailSettings,
    started: Started,
    previous: Option<String>,
    meta: &RequestMeta,
    now: time::OffsetDateTime,
    absolute: std::time::Duration,
) -> Result<String, AppError> {
    let token = crate::crypto::random::secret_string().map_err(AppError::internal)?;
    let hash = hash_token(&token);
    crate::email::device_seen_in_tx(conn, email, started.user_id, meta, now)?;
    if let Some(previous) = previous {
        sessions::end_console_session(conn, &hash_token(&previous))?;
    }
    let ip = meta.ip.map(|ip| ip.to_string());
    let user_agent: Option<String> = meta
        .user_agent
        .as_deref()
        .map(|ua| ua.chars().take(512).collect());
    sessions::insert_console_session(
        conn,
        &NewAdminSession {
            token_hash: &hash,
            user_id: started.user_id,
            created_at: now,
            last_seen_at: now,
            expires_at: clock::after(now, absolute),
            ip: ip.as_deref(),
            user_agent: user_agent.as_deref(),
            aal: i16::from(started.aal),
            authenticated_at: now,
        },
    )?;
    auditor.record(
        conn,
        meta,
        Event::new(
            Action::AdminLoginSucceeded,
            Outcome::Success,
            Actor::admin(started.user_id),
        )
        .target("user", started.user_id)
        .metadata(serde_json::json!({
            "hash_upgraded": started.hash_upgraded,
            "amr": started.amr,
        })),
    )?;
    Ok(token)
}

/// Ends this admin's session (the row is deleted) and audits it.
pub async fn sign_out(state: &AppState, admin: &Admin, meta: RequestMeta) -> Result<(), AppError> {
    let hash = admin.token_hash.clone();
    let user_id = admin.user.id;
    let auditor = state.auditor.clone();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| {
                sessions::end_console_session(conn, &hash)?;
                auditor.record(
                    conn,
                    &meta,
                    Event::new(Action::AdminLogout, Outcome::Success, Actor::admin(user_id))
                        .target("user", user_id),
                )?;
                Ok(())
            })
        })
        .await
}

/// A fresh sign-in form nonce (also set as the login cookie).
pub fn login_nonce() -> Result<String, AppError> {
    crate::crypto::random::secret_string().map_err(AppError::internal)
}

/// Whether the sign-in form's nonce matches the login cookie (constant time).
pub fn check_login_nonce(req: &HttpRequest, names: &CookieNames, presented: &str) -> bool {
    let Some(cookie) = req.cookie(names.login) else {
        return false;
    };
    let expected = cookie.value();
    !expected.is_empty() && expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

impl FromRequest for Admin {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Admin, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = state
            .as_ref()
            .and_then(|s| presented_token(req, &CookieNames::for_settings(&s.settings)));
        let pattern = req.match_pattern();
        Box::pin(async move {
            let Some(state) = state else {
                return Err(ConsoleError::App(AppError::internal(anyhow::anyhow!(
                    "application state missing"
                )))
                .into());
            };
            let Some(token) = token else {
                return Err(ConsoleError::SignIn.into());
            };
            match resolve(&state, token).await {
                // An admin who must enrol a second factor reaches the enrolment page and sign-out
                // only.
                Ok(Some(admin))
                    if admin.must_enrol(&state.settings)
                        && !ENROLMENT_PATHS.contains(&pattern.as_deref().unwrap_or_default()) =>
                {
                    Err(ConsoleError::EnrolMfa.into())
                }
                Ok(Some(admin)) => Ok(admin),
                Ok(None) => Err(ConsoleError::SignIn.into()),
                Err(error) => Err(ConsoleError::App(error).into()),
            }
        })
    }
}
