//! A blocking admin API client for tests: one request, its status and its
//! body as JSON (null when it is not JSON) or text.

use std::time::Duration;

/// `method` `url` with an optional JSON body; (status, body text).
pub fn request(method: &str, url: &str, body: Option<&serde_json::Value>) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = reqwest::Client::new()
            .request(method, url)
            .timeout(Duration::from_secs(10));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    })
}

/// GET `url` as JSON (null when the body is not JSON).
pub fn get_json(url: &str) -> serde_json::Value {
    let (_, text) = request("GET", url, None);
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// POST `body` to `url`: (status, JSON answer or null).
pub fn post_json(url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let (status, text) = request("POST", url, Some(body));
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// GET `url`: (status, Content-Type, raw body), for files the API serves.
#[allow(dead_code)]
pub fn get_bytes(url: &str) -> (u16, String, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let kind = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (
            status,
            kind,
            resp.bytes().await.unwrap_or_default().to_vec(),
        )
    })
}
