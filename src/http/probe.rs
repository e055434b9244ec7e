//! `sentinel healthcheck`: a probe of this process's own webhook server for container
//! runtimes with no HTTP check of their own (Docker's `HEALTHCHECK`), so the image needs
//! no curl or shell.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long the probe waits for an answer; Docker's own timeout is set above it.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The URL of `path` on the server listening on `listen`: a wildcard address
/// (`0.0.0.0`, `[::]`) is probed on loopback.
pub fn url(listen: SocketAddr, path: &str) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}{path}", SocketAddr::new(ip, listen.port()))
}

/// GETs `url`: `Ok` with the status line on a 2xx, else a sentence saying what failed.
pub async fn check(url: &str) -> Result<String, String> {
    let client = crate::net::client_builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => Ok(format!("{url}: {}", r.status())),
        Ok(r) => Err(format!("{url} answered {}", r.status())),
        Err(e) if e.is_timeout() => Err(format!("{url} did not answer within {TIMEOUT:?}")),
        Err(_) => Err(format!("nothing answers at {url} (is sentinel running?)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_probed_on_loopback() {
        let u = |s: &str| url(s.parse().unwrap(), "/healthz");
        assert_eq!(u("0.0.0.0:9095"), "http://127.0.0.1:9095/healthz");
        assert_eq!(u("[::]:9095"), "http://[::1]:9095/healthz");
        assert_eq!(u("10.0.0.7:8080"), "http://10.0.0.7:8080/healthz");
        assert_eq!(u("127.0.0.1:9095"), "http://127.0.0.1:9095/healthz");
    }
}
