//! Incidents: alerts grouped by group key, routed to a channel, kept in Postgres, and
//! shown in Slack as one thread each (or one storm digest), updated in place.
//!
//! `store` writes the intake log; `apply` turns it into incident state (serialised across
//! replicas by an advisory lock); `sync` brings Slack up to date with that state (leases,
//! so exactly one replica posts a root) through the Slack port, with messages from
//! `render` (pure); `drafts` edits each runbook reply into its diagnosis, in a pool of its
//! own (leases too), so nothing waits for the LLM; `engine` runs all three; `commands`
//! answers `/sentinel incidents` and `/sentinel incident ID`.

mod apply;
pub mod commands;
pub mod diagnose;
mod drafts;
pub mod engine;
pub mod intake;
pub mod render;
pub mod route;
pub mod store;
mod sync;
pub mod view;

pub use engine::{Engine, EngineConfig, StormConfig};
pub use route::Routes;
