//! Stream-key validation against the platform's stream-service.
//!
//! Contract (README.md, "Stream keys"): `GET {stream_service}/api/streams/{key}`. A 2xx answer with a JSON
//! object accepts the key unless the object says it is not usable (`active`/`isActive`
//! false, or `expiresAt`/`expires_at` in the past). 401/403/404 reject it. Anything else
//! (time-out, refused connection, 5xx, a body that is not a JSON object) rejects it too, with
//! its own reason: an ingest that lets anyone in while a dependency is down is a security hole.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::config::AuthConfig;
use crate::hub::key::StreamKey;
use crate::hub::stream::lock;
use crate::relay::target::Template;

/// Characters escaped in the key's URL path segment: everything but RFC 3986 unreserved.
/// Keys are already restricted to those, so this is a second line of defence.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Most cached positive answers kept; beyond it the oldest go first. Encoders reconnect in
/// bursts of a few keys, not thousands.
const MAX_CACHED_KEYS: usize = 4096;

/// Most cached refusals kept. The negative cache is for one bad key tried again and again
/// (a misconfigured encoder's reconnects, a storm from many addresses); many different bad
/// keys are the failed-publish limit's business (`ingest::failures`). When it is full and
/// none has expired, a new refusal is not cached: what is cached stays useful, and a flood
/// of different keys cannot flush it.
const MAX_REFUSED_KEYS: usize = 4096;

/// Largest stream-service answer read; a stream record is a few hundred bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Most relay targets one stream-service answer may name (`push`); later ones are ignored.
const MAX_PUSH_TARGETS: usize = 16;

/// What the stream-service said yes with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// The public name to serve HLS under, when the service gives one (`playbackId`).
    pub playback_id: Option<StreamKey>,
    /// Where to push this key's stream besides `relay.push` (`push`: RTMP/RTMPS URLs, which
    /// may use `{key}` and `{name}` as `relay.push` does).
    pub push: Vec<Template>,
    /// Record this key's publishes whatever `record.enabled` says (`"record": true`).
    pub record: bool,
}

/// Why a key was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("stream key is malformed: {0}")]
    Malformed(String),
    #[error("stream key unknown to the stream-service (HTTP {0})")]
    Unknown(u16),
    #[error("stream key is inactive")]
    Inactive,
    #[error("stream key expired")]
    Expired,
    #[error("stream-service unavailable: {0}")]
    Unavailable(String),
}

impl Rejection {
    /// A short, fixed label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed_key",
            Rejection::Unknown(_) => "unknown_key",
            Rejection::Inactive => "inactive_key",
            Rejection::Expired => "expired_key",
            Rejection::Unavailable(_) => "service_unavailable",
        }
    }

    /// The refusal is about the key itself: its shape, or a definite no from the
    /// stream-service (403, 404, inactive, expired). Not a 401, which is about this server's
    /// own token (`auth.token`), nor an unavailable service: those are not the client's doing.
    /// What the failed-publish count and the negative cache go by.
    pub fn is_about_the_key(&self) -> bool {
        match self {
            Rejection::Malformed(_) | Rejection::Inactive | Rejection::Expired => true,
            Rejection::Unknown(status) => *status != 401,
            Rejection::Unavailable(_) => false,
        }
    }
}

/// Asks the stream-service whether keys may publish. Cheap to clone.
#[derive(Clone)]
pub struct KeyChecker {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    /// `None`: no stream-service configured, every key is accepted.
    base: Option<reqwest::Url>,
    token: String,
    cache_ttl: Duration,
    cache: Mutex<HashMap<StreamKey, (Instant, Grant)>>,
    /// How long a refusal about the key ([`Rejection::is_about_the_key`]) is reused
    /// (`auth.negative_cache`); zero: never.
    refused_ttl: Duration,
    refused: Mutex<HashMap<StreamKey, (Instant, Rejection)>>,
}

impl KeyChecker {
    pub fn new(config: &AuthConfig, client: reqwest::Client) -> Result<KeyChecker, String> {
        let base = if config.stream_service.is_empty() {
            None
        } else {
            let mut url = reqwest::Url::parse(&config.stream_service)
                .map_err(|e| format!("auth.stream_service: {e}"))?;
            // Join paths below the base: "http://svc/v1" + "api/streams/k".
            if !url.path().ends_with('/') {
                let path = format!("{}/", url.path());
                url.set_path(&path);
            }
            Some(url)
        };
        Ok(KeyChecker {
            inner: Arc::new(Inner {
                client,
                base,
                token: config.token.clone(),
                cache_ttl: Duration::from_secs(config.cache),
                cache: Mutex::new(HashMap::new()),
                refused_ttl: Duration::from_secs(config.negative_cache),
                refused: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Whether a stream-service is configured (without one every key is accepted).
    pub fn is_enforcing(&self) -> bool {
        self.inner.base.is_some()
    }

    /// The URL asked for `key`.
    fn url(&self, base: &reqwest::Url, key: &StreamKey) -> Result<reqwest::Url, Rejection> {
        let segment = utf8_percent_encode(key.as_str(), PATH_SEGMENT).to_string();
        base.join(&format!("api/streams/{segment}"))
            .map_err(|e| Rejection::Unavailable(format!("bad URL: {e}")))
    }

    /// Checks `key`; `fresh` skips the caches (used by the periodic re-check, which must
    /// hear the service itself).
    pub async fn check(&self, key: &StreamKey, fresh: bool) -> Result<Grant, Rejection> {
        let Some(base) = &self.inner.base else {
            return Ok(Grant::default());
        };
        if !fresh && !self.inner.cache_ttl.is_zero() {
            let cache = lock(&self.inner.cache);
            if let Some((at, grant)) = cache.get(key)
                && at.elapsed() < self.inner.cache_ttl
            {
                return Ok(grant.clone());
            }
        }
        if !fresh && !self.inner.refused_ttl.is_zero() {
            let refused = lock(&self.inner.refused);
            if let Some((at, rejection)) = refused.get(key)
                && at.elapsed() < self.inner.refused_ttl
            {
                return Err(rejection.clone());
            }
        }
        let url = self.url(base, key)?;
        let mut request = self
            .inner
            .client
            .get(url)
            .header("accept", "application/json");
        if !self.inner.token.is_empty() {
            request = request.bearer_auth(&self.inner.token);
        }
        let result = match request.send().await {
            Ok(response) => read_answer(response).await,
            Err(e) => Err(Rejection::Unavailable(describe(&e))),
        };
        if !self.inner.cache_ttl.is_zero() {
            let mut cache = lock(&self.inner.cache);
            match &result {
                Ok(grant) => {
                    if cache.len() >= MAX_CACHED_KEYS {
                        let ttl = self.inner.cache_ttl;
                        cache.retain(|_, (at, _)| at.elapsed() < ttl);
                        if cache.len() >= MAX_CACHED_KEYS {
                            cache.clear();
                        }
                    }
                    cache.insert(key.clone(), (Instant::now(), grant.clone()));
                }
                Err(_) => {
                    cache.remove(key);
                }
            }
        }
        if !self.inner.refused_ttl.is_zero() {
            self.note_refusal(key, &result);
        }
        result
    }

    /// Keeps a refusal about `key` for `auth.negative_cache`, or forgets it once the key is
    /// accepted.
    fn note_refusal(&self, key: &StreamKey, result: &Result<Grant, Rejection>) {
        let mut refused = lock(&self.inner.refused);
        match result {
            Ok(_) => {
                refused.remove(key);
            }
            Err(rejection) if rejection.is_about_the_key() => {
                if refused.len() >= MAX_REFUSED_KEYS && !refused.contains_key(key) {
                    let ttl = self.inner.refused_ttl;
                    refused.retain(|_, (at, _)| at.elapsed() < ttl);
                    if refused.len() >= MAX_REFUSED_KEYS {
                        return;
                    }
                }
                refused.insert(key.clone(), (Instant::now(), rejection.clone()));
            }
            // An unavailable service says nothing new about the key.
            Err(_) => {}
        }
    }
}

/// A reqwest error in words a log reader can act on.
pub fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        format!("cannot connect: {}", root_cause(e))
    } else {
        root_cause(e)
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

async fn read_answer(response: reqwest::Response) -> Result<Grant, Rejection> {
    let status = response.status();
    if matches!(status.as_u16(), 401 | 403 | 404) {
        return Err(Rejection::Unknown(status.as_u16()));
    }
    if !status.is_success() {
        return Err(Rejection::Unavailable(format!("HTTP {status}")));
    }
    let body = read_capped(response, MAX_BODY_BYTES)
        .await
        .map_err(|e| Rejection::Unavailable(e.to_string()))?;
    judge(&body, jiff::Timestamp::now())
}

/// Reads a 2xx body: a JSON object that may mark the key inactive or expired.
fn judge(body: &[u8], now: jiff::Timestamp) -> Result<Grant, Rejection> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Rejection::Unavailable(format!("answer is not JSON: {e}")))?;
    let Value::Object(record) = value else {
        return Err(Rejection::Unavailable("answer is not a JSON object".into()));
    };
    for field in ["active", "isActive", "is_active"] {
        if record.get(field) == Some(&Value::Bool(false)) {
            return Err(Rejection::Inactive);
        }
    }
    for field in ["expiresAt", "expires_at"] {
        match record.get(field) {
            None | Some(Value::Null) => {}
            Some(v) => {
                let expiry = parse_instant(v)
                    .ok_or_else(|| Rejection::Unavailable(format!("{field} is not a date: {v}")))?;
                if expiry <= now {
                    return Err(Rejection::Expired);
                }
            }
        }
    }
    let playback_id = ["playbackId", "playback_id"]
        .iter()
        .find_map(|f| record.get(*f).and_then(Value::as_str))
        .and_then(|id| match StreamKey::parse(id) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::warn!(playback_id = id, "stream-service playback id unusable: {e}");
                None
            }
        });
    let push = match record.get("push") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(urls)) => push_targets(urls),
        Some(other) => {
            tracing::warn!("stream-service push ignored: a list of URLs expected, not {other}");
            Vec::new()
        }
    };
    let record = record.get("record") == Some(&Value::Bool(true));
    Ok(Grant {
        playback_id,
        push,
        record,
    })
}

/// The usable relay targets of an answer's `push`; the others are logged and left out.
fn push_targets(urls: &[Value]) -> Vec<Template> {
    let mut targets = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        if targets.len() == MAX_PUSH_TARGETS {
            tracing::warn!(
                "stream-service push: only the first {MAX_PUSH_TARGETS} targets are used, {} \
                 more ignored",
                urls.len() - i
            );
            break;
        }
        let Some(text) = url.as_str() else {
            tracing::warn!("stream-service push entry {i} ignored: not a string");
            continue;
        };
        match Template::parse(text) {
            Ok(t) => targets.push(t),
            Err(e) => tracing::warn!(
                target = %crate::relay::target::redact_text(text),
                "stream-service push entry {i} ignored: {e}"
            ),
        }
    }
    targets
}

/// An RFC 3339 date, or seconds (or milliseconds, when too large for seconds) since the epoch.
fn parse_instant(v: &Value) -> Option<jiff::Timestamp> {
    match v {
        Value::String(s) => s.parse::<jiff::Timestamp>().ok(),
        Value::Number(n) => {
            let n = n.as_f64()?;
            // Seconds until the year 5138; larger values are milliseconds.
            let secs = if n.abs() >= 1e11 { n / 1000.0 } else { n };
            jiff::Timestamp::from_millisecond((secs * 1000.0) as i64).ok()
        }
        _ => None,
    }
}

/// The HTTP client for the stream-service and webhooks: rustls with the ring provider and
/// the compiled-in web PKI roots, so a `FROM scratch` image needs no CA files.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    http_client_with(tls_config()?, timeout)
}

/// The TLS set-up [`http_client`] uses; built once, it serves any number of clients.
pub fn tls_config() -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// Why [`read_capped`] gave up on a body.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    #[error("{}", describe(.0))]
    Read(reqwest::Error),
}

/// A response body, refused once it passes `limit` bytes (an answer is never trusted to be
/// small).
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An HTTP client on `tls`, with connect and total time-outs of `timeout`.
pub fn http_client_with(
    tls: rustls::ClientConfig,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("rtmp-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn accepts_an_active_record() {
        assert_eq!(
            judge(br#"{"key":"k","active":true}"#, now()),
            Ok(Grant::default())
        );
        assert_eq!(judge(br#"{}"#, now()), Ok(Grant::default()));
    }

    #[test]
    fn refuses_inactive_and_expired_records() {
        assert_eq!(
            judge(br#"{"isActive":false}"#, now()),
            Err(Rejection::Inactive)
        );
        assert_eq!(
            judge(br#"{"active":false}"#, now()),
            Err(Rejection::Inactive)
        );
        assert_eq!(
            judge(br#"{"expiresAt":"2026-05-31T23:59:59Z"}"#, now()),
            Err(Rejection::Expired)
        );
        assert_eq!(
            judge(br#"{"expires_at":"2026-06-01T01:00:00+02:00"}"#, now()),
            Err(Rejection::Expired),
            "offsets are honoured"
        );
        assert_eq!(
            judge(br#"{"expiresAt":1780271999}"#, now()),
            Err(Rejection::Expired)
        );
        assert_eq!(
            judge(br#"{"expiresAt":"2026-06-02T00:00:00Z"}"#, now()),
            Ok(Grant::default())
        );
        assert_eq!(
            judge(br#"{"expiresAt":1780358400000}"#, now()),
            Ok(Grant::default())
        );
        assert_eq!(judge(br#"{"expiresAt":null}"#, now()), Ok(Grant::default()));
    }

    #[test]
    fn unreadable_answers_are_unavailability() {
        for body in [
            &b"<html>"[..],
            b"[1,2]",
            b"\"ok\"",
            b"",
            br#"{"expiresAt":"soon"}"#,
        ] {
            assert_eq!(
                judge(body, now()).unwrap_err().label(),
                "service_unavailable",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn playback_id_is_taken_when_url_safe() {
        let g = judge(br#"{"playbackId":"pub-123"}"#, now()).unwrap();
        assert_eq!(g.playback_id.unwrap().as_str(), "pub-123");
        let g = judge(br#"{"playbackId":"../x"}"#, now()).unwrap();
        assert_eq!(g.playback_id, None);
    }

    #[test]
    fn record_true_asks_for_a_recording() {
        assert!(judge(br#"{"record":true}"#, now()).unwrap().record);
        assert!(!judge(br#"{"record":"yes"}"#, now()).unwrap().record);
        assert!(!judge(br#"{}"#, now()).unwrap().record);
    }

    #[test]
    fn push_targets_are_taken_and_bad_ones_left_out() {
        let g = judge(
            br#"{"push":["rtmp://a.example/live2/k1","ftp://x/y/z",7,"rtmps://b.example/app/{key}"]}"#,
            now(),
        )
        .unwrap();
        let urls: Vec<&str> = g.push.iter().map(Template::as_str).collect();
        assert_eq!(
            urls,
            ["rtmp://a.example/live2/k1", "rtmps://b.example/app/{key}"]
        );
        assert_eq!(
            judge(br#"{"push":"rtmp://a/b/c"}"#, now()).unwrap().push,
            []
        );
        assert_eq!(judge(br#"{"push":null}"#, now()).unwrap().push, []);
        let many: Vec<String> = (0..40).map(|i| format!("\"rtmp://h/app/k{i}\"")).collect();
        let body = format!(r#"{{"push":[{}]}}"#, many.join(","));
        assert_eq!(judge(body.as_bytes(), now()).unwrap().push.len(), 16);
    }

    #[test]
    fn url_joins_below_the_base_and_escapes() {
        let cfg = AuthConfig {
            stream_service: "http://svc:3000/v1".into(),
            ..AuthConfig::default()
        };
        let client = http_client(Duration::from_secs(1)).unwrap();
        let checker = KeyChecker::new(&cfg, client).unwrap();
        let base = checker.inner.base.clone().unwrap();
        let key = StreamKey::parse("a.b~c").unwrap();
        assert_eq!(
            checker.url(&base, &key).unwrap().as_str(),
            "http://svc:3000/v1/api/streams/a.b~c"
        );
    }
}
