//! Admin HTTP API over a real socket with a real HTTP client and a fake
//! backend.

use sipacd::admin::{
    router, serve, AdminBackend, AdminConfig, AgentStateRequest, AgentView, BoxFuture, CallView,
    QueueView, SetStateError,
};
use sipacd::cdr::{CallRecord, CdrStore};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "s3cret";

struct Fake {
    agents: Mutex<Vec<AgentView>>,
    reload_result: Mutex<Result<Vec<String>, Vec<String>>>,
    reloads: Mutex<u32>,
}

impl Fake {
    fn new() -> Arc<Fake> {
        Arc::new(Fake {
            agents: Mutex::new(vec![AgentView {
                id: "1001".into(),
                name: "Alice".into(),
                state: "available".into(),
                pause_reason: None,
                registered: true,
                skills: BTreeMap::from([("billing".into(), 8)]),
                calls_taken: 3,
                state_since_ms: None,
                ..AgentView::default()
            }]),
            reload_result: Mutex::new(Ok(vec!["queue billing: wrapup_s 10 -> 15".into()])),
            reloads: Mutex::new(0),
        })
    }
    fn state_of(&self, id: &str) -> (String, Option<String>) {
        let a = self.agents.lock().unwrap();
        let a = a.iter().find(|a| a.id == id).unwrap();
        (a.state.clone(), a.pause_reason.clone())
    }
}

impl AdminBackend for Fake {
    fn reload(&self) -> BoxFuture<'_, Result<Vec<String>, Vec<String>>> {
        Box::pin(async move {
            *self.reloads.lock().unwrap() += 1;
            self.reload_result.lock().unwrap().clone()
        })
    }
    fn queues(&self) -> BoxFuture<'_, Vec<QueueView>> {
        Box::pin(async move {
            vec![QueueView {
                name: "billing".into(),
                waiting: 2,
                longest_wait_s: 12.5,
                agents_available: 1,
                agents_busy: 0,
                open: true,
                agents_wrapup: 0,
                agents_paused: 0,
                service_level_today: None,
                ..QueueView::default()
            }]
        })
    }
    fn agents(&self) -> BoxFuture<'_, Vec<AgentView>> {
        Box::pin(async move { self.agents.lock().unwrap().clone() })
    }
    fn calls(&self) -> BoxFuture<'_, Vec<CallView>> {
        Box::pin(async move {
            vec![CallView {
                id: "c1".into(),
                from: "+62811".into(),
                number: "1500".into(),
                state: "queued".into(),
                queue: Some("billing".into()),
                agent: None,
                wait_s: 12.5,
                ..CallView::default()
            }]
        })
    }
    fn set_agent_state(
        &self,
        id: String,
        req: AgentStateRequest,
    ) -> BoxFuture<'_, Result<AgentView, SetStateError>> {
        Box::pin(async move { self.set_state(&id, req) })
    }
}

impl Fake {
    fn set_state(&self, id: &str, req: AgentStateRequest) -> Result<AgentView, SetStateError> {
        let mut agents = self.agents.lock().unwrap();
        let a = agents
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| SetStateError::UnknownAgent(id.into()))?;
        match req {
            AgentStateRequest::Available => {
                a.state = "available".into();
                a.pause_reason = None;
            }
            AgentStateRequest::Paused { reason } => {
                a.state = "paused".into();
                a.pause_reason = reason;
            }
        }
        Ok(a.clone())
    }
}

struct Server {
    base: String,
    client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Server {
    async fn start(
        backend: Arc<Fake>,
        token: Option<&str>,
        cdr_dir: Option<&std::path::Path>,
    ) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(
            backend,
            AdminConfig {
                token: token.map(str::to_owned),
                cdr_dir: cdr_dir.map(|d| d.to_owned()),
                timezone: chrono_tz::UTC,
            },
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(serve(listener, app, async {
            let _ = rx.await;
        }));
        Server {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            _stop: tx,
        }
    }
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
    }
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
    }
}

#[tokio::test]
async fn token_is_enforced_and_nothing_changes_without_it() {
    let fake = Fake::new();
    let s = Server::start(fake.clone(), Some(TOKEN), None).await;
    let c = &s.client;

    let health = c.get(format!("{}/health", s.base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));

    let none = c
        .get(format!("{}/api/v1/agents", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");

    let pause = r#"{"state":"paused","reason":"lunch"}"#;
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cre"),
        Some("Basic s3cret"),
    ] {
        let mut req = c
            .post(format!("{}/api/v1/agents/1001/state", s.base))
            .body(pause);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        assert_eq!(req.send().await.unwrap().status(), 401, "{auth:?}");
        let r = c.post(format!("{}/api/v1/reload", s.base));
        let r = match auth {
            Some(a) => r.header("authorization", a),
            None => r,
        };
        assert_eq!(r.send().await.unwrap().status(), 401);
    }
    assert_eq!(fake.state_of("1001"), ("available".into(), None));
    assert_eq!(*fake.reloads.lock().unwrap(), 0);

    let ok = s
        .post("/api/v1/agents/1001/state")
        .body(pause)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let view: AgentView = ok.json().await.unwrap();
    assert_eq!(view.state, "paused");
    assert_eq!(
        fake.state_of("1001"),
        ("paused".into(), Some("lunch".into()))
    );
}

#[tokio::test]
async fn agent_state_errors() {
    let fake = Fake::new();
    let s = Server::start(fake.clone(), Some(TOKEN), None).await;
    for bad in [
        "{",
        "",
        r#"{"state":"dancing"}"#,
        r#"{"state":"available","x":1}"#,
        "[]",
    ] {
        let r = s
            .post("/api/v1/agents/1001/state")
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("state"), "{body}");
    }
    assert_eq!(fake.state_of("1001"), ("available".into(), None));

    let r = s
        .post("/api/v1/agents/9999/state")
        .body(r#"{"state":"available"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn views_and_reload() {
    let fake = Fake::new();
    let s = Server::start(fake.clone(), None, None).await; // no token configured
    let q: Vec<QueueView> = s
        .get("/api/v1/queues")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(q, fake.queues().await);
    let a: serde_json::Value = s
        .client
        .get(format!("{}/api/v1/agents", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a[0]["id"], "1001");
    assert_eq!(a[0]["skills"]["billing"], 8);
    let c: Vec<CallView> = s
        .get("/api/v1/calls")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(c, fake.calls().await);

    let r = s.post("/api/v1/reload").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["changed"][0], "queue billing: wrapup_s 10 -> 15");

    *fake.reload_result.lock().unwrap() = Err(vec!["sipacd.toml:3:1: unknown key `foo`".into()]);
    let r = s.post("/api/v1/reload").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0], "sipacd.toml:3:1: unknown key `foo`");
    assert_eq!(*fake.reloads.lock().unwrap(), 2);

    let missing = s.get("/api/v1/cdr").send().await.unwrap();
    assert_eq!(missing.status(), 503, "no data_dir given");
}

#[tokio::test]
async fn cdr_as_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut store, _) = CdrStore::open(dir.path()).unwrap();
        let recs: Vec<_> = (0..5)
            .map(|i| {
                CallRecord::arrival(
                    &format!("c{i}"),
                    "+62811",
                    "1500",
                    1_777_622_400_000 + i * 3_600_000,
                )
            })
            .collect();
        store.write_batch(&recs).unwrap();
    }
    let s = Server::start(Fake::new(), Some(TOKEN), Some(dir.path())).await;

    let r = s
        .get("/api/v1/cdr?since=2026-05-01T09:00:00Z&until=2026-05-01%2011:00")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Vec<CallRecord> = r.json().await.unwrap();
    let ids: Vec<_> = body.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["c1", "c2"]);

    let r = s
        .get("/api/v1/cdr")
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = r.text().await.unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 6);
    assert!(lines[0].starts_with("id,caller,number,"));
    assert!(lines[5].starts_with("c4,+62811,1500,,2026-05-01T12:00:00.000Z,"));

    for bad in [
        "/api/v1/cdr?since=soon",
        "/api/v1/cdr?until=2026-13-01",
        "/api/v1/cdr?limit=3",
    ] {
        let r = s.get(bad).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = s
        .client
        .get(format!("{}/api/v1/cdr", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn metrics_are_open_without_a_token_and_gauges_come_from_the_views() {
    let s = Server::start(Fake::new(), None, None).await;
    let resp = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    for line in [
        "sipacd_queue_callers_waiting{queue=\"billing\"} 2",
        "sipacd_queue_longest_wait_seconds{queue=\"billing\"} 12.5",
        "sipacd_agents{state=\"available\"} 1",
        "sipacd_agents{state=\"on_call\"} 0",
        "sipacd_queue_calls_offered_total{queue=\"billing\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
}
