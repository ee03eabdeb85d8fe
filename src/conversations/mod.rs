//! Conversations (placeholder: the real module declares the rest).

pub mod attachment;
