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
            AppError::Validation(vec![data_error_message(&e)])
        }
        JsonPayloadError::Deserialize(e) => AppError::BadRequest(format!(
            "The body is not valid JSON (line {}, column {}).",
            e.line(),
            e.column()
        )),
        _ => AppError::BadRequest("The request body could not be read.".into()),
    }
}

/// A JSON shape error as a field error that never quotes what was sent: serde's messages quote
/// values in backticks (``invalid type: integer `918…` ``) and would echo a password sent as a
/// number into the response and, through the error's `Debug`, into the WARN log. Only the
/// error's category, the position, the struct's own field names and the expected type are kept.
fn data_error_message(e: &serde_json::Error) -> FieldError {
    let text = e.to_string();
    let message = match text.rsplit_once(" at line ") {
        Some((message, _)) => message,
        None => text.as_str(),
    };
    let described = describe_data_error(message);
    FieldError::new(
        described.field.unwrap_or_else(|| "body".into()),
        format!(
            "{} (line {}, column {})",
            described.message,
            e.line(),
            e.column()
        ),
    )
}

/// What a serde data error says, rebuilt from its category: the field when serde names one of
/// the struct's own fields, and a message without any part of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedError {
    pub field: Option<String>,
    pub message: String,
}

/// The kinds of value serde's `Unexpected` names, most specific first.
const VALUE_KINDS: &[(&str, &str)] = &[
    ("boolean", "a boolean"),
    ("integer", "an integer"),
    ("floating point", "a number"),
    ("char", "a character"),
    ("string", "a string"),
    ("byte array", "bytes"),
    ("unit variant", "a variant"),
    ("newtype variant", "a variant"),
    ("tuple variant", "a variant"),
    ("struct variant", "a variant"),
    ("unit", "null"),
    ("null", "null"),
    ("Option value", "an optional value"),
    ("newtype struct", "a value"),
    ("sequence", "an array"),
    ("map", "an object"),
    ("enum", "an enum"),
];

/// Describes a serde data error message (`serde::de::Error`'s standard wordings) without quoting
/// the value; messages of any other wording become a generic sentence.
pub fn describe_data_error(message: &str) -> DescribedError {
    // `expected …` comes from the Deserialize impl (code, not input): always the last clause.
    let expected = message
        .rsplit_once(", expected ")
        .map(|(_, e)| e.chars().take(200).collect::<String>());
    let with_expected = |what: &str| match &expected {
        Some(e) => format!("{what}: expected {e}"),
        None => what.to_string(),
    };
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .filter(|name| is_plain_name(name))
            .map(str::to_string)
    };
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let found = VALUE_KINDS
            .iter()
            .find(|(kind, _)| rest.starts_with(kind))
            .map_or("another type", |(_, article)| article);
        return DescribedError {
            field: None,
            message: with_expected(&format!("has the wrong type ({found})")),
        };
    }
    if message.starts_with("invalid value: ") {
        return DescribedError {
            field: None,
            message: with_expected("has an invalid value"),
        };
    }
    if message.starts_with("invalid length ") {
        return DescribedError {
            field: None,
            message: with_expected("has the wrong length"),
        };
    }
    if message.starts_with("unknown variant ") {
        return DescribedError {
            field: None,
            message: with_expected("is not one of the accepted values"),
        };
    }
    if message.starts_with("unknown field ") {
        // The name is the client's own key (it could be anything): not repeated either.
        return DescribedError {
            field: None,
            message: with_expected("has a field that is not known"),
        };
    }
    if let Some(field) = named("missing field `") {
        return DescribedError {
            field: Some(field),
            message: "is required".into(),
        };
    }
    if let Some(field) = named("duplicate field `") {
        return DescribedError {
            field: Some(field),
            message: "appears more than once".into(),
        };
    }
    DescribedError {
        field: None,
        message: "does not have the expected shape".into(),
    }
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The query-string extractor configuration every route uses: a shape error is a 422 that
/// names the parameter's category, never its value (serde_urlencoded quotes unknown variants).
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _req| {
        let message = match &error {
            actix_web::error::QueryPayloadError::Deserialize(e) => e.to_string(),
            _ => String::new(),
        };
        let described = describe_data_error(&message);
        AppError::Validation(vec![FieldError::new(
            described.field.unwrap_or_else(|| "query".into()),
            described.message,
        )])
        .into()
    })
}

/// The urlencoded-form extractor configuration every route uses (same rules as queries).
pub fn form_config(limit: usize) -> web::FormConfig {
    web::FormConfig::default()
        .limit(limit)
        .error_handler(move |error, _req| {
            use actix_web::error::UrlencodedError;
            match error {
                UrlencodedError::Overflow { .. } => AppError::PayloadTooLarge { limit },
                UrlencodedError::ContentType => AppError::UnsupportedMediaType,
                UrlencodedError::Parse(e) => {
                    let described = describe_data_error(&e.to_string());
                    AppError::Validation(vec![FieldError::new(
                        described.field.unwrap_or_else(|| "form".into()),
                        described.message,
                    )])
                }
                _ => AppError::BadRequest("The form could not be read.".into()),
            }
            .into()
        })
}

/// Path parameters that do not fit their type: nothing is there (the segment is not echoed).
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_error, _req| AppError::NotFound.into())
}

/// A JSON body that may be left out: empty (or blank) is `T::default()`, anything else must be
/// valid JSON of `T` (422 with a field error otherwise). For admin actions whose body only
/// carries an optional reason.
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        let error = if e.is_data() {
            data_error_message(&e)
        } else {
            FieldError::new(
                "body",
                format!(
                    "is not a valid JSON object (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        };
        AppError::Validation(vec![error])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described_errors_never_quote_the_value() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Login {
            login: String,
            password: String,
            mode: Option<Mode>,
        }
        #[derive(Debug, serde::Deserialize)]
        enum Mode {
            A,
        }
        for (body, field) in [
            (r#"{"login":"a","password":91827364554433}"#, "body"),
            (r#"{"login":"a","password":{"x":"91827364554433"}}"#, "body"),
            (r#"{"login":"a","password":["91827364554433"]}"#, "body"),
            (r#"{"login":91827364554433,"password":"p"}"#, "body"),
            (
                r#"{"login":"a","password":"p","mode":"91827364554433"}"#,
                "body",
            ),
            (r#"{"login":"a","password":"p","91827364554433":1}"#, "body"),
            (
                r#"{"login":"a","password":"p","x91827364554433":1}"#,
                "body",
            ),
            (r#"{"login":"a"}"#, "password"),
        ] {
            let e = serde_json::from_str::<Login>(body).unwrap_err();
            let described = data_error_message(&e);
            let text = format!("{described:?}");
            assert!(!text.contains("9182736455"), "{body}: {text}");
            assert_eq!(described.field, field, "{body}: {text}");
            assert!(!described.message.is_empty());
        }
        let e = serde_json::from_str::<Login>(r#"{"login":"a","password":9}"#).unwrap_err();
        assert!(
            data_error_message(&e)
                .message
                .starts_with("has the wrong type (an integer): expected a string"),
            "{:?}",
            data_error_message(&e)
        );
    }
}
