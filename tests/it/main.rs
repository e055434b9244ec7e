//! Sentinel's integration tests: one binary (one link of candle and slack-morphism), one
//! module per area, the shared set-up in `helpers`.

mod helpers;

mod actions;
mod audit;
mod cli;
mod diagnosis;
mod embedding_parity;
mod hostile;
mod incidents;
mod knowledge_ingest;
mod knowledge_search;
mod logs;
mod outage;
mod playground;
mod replicas;
mod slack_bot;
mod slack_client;
mod stack;
mod webhooks;
