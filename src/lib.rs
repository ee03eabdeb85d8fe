//! rampart: a security-first backend service. See README.md and ../shared/DESIGN.md.

pub mod accounts;
pub mod api_keys;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bus;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod conversations;
pub mod crypto;
pub mod db;
pub mod error;
pub mod http;
pub mod identity;
pub mod live;
pub mod privacy;
pub mod rate_limit;
pub mod serve;
pub mod sessions;
pub mod state;
pub mod telemetry;
pub mod users;
pub mod web;
pub mod webhooks;
