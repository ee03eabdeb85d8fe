//! rampart: a security-first backend service. See README.md and ../shared/DESIGN.md.

pub mod app;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod http;
pub mod serve;
pub mod telemetry;
