//! Slack: the outbound Web API client, Block Kit builder, inbound payload parsing, the
//! Socket Mode listener, start-up token checks, and an emulator to test all of it.

pub mod auth;
pub mod blocks;
pub mod client;
pub mod emulator;
pub mod events;
pub mod notify;
pub mod ratelimit;
pub mod socket;

pub use client::{ClientOptions, Posted, SlackClient, SlackError};
