//! Twilio's OpenAPI specs (`crates/twilio/spec/`) as a checker for requests and responses.
//!
//! Used by the adapter's conformance test (is every request the adapter makes one the spec
//! knows?) and by the emulator's shape test (does every answer carry the spec's fields with
//! the spec's types?). Only the subset of OpenAPI 3.0 that Twilio's specs use is handled;
//! anything else is reported as a problem rather than silently accepted.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::{Map, Value};

use super::routes::{Host, Params};

/// Where the spec files live in this repository.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../twilio/spec")
}

/// Both specs: the 2010 API and Trunking v1.
#[derive(Debug)]
pub struct TwilioSpecs {
    pub api: Spec,
    pub trunking: Spec,
}

impl TwilioSpecs {
    pub fn load() -> Result<Self, String> {
        Self::load_from(&default_dir())
    }

    pub fn load_from(dir: &Path) -> Result<Self, String> {
        Ok(Self {
            api: Spec::load(&dir.join("twilio_api_v2010.json"))?,
            trunking: Spec::load(&dir.join("twilio_trunking_v1.json"))?,
        })
    }

    pub fn for_host(&self, host: Host) -> &Spec {
        match host {
            Host::Api => &self.api,
            Host::Trunking => &self.trunking,
        }
    }
}

/// One OpenAPI document with its path templates compiled.
pub struct Spec {
    doc: Value,
    templates: Vec<Template>,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec")
            .field("paths", &self.templates.len())
            .finish_non_exhaustive()
    }
}

/// A compiled path template (`/fqdns/{id}`); the Telnyx checker uses it too.
pub(crate) struct Template {
    pub path: String,
    pub regex: Regex,
    pub names: Vec<String>,
    pub literal_len: usize,
}

impl Template {
    pub(crate) fn compile(path: &str) -> Result<Self, String> {
        let mut pattern = String::from("^");
        let mut names = Vec::new();
        let mut literal_len = 0;
        let mut rest = path;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .map(|c| open + c)
                .ok_or_else(|| format!("unbalanced braces in path {path}"))?;
            pattern.push_str(&regex::escape(&rest[..open]));
            literal_len += open;
            pattern.push_str("([^/]+?)");
            names.push(rest[open + 1..close].to_owned());
            rest = &rest[close + 1..];
        }
        pattern.push_str(&regex::escape(rest));
        literal_len += rest.len();
        pattern.push('$');
        Ok(Self {
            path: path.to_owned(),
            regex: Regex::new(&pattern).map_err(|e| e.to_string())?,
            names,
            literal_len,
        })
    }
}

/// One operation (method + path template) of a spec.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'a> {
    spec: &'a Spec,
    pub template: &'a str,
    pub method: &'a str,
    op: &'a Value,
    path_item: &'a Value,
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

impl Spec {
    pub fn load(file: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
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

    fn operation_at(&self, template: &str, method: &str) -> Option<Operation<'_>> {
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

    /// The operation a method and path template name, if the spec has it.
    pub fn operation(&self, method: &str, template: &str) -> Option<Operation<'_>> {
        self.operation_at(template, method)
    }

    /// The operation a concrete request (method + path) hits. When several templates
    /// match (`…/IncomingPhoneNumbers/Local.json` vs `…/{Sid}.json`), the one with the most
    /// literal text wins, as a router would pick it.
    pub fn find(&self, method: &str, path: &str) -> Option<Operation<'_>> {
        self.templates
            .iter()
            .filter(|t| t.regex.is_match(path))
            .max_by_key(|t| t.literal_len)
            .and_then(|t| self.operation_at(&t.path, method))
    }

    pub fn operation_by_id(&self, id: &str) -> Option<Operation<'_>> {
        let paths = self.doc["paths"].as_object()?;
        paths.keys().find_map(|p| {
            METHODS.iter().find_map(|m| {
                self.operation_at(p, m)
                    .filter(|o| o.operation_id() == Some(id))
            })
        })
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> Result<&'a Value, String> {
        match schema.get("$ref").and_then(Value::as_str) {
            None => Ok(schema),
            Some(r) => {
                let name = r
                    .strip_prefix("#/components/schemas/")
                    .ok_or_else(|| format!("unsupported $ref {r}"))?;
                let target = self.doc["components"]["schemas"]
                    .get(name)
                    .ok_or_else(|| format!("dangling $ref {r}"))?;
                self.resolve(target)
            }
        }
    }
}

impl<'a> Operation<'a> {
    pub fn operation_id(&self) -> Option<&'a str> {
        self.op.get("operationId").and_then(Value::as_str)
    }

    fn parameters(&self) -> impl Iterator<Item = &'a Value> {
        let own = self.op.get("parameters").and_then(Value::as_array);
        let shared = self.path_item.get("parameters").and_then(Value::as_array);
        own.into_iter().chain(shared).flatten()
    }

    fn parameter(&self, location: &str, name: &str) -> Option<&'a Value> {
        self.parameters().find(|p| {
            p.get("in").and_then(Value::as_str) == Some(location)
                && p.get("name").and_then(Value::as_str) == Some(name)
        })
    }

    fn form_schema(&self) -> Option<&'a Value> {
        self.op
            .get("requestBody")?
            .get("content")?
            .get("application/x-www-form-urlencoded")?
            .get("schema")
    }

    /// Names of the form parameters the spec declares for this operation.
    pub fn form_parameters(&self) -> Vec<&'a str> {
        self.form_schema()
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Names of the query parameters the spec declares for this operation.
    pub fn query_parameters(&self) -> Vec<&'a str> {
        self.parameters()
            .filter(|p| p.get("in").and_then(Value::as_str) == Some("query"))
            .filter_map(|p| p.get("name").and_then(Value::as_str))
            .collect()
    }

    /// Everything wrong with a request to this operation: path parameters that do not
    /// fit their schema, query or form parameters the spec does not know or whose values
    /// do not fit, required ones missing. Empty when the request conforms.
    pub fn check_request(&self, path: &str, query: &Params, form: &Params) -> Vec<String> {
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
        for (name, value) in &query.0 {
            match self.parameter("query", name).and_then(|p| p.get("schema")) {
                Some(schema) => {
                    if let Err(e) = self.check_text(schema, value) {
                        problems.push(at(format!("query parameter {name}: {e}")));
                    }
                }
                None => problems.push(at(format!("unknown query parameter {name}"))),
            }
        }
        for p in self.parameters() {
            let required = p.get("required").and_then(Value::as_bool) == Some(true);
            let location = p.get("in").and_then(Value::as_str);
            let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
            if required && location == Some("query") && query.get(name).is_none() {
                problems.push(at(format!("missing required query parameter {name}")));
            }
        }
        let schema = self.form_schema();
        let props = schema
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object);
        for (name, value) in &form.0 {
            match props.and_then(|p| p.get(name)) {
                Some(schema) => {
                    if let Err(e) = self.check_text(schema, value) {
                        problems.push(at(format!("form parameter {name}: {e}")));
                    }
                }
                None => problems.push(at(format!("unknown form parameter {name}"))),
            }
        }
        let required = schema
            .and_then(|s| s.get("required"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        for name in required {
            if form.get(name).is_none() {
                problems.push(at(format!("missing required form parameter {name}")));
            }
        }
        problems
    }

    /// Check a wire (text) value against a parameter schema.
    fn check_text(&self, schema: &Value, value: &str) -> Result<(), String> {
        let schema = self.spec.resolve(schema)?;
        match schema.get("type").and_then(Value::as_str) {
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

    /// The schema of a response with this status, if the spec declares a JSON body.
    fn response_schema(&self, status: u16) -> Option<&'a Value> {
        self.op
            .get("responses")?
            .get(status.to_string())?
            .get("content")?
            .get("application/json")?
            .get("schema")
    }

    /// Whether the spec lists this status among the operation's responses.
    pub fn has_response(&self, status: u16) -> bool {
        self.op
            .get("responses")
            .and_then(|r| r.get(status.to_string()))
            .is_some()
    }

    /// Everything wrong with a response body: a declared field missing, a field the spec does
    /// not declare, or a value whose type, enum, pattern or format does not fit.
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
        if value.is_null() {
            if schema.get("nullable").and_then(Value::as_bool) != Some(true) {
                problems.push(format!("{at}: null but not nullable"));
            }
            return;
        }
        let ty = schema.get("type").and_then(Value::as_str);
        match ty {
            Some("object") | None if schema.get("properties").is_some() => {
                let Some(obj) = value.as_object() else {
                    problems.push(format!("{at}: expected an object, got {value}"));
                    return;
                };
                let props = schema["properties"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                self.check_object(&props, obj, at, problems);
            }
            Some("object") => problems.extend(
                (!value.is_object()).then(|| format!("{at}: expected an object, got {value}")),
            ),
            Some("array") => {
                let Some(items) = value.as_array() else {
                    problems.push(format!("{at}: expected an array, got {value}"));
                    return;
                };
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check_value(item_schema, item, &format!("{at}[{i}]"), problems);
                    }
                }
            }
            Some("string") => match value.as_str() {
                Some(s) => {
                    if let Err(e) = check_string(schema, s) {
                        problems.push(format!("{at}: {e}"));
                    }
                }
                None => problems.push(format!("{at}: expected a string, got {value}")),
            },
            Some("integer") => match value.as_i64() {
                Some(n) => {
                    if let Err(e) = check_bounds(schema, n) {
                        problems.push(format!("{at}: {e}"));
                    }
                }
                None => problems.push(format!("{at}: expected an integer, got {value}")),
            },
            Some("boolean") => problems.extend(
                (!value.is_boolean()).then(|| format!("{at}: expected a boolean, got {value}")),
            ),
            Some("number") => problems.extend(
                (!value.is_number()).then(|| format!("{at}: expected a number, got {value}")),
            ),
            // An untyped schema without properties (Twilio's `recording: {nullable}`)
            // allows any value.
            None => {}
            Some(other) => problems.push(format!("{at}: unsupported schema type {other}")),
        }
    }

    fn check_object(
        &self,
        props: &Map<String, Value>,
        obj: &Map<String, Value>,
        at: &str,
        problems: &mut Vec<String>,
    ) {
        for (name, prop_schema) in props {
            match obj.get(name) {
                Some(v) => self.check_value(prop_schema, v, &format!("{at}.{name}"), problems),
                // Twilio answers every declared field (null when unset); the specs mark
                // none as required, so presence is checked against the declaration.
                None => problems.push(format!("{at}.{name}: missing")),
            }
        }
        for name in obj.keys() {
            if !props.contains_key(name) {
                problems.push(format!("{at}.{name}: not in the spec"));
            }
        }
    }
}

pub(crate) fn check_bounds(schema: &Value, n: i64) -> Result<(), String> {
    if let Some(min) = schema.get("minimum").and_then(Value::as_i64)
        && n < min
    {
        return Err(format!("{n} is below the minimum {min}"));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_i64)
        && n > max
    {
        return Err(format!("{n} is above the maximum {max}"));
    }
    Ok(())
}

pub(crate) fn check_string(schema: &Value, s: &str) -> Result<(), String> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.iter().any(|v| v.as_str() == Some(s))
    {
        return Err(format!("{s:?} is not one of {values:?}"));
    }
    let len = s.chars().count();
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && (len as u64) < min
    {
        return Err(format!("{s:?} is shorter than {min}"));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && (len as u64) > max
    {
        return Err(format!("{s:?} is longer than {max}"));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && !pattern_matches(pattern, s)?
    {
        return Err(format!("{s:?} does not match {pattern}"));
    }
    match schema.get("format").and_then(Value::as_str) {
        Some("date-time") => chrono::DateTime::parse_from_rfc3339(s)
            .map(|_| ())
            .map_err(|e| format!("{s:?} is not an RFC 3339 date-time: {e}")),
        Some("date-time-rfc-2822") => chrono::DateTime::parse_from_rfc2822(s)
            .map(|_| ())
            .map_err(|e| format!("{s:?} is not an RFC 2822 date-time: {e}")),
        Some("phone-number") => {
            if s.starts_with('+') && s.len() > 1 && s[1..].bytes().all(|b| b.is_ascii_digit()) {
                Ok(())
            } else {
                Err(format!("{s:?} is not an E.164 phone number"))
            }
        }
        Some("http-method") => match s {
            "GET" | "POST" => Ok(()),
            _ => Err(format!("{s:?} is not GET or POST")),
        },
        // Twilio's `uri` fields hold absolute URLs (v1) or paths (2010), and often "".
        Some("uri") => {
            if s.is_empty() || s.starts_with('/') || url::Url::parse(s).is_ok() {
                Ok(())
            } else {
                Err(format!("{s:?} is neither a URL nor a path"))
            }
        }
        _ => Ok(()),
    }
}

thread_local! {
    /// Compiled `pattern`s: a list of a thousand numbers checks the same few patterns
    /// thousands of times.
    static PATTERNS: std::cell::RefCell<std::collections::HashMap<String, Regex>> =
        std::cell::RefCell::default();
}

fn pattern_matches(pattern: &str, s: &str) -> Result<bool, String> {
    PATTERNS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(pattern) {
            let re = Regex::new(pattern).map_err(|e| format!("bad pattern {pattern}: {e}"))?;
            cache.insert(pattern.to_owned(), re);
        }
        Ok(cache.get(pattern).is_some_and(|re| re.is_match(s)))
    })
}
