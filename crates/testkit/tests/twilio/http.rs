//! A small HTTP client for talking to the emulator like a Twilio client would.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> Option<i64> {
        self.body.get("code").and_then(Value::as_i64)
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub async fn send(
    method: &str,
    url: &str,
    auth: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> Reply {
    send_with(&client(), method, url, auth, form).await.unwrap()
}

pub async fn send_with(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    auth: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> reqwest::Result<Reply> {
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some((user, password)) = auth {
        req = req.basic_auth(user, Some(password));
    }
    if method == "POST" {
        req = req.form(form);
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
