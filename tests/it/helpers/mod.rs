//! What the integration tests share: the embedders, the fixtures, knowledge bases over
//! them, the Slack emulator's helpers and `TestApp`, the whole product in one process,
//! and a real Alertmanager.

pub mod alertmanager;
pub mod app;
pub mod embed;
pub mod fixtures;
pub mod kb;
pub mod pg;
pub mod process;
pub mod slack;
pub mod webdriver;

pub use app::{TestApp, ALERTS};
