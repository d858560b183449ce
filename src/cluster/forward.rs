//! Requests for streams held by another node: HLS (`/{app}/{name}/...`), HTTP-FLV
//! (`/{app}/{name}.flv`) and the per-stream API (`/api/streams/{name}` and its controls,
//! `/api/streams/{name}/stop`, `.../record/start`, `.../record/stop`) are proxied to the
//! holder's advertised address (or redirected there with 307, `cluster.forward`), and
//! `/api/streams` lists every node's streams.
//!
//! A request is forwarded only when the stream is not live here and Redis names another
//! node as its holder; otherwise it is answered here as on one node. A forwarded request
//! carries [`FORWARDED`], and a request that carries it is never forwarded again, so two
//! nodes with different ideas of the holder cannot bounce a request between them.
//! WebSocket-FLV upgrades are always redirected (a proxy would have to carry the upgrade).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::{Cluster, ForwardMode, Holder};
use crate::http::HttpContext;
use crate::hub::key::StreamKey;

/// The header a forwarded request carries: the forwarding node's id.
pub const FORWARDED: &str = "x-rtmp-server-forwarded";

/// How long another node may take to answer `/api/streams?scope=local`.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(1);

/// Largest request body passed on to a holder (the controls carry none).
const BODY_MAX_BYTES: usize = 64 * 1024;

/// Largest `/api/streams` answer read from a node.
const LIST_MAX_BYTES: usize = 16 * 1024 * 1024;

/// The stream (`{app}/{name}`) a request path is about, when it is one that a holder
/// answers.
pub fn stream_of(path: &str, api_app: &str) -> Option<String> {
    let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let (app, name) = match parts.as_slice() {
        ["api", "streams", name, ..] => (api_app, *name),
        ["api", ..] | ["recordings", ..] => return None,
        // The dashboard's assets: every node serves the same from its binary.
        ["dashboard", "assets", _] => return None,
        [app, file] => (*app, file.strip_suffix(".flv")?),
        [app, name, _] | [app, name, _, _] => (*app, *name),
        _ => return None,
    };
    if app.is_empty() || !app.bytes().all(crate::hub::key::is_key_byte) {
        return None;
    }
    StreamKey::parse(name).ok()?;
    Some(format!("{app}/{name}"))
}

/// The HTTP middleware: forwards what is held elsewhere, gathers `/api/streams`.
pub async fn middleware(
    State(shared): State<Arc<HttpContext>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(cluster) = shared.cluster.clone() else {
        return next.run(request).await;
    };
    if request.headers().contains_key(FORWARDED) {
        return next.run(request).await;
    }
    if request.uri().path() == "/api/streams" && request.method() == axum::http::Method::GET {
        return streams(&cluster, request, next).await;
    }
    let Some(stream) = stream_of(request.uri().path(), &shared.app) else {
        return next.run(request).await;
    };
    let live_here = stream.split_once('/').is_some_and(|(app, name)| {
        shared
            .registry
            .get(app, name)
            .is_some_and(|s| s.publisher().is_some())
    });
    if live_here || cluster.holds(&stream) {
        return next.run(request).await;
    }
    match cluster.holder(&stream).await {
        Ok(Some(Holder { node, url })) if node != cluster.node().id => match url {
            Some(url) => forward(&cluster, &node, &url, request).await,
            None => {
                tracing::debug!(
                    stream,
                    node,
                    "cluster: the holder of this stream has no record (it is stopping or gone)"
                );
                next.run(request).await
            }
        },
        _ => next.run(request).await,
    }
}

/// The URL of the same path and query at `base`.
fn target(base: &str, request: &Request) -> String {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    format!("{}{path}", base.trim_end_matches('/'))
}

async fn forward(cluster: &Cluster, node: &str, base: &str, request: Request) -> Response {
    let url = target(base, &request);
    let websocket = request
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if cluster.settings.forward == ForwardMode::Redirect || websocket {
        let Ok(location) = HeaderValue::from_str(&url) else {
            return bad_gateway(cluster, node, base, "not a valid URL");
        };
        cluster
            .metrics
            .forwarded
            .get_or_create(&super::ModeLabel { mode: "redirect" })
            .inc();
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response();
    }
    cluster
        .metrics
        .forwarded
        .get_or_create(&super::ModeLabel { mode: "proxy" })
        .inc();
    let mut outgoing = cluster.http.request(request.method().clone(), &url);
    for (name, value) in request.headers() {
        if !is_hop_by_hop(name) && name != header::HOST && name != header::CONTENT_LENGTH {
            outgoing = outgoing.header(name, value);
        }
    }
    if !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) {
        match axum::body::to_bytes(request.into_body(), BODY_MAX_BYTES).await {
            Ok(body) => outgoing = outgoing.body(body),
            Err(_) => {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("a request body of at most {BODY_MAX_BYTES} bytes is passed on\n"),
                )
                    .into_response();
            }
        }
    }
    outgoing = outgoing.header(FORWARDED, &cluster.node().id);
    match outgoing.send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status());
            if let Some(headers) = response.headers_mut() {
                copy_headers(answer.headers(), headers);
            }
            response
                .body(Body::from_stream(answer.bytes_stream()))
                .unwrap_or_else(|e| bad_gateway(cluster, node, base, &e.to_string()))
        }
        Err(e) => bad_gateway(cluster, node, base, &crate::auth::describe(&e)),
    }
}

/// Headers of the holder's answer passed on: all but hop-by-hop ones and CORS (this node's
/// CORS layer sets its own).
fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if is_hop_by_hop(name) || name.as_str().starts_with("access-control-") {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn bad_gateway(cluster: &Cluster, node: &str, base: &str, why: &str) -> Response {
    cluster.metrics.forward_errors.inc();
    warn!(
        node,
        url = base,
        "cluster: forwarding to the stream's holder failed: {why}"
    );
    (
        StatusCode::BAD_GATEWAY,
        format!("the node holding this stream ({node} at {base}) did not answer: {why}\n"),
    )
        .into_response()
}

/// `GET /api/streams`: this node's streams and every other live node's
/// (`/api/streams?scope=local`, asked in parallel), each marked with its `node`; `nodes`
/// says which nodes answered.
async fn streams(cluster: &Arc<Cluster>, request: Request, next: Next) -> Response {
    let local_only = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "scope=local"));
    if local_only {
        return next.run(request).await;
    }
    let auth = request.headers().get(header::AUTHORIZATION).cloned();
    let local = next.run(request).await;
    if !local.status().is_success() {
        return local;
    }
    let Ok(body) = axum::body::to_bytes(local.into_body(), LIST_MAX_BYTES).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(mut list) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let me = cluster.node().clone();
    let mut streams = take_streams(&mut list, &me.id);
    let mut nodes = vec![serde_json::json!({ "id": me.id, "url": me.url, "ok": true })];
    match cluster.nodes().await {
        Err(e) => {
            list["cluster_error"] = format!("the cluster's Redis cannot be reached: {e}").into();
        }
        Ok(all) => {
            let others = all.into_iter().filter(|n| n.id != me.id);
            let asked = others.map(|node| {
                let auth = auth.clone();
                async move {
                    let got = ask_node(cluster, &node, auth).await;
                    (node, got)
                }
            });
            for (node, got) in futures_util::future::join_all(asked).await {
                match got {
                    Ok(mut theirs) => {
                        streams.append(&mut take_streams(&mut theirs, &node.id));
                        nodes.push(serde_json::json!({ "id": node.id, "url": node.url, "ok": true }));
                    }
                    Err(e) => nodes.push(
                        serde_json::json!({ "id": node.id, "url": node.url, "ok": false, "error": e }),
                    ),
                }
            }
        }
    }
    streams.sort_by(|a, b| {
        let key = |v: &serde_json::Value| {
            (
                v["app"].as_str().unwrap_or_default().to_string(),
                v["name"].as_str().unwrap_or_default().to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    list["streams"] = streams.into();
    list["nodes"] = nodes.into();
    axum::Json(list).into_response()
}

/// The `streams` of an `/api/streams` answer, each marked with `node`.
fn take_streams(list: &mut serde_json::Value, node: &str) -> Vec<serde_json::Value> {
    let mut streams = match list.get_mut("streams").map(serde_json::Value::take) {
        Some(serde_json::Value::Array(s)) => s,
        _ => Vec::new(),
    };
    for s in &mut streams {
        if let Some(o) = s.as_object_mut() {
            o.insert("node".into(), node.into());
        }
    }
    streams
}

async fn ask_node(
    cluster: &Cluster,
    node: &super::Node,
    auth: Option<HeaderValue>,
) -> Result<serde_json::Value, String> {
    let url = format!("{}/api/streams?scope=local", node.url.trim_end_matches('/'));
    let mut request = cluster
        .http
        .get(&url)
        .timeout(LIST_TIMEOUT)
        .header(FORWARDED, &cluster.node().id);
    if let Some(auth) = auth {
        request = request.header(header::AUTHORIZATION, auth);
    }
    let answer = request
        .send()
        .await
        .map_err(|e| crate::auth::describe(&e))?;
    if !answer.status().is_success() {
        return Err(format!("answered {}", answer.status()));
    }
    let body = crate::auth::read_capped(answer, LIST_MAX_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_stream() {
        let s = |p| stream_of(p, "live");
        assert_eq!(s("/live/cam/index.m3u8").as_deref(), Some("live/cam"));
        assert_eq!(s("/live/cam/v0/llhls.m3u8").as_deref(), Some("live/cam"));
        assert_eq!(s("/live/cam.flv").as_deref(), Some("live/cam"));
        assert_eq!(s("/live/cam/thumbnail.jpg").as_deref(), Some("live/cam"));
        assert_eq!(s("/api/streams/cam").as_deref(), Some("live/cam"));
        assert_eq!(s("/api/streams/cam/stop").as_deref(), Some("live/cam"));
        assert_eq!(
            s("/api/streams/cam/record/start").as_deref(),
            Some("live/cam")
        );
        assert_eq!(
            s("/api/streams/cam/record/stop").as_deref(),
            Some("live/cam")
        );
        for none in [
            "/",
            "/live",
            "/live/cam",
            "/api/streams",
            "/api/streams/",
            "/api/streams/bad%20name/stop",
            "/api/server",
            "/api/recordings/x",
            "/recordings/x/index.m3u8",
            "/metrics",
            "/dashboard",
            "/dashboard/assets/dashboard.0123456789abcdef.js",
            "/live/a/b/c/d",
            "/live/bad%20name/index.m3u8",
            "//x/y",
        ] {
            assert_eq!(s(none), None, "{none}");
        }
    }
}
