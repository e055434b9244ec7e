//! Alerts in: one model for every source (Alertmanager, Grafana, generic webhooks, alert
//! messages in Slack) and its pure parsers. Incidents own what is shown in Slack.

pub mod model;
pub mod parse;

pub use model::{Alert, Link, Severity, SlackOrigin, Source, Status};
pub use parse::ParseError;
