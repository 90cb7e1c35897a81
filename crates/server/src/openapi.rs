//! The API document as this instance serves it: the generated one ([`crate::http::ApiDoc`]),
//! with every `/telephony/providers/{provider}/…` path written out once per carrier offered
//! here, so that each carrier's number id format and credentials body are exact. A client
//! (or schemathesis) then never reads a Telnyx number id as a Twilio one.

use serde_json::{Map, Value, json};
use trunkline_core::ProviderKind;
use trunkline_core::ports::{CredentialAlternative, CredentialForm, IdFormat};
use trunkline_core::usecases::Onboarding;
use utoipa::OpenApi as _;

use crate::http::ApiDoc;

/// Longest secret a credentials field accepts (the adapters refuse longer ones too).
const MAX_SECRET_LEN: usize = 256;
/// A secret: not blank, no control characters (what the adapters accept).
const NON_BLANK: &str = crate::routes::schema::NON_BLANK_TEXT_PATTERN;

/// The document of this instance.
pub fn document(onboarding: &Onboarding) -> Value {
    let Ok(mut doc) = serde_json::to_value(ApiDoc::openapi()) else {
        return Value::Null;
    };
    // connect refuses `sipTarget` and `originationTargets` together (one target, or several).
    if let Some(body) = doc.pointer_mut("/components/schemas/ConnectBody") {
        body["not"] = json!({
            "required": ["sipTarget", "originationTargets"],
            "properties": {
                "sipTarget": {"not": {"type": "null"}},
                "originationTargets": {"not": {"type": "null"}},
            },
        });
    }
    let forms = onboarding.providers();
    let formats = onboarding.number_id_formats();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        let generic: Vec<String> = paths
            .keys()
            .filter(|k| k.contains("{provider}"))
            .cloned()
            .collect();
        for key in generic {
            let Some(item) = paths.remove(&key) else {
                continue;
            };
            for (provider, form) in &forms {
                let format = formats
                    .iter()
                    .find_map(|(p, f)| (p == provider).then_some(*f));
                let mut item = item.clone();
                specialize(&mut item, *provider, form, format, &key);
                paths.insert(key.replace("{provider}", provider.as_str()), item);
            }
        }
    }
    doc
}

fn specialize(
    item: &mut Value,
    provider: ProviderKind,
    form: &CredentialForm,
    format: Option<IdFormat>,
    path: &str,
) {
    let Some(ops) = item.as_object_mut() else {
        return;
    };
    for (method, op) in ops.iter_mut() {
        if let Some(id) = op.get_mut("operationId")
            && let Some(name) = id.as_str()
        {
            *id = json!(format!("{name}_{}", provider.as_str()));
        }
        if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
            params.retain(|p| p["name"] != "provider");
            for p in params.iter_mut() {
                if p["name"] == "numberId"
                    && let Some(f) = format
                {
                    p["schema"] = json!({
                        "type": "string",
                        "pattern": f.pattern,
                        "examples": [f.example],
                        "description": f.description,
                    });
                }
            }
        }
        // A bulk job's number ids are in the carrier's format too.
        if method == "post"
            && (path.ends_with("numbers:connect") || path.ends_with("numbers:disconnect"))
            && let Some(f) = format
        {
            let schema = &mut op["requestBody"]["content"]["application/json"]["schema"];
            let generic = schema.take();
            *schema = json!({"allOf": [generic, {
                "type": "object",
                "properties": {"numberIds": {"type": "array", "uniqueItems": true, "items": {
                    "type": "string", "pattern": f.pattern, "examples": [f.example],
                }}},
            }]});
        }
        if method == "post" && (path.ends_with("/credentials") || path.ends_with(":verify")) {
            op["requestBody"]["content"]["application/json"]["schema"] = credentials_body(form);
        }
    }
}

/// The carrier's credentials body: exactly the fields of one alternative, each required.
pub fn credentials_body(form: &CredentialForm) -> Value {
    let mut alternatives: Vec<Value> = form.alternatives.iter().map(alternative).collect();
    if alternatives.len() == 1 {
        return alternatives.remove(0);
    }
    json!({ "oneOf": alternatives })
}

fn alternative(a: &CredentialAlternative) -> Value {
    let mut properties = Map::new();
    for f in &a.fields {
        let mut schema = json!({ "type": "string", "description": f.label });
        if f.secret {
            schema["format"] = json!("password");
            schema["writeOnly"] = json!(true);
            schema["minLength"] = json!(1);
            schema["maxLength"] = json!(MAX_SECRET_LEN);
            schema["pattern"] = json!(NON_BLANK);
        } else if let Some(pattern) = f.pattern {
            schema["pattern"] = json!(pattern);
        }
        if let Some(example) = f.example {
            schema["examples"] = json!([example]);
        }
        properties.insert(f.name.to_owned(), schema);
    }
    json!({
        "title": a.name,
        "type": "object",
        "properties": properties,
        "required": a.fields.iter().map(|f| f.name).collect::<Vec<_>>(),
        "additionalProperties": false,
    })
}
