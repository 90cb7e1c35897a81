//! A small HTTP client for talking to the emulator like a Telnyx client would.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The first error's code.
    pub fn code(&self) -> Option<&str> {
        self.body["errors"][0]["code"].as_str()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn client(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

pub async fn send(method: &str, url: &str, key: Option<&str>, body: Option<&Value>) -> Reply {
    send_with(&client(Duration::from_secs(10)), method, url, key, body)
        .await
        .unwrap()
}

pub async fn send_with(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Result<Reply> {
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await?;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {bytes:?}"))
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}
