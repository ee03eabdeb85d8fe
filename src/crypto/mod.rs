//! Cryptographic building blocks. Randomness always comes from the operating system.

pub mod random;
