//! Sentinel's integration tests: one binary (one link of candle and slack-morphism), one
//! module per area, the shared set-up in `helpers`.

mod helpers;

mod actions;
mod alertmanager;
mod audit;
mod cli;
mod database;
mod db_outage;
mod deploy;
mod diagnosis;
mod doctor;
mod embedding_parity;
mod hostile;
mod incidents;
mod knowledge_ingest;
mod knowledge_search;
mod logs;
mod manifest;
mod metrics;
mod outage;
mod playground;
mod replicas;
mod slack_bot;
mod slack_client;
mod stack;
mod webhooks;
