//! The caller's own second factor: status, TOTP enrolment and its confirmation, and recovery-code
//! regeneration. Each change needs a recent authentication (step-up, the guard checks it). The
//! sign-in's second step, step-up itself and disabling (which need the password and the lockout)
//! are `accounts`' routes.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{Enrolment, MfaStatus, RecoveryCodes};
use crate::auth::{Access, ApiRoutes, Permission, Principal, request_meta};
use crate::error::AppError;
use crate::state::AppState;

pub fn routes(r: &mut ApiRoutes) {
    r.add(
        Method::GET,
        "/api/v1/me/mfa",
        Access::Permission(Permission::ProfileRead),
        get_status,
    )
    .ok::<MfaStatus>();
    let write = Access::Permission(Permission::ProfileWrite);
    r.add_sensitive(Method::POST, "/api/v1/me/mfa/totp", write, start_totp)
        .ok::<Enrolment>();
    r.add_sensitive(
        Method::POST,
        "/api/v1/me/mfa/totp/confirm",
        write,
        confirm_totp,
    )
    .body::<ConfirmBody>()
    .ok::<RecoveryCodes>();
    r.add_sensitive(
        Method::POST,
        "/api/v1/me/mfa/recovery-codes",
        write,
        regenerate_recovery_codes,
    )
    .ok::<RecoveryCodes>();
}

async fn get_status(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(super::status(&state, principal.user_id).await?))
}

async fn start_totp(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    let account = match &principal.user {
        Some(user) => user.username.clone(),
        None => principal.user_id.to_string(),
    };
    let enrolment = super::start_enrolment(
        &state,
        principal.user_id,
        &account,
        principal.actor(),
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::Ok().json(enrolment))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    /// The 6-digit code the authenticator shows now.
    #[schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$")]
    code: String,
}

async fn confirm_totp(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    body: web::Json<ConfirmBody>,
) -> Result<HttpResponse, AppError> {
    let codes = super::confirm_enrolment(
        &state,
        principal.user_id,
        body.into_inner().code,
        principal.actor(),
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::Ok().json(codes))
}

async fn regenerate_recovery_codes(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    let codes = super::regenerate_recovery_codes(
        &state,
        principal.user_id,
        principal.actor(),
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::Ok().json(codes))
}
