//! The runbook knowledge base: parse runbooks, chunk them, ingest into Postgres, search.
//!
//! `runbook` and `chunk` are pure (no I/O); `ingest` and `search` talk to the database
//! through `embed::Embedder` for vectors; `index` keeps the BM25 postings and statistics
//! that full-text search reads.

pub mod actions;
pub mod chunk;
pub mod index;
pub mod ingest;
pub mod names;
pub mod query;
pub mod runbook;
pub mod search;

pub use search::{Hit, KnowledgeBase, MatchKind, SearchRequest};
