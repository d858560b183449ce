//! The operator endpoints' access check (`http.api_token`): with a token set, `/api/*` and
//! `/metrics` answer only requests that carry `Authorization: Bearer {token}`; others get
//! 401 with `WWW-Authenticate: Bearer`. Playback and health stay open.
//!
//! Spec: RFC 6750 §2.1 (the `Authorization: Bearer` request header), §3 (`WWW-Authenticate`
//! on a refusal); RFC 9110 §11.1 (authentication schemes are case-insensitive).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ring::digest::{SHA256, digest};
use tracing::debug;

use super::HttpContext;

/// The token `/api/*` and `/metrics` require. Only its SHA-256 digest is kept, and a
/// request's token is compared by digest in constant time: how long a comparison takes says
/// nothing about how much of a guess was right, nor about the token's length.
#[derive(Clone)]
pub struct ApiToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

impl ApiToken {
    /// The token `http.api_token` sets; `None` when it is empty (the endpoints are open).
    pub fn new(token: &str) -> Option<ApiToken> {
        (!token.is_empty()).then(|| ApiToken {
            digest: sha256(token.as_bytes()),
        })
    }

    /// Whether an `Authorization` header value carries this token.
    pub fn admits(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(given) = authorization.and_then(|v| bearer_token(v.as_bytes())) else {
            return false;
        };
        let given = sha256(given);
        let difference = given
            .iter()
            .zip(&self.digest)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// The token of `Bearer {token}` (the scheme in any case, then spaces), if that is what the
/// header holds.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer";
    let scheme = value.get(..SCHEME.len())?;
    let rest = value.get(SCHEME.len()..)?;
    if !scheme.eq_ignore_ascii_case(SCHEME) || rest.first() != Some(&b' ') {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Middleware for the operator routes: passes requests that carry the token on, answers
/// the others 401 (logged at debug: scanners are not worth a warning).
pub async fn require_token(
    State(shared): State<Arc<HttpContext>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &shared.api_token else {
        return next.run(request).await;
    };
    if token.admits(request.headers().get(header::AUTHORIZATION)) {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    debug!(
        peer = ?peer,
        path = request.uri().path(),
        "API request refused: no valid bearer token (http.api_token)"
    );
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"rtmp-server\""),
        )],
        "a bearer token is required (http.api_token)\n",
    )
        .into_response()
}

/// The answer to a control (stopping a stream, starting or stopping a recording, deleting
/// one) on a server without `http.api_token`: 403, since anyone who reaches the port could
/// otherwise end streams and delete recordings. Reads stay open there, as they always were.
pub fn control_refused(token: Option<&ApiToken>, what: &str) -> Option<Response> {
    token.is_none().then(|| {
        super::json_error(
            StatusCode::FORBIDDEN,
            &format!("{what} needs http.api_token to be set"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).unwrap()
    }

    #[test]
    fn only_the_token_as_a_bearer_credential_is_admitted() {
        assert!(ApiToken::new("").is_none());
        let token = ApiToken::new("s3cret-token").unwrap();
        for good in [
            "Bearer s3cret-token",
            "bearer s3cret-token",
            "BEARER   s3cret-token ",
        ] {
            assert!(token.admits(Some(&header(good))), "{good:?}");
        }
        for bad in [
            "Bearer s3cret-tokeN",
            "Bearer s3cret-token2",
            "Bearer s3cret",
            "Bearer ",
            "Bearer",
            "Bearers3cret-token",
            "Basic czNjcmV0LXRva2Vu",
            "s3cret-token",
            "",
        ] {
            assert!(!token.admits(Some(&header(bad))), "{bad:?}");
        }
        assert!(!token.admits(None));
        assert_eq!(format!("{token:?}"), "ApiToken(***)");
    }
}
