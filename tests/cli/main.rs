//! The operator's side: configuration layering and validation, and the real `rampart` binary
//! (check-config, config show, keygen, serve's logs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod accounts;
mod commands;
mod config;
mod conversations;
mod keys;
mod live;
mod logs;
mod mfa;
mod privacy;
mod webhooks;
