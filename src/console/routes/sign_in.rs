//! Console sign-in and sign-out: the login form (with its pre-session CSRF nonce), the
//! credential check shared with the API, and the session cookie.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use super::{CsrfForm, chrome, page, redirect};
use crate::accounts::{self, SignIn};
use crate::auth::request_meta;
use crate::console::ConsoleError;
use crate::console::pages::{LoginCodePage, LoginPage};
use crate::console::session::{self, Admin, CookieNames};
use crate::error::AppError;
use crate::state::AppState;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin/login")
            .route(web::get().to(login_form))
            .route(web::post().to(login)),
    )
    .service(web::resource("/admin/login/mfa").route(web::post().to(login_mfa)))
    .service(web::resource("/admin/logout").route(web::post().to(logout)));
}

async fn login_form(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ConsoleError> {
    if let Some(token) = session::presented_token(&req, &CookieNames::for_settings(&state.settings))
        && session::resolve(&state, token).await?.is_some()
    {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/admin"))
            .finish());
    }
    login_page(&state, &req, StatusCode::OK, String::new(), None)
}

fn login_page(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    login: String,
    error: Option<&'static str>,
) -> Result<HttpResponse, ConsoleError> {
    let nonce = session::login_nonce()?;
    let (chrome, clear) = chrome(state, req, None, "Sign in", "login");
    let mut res = page(
        status,
        &LoginPage {
            chrome,
            login,
            nonce: nonce.clone(),
            error,
        },
        clear,
    )?;
    let names = &CookieNames::for_settings(&state.settings);
    let cookie = names.cookie(names.login, nonce);
    res.add_cookie(&cookie)
        .map_err(|e| ConsoleError::App(AppError::internal(e)))?;
    Ok(res)
}

/// Every field defaults: a form without its token is refused as a CSRF failure (403), not as
/// a malformed request.
#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    login: String,
    #[serde(default = "empty_secret")]
    password: SecretString,
    #[serde(default)]
    csrf_token: String,
}

fn empty_secret() -> SecretString {
    SecretString::from(String::new())
}

const SIGN_IN_FAILED: &str = "Those details did not work. Check them and try again (admins only; repeated failures lock the account for a while).";

async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, ConsoleError> {
    let form = form.into_inner();
    if !session::same_origin(&req) {
        return Err(ConsoleError::Forbidden(
            "This sign-in form was sent from another site. Nothing was changed.",
        ));
    }
    if !session::check_login_nonce(
        &req,
        &CookieNames::for_settings(&state.settings),
        &form.csrf_token,
    ) {
        return Err(ConsoleError::Forbidden(
            "This sign-in form has expired. Go back, reload the page and sign in again.",
        ));
    }
    let login: String = form.login.trim().chars().take(254).collect();
    if form.login.len() > 254 {
        return login_page(
            &state,
            &req,
            StatusCode::UNAUTHORIZED,
            login,
            Some(SIGN_IN_FAILED),
        );
    }
    let meta = request_meta(&req);
    let verified = match accounts::verify_credentials(
        &state,
        login.clone(),
        form.password,
        &meta,
        SignIn::Console,
    )
    .await
    {
        Ok(verified) => verified,
        Err(AppError::Unauthorized) => {
            return login_page(
                &state,
                &req,
                StatusCode::UNAUTHORIZED,
                login,
                Some(SIGN_IN_FAILED),
            );
        }
        Err(other) => return Err(other.into()),
    };
    let verified = match accounts::begin_console_sign_in(&state, verified, meta.clone()).await? {
        accounts::ConsoleSignIn::Ready(verified) => *verified,
        accounts::ConsoleSignIn::SecondStep(challenge) => {
            return code_page(&state, &req, StatusCode::OK, challenge.mfa_token, None);
        }
    };
    let names = CookieNames::for_settings(&state.settings);
    let previous = session::presented_token(&req, &names);
    let token = session::sign_in(&state, verified, previous, meta).await?;
    signed_in(&state, token)
}

/// The redirect into the console with the new session cookie (and the sign-in nonce dropped).
fn signed_in(state: &AppState, token: String) -> Result<HttpResponse, ConsoleError> {
    let names = CookieNames::for_settings(&state.settings);
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/admin"))
        .cookie(names.cookie(names.session, token))
        .cookie(names.removal(names.login))
        .finish())
}

/// The second step of a console sign-in: the code of the admin's authenticator (or a recovery
/// code), with the challenge token and a fresh form nonce.
fn code_page(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    mfa_token: String,
    error: Option<&'static str>,
) -> Result<HttpResponse, ConsoleError> {
    let nonce = session::login_nonce()?;
    let (chrome, clear) = chrome(state, req, None, "Sign in: code", "login");
    let mut res = page(
        status,
        &LoginCodePage {
            chrome,
            nonce: nonce.clone(),
            mfa_token,
            error,
        },
        clear,
    )?;
    let names = &CookieNames::for_settings(&state.settings);
    res.add_cookie(&names.cookie(names.login, nonce))
        .map_err(|e| ConsoleError::App(AppError::internal(e)))?;
    Ok(res)
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    mfa_token: String,
    #[serde(default)]
    code: String,
    #[serde(default = "empty_secret")]
    recovery_code: SecretString,
    #[serde(default)]
    csrf_token: String,
}

const CODE_FAILED: &str = "That code did not work. Enter the current code from your authenticator \
                           (or an unused recovery code). If this page is older than five minutes, \
                           sign in again.";

async fn login_mfa(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, ConsoleError> {
    use secrecy::ExposeSecret;
    let form = form.into_inner();
    if !session::same_origin(&req)
        || !session::check_login_nonce(
            &req,
            &CookieNames::for_settings(&state.settings),
            &form.csrf_token,
        )
    {
        return Err(ConsoleError::Forbidden(
            "This sign-in form has expired or was sent from another site. Go back and sign in \
             again.",
        ));
    }
    let code = form.code.trim().to_string();
    let recovery = form.recovery_code.expose_secret().trim().to_string();
    let factor = match (code.is_empty(), recovery.is_empty()) {
        (false, true) => crate::mfa::SecondFactor::Code(code),
        (true, false) => crate::mfa::SecondFactor::Recovery(SecretString::from(recovery)),
        _ => {
            return code_page(
                &state,
                &req,
                StatusCode::UNPROCESSABLE_ENTITY,
                form.mfa_token,
                Some("Enter either the code from your authenticator or a recovery code."),
            );
        }
    };
    let meta = request_meta(&req);
    let names = CookieNames::for_settings(&state.settings);
    let previous = session::presented_token(&req, &names);
    let auditor = state.auditor.clone();
    let email_settings = state.settings.email.clone();
    let absolute = state.settings.console.absolute;
    let now = state.clock.now();
    let tx_meta = meta.clone();
    let started = accounts::second_step(
        &state,
        form.mfa_token.clone(),
        factor,
        crate::mfa::Purpose::Console,
        meta,
        move |conn, user, accepted| {
            if user.role() != crate::auth::Role::Admin {
                return Err(AppError::Unauthorized);
            }
            let started = session::Started {
                user_id: user.id,
                aal: 2,
                amr: match accepted.method {
                    crate::mfa::Method::Totp => &["pwd", "otp"],
                    crate::mfa::Method::Recovery => &["pwd", "rec"],
                },
                hash_upgraded: false,
            };
            session::start_in_tx(
                conn,
                &auditor,
                &email_settings,
                started,
                previous,
                &tx_meta,
                now,
                absolute,
            )
        },
    )
    .await;
    match started {
        Ok(token) => signed_in(&state, token),
        Err(AppError::Unauthorized) => code_page(
            &state,
            &req,
            StatusCode::UNAUTHORIZED,
            form.mfa_token,
            Some(CODE_FAILED),
        ),
        Err(other) => Err(other.into()),
    }
}

async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin.check_form(&state, &req, &form.csrf_token)?;
    session::sign_out(&state, &admin, request_meta(&req)).await?;
    let names = CookieNames::for_settings(&state.settings);
    let mut res = redirect(&state, "/admin/login", "ok", "You are signed out.");
    res.add_removal_cookie(&names.cookie(names.session, String::new()))
        .map_err(|e| ConsoleError::App(AppError::internal(e)))?;
    Ok(res)
}
