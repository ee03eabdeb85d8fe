//! A user's authenticator app, for tests: enrol TOTP through the API and compute the codes the
//! app would show (with rampart's own RFC 6238 parameters, checked against the RFC's vectors in
//! `mfa::model`).

#![allow(dead_code)]

use serde_json::{Value, json};

use super::TestApp;

/// The raw secret of an enrolment answer (`secret` is base32).
pub fn secret_bytes(enrolment: &Value) -> Vec<u8> {
    let secret = totp_rs::Secret::try_from_base32(enrolment["secret"].as_str().unwrap()).unwrap();
    secret.as_ref().to_vec()
}

/// Base32 (as a person types it) → raw secret.
pub fn secret_from_base32(text: &str) -> Vec<u8> {
    totp_rs::Secret::try_from_base32(text.trim())
        .unwrap()
        .as_ref()
        .to_vec()
}

/// The code the authenticator shows at `at`.
pub fn code_at(secret: &[u8], at: time::OffsetDateTime) -> String {
    let totp = rampart::mfa::model::totp(secret, "rampart", "test").unwrap();
    totp.generate(u64::try_from(at.unix_timestamp()).unwrap())
        .to_string()
}

/// The code for the service's current time.
pub fn code_now(app: &TestApp, secret: &[u8]) -> String {
    code_at(secret, app.clock.now())
}

/// Moves the service's clock to the next 30-second step (a fresh code).
pub fn next_step(app: &TestApp) {
    app.clock.advance(std::time::Duration::from_secs(30));
}

/// Enrols TOTP for the holder of `access` through the API: (raw secret, recovery codes).
pub async fn enrol(app: &TestApp, access: &str) -> (Vec<u8>, Vec<String>) {
    let res = app
        .client
        .post(app.url("/api/v1/me/mfa/totp"))
        .bearer_auth(access)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "start enrolment");
    let enrolment: Value = res.json().await.unwrap();
    let secret = secret_bytes(&enrolment);
    let res = app
        .client
        .post(app.url("/api/v1/me/mfa/totp/confirm"))
        .bearer_auth(access)
        .json(&json!({ "code": code_now(app, &secret) }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "confirm enrolment");
    let body: Value = res.json().await.unwrap();
    let codes = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    (secret, codes)
}
