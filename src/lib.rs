//! Sentinel: the first responder for on-call engineers, as a library under the `sentinel` binary.
//!
//! See `ARCHITECTURE.md` for the map. One module per capability, outside services behind
//! their own modules.

pub mod actions;
pub mod alerts;
pub mod app;
pub mod audit;
pub mod bench;
pub mod bot;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod diagnosis;
pub mod doctor;
pub mod embed;
pub mod error;
pub mod http;
pub mod incidents;
pub mod knowledge;
pub mod llm;
pub mod metrics;
pub mod net;
pub mod playground;
pub mod redact;
pub mod retry;
pub mod slack;
pub mod stack;
pub mod telemetry;
pub mod text;
