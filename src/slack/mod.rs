//! Slack: the one message vocabulary (`mrkdwn`, `blocks`, `message`), the outbound Web API
//! client and the port background work posts through (`port`, with fakes in `recorder`),
//! inbound payload parsing, the Socket Mode listener, start-up token checks, the app
//! manifest and the scopes each call needs, and an
//! emulator to test all of it.

pub mod auth;
pub mod blocks;
pub mod client;
pub mod emulator;
pub mod events;
pub mod manifest;
pub mod message;
pub mod mrkdwn;
pub mod port;
pub mod ratelimit;
pub mod recorder;
pub mod socket;

pub use client::{ClientOptions, Posted, SlackClient, SlackError};
pub use message::Message;
pub use mrkdwn::{Mrkdwn, Plain};
pub use port::{PortError, SlackPort};
