//! Request body limits and JSON parsing errors.
//!
//! A declared `Content-Length` above MAX_BODY_BYTES is refused with 413 before routing or reading;
//! chunked bodies are capped by the extractor configs. Malformed JSON is 400, JSON that does not fit
//! the expected shape 422, a non-JSON content type 415 — all problem+json.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PayloadError};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web;

use super::error::{AppError, FieldError};

#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

pub async fn limit_body(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limit = req
        .app_data::<Arc<BodyLimit>>()
        .map(|l| l.0)
        .unwrap_or(65536);
    if let Some(value) = req.headers().get(header::CONTENT_LENGTH) {
        let declared = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok());
        match declared {
            Some(len) if len > limit as u64 => {
                return Ok(req.error_response(AppError::PayloadTooLarge { limit }));
            }
            Some(_) => {}
            None => {
                return Ok(
                    req.error_response(AppError::BadRequest("Invalid Content-Length.".into()))
                );
            }
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// The JSON extractor configuration every route uses.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |error, _req| json_error(error, limit).into())
}

/// Raw body extractors (`Bytes`, `String`; webhooks) get the same cap.
pub fn payload_config(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(limit)
}

fn json_error(error: JsonPayloadError, limit: usize) -> AppError {
    match error {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            AppError::PayloadTooLarge { limit }
        }
        JsonPayloadError::Payload(PayloadError::Overflow) => AppError::PayloadTooLarge { limit },
        JsonPayloadError::ContentType => AppError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            AppError::Validation(vec![FieldError::new("body", data_error_message(&e))])
        }
        JsonPayloadError::Deserialize(e) => AppError::BadRequest(format!(
            "The body is not valid JSON (line {}, column {}).",
            e.line(),
            e.column()
        )),
        _ => AppError::BadRequest("The request body could not be read.".into()),
    }
}

/// serde's message names the field and the expected type; it never echoes the value sent.
fn data_error_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(" at line ") {
        Some((message, _)) => message.to_string(),
        None => text,
    }
}

/// A JSON body that may be left out: empty (or blank) is `T::default()`, anything else must be
/// valid JSON of `T` (422 with a field error otherwise). For admin actions whose body only
/// carries an optional reason.
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, super::error::AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        super::error::AppError::Validation(vec![super::error::FieldError::new(
            "body",
            format!("is not a valid JSON object ({e})"),
        )])
    })
}
