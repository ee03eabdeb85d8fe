//! Configuration: layered loading (`settings`) and the safety rules of `check-config` (`validate`).
//! Nothing here opens connections or starts anything.

pub mod settings;
pub mod validate;

pub use settings::{ConfigError, Environment, LogFormat, Settings, Sources};
pub use validate::{Problem, check};
