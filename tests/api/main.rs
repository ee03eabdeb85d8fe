//! HTTP-level integration tests: the real application over real HTTP against a real Postgres.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod accounts;
mod api_keys;
mod attachments;
mod audit;
mod conversations;
mod database;
mod email;
mod encryption;
mod errors;
mod health;
mod http_hardening;
mod identities;
mod identity;
mod live;
mod mfa;
mod openapi;
mod permissions;
mod privacy;
mod quotas;
mod rate_limit;
mod sessions;
mod tokens;
mod webhooks;
