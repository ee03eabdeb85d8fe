//! The admin console and the admin JSON API: HTTP-level tests (CSRF, cookies, expiry, XSS,
//! filters and pagination) and a real-browser test (Debian's Chromium through ChromeDriver).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod admin_api;
mod browser;
mod client;
mod control_chars;
mod conversations;
mod email;
mod identities;
mod mfa;
mod pages;
mod pagination;
mod privacy;
mod shared_parsers;
mod sign_in;
mod webhooks;
