//! HTTP-level integration tests: the real application over real HTTP against a real Postgres.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod database;
mod errors;
mod health;
mod http_hardening;
