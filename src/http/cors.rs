//! Cross-origin access for web players: which origins may read playlists and segments.
//!
//! Spec: Fetch Standard, CORS protocol (preflight `OPTIONS`, `Access-Control-*` headers).

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The `http.allow_origin` option: any origin, or a fixed list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    List(Vec<HeaderValue>),
}

impl AllowedOrigins {
    /// Parses `*` or a comma-separated list of origins such as
    /// `https://player.example.com, http://localhost:3000`.
    pub fn parse(text: &str) -> Result<AllowedOrigins, String> {
        let text = text.trim();
        if text == "*" {
            return Ok(AllowedOrigins::Any);
        }
        let mut list = Vec::new();
        for origin in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let url = reqwest::Url::parse(origin)
                .map_err(|_| format!("{origin:?} is not an origin like https://example.com"))?;
            let bare = url.path() == "/" && !origin.ends_with('/');
            if !(url.scheme() == "http" || url.scheme() == "https")
                || url.host().is_none()
                || !bare
                || url.query().is_some()
            {
                return Err(format!(
                    "{origin:?} is not an origin like https://example.com (scheme, host, optional port)"
                ));
            }
            list.push(
                HeaderValue::from_str(origin)
                    .map_err(|_| format!("{origin:?} is not a header value"))?,
            );
        }
        if list.is_empty() {
            return Err("expected * or a comma-separated list of origins".into());
        }
        Ok(AllowedOrigins::List(list))
    }

    /// Whether a page from `origin` may read: what the browser enforces for HTTP responses,
    /// and the server itself for a WebSocket handshake, which CORS does not cover (RFC 6455
    /// §10.2: the server checks `Origin`).
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        match self {
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => list.iter().any(|o| o == origin),
        }
    }

    /// The CORS layer: GET/HEAD/OPTIONS for players, POST and DELETE for the operator's
    /// controls (`/api/streams/{name}/stop`, `.../record/*`, `/api/recordings/{id}`) with
    /// the `Authorization` header their bearer token travels in, preflight answered, and the
    /// response headers a player's script reads exposed. What an allowed origin may do is
    /// still up to the token: CORS only lets its page send the request.
    pub fn layer(&self) -> CorsLayer {
        let origin = match self {
            AllowedOrigins::Any => AllowOrigin::any(),
            AllowedOrigins::List(list) => AllowOrigin::list(list.iter().cloned()),
        };
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::OPTIONS,
                Method::POST,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::RANGE,
                header::IF_NONE_MATCH,
                header::IF_MODIFIED_SINCE,
                header::CACHE_CONTROL,
                header::CONTENT_TYPE,
            ])
            .expose_headers([
                header::CONTENT_LENGTH,
                header::CONTENT_RANGE,
                header::CONTENT_TYPE,
                header::ETAG,
                header::DATE,
                header::AGE,
                HeaderName::from_static("accept-ranges"),
            ])
            .max_age(std::time::Duration::from_secs(86_400))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_and_lists() {
        assert_eq!(AllowedOrigins::parse("*"), Ok(AllowedOrigins::Any));
        let AllowedOrigins::List(l) =
            AllowedOrigins::parse("https://a.example, http://localhost:3000").unwrap()
        else {
            panic!("expected a list");
        };
        assert_eq!(l, ["https://a.example", "http://localhost:3000"]);
    }

    #[test]
    fn allows_listed_origins_only() {
        let list = AllowedOrigins::parse("https://a.example").unwrap();
        assert!(list.allows(&HeaderValue::from_static("https://a.example")));
        assert!(!list.allows(&HeaderValue::from_static("https://b.example")));
        assert!(AllowedOrigins::Any.allows(&HeaderValue::from_static("null")));
    }

    #[test]
    fn refuses_what_is_not_an_origin() {
        for bad in [
            "",
            ",",
            "example.com",
            "https://a.example/path",
            "ftp://a.example",
            "https://a.example/",
        ] {
            assert!(AllowedOrigins::parse(bad).is_err(), "{bad:?}");
        }
    }
}
