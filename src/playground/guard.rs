//! Who may drive the playground: only the page itself. Another web site open in the same
//! browser must not fire alerts or click Approve through it (cross-site requests), nor read
//! it through a DNS name rebound to 127.0.0.1. Pure checks, and the middleware applying them.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// The host part of a `Host` header or an origin's authority (`[::1]:8080` → `[::1]`).
fn host_only(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// A page served on loopback answers only to loopback names: a rebound DNS name is refused.
pub fn host_allowed(host: &str, loopback_only: bool) -> bool {
    !loopback_only
        || matches!(
            host_only(host).to_ascii_lowercase().as_str(),
            "localhost" | "127.0.0.1" | "[::1]"
        )
}

/// A state-changing request must come from the page: JSON (which a cross-site form cannot
/// send without a preflight this server never grants), and, when the browser names its
/// origin, from this very host.
pub fn post_allowed(
    content_type: Option<&str>,
    origin: Option<&str>,
    host: &str,
) -> Result<(), String> {
    let json = content_type.is_some_and(|c| {
        c.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json {
        return Err("send JSON (Content-Type: application/json)".into());
    }
    match origin {
        None => Ok(()),
        Some(o) => {
            let authority = o
                .strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                .unwrap_or("");
            if authority.eq_ignore_ascii_case(host) {
                Ok(())
            } else {
                Err(format!("requests from {o} are not accepted"))
            }
        }
    }
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The middleware: `loopback_only` is whether the page is served on a loopback address.
pub async fn guard(State(loopback_only): State<bool>, req: Request, next: Next) -> Response {
    let h = req.headers();
    let host = header_str(h, header::HOST).unwrap_or_default();
    if !host_allowed(host, loopback_only) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("this playground answers on localhost only, not {host}"),
        );
    }
    if req.method() == Method::POST {
        let checked = post_allowed(
            header_str(h, header::CONTENT_TYPE),
            header_str(h, header::ORIGIN),
            host,
        );
        if let Err(e) = checked {
            return refuse(StatusCode::FORBIDDEN, e);
        }
    }
    next.run(req).await
}

fn refuse(status: StatusCode, msg: String) -> Response {
    (status, Json(json!({"error": msg}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_loopback_only_loopback_names_are_answered() {
        for h in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
        ] {
            assert!(host_allowed(h, true), "{h}");
        }
        for h in [
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "",
            "[::2]:80",
        ] {
            assert!(!host_allowed(h, true), "{h}");
        }
        assert!(host_allowed("playground.internal:8080", false));
    }

    #[test]
    fn posts_are_json_from_the_page_itself() {
        let host = "127.0.0.1:8080";
        assert!(post_allowed(Some("application/json"), None, host).is_ok());
        assert!(post_allowed(
            Some("application/json; charset=utf-8"),
            Some("http://127.0.0.1:8080"),
            host
        )
        .is_ok());
        assert_eq!(
            post_allowed(Some("text/plain"), None, host).unwrap_err(),
            "send JSON (Content-Type: application/json)"
        );
        assert!(post_allowed(None, None, host).is_err());
        assert_eq!(
            post_allowed(Some("application/json"), Some("https://evil.example"), host).unwrap_err(),
            "requests from https://evil.example are not accepted"
        );
        assert!(post_allowed(Some("application/json"), Some("null"), host).is_err());
    }
}
