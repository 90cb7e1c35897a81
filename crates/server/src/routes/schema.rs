//! The exact OpenAPI shapes of values the routes parse by hand, so that `/openapi.json`
//! allows what the server accepts and nothing else (`scripts/schemathesis` checks both
//! directions). The patterns restate the parsers of `trunkline_core`: change them together.
//!
//! Character classes are spelled out rather than `\s`: JSON Schema's `\s` (ECMA-262) and
//! Python's (schemathesis) differ from Rust's `char::is_whitespace`, which the parsers use.

use trunkline_core::ProviderKind;
use trunkline_core::model::RoutingPolicy;
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};

/// A Twilio IncomingPhoneNumber SID (`PhoneNumberSid::parse`).
pub const NUMBER_SID_PATTERN: &str = "^PN[0-9a-fA-F]{32}$";
/// A Twilio Account SID (`AccountSid::parse`).
pub const ACCOUNT_SID_PATTERN: &str = "^AC[0-9a-fA-F]{32}$";
/// A Twilio API key SID (`ApiKeySid::parse`).
pub const API_KEY_SID_PATTERN: &str = "^SK[0-9a-fA-F]{32}$";
/// An opaque id (`CustomerId`, `RoomName`): surrounding whitespace is trimmed, then at least
/// one character, none of them whitespace or a control character. The length limit is in
/// UTF-8 bytes; `maxLength` (characters) is exact for ASCII ids.
pub const OPAQUE_ID_PATTERN: &str = concat!(
    "^[\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*",
    "[^\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]+",
    "[\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$"
);
/// Free text with something in it: no control character, and not only whitespace
/// (secrets, agent names).
pub const NON_BLANK_TEXT_PATTERN: &str = concat!(
    "^[^\\x00-\\x1f\\x7f-\\x9f]*",
    "[^\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]",
    "[^\\x00-\\x1f\\x7f-\\x9f]*$"
);
/// Text without control characters (cursors).
pub const NO_CONTROL_PATTERN: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*$";
/// `SipTarget::parse`: `sip:` (any case), a DNS name (not all digits), an IPv4 address or
/// a bracketed IPv6 address, an optional port 1–65535, an optional `transport` parameter.
/// The whole URI is at most 255 characters (`SIP_TARGET_MAX_LEN`), which also bounds the
/// host name below its 253.
pub const SIP_URI_PATTERN: &str = concat!(
    "^[sS][iI][pP]:",
    "(?:",
    // A DNS name: labels of 1-63 letters, digits and inner hyphens, at least one of them
    // not all digits (else it reads as a broken IPv4 address), an optional final dot.
    "(?![0-9.]+(?::|;|$))",
    "(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\\.)*",
    "[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\\.?",
    "|",
    // IPv4, dotted decimal without leading zeros.
    "(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}",
    "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])",
    "|",
    // IPv6 in brackets (the full and the compressed forms).
    "\\[(?:",
    "(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}",
    "|(?:[0-9a-fA-F]{1,4}:){1,7}:",
    "|(?:[0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}",
    "|(?:[0-9a-fA-F]{1,4}:){1,5}(?::[0-9a-fA-F]{1,4}){1,2}",
    "|(?:[0-9a-fA-F]{1,4}:){1,4}(?::[0-9a-fA-F]{1,4}){1,3}",
    "|(?:[0-9a-fA-F]{1,4}:){1,3}(?::[0-9a-fA-F]{1,4}){1,4}",
    "|(?:[0-9a-fA-F]{1,4}:){1,2}(?::[0-9a-fA-F]{1,4}){1,5}",
    "|[0-9a-fA-F]{1,4}:(?::[0-9a-fA-F]{1,4}){1,6}",
    "|:(?:(?::[0-9a-fA-F]{1,4}){1,7}|:)",
    ")\\]",
    ")",
    // Port 1-65535, no leading zeros... except that Rust's u16 parser takes them: `0*`.
    "(?::0*(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?",
    "(?:;[tT][rR][aA][nN][sS][pP][oO][rR][tT]=(?:[uU][dD][pP]|[tT][cC][pP]|[tT][lL][sS]))?$"
);
/// `SIP_TARGET_MAX_LEN`.
/// Cursors trunkline hands out are far shorter; anything longer is not one of ours.
pub const MAX_CURSOR_LEN: usize = 2048;
pub const SIP_URI_MAX_LEN: usize = trunkline_core::sip::SIP_TARGET_MAX_LEN;

pub(super) fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::Type(Type::String))
}

/// The `{provider}` path parameter: one of the carriers trunkline offers.
pub fn provider() -> Schema {
    string()
        .description(Some(
            "The carrier: one of those `GET /telephony/providers` lists.",
        ))
        .enum_values(Some(ProviderKind::ALL.map(ProviderKind::as_str)))
        .examples(["twilio"])
        .into()
}

/// The `customerId` query parameter (`CustomerId::parse`).
pub fn customer_id() -> Schema {
    string()
        .description(Some(
            "Support only: whose data to read. Customers may omit it or name themselves. \
             1 to 128 bytes, no whitespace or control characters.",
        ))
        .pattern(Some(OPAQUE_ID_PATTERN))
        .max_length(Some(trunkline_core::CustomerId::MAX_LEN))
        .into()
}

/// `routing.attributes`: at most 64, keys 1 to 1024 characters outside LiveKit's reserved `sip.`
/// and `lk.` namespaces, values at most 1024 characters.
pub fn attributes() -> Schema {
    let max = RoutingPolicy::MAX_ATTRIBUTE_LEN;
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Object))
        .property_names(Some(
            string()
                .min_length(Some(1))
                .max_length(Some(max))
                .pattern(Some(r"^(?!sip\.|lk\.)")),
        ))
        .additional_properties(Some(string().max_length(Some(max))))
        .max_properties(Some(RoutingPolicy::MAX_ATTRIBUTES))
        .into()
}

/// The `{numberId}` path parameter.
pub fn number_sid() -> Schema {
    string()
        .description(Some(
            "The carrier's id of the number, in the carrier's own format (each carrier's paths say which).",
        ))
        .pattern(Some(NUMBER_SID_PATTERN))
        .examples(["PN0123456789abcdef0123456789abcdef"])
        .into()
}

/// The `{callId}` path parameter: a UUID in any form `uuid::Uuid::parse_str` reads.
pub fn call_id() -> Schema {
    const H: &str = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
    string()
        .description(Some(
            "trunkline's id of the call (a UUID), as the webhook answer and the number \
             status give it.",
        ))
        .pattern(Some(format!(
            "^(?:[0-9a-fA-F]{{32}}|{H}|\\{{{H}\\}}|urn:uuid:{H})$"
        )))
        .examples(["0192f0c4-6a4e-7cc2-9b1e-1f1d3c7a9b10"])
        .into()
}

/// The `{roomName}` path parameter (`RoomName::parse`).
pub fn room_name() -> Schema {
    string()
        .description(Some(
            "The LiveKit room of the call, percent-encoded in the path (`+` as `%2B`).",
        ))
        .pattern(Some(OPAQUE_ID_PATTERN))
        .max_length(Some(trunkline_core::RoomName::MAX_LEN))
        .examples(["call-_+14155550199_aBcD1234"])
        .into()
}

/// `routing.agentName`.
pub fn agent_name() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(NON_BLANK_TEXT_PATTERN))
        .max_length(Some(RoutingPolicy::MAX_AGENT_NAME))
        .examples(["support-agent"])
        .into()
}

/// The `cursor` query parameter: opaque, at most 2048 characters, no control characters.
pub fn cursor() -> Schema {
    string()
        .description(Some(
            "`nextCursor` of the previous page; it continues that listing (its page size \
             and filter win). Opaque: only cursors this server handed out are accepted.",
        ))
        .pattern(Some(NO_CONTROL_PATTERN))
        .max_length(Some(MAX_CURSOR_LEN))
        .into()
}

/// The `phoneNumber` query parameter: E.164.
pub fn phone_number() -> Schema {
    string()
        .description(Some(
            "Only this number, in E.164 (`+14155550100`; encode `+` as `%2B`); it must be \
             valid for its country code.",
        ))
        .pattern(Some("^\\+[1-9][0-9]{7,14}$"))
        .examples(["+14155550100"])
        .into()
}

/// An E.164 number in a request body (`from`, `to` of a call).
pub fn e164() -> Schema {
    string()
        .description(Some("E.164 (`+14155550100`), valid for its country code."))
        .pattern(Some("^\\+[1-9][0-9]{7,14}$"))
        .examples(["+14155550100"])
        .into()
}

fn sip_uri_of(schema_type: SchemaType) -> Schema {
    ObjectBuilder::new()
        .schema_type(schema_type)
        .pattern(Some(SIP_URI_PATTERN))
        .max_length(Some(SIP_URI_MAX_LEN))
        .examples(["sip:abc123.sip.livekit.cloud;transport=tcp"])
        .into()
}

/// A `sip:` URI as `SipTarget::parse` accepts it.
pub fn sip_uri() -> Schema {
    sip_uri_of(SchemaType::Type(Type::String))
}

/// A `sip:` URI, or `null` for none.
pub fn sip_uri_or_null() -> Schema {
    sip_uri_of(SchemaType::from_iter([Type::String, Type::Null]))
}

/// A secret: 1–256 characters, not blank, no control characters. Write-only.
fn secret(description: &str) -> ObjectBuilder {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .pattern(Some(NON_BLANK_TEXT_PATTERN))
        .min_length(Some(1))
        .max_length(Some(256))
        .write_only(Some(true))
        .description(Some(description))
}

fn sid(pattern: &str, example: &str, description: &str) -> ObjectBuilder {
    string()
        .pattern(Some(pattern))
        .examples([example])
        .description(Some(description))
}

/// `null`, which a JSON body may give for a field it leaves out (serde reads it as absent).
pub(super) fn null() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null))
}

/// One form of the credentials body: `accountSid` plus the form's own fields; the other
/// form's fields absent or `null`.
fn credentials_form(title: &str, own: Vec<(&str, ObjectBuilder)>, other: &[&str]) -> Schema {
    let account = sid(
        ACCOUNT_SID_PATTERN,
        "AC0123456789abcdef0123456789abcdef",
        "The Twilio Account SID.",
    );
    let mut form = ObjectBuilder::new()
        .title(Some(title))
        .schema_type(SchemaType::Type(Type::Object))
        .property("accountSid", account)
        .required("accountSid");
    for (name, schema) in own {
        form = form.property(name, schema).required(name);
    }
    for name in other {
        form = form.property(*name, null());
    }
    form.additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .into()
}

/// The credentials body: exactly one of the two forms.
pub fn credentials_request() -> Schema {
    let key_sid = sid(
        API_KEY_SID_PATTERN,
        "SK0123456789abcdef0123456789abcdef",
        "The SID of a Twilio Standard API key.",
    );
    OneOfBuilder::new()
        .description(Some(
            "Carrier credentials: `accountSid` with either `apiKeySid` + `apiKeySecret` (a \
             Twilio Standard API key, recommended) or `authToken` (the account's auth token). \
             Exactly one form; unknown fields are refused. The secret is only ever sent \
             here, never returned.",
        ))
        .item(credentials_form(
            "API key",
            vec![
                ("apiKeySid", key_sid),
                ("apiKeySecret", secret("The API key's secret.")),
            ],
            &["authToken"],
        ))
        .item(credentials_form(
            "Auth token",
            vec![("authToken", secret("The account's auth token."))],
            &["apiKeySid", "apiKeySecret"],
        ))
        .into()
}
