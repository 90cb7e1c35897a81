//! A Twirp client for talking to the emulator like LiveKit's SDKs do, with tokens made by
//! hand so that tests can get every part of them wrong.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A token with the given grants (`video`, `sip` claim objects), valid for ten minutes.
pub fn token(key: &str, secret: &str, grants: &Value) -> String {
    token_at(key, secret, grants, 0, 600)
}

/// A token valid from `nbf_offset` to `exp_offset` seconds from now.
pub fn token_at(
    key: &str,
    secret: &str,
    grants: &Value,
    nbf_offset: i64,
    exp_offset: i64,
) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({ "iss": key, "nbf": now + nbf_offset, "exp": now + exp_offset });
    if let (Some(c), Some(g)) = (claims.as_object_mut(), grants.as_object()) {
        c.extend(g.clone());
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

pub fn sip_admin() -> Value {
    json!({ "sip": { "admin": true } })
}

pub fn room_admin(room: &str) -> Value {
    json!({ "video": { "roomAdmin": true, "room": room } })
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HTTP {} {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        )
    }
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The Twirp error code of an error answer.
    pub fn code(&self) -> Option<String> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("code").and_then(Value::as_str).map(str::to_owned))
    }
}

pub async fn post(
    base: &str,
    path: &str,
    authorization: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> Reply {
    let mut req = http()
        .post(format!("{base}{path}"))
        .header("content-type", content_type)
        .body(body);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = resp.bytes().await.unwrap().to_vec();
    Reply {
        status,
        content_type,
        body,
    }
}

/// A protobuf call with a bearer token.
pub async fn call<Req: prost::Message, Resp: prost::Message + Default>(
    base: &str,
    service: &str,
    method: &str,
    token: &str,
    req: &Req,
) -> Result<Resp, Reply> {
    let reply = post(
        base,
        &format!("/twirp/livekit.{service}/{method}"),
        Some(&format!("Bearer {token}")),
        "application/protobuf",
        req.encode_to_vec(),
    )
    .await;
    if reply.status == 200 {
        Ok(Resp::decode(reply.body.as_slice()).unwrap())
    } else {
        Err(reply)
    }
}

/// A JSON call with a bearer token.
pub async fn call_json(
    base: &str,
    service: &str,
    method: &str,
    token: &str,
    body: &Value,
) -> Reply {
    post(
        base,
        &format!("/twirp/livekit.{service}/{method}"),
        Some(&format!("Bearer {token}")),
        "application/json",
        body.to_string().into_bytes(),
    )
    .await
}
