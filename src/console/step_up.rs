//! Step-up in the console: every state-changing console action (a POST to a console route other
//! than sign-in and sign-out) needs a recent authentication (STEP_UP_MAX_AGE_MINUTES). When the
//! session's is older, the action is not run; a re-authentication page is shown instead, carrying
//! the pending form's fields (CSRF token included) as hidden inputs and posting back to the same
//! address. With a right password (or, for an admin with a second factor, a right code) the
//! session's authentication time is refreshed and the pending action then runs, unchanged, through
//! its own handler — which still checks its CSRF token as always. The password is checked only
//! for a form that carries this session's CSRF token from this origin.
//!
//! The rule is decided on the route the router will dispatch to (`http::routed_pattern`), never
//! on the raw path, so a percent-encoded or otherwise re-spelled path cannot skip it.

use actix_web::body::BoxBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpRequest, web};
use secrecy::SecretString;

use super::ConsoleError;
use super::pages::StepUpPage;
use super::session::{self, Admin, CookieNames};
use crate::accounts::{self, Proof, Reauth};
use crate::auth::request_meta;
use crate::error::AppError;
use crate::state::AppState;

/// Console POSTs that need no recent authentication: signing in and out.
const EXEMPT: &[&str] = &["/admin/login", "/admin/login/mfa", "/admin/logout"];
/// The re-authentication fields this page adds to the pending form.
const PASSWORD: &str = "reauth_password";
const CODE: &str = "reauth_code";
const RECOVERY: &str = "reauth_recovery_code";

pub async fn gate(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.method() != Method::POST {
        return next.call(req).await;
    }
    let Some(pattern) = crate::http::routed_pattern(&req) else {
        return next.call(req).await;
    };
    if !pattern.starts_with("/admin/") || EXEMPT.contains(&pattern.as_str()) {
        return next.call(req).await;
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await;
    };
    let names = CookieNames::for_settings(&state.settings);
    let Some(token) = session::presented_token(req.request(), &names) else {
        // Not signed in: the handler sends the browser to the sign-in page.
        return next.call(req).await;
    };
    let admin = match session::resolve(&state, token).await {
        Ok(Some(admin)) => admin,
        Ok(None) => return next.call(req).await,
        Err(error) => return Ok(req.error_response(ConsoleError::from(error))),
    };
    let now = state.clock.now();
    if admin.is_recent(now, state.settings.auth.step_up_max_age) {
        return next.call(req).await;
    }
    let (http, mut payload) = req.into_parts();
    let body = match web::Bytes::from_request(&http, &mut payload).await {
        Ok(body) => body,
        Err(error) => return Ok(ServiceResponse::new(http, error.error_response())),
    };
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let value = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let pending: Vec<(String, String)> = fields
        .iter()
        .filter(|(k, _)| !k.starts_with("reauth_"))
        .cloned()
        .collect();
    let has_factor = match accounts::has_second_factor(&state, admin.user.id).await {
        Ok(has) => has,
        Err(error) => return Ok(respond(http, Err(error.into()))),
    };
    let (password, code, recovery) = (value(PASSWORD), value(CODE), value(RECOVERY));
    if password.is_none() && code.is_none() && recovery.is_none() {
        let page = render(
            &state,
            &http,
            &admin,
            has_factor,
            pending,
            None,
            StatusCode::OK,
        );
        return Ok(respond(http, page));
    }
    let csrf = value("csrf_token").unwrap_or_default();
    if !admin.form_is_ours(&state, &http, &csrf) {
        return Ok(respond(
            http,
            Err(ConsoleError::Forbidden(
                "This form has expired or does not belong to your session. Nothing was changed; \
                 go back, reload the page and try again.",
            )),
        ));
    }
    let factor = match (code, recovery) {
        (Some(code), None) => Some(crate::mfa::SecondFactor::Code(code)),
        (None, Some(recovery)) => Some(crate::mfa::SecondFactor::Recovery(SecretString::from(
            recovery,
        ))),
        _ => None,
    };
    let proof = Proof {
        password: password.map(SecretString::from),
        factor,
    };
    let session = admin.clone();
    let outcome = accounts::reauthenticate(
        &state,
        admin.user.clone(),
        proof,
        request_meta(&http),
        move |conn, _, accepted| {
            let aal = if accepted.is_some() { 2 } else { 1 };
            if session.reauthenticated_in_tx(conn, aal, now)? {
                Ok(())
            } else {
                Err(AppError::Unauthorized)
            }
        },
    )
    .await;
    let error = match outcome {
        Ok(Reauth::Done) => {
            // The pending action runs now, through its own handler, with the form as it came.
            let req = ServiceRequest::from_parts(http, Payload::from(body));
            return next.call(req).await;
        }
        Ok(Reauth::Wrong) => (
            StatusCode::UNAUTHORIZED,
            if has_factor {
                "That code did not work. Enter the current code from your authenticator (or an \
                 unused recovery code)."
            } else {
                "That password is not right."
            },
        ),
        Ok(Reauth::Locked(_)) => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong attempts: the account is locked for a while. Nothing was changed.",
        ),
        Err(error) => return Ok(respond(http, Err(error.into()))),
    };
    let page = render(
        &state,
        &http,
        &admin,
        has_factor,
        pending,
        Some(error.1),
        error.0,
    );
    Ok(respond(http, page))
}

fn respond(
    http: HttpRequest,
    page: Result<actix_web::HttpResponse, ConsoleError>,
) -> ServiceResponse<BoxBody> {
    let res = match page {
        Ok(res) => res,
        Err(error) => actix_web::ResponseError::error_response(&error),
    };
    ServiceResponse::new(http, res)
}

fn render(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    has_factor: bool,
    fields: Vec<(String, String)>,
    error: Option<&'static str>,
    status: StatusCode,
) -> Result<actix_web::HttpResponse, ConsoleError> {
    let (chrome, clear) = super::routes::chrome_for(state, req, admin, "Confirm it is you");
    super::routes::render_page(
        status,
        &StepUpPage {
            chrome,
            action: req.uri().to_string(),
            fields,
            has_factor,
            minutes: state.settings.auth.step_up_max_age.as_secs() / 60,
            error,
        },
        clear,
    )
}
