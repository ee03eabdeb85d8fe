//! Account endpoints: register, login, and the caller's own profile and password.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::{Access, ApiRoutes, Permission, Principal, request_meta};
use crate::http::error::AppError;

pub fn routes(r: &mut ApiRoutes) {
    r.add(
        Method::POST,
        "/api/v1/auth/register",
        Access::Public,
        register,
    );
    r.add(Method::POST, "/api/v1/auth/login", Access::Public, login);
    r.add(
        Method::GET,
        "/api/v1/me",
        Access::Permission(Permission::ProfileRead),
        get_me,
    );
    r.add(
        Method::PATCH,
        "/api/v1/me",
        Access::Permission(Permission::ProfileWrite),
        update_me,
    );
    r.add(
        Method::GET,
        "/api/v1/me/export",
        Access::Permission(Permission::DataExport),
        export_me,
    );
    r.add(
        Method::POST,
        "/api/v1/me/password",
        Access::Permission(Permission::ProfileWrite),
        change_password,
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    username: String,
    email: String,
    password: SecretString,
}

async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RegisterBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let user = super::register(
        &state,
        super::Registration {
            username: body.username,
            email: body.email,
            password: body.password,
        },
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::Created().json(user))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    login: String,
    password: SecretString,
}

async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    // Bound the work an anonymous caller can ask for before anything is looked up.
    if body.login.len() > 254 {
        return Err(AppError::Unauthorized);
    }
    let (pair, _) = super::login(&state, body.login, body.password, request_meta(&req)).await?;
    Ok(HttpResponse::Ok().json(pair))
}

async fn get_me(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(super::me(&state, &principal).await?))
}

/// The caller's data as a JSON download (daily quota `data_exports`).
async fn export_me(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    let document = super::export(&state, &principal, request_meta(&req)).await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"rampart-export.json\"",
        ))
        .json(document))
}

/// Only display fields: anything else (role, active, email …) is refused as an unknown field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateMeBody {
    display_name: Option<String>,
}

async fn update_me(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    body: web::Json<UpdateMeBody>,
) -> Result<HttpResponse, AppError> {
    let user = super::update_display_name(
        &state,
        &principal,
        body.into_inner().display_name,
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::Ok().json(user))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: SecretString,
    new_password: SecretString,
}

async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    body: web::Json<PasswordBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    super::change_password(
        &state,
        &principal,
        body.current_password,
        body.new_password,
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
