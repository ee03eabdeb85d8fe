//! The signed-in admin's own second factor: status, TOTP enrolment (the QR code drawn by the
//! server, inline SVG) and its confirmation, which shows the recovery codes once and raises this
//! console session to two factors. Reachable by an admin who must enrol before anything else.
//! Disabling or resetting a factor is not offered here: `DELETE /api/v1/me/mfa/totp` (password and
//! code) or `rampart users reset-mfa` (operator, audited).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel::Connection;
use serde::Deserialize;

use super::{CsrfForm, chrome, page};
use crate::audit::Actor;
use crate::auth::request_meta;
use crate::console::ConsoleError;
use crate::console::pages::MfaPage;
use crate::console::session::Admin;
use crate::error::AppError;
use crate::state::AppState;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/mfa").route(web::get().to(status)))
        .service(web::resource("/admin/mfa/start").route(web::post().to(start)))
        .service(web::resource("/admin/mfa/confirm").route(web::post().to(confirm)));
}

fn render(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    status: StatusCode,
    view: MfaView,
) -> Result<HttpResponse, ConsoleError> {
    let (chrome, clear) = chrome(state, req, Some(admin), "Two-factor sign-in", "mfa");
    page(
        status,
        &MfaPage {
            chrome,
            must_enrol: admin.must_enrol(&state.settings),
            view,
        },
        clear,
    )
}

/// What the page shows.
pub enum MfaView {
    Status {
        enabled: bool,
        recovery_codes_left: i64,
        /// A factor exists but this session was signed in without it (before enrolment).
        session_aal1: bool,
    },
    Enrol {
        secret: String,
        qr_svg: String,
        error: Option<&'static str>,
    },
    Codes(Vec<String>),
}

async fn status(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
) -> Result<HttpResponse, ConsoleError> {
    let status = crate::mfa::status(&state, admin.user.id).await?;
    render(
        &state,
        &req,
        &admin,
        StatusCode::OK,
        MfaView::Status {
            enabled: status.totp,
            recovery_codes_left: status.recovery_codes_left,
            session_aal1: status.totp && admin.aal < 2,
        },
    )
}

async fn start(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin.check_form(&state, &req, &form.csrf_token)?;
    let enrolment = crate::mfa::start_enrolment(
        &state,
        admin.user.id,
        &admin.user.username,
        Actor::admin(admin.user.id),
        request_meta(&req),
    )
    .await
    .map_err(|e| ConsoleError::from(AppError::from(e)))?;
    render(
        &state,
        &req,
        &admin,
        StatusCode::OK,
        MfaView::Enrol {
            secret: enrolment.secret,
            qr_svg: enrolment.qr_svg,
            error: None,
        },
    )
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    code: String,
}

async fn confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    form: web::Form<ConfirmForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin.check_form(&state, &req, &form.csrf_token)?;
    let confirmed = crate::mfa::confirm_enrolment(
        &state,
        admin.user.id,
        form.code.trim().to_string(),
        Actor::admin(admin.user.id),
        request_meta(&req),
    )
    .await;
    let codes = match confirmed {
        Ok(codes) => codes,
        Err(crate::mfa::MfaError::InvalidCode) => {
            return Err(ConsoleError::Conflict(
                "That code did not match. Nothing was enabled: start again and enter the code \
                 your authenticator shows for the new secret."
                    .into(),
            ));
        }
        Err(other) => return Err(AppError::from(other).into()),
    };
    // The admin just proved the factor: this session now counts as signed in with two.
    let now = state.clock.now();
    let session = admin.clone();
    state
        .pool
        .run(move |conn| {
            conn.transaction::<_, AppError, _>(|conn| session.reauthenticated_in_tx(conn, 2, now))
        })
        .await?;
    render(
        &state,
        &req,
        &admin,
        StatusCode::OK,
        MfaView::Codes(codes.recovery_codes),
    )
}
