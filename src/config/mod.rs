//! Configuration: one declaration per setting (`spec`), layered loading (`settings`) and the safety
//! rules of `check-config` (`validate`).
//! Nothing here opens connections or starts anything.

mod layers;
pub mod settings;
pub mod spec;
mod table;
pub mod validate;

pub use settings::{ConfigError, Environment, LogFormat, Settings, Sources};
pub use validate::{Problem, check};
