//! Request ids: each webhook request gets one, the sender's `X-Request-ID` when it is a
//! sane token, a new UUID otherwise. It is echoed in the response, carried by the request's
//! log span, and stored with the request's alerts so the incident's log lines carry it too.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

pub const HEADER: &str = "x-request-id";

/// Longest id taken from a sender.
const MAX_LEN: usize = 128;

/// The sender's id if it is 1–128 characters of `[A-Za-z0-9._:/+=@-]`: anything else
/// (spaces, control characters, a pasted secret's length) could forge or flood log lines.
pub fn accept(sent: Option<&str>) -> Option<&str> {
    let id = sent?.trim();
    let ok = !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/+=@-".contains(&b));
    ok.then_some(id)
}

/// Middleware: normalises the request's `X-Request-ID` (so the log span and the handler
/// read the same one) and returns it on the response.
pub async fn assign(mut req: Request, next: Next) -> Response {
    let sent = req.headers().get(HEADER).and_then(|v| v.to_str().ok());
    let id = match accept(sent) {
        Some(id) => id.to_string(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    // Only `accept`ed or UUID characters: always a valid header value.
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    req.headers_mut().insert(HEADER, value.clone());
    let mut res = next.run(req).await;
    res.headers_mut().insert(HEADER, value);
    res
}

/// The id `assign` put on the request.
pub fn of(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::accept;

    #[test]
    fn sane_ids_are_kept() {
        assert_eq!(accept(Some("req-42")), Some("req-42"));
        assert_eq!(accept(Some(" a1b2/c3=+@x:y.z_ ")), Some("a1b2/c3=+@x:y.z_"));
        let uuid = uuid::Uuid::new_v4().to_string();
        assert_eq!(accept(Some(&uuid)), Some(uuid.as_str()));
    }

    #[test]
    fn missing_empty_or_odd_ids_are_replaced() {
        assert_eq!(accept(None), None);
        assert_eq!(accept(Some("")), None);
        assert_eq!(accept(Some("   ")), None);
        assert_eq!(accept(Some("two words")), None);
        assert_eq!(accept(Some("line\nbreak")), None);
        assert_eq!(accept(Some("quote\"d")), None);
        assert_eq!(accept(Some("ünïcode")), None);
        assert_eq!(accept(Some(&"x".repeat(129))), None);
        assert_eq!(accept(Some(&"x".repeat(128))).map(str::len), Some(128));
    }
}
