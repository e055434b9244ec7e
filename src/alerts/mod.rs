//! Alerts in: one model for every source, pure parsers, and the Slack side of incidents
//! behind a trait (`notify`) with pure message rendering (`render`).

pub mod model;
pub mod notify;
pub mod parse;
pub mod render;

pub use model::{Alert, Link, Severity, SlackOrigin, Source, Status};
pub use parse::ParseError;
