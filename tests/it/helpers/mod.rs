//! What the integration tests share.

pub mod embed;
pub mod slack;
