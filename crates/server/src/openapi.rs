//! The API document as this instance serves it (`GET /openapi.json`): the one generated
//! from the handlers ([`ApiDoc`]), with every `/telephony/providers/{provider}/…` path written out once per carrier offered
//! here, so that each carrier's number id format and credentials body are exact. A client
//! (or schemathesis) then never reads a Telnyx number id as a Twilio one.

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};
use trunkline_core::ProviderKind;
use trunkline_core::ports::{CredentialAlternative, CredentialForm, IdFormat};
use trunkline_core::usecases::Onboarding;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorEnvelope;
use crate::routes::ops::{HealthResponse, MeResponse};
use crate::state::AppState;

/// Longest secret a credentials field accepts (the adapters refuse longer ones too).
const MAX_SECRET_LEN: usize = 256;
/// A secret: not blank, no control characters (what the adapters accept).
const NON_BLANK: &str = crate::routes::schema::NON_BLANK_TEXT_PATTERN;

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
pub async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(document(&state.onboarding))
}

/// The OpenAPI document, generated from the handlers and their types.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "trunkline",
        description = "Connect phone numbers a customer owns at a carrier to a LiveKit SIP ingress."
    ),
    paths(
        crate::routes::ops::healthz,
        crate::routes::ops::readyz,
        crate::routes::ops::metrics,
        openapi_json,
        crate::routes::ops::me,
        crate::routes::providers::list_providers,
        crate::routes::credentials::verify_credentials,
        crate::routes::credentials::save_credentials,
        crate::routes::credentials::delete_credentials,
        crate::routes::numbers::list_numbers,
        crate::routes::numbers::connect_number,
        crate::routes::numbers::disconnect_number,
        crate::routes::numbers::number_status,
        crate::routes::audit::list_audit,
        crate::routes::webhook::livekit_webhook,
        crate::routes::voice::twilio_voice,
        crate::routes::calls::get_call,
        crate::routes::calls::get_call_by_room,
        crate::routes::purchase::search_numbers,
        crate::routes::purchase::purchase_number,
        crate::routes::purchase::release_number,
        crate::routes::purchase::get_settings,
        crate::routes::purchase::put_settings,
        crate::routes::admin::admin_customers,
        crate::routes::admin::admin_routes,
        crate::routes::admin::admin_livekit,
        crate::routes::jobs::bulk_connect,
        crate::routes::jobs::bulk_disconnect,
        crate::routes::jobs::list_jobs,
        crate::routes::jobs::get_job,
        crate::routes::jobs::cancel_job,
        crate::routes::outbound::place_call,
    ),
    components(schemas(ErrorEnvelope, HealthResponse, MeResponse)),
    modifiers(&BearerAuth, &PathParamsRequired)
)]
pub struct ApiDoc;

/// OpenAPI requires every path parameter to be `required`; the derive leaves it out on
/// parameters whose schema is written by hand (`schema_with`, `routes::schema`).
struct PathParamsRequired;

impl Modify for PathParamsRequired {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::Required;
        use utoipa::openapi::path::ParameterIn;
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            for op in operations.into_iter().flatten() {
                for param in op.parameters.iter_mut().flatten() {
                    if param.parameter_in == ParameterIn::Path {
                        param.required = Required::True;
                    }
                }
            }
        }
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

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
