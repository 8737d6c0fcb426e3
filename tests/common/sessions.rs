//! A client of the session API for the session test files: login, read, mutating
//! requests with the CSRF token, and the three-region cluster they share.

use super::InProcessCluster;
use serde_json::{json, Value};

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

pub struct Session {
    pub token: String,
    pub csrf: String,
}

impl Client {
    pub fn new(cluster: &InProcessCluster, index: usize) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: cluster.url(index, ""),
        }
    }

    pub async fn login(&self, user: &str, device: &str) -> Session {
        let response = self
            .http
            .post(format!("{}/v1/sessions", self.base))
            .json(&json!({"user_id": user, "device": device}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        assert!(body["expires_at"].as_u64().unwrap() > body["idle_expires_at"].as_u64().unwrap());
        Session {
            token: body["token"].as_str().unwrap().to_string(),
            csrf: body["csrf_token"].as_str().unwrap().to_string(),
        }
    }

    pub async fn get(&self, session: &Session) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}/v1/session", self.base))
            .bearer_auth(&session.token)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// Sends a mutating request with the session's token and CSRF token.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        session: &Session,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&session.token)
            .header("x-csrf-token", &session.csrf);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// `POST /v1/session/rotate` with the `Idempotency-Key` `key`.
    pub async fn rotate_once(&self, session: &Session, key: &str) -> (u16, Value) {
        self.post_once(session, "/v1/session/rotate", key, None)
            .await
    }

    /// A cart change carrying `Idempotency-Key: key` (what a client retries with).
    pub async fn cart_once(
        &self,
        session: &Session,
        sku: &str,
        qty: i64,
        key: &str,
    ) -> (u16, Value) {
        let body = json!({"op": "add", "sku": sku, "qty": qty});
        self.post_once(session, "/v1/session/cart", key, Some(body))
            .await
    }

    /// `POST path` in `session` with the `Idempotency-Key` `key` and a JSON body.
    async fn post_once(
        &self,
        session: &Session,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&session.token)
            .header("x-csrf-token", &session.csrf)
            .header("idempotency-key", key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    pub async fn cart(&self, session: &Session, op: &str, sku: &str, qty: i64) -> (u16, Value) {
        let body = json!({"op": op, "sku": sku, "qty": qty});
        self.send(
            reqwest::Method::POST,
            "/v1/session/cart",
            session,
            Some(body),
        )
        .await
    }
}

pub fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

/// Three regions of one node each, with WAN round trips between them.
pub const THREE_REGIONS: &str = r#"
[cluster]
replicas_per_region = 1
partitions = 64
[[regions]]
name = "east"
nodes = 1
[[regions]]
name = "west"
nodes = 1
[[regions]]
name = "europe"
nodes = 1
[latency.rtt_ms]
"east/west" = 30
"east/europe" = 40
"west/europe" = 60
"#;

/// Validates `session` at node `index` (which moves its auth fence) until `/v1/status`
/// says the node validates locally (a node starts catching up: until anti-entropy has
/// synced it with another region it reads a majority of the regions), at most 60 s.
pub async fn wait_validating_locally(cluster: &InProcessCluster, index: usize, session: &Session) {
    let client = Client::new(cluster, index);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        client.get(session).await;
        let guard = cluster.status(index).await.sessions.auth_guard;
        if guard == "local" {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node {index} still {guard} after 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
