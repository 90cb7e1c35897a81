//! Telnyx's OpenAPI spec (`telnyx_byoc_v2.json`, OpenAPI 3.1) as a checker for requests and
//! responses.
//!
//! Used by the adapter's conformance test (is every request the adapter makes one the spec
//! knows: method, path template, query parameters, JSON body fields?) and by the emulator's
//! shape test (does every answer fit the spec's schema?). Only the subset of OpenAPI 3.1 the
//! spec uses is handled (`$ref`s into components, `type` lists with `"null"`, `anyOf` /
//! `oneOf` / `allOf`, `deepObject` query parameters); anything else is reported as a problem
//! rather than silently accepted.
//!
//! Objects are checked strictly: a field the schema does not declare is a problem (unless
//! the schema allows additional properties), so neither the adapter nor the emulator can
//! drift from the contract unnoticed. Missing fields are problems only when the schema
//! lists them as `required` (Telnyx's answers leave many fields out).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::twilio::Params;
use crate::twilio::spec::{Template, check_bounds, check_string};

/// The spec's file name.
pub const SPEC_FILE: &str = "telnyx_byoc_v2.json";
/// Overrides where the spec is read from (a file path).
pub const SPEC_ENV: &str = "TRUNKLINE_TELNYX_SPEC";

/// Where the spec is: [`SPEC_ENV`] if set, else `crates/telnyx/spec/` if the spec was copied
/// there, else `shared/specs/telnyx/` in a directory above the workspace (the spec's license
/// does not say it may be redistributed, so the repository does not carry a copy).
pub fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os(SPEC_ENV) {
        return PathBuf::from(p);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let in_repo = manifest.join("../telnyx/spec").join(SPEC_FILE);
    if in_repo.is_file() {
        return in_repo;
    }
    manifest
        .ancestors()
        .map(|a| a.join("shared/specs/telnyx").join(SPEC_FILE))
        .find(|p| p.is_file())
        .unwrap_or(in_repo)
}

/// The Telnyx spec with its path templates compiled. Paths are relative to
/// `https://api.telnyx.com/v2` (no `/v2` prefix).
pub struct TelnyxSpec {
    doc: Value,
    templates: Vec<Template>,
}

impl std::fmt::Debug for TelnyxSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelnyxSpec")
            .field("paths", &self.templates.len())
            .finish_non_exhaustive()
    }
}

/// One operation (method + path template) of the spec.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'a> {
    spec: &'a TelnyxSpec,
    pub template: &'a str,
    pub method: &'a str,
    op: &'a Value,
    path_item: &'a Value,
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

impl TelnyxSpec {
    pub fn load() -> Result<Self, String> {
        Self::load_from(&default_path())
    }

    pub fn load_from(file: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            format!(
                "{}: {e} (set {SPEC_ENV} to the spec's path)",
                file.display()
            )
        })?;
        let doc: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let templates = doc
            .get("paths")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{}: no paths", file.display()))?
            .keys()
            .map(|p| Template::compile(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { doc, templates })
    }

    /// The operation a method and path template name, if the spec has it.
    pub fn operation(&self, method: &str, template: &str) -> Option<Operation<'_>> {
        let method = method.to_ascii_lowercase();
        let (template, path_item) = self.doc["paths"].as_object()?.get_key_value(template)?;
        let (method, op) = path_item.as_object()?.get_key_value(method.as_str())?;
        Some(Operation {
            spec: self,
            template,
            method,
            op,
            path_item,
        })
    }

    /// The operation a concrete request (method + path below `/v2`) hits. When several
    /// templates match (`/phone_numbers/jobs` vs `/phone_numbers/{id}`), the one with the
    /// most literal text wins, as a router would pick it.
    pub fn find(&self, method: &str, path: &str) -> Option<Operation<'_>> {
        self.templates
            .iter()
            .filter(|t| t.regex.is_match(path))
            .max_by_key(|t| t.literal_len)
            .and_then(|t| self.operation(method, &t.path))
    }

    pub fn operation_by_id(&self, id: &str) -> Option<Operation<'_>> {
        let paths = self.doc["paths"].as_object()?;
        paths.keys().find_map(|p| {
            METHODS.iter().find_map(|m| {
                self.operation(m, p)
                    .filter(|o| o.operation_id() == Some(id))
            })
        })
    }

    /// Follow `$ref`s into `#/components/…`.
    fn resolve<'a>(&'a self, node: &'a Value) -> Result<&'a Value, String> {
        let mut node = node;
        for _ in 0..16 {
            let Some(r) = node.get("$ref").and_then(Value::as_str) else {
                return Ok(node);
            };
            let path = r
                .strip_prefix("#/")
                .ok_or_else(|| format!("unsupported $ref {r}"))?;
            node = path
                .split('/')
                .try_fold(&self.doc, |v, seg| v.get(seg))
                .ok_or_else(|| format!("dangling $ref {r}"))?;
        }
        Err("$ref chain too long".to_owned())
    }
}

/// A query parameter as it goes on the wire (`page[size]`), with its schema.
#[derive(Debug, Clone)]
pub struct QueryName<'a> {
    pub name: String,
    pub schema: &'a Value,
}

impl<'a> Operation<'a> {
    pub fn operation_id(&self) -> Option<&'a str> {
        self.op.get("operationId").and_then(Value::as_str)
    }

    fn parameters(&self) -> Vec<&'a Value> {
        let own = self.op.get("parameters").and_then(Value::as_array);
        let shared = self.path_item.get("parameters").and_then(Value::as_array);
        own.into_iter()
            .chain(shared)
            .flatten()
            .filter_map(|p| self.spec.resolve(p).ok())
            .collect()
    }

    fn parameter(&self, location: &str, name: &str) -> Option<&'a Value> {
        self.parameters().into_iter().find(|p| {
            p.get("in").and_then(Value::as_str) == Some(location)
                && p.get("name").and_then(Value::as_str) == Some(name)
        })
    }

    /// Every query parameter the operation takes, `deepObject`s expanded to their leaves
    /// (`page[number]`, `filter[connection_name][contains]`).
    pub fn query_names(&self) -> Vec<QueryName<'a>> {
        let mut out = Vec::new();
        for p in self.parameters() {
            if p.get("in").and_then(Value::as_str) != Some("query") {
                continue;
            }
            let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
            let Some(schema) = p.get("schema").and_then(|s| self.spec.resolve(s).ok()) else {
                continue;
            };
            if p.get("style").and_then(Value::as_str) == Some("deepObject") {
                self.leaves(name.to_owned(), schema, &mut out);
            } else {
                out.push(QueryName {
                    name: name.to_owned(),
                    schema,
                });
            }
        }
        out
    }

    fn leaves(&self, prefix: String, schema: &'a Value, out: &mut Vec<QueryName<'a>>) {
        match schema.get("properties").and_then(Value::as_object) {
            Some(props) => {
                for (k, v) in props {
                    if let Ok(v) = self.spec.resolve(v) {
                        self.leaves(format!("{prefix}[{k}]"), v, out);
                    }
                }
            }
            None => out.push(QueryName {
                name: prefix,
                schema,
            }),
        }
    }

    fn body_schema(&self) -> Option<&'a Value> {
        let body = self.spec.resolve(self.op.get("requestBody")?).ok()?;
        body.get("content")?.get("application/json")?.get("schema")
    }

    /// Whether the JSON request body declares a field; nested fields dotted
    /// (`inbound.dnis_number_format`).
    pub fn has_body_field(&self, dotted: &str) -> bool {
        let mut schema = self.body_schema().and_then(|s| self.spec.resolve(s).ok());
        for part in dotted.split('.') {
            schema = schema
                .and_then(|s| s.get("properties"))
                .and_then(|p| p.get(part))
                .and_then(|s| self.spec.resolve(s).ok());
        }
        schema.is_some()
    }

    /// Everything wrong with a request to this operation: path parameters that do not fit,
    /// query parameters the spec does not know or whose values do not fit, a JSON body that
    /// does not fit the request schema (unknown fields, wrong types, values outside the
    /// enums, required fields missing). Empty when the request conforms.
    pub fn check_request(&self, path: &str, query: &Params, body: Option<&Value>) -> Vec<String> {
        let mut problems = Vec::new();
        let at = |p: String| format!("{} {}: {p}", self.method.to_uppercase(), self.template);
        match self.spec.templates.iter().find(|t| t.path == self.template) {
            Some(t) => match t.regex.captures(path) {
                Some(caps) => {
                    for (i, name) in t.names.iter().enumerate() {
                        let value = caps.get(i + 1).map_or("", |m| m.as_str());
                        match self.parameter("path", name).and_then(|p| p.get("schema")) {
                            Some(schema) => {
                                if let Err(e) = self.check_text(schema, value) {
                                    problems.push(at(format!("path parameter {name}: {e}")));
                                }
                            }
                            None => problems.push(at(format!("path parameter {name} undeclared"))),
                        }
                    }
                }
                None => problems.push(at(format!("path {path} does not fit the template"))),
            },
            None => problems.push(at("template not compiled".to_owned())),
        }
        let known = self.query_names();
        for (name, value) in &query.0 {
            match known.iter().find(|q| q.name == *name) {
                Some(q) => {
                    if let Err(e) = self.check_text(q.schema, value) {
                        problems.push(at(format!("query parameter {name}: {e}")));
                    }
                }
                None => problems.push(at(format!("unknown query parameter {name}"))),
            }
        }
        match (self.body_schema(), body) {
            (Some(schema), Some(body)) => {
                let mut found = Vec::new();
                self.check_value(schema, body, "$", &mut found);
                problems.extend(found.into_iter().map(|p| at(format!("body {p}"))));
            }
            (Some(_), None) => {
                let required = self
                    .spec
                    .resolve(self.op.get("requestBody").unwrap_or(&Value::Null))
                    .ok()
                    .and_then(|b| b.get("required"))
                    .and_then(Value::as_bool)
                    == Some(true);
                if required {
                    problems.push(at("missing required JSON body".to_owned()));
                }
            }
            (None, Some(_)) => problems.push(at("a body the spec does not declare".to_owned())),
            (None, None) => {}
        }
        problems
    }

    /// Check a wire (text) value against a parameter schema.
    fn check_text(&self, schema: &Value, value: &str) -> Result<(), String> {
        let schema = self.spec.resolve(schema)?;
        if let Some(alts) = schema.get("oneOf").or_else(|| schema.get("anyOf")) {
            let alts = alts.as_array().cloned().unwrap_or_default();
            return if alts.iter().any(|a| self.check_text(a, value).is_ok()) {
                Ok(())
            } else {
                Err(format!("{value:?} fits none of the alternatives"))
            };
        }
        match type_names(schema).first().copied() {
            Some("integer") => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| format!("{value:?} is not an integer"))?;
                check_bounds(schema, n)
            }
            Some("boolean") => match value {
                "true" | "false" => Ok(()),
                _ => Err(format!("{value:?} is not a boolean")),
            },
            Some("string") | None => check_string(schema, value),
            Some(other) => Err(format!("unsupported parameter type {other}")),
        }
    }

    /// The schema of a response with this status (or the `default` response), if the spec
    /// declares a JSON body.
    fn response_schema(&self, status: u16) -> Option<&'a Value> {
        let responses = self.op.get("responses")?;
        let response = responses
            .get(status.to_string())
            .or_else(|| responses.get("default"))?;
        self.spec
            .resolve(response)
            .ok()?
            .get("content")?
            .get("application/json")?
            .get("schema")
    }

    /// Whether the spec lists this status (or a `default`) among the operation's responses.
    pub fn has_response(&self, status: u16) -> bool {
        self.op
            .get("responses")
            .is_some_and(|r| r.get(status.to_string()).is_some() || r.get("default").is_some())
    }

    /// Everything wrong with a response body (see the module docs for what is checked).
    pub fn check_response(&self, status: u16, body: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        match self.response_schema(status) {
            Some(schema) => self.check_value(schema, body, "$", &mut problems),
            None => problems.push(format!(
                "{} {}: no JSON response declared for status {status}",
                self.method.to_uppercase(),
                self.template
            )),
        }
        problems
    }

    fn check_value(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let schema = match self.spec.resolve(schema) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("{at}: {e}"));
                return;
            }
        };
        for all in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check_value(all, value, at, problems);
        }
        if let Some(alts) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array)
        {
            let fits = alts.iter().any(|a| {
                let mut p = Vec::new();
                self.check_value(a, value, at, &mut p);
                p.is_empty()
            });
            if !fits {
                problems.push(format!("{at}: {value} fits none of the alternatives"));
            }
            return;
        }
        let types = type_names(schema);
        if let Some(values) = schema.get("enum").and_then(Value::as_array)
            && !values.contains(value)
        {
            problems.push(format!("{at}: {value} is not one of {values:?}"));
            return;
        }
        if value.is_null() {
            let nullable = types.contains(&"null")
                || schema.get("nullable").and_then(Value::as_bool) == Some(true)
                || (types.is_empty() && schema.get("properties").is_none());
            if !nullable {
                problems.push(format!("{at}: null but not nullable"));
            }
            return;
        }
        let actual = json_type(value);
        if !types.is_empty()
            && !types
                .iter()
                .any(|t| *t == actual || (*t == "number" && actual == "integer"))
        {
            problems.push(format!(
                "{at}: expected {}, got {value}",
                types.join(" or ")
            ));
            return;
        }
        match value {
            Value::Object(obj) => self.check_object(schema, obj, at, problems),
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check_value(item_schema, item, &format!("{at}[{i}]"), problems);
                    }
                }
            }
            Value::String(s) => {
                if let Err(e) = check_string(schema, s) {
                    problems.push(format!("{at}: {e}"));
                }
            }
            Value::Number(n) => {
                if let Some(n) = n.as_i64()
                    && let Err(e) = check_bounds(schema, n)
                {
                    problems.push(format!("{at}: {e}"));
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        obj: &Map<String, Value>,
        at: &str,
        problems: &mut Vec<String>,
    ) {
        let empty = Map::new();
        let props = schema
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let open = match schema.get("additionalProperties") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Object(_)) => true,
            // A schema without properties (`meta: {type: object}`) takes anything.
            _ => props.is_empty(),
        };
        for (name, v) in obj {
            match props.get(name) {
                Some(s) => self.check_value(s, v, &format!("{at}.{name}"), problems),
                None if open => {}
                None => problems.push(format!("{at}.{name}: not in the spec")),
            }
        }
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !obj.contains_key(name) {
                problems.push(format!("{at}.{name}: missing"));
            }
        }
    }
}

/// `type` as a list: `"string"` → `["string"]`, `["string", "null"]` as is.
fn type_names(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
