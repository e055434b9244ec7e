//! Outbound HTTP clients: one place that picks the TLS crypto provider (ring) for the process.
//!
//! reqwest is built with `rustls-no-provider`, so every client must come from here (or after
//! [`install_crypto`] ran); that keeps aws-lc-rs, a slow C build, out of the dependency tree.

use std::sync::Once;

/// Installs ring as the process-wide rustls provider. Idempotent and cheap.
pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client builder with the crypto provider in place.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto();
    reqwest::Client::builder()
}

/// A reqwest client with default settings.
pub fn client() -> reqwest::Client {
    client_builder()
        .build()
        .expect("a default reqwest client builds once a crypto provider is installed")
}
