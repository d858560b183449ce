//! A real HTTP stub of the platform's stream-service and of webhook receivers, run in the
//! test process: answers `GET /api/streams/{key}` as told, records every request, and
//! collects JSON POSTs to `/hooks/{name}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};

/// How the stub answers a key.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn json(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
}

/// A request the stub received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct StubState {
    answers: HashMap<String, Answer>,
    seen: Vec<Seen>,
    hooks: Vec<(String, serde_json::Value)>,
    hook_status: u16,
}

pub struct StubService {
    pub url: String,
    state: Arc<Mutex<StubState>>,
    _runtime: tokio::runtime::Runtime,
}

impl StubService {
    /// Starts the stub on a free loopback port. Unknown keys get 404.
    pub fn start() -> StubService {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(StubState {
            hook_status: 200,
            ..StubState::default()
        }));
        let app = Router::new()
            .route("/api/streams/{key}", get(answer))
            .route("/hooks/{name}", post(hook))
            .with_state(state.clone());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(async move { axum::serve(listener, app).await });
        StubService {
            url,
            state,
            _runtime: runtime,
        }
    }

    /// How `key` is answered from now on.
    pub fn set(&self, key: &str, answer: Answer) {
        self.state
            .lock()
            .unwrap()
            .answers
            .insert(key.to_string(), answer);
    }

    /// Every stream-service request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Webhook bodies received so far, with the hook name they were posted to.
    pub fn hooks(&self) -> Vec<(String, serde_json::Value)> {
        self.state.lock().unwrap().hooks.clone()
    }

    /// The status webhook posts are answered with.
    pub fn set_hook_status(&self, status: u16) {
        self.state.lock().unwrap().hook_status = status;
    }
}

async fn answer(
    State(state): State<Arc<Mutex<StubState>>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let answer = {
        let mut s = state.lock().unwrap();
        s.seen.push(Seen {
            path: format!("/api/streams/{key}"),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        });
        s.answers.get(&key).cloned()
    };
    let answer = answer.unwrap_or(Answer::json(404, r#"{"error":"not found"}"#));
    tokio::time::sleep(answer.delay).await;
    (
        StatusCode::from_u16(answer.status).unwrap(),
        [("content-type", "application/json")],
        answer.body,
    )
}

async fn hook(
    State(state): State<Arc<Mutex<StubState>>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    let mut s = state.lock().unwrap();
    let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    s.hooks.push((name, value));
    StatusCode::from_u16(s.hook_status).unwrap()
}
