//! `POST /api/v1/webhooks/stripe`, `POST /api/v1/webhooks/clerk` (no user auth: the signature is
//! the authentication) and `GET /api/v1/me/subscription`.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Delivery, Inbox, Provider, Receipt, SubscriptionView, WebhookError};
use crate::auth::{Access, ApiRoutes, Permission, Principal, request_meta};
use crate::error::AppError;
use crate::http::limits::RawBody;
use crate::state::AppState;

pub fn routes(r: &mut ApiRoutes) {
    r.add(
        Method::POST,
        "/api/v1/webhooks/stripe",
        Access::Public,
        stripe,
    )
    .summary("Receive a Stripe event (verified by its Stripe-Signature header).")
    .body::<ProviderEvent>()
    .ok::<Receipt>();
    r.add(
        Method::POST,
        "/api/v1/webhooks/clerk",
        Access::Public,
        clerk,
    )
    .summary("Receive a Clerk event (verified by its svix-*/webhook-* headers).")
    .body::<ProviderEvent>()
    .ok::<Receipt>();
    r.add(
        Method::GET,
        "/api/v1/me/subscription",
        Access::Permission(Permission::ProfileRead),
        my_subscription,
    )
    .ok::<SubscriptionView>();
}

/// An event as the provider sends it (any JSON object with a `type`; Stripe's also has its `id`).
/// The signature covers the exact bytes: the body is read raw, never re-serialised.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct ProviderEvent {
    id: Option<String>,
    #[serde(rename = "type")]
    event_type: String,
    data: Option<serde_json::Map<String, serde_json::Value>>,
}

async fn stripe(
    state: web::Data<AppState>,
    inbox: web::Data<Inbox>,
    req: HttpRequest,
    body: RawBody,
) -> Result<HttpResponse, AppError> {
    deliver(&state, &inbox, &req, body, Provider::Stripe).await
}

async fn clerk(
    state: web::Data<AppState>,
    inbox: web::Data<Inbox>,
    req: HttpRequest,
    body: RawBody,
) -> Result<HttpResponse, AppError> {
    deliver(&state, &inbox, &req, body, Provider::Clerk).await
}

async fn deliver(
    state: &AppState,
    inbox: &Inbox,
    req: &HttpRequest,
    RawBody(body): RawBody,
    provider: Provider,
) -> Result<HttpResponse, AppError> {
    let headers = Delivery::HEADERS
        .iter()
        .filter_map(|name| {
            let mut values = req.headers().get_all(*name);
            let first = values.next()?;
            // The same header twice is ambiguous: refuse rather than pick one (a byte no
            // verifier accepts makes it malformed).
            let value = match values.next() {
                Some(_) => vec![0u8],
                None => first.as_bytes().to_vec(),
            };
            Some((*name, value))
        })
        .collect();
    let delivery = Delivery {
        provider,
        headers,
        body,
    };
    let receipt = super::receive(state, inbox, delivery, request_meta(req)).await?;
    Ok(HttpResponse::Ok().json(receipt))
}

async fn my_subscription(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    match super::subscription_of(&state, principal.user_id).await {
        Ok(view) => Ok(HttpResponse::Ok().json(view)),
        Err(WebhookError::NotFound) => Err(AppError::NotFound),
        Err(other) => Err(other.into()),
    }
}
