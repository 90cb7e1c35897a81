//! Parser errors (serde, serde_json, actix's path and query deserializers) in plain words:
//! `field: what is wanted`, naming the allowed values, never a Rust type
//! (`u16`, `struct CredentialsRequest with 4 elements`) and never the value sent (bodies
//! carry secrets and phone numbers).

use crate::error::redact_values;

/// What a JSON body's own errors are reported under.
pub const BODY: &str = "body";
/// Longest client-supplied field name repeated in a message.
const MAX_NAME_LEN: usize = 64;

/// One deserialization failure at `path` (`numbers[0].sipTarget`; `.` or empty for the
/// whole input, then named `root`: `body`, `query string`), from serde's message `raw` (a
/// trailing ` at line L column C` is dropped).
pub fn describe(root: &str, path: &str, raw: &str) -> String {
    let raw = strip_position(raw);
    let path = if path.is_empty() || path == "." {
        None
    } else {
        Some(path)
    };
    // serde_path_to_error's path ends with the key when the key itself was refused
    // (an unknown field), and stops at the parent when the struct found one missing.
    let at = |field: &str| -> String {
        match path {
            Some(p) if p == field || p.ends_with(&format!(".{field}")) => p.to_owned(),
            Some(p) => format!("{p}.{field}"),
            None => field.to_owned(),
        }
    };
    let here = path.unwrap_or(root);
    if let Some(rest) = raw.strip_prefix("missing field ") {
        let field = name(unquote(rest));
        return format!("{}: is required", at(&field));
    }
    if let Some(rest) = raw.strip_prefix("duplicate field ") {
        let field = name(unquote(rest));
        return format!("{}: is given twice", at(&field));
    }
    if let Some(rest) = raw.strip_prefix("unknown field ") {
        let (given, allowed) = split_expected(rest);
        let field = name(unquote(given));
        return match allowed {
            Some(list) if !list.is_empty() => format!(
                "{}: is not a known field; the fields here are {}",
                at(&field),
                list.join(", ")
            ),
            _ => format!("{}: is not a known field", at(&field)),
        };
    }
    if let Some(rest) = raw.strip_prefix("unknown variant ") {
        let (_, allowed) = split_expected(rest);
        return match allowed {
            Some(list) if !list.is_empty() => {
                format!("{here}: must be one of {}", list.join(", "))
            }
            _ => format!("{here}: is not an accepted value"),
        };
    }
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = raw.strip_prefix(prefix) {
            let expected = rest.split_once(", expected ").map_or("", |(_, e)| e.trim());
            return format!("{here}: must be {}", wanted(expected));
        }
    }
    if raw.starts_with("data did not match any variant of untagged enum") {
        return format!("{here}: does not match any accepted form");
    }
    // actix's path deserializer: `can not parse "abc" to a u32`.
    if let Some(rest) = raw.strip_prefix("can not parse ") {
        let ty = rest.rsplit_once(" to a ").map_or("", |(_, t)| t.trim());
        return format!("{here}: must be {}", wanted(ty));
    }
    // `str::parse` failures surfacing through serde_urlencoded.
    if raw.contains("invalid digit found in string")
        || raw.contains("cannot parse integer from empty string")
        || raw.contains("number too large to fit in target type")
        || raw.contains("number too small to fit in target type")
    {
        return format!("{here}: must be a whole number");
    }
    // Our own parsers' messages (`customer id must not be empty`): already plain, with
    // any quoted value removed as a precaution.
    format!("{here}: {}", redact_values(raw))
}

/// A message for a body that is not JSON at all (a syntax error or a truncated document).
pub fn not_json(line: usize, column: usize) -> String {
    format!("{BODY}: is not valid JSON (line {line}, column {column})")
}

fn strip_position(raw: &str) -> &str {
    match raw.rfind(" at line ") {
        Some(i) if raw[i + 9..].contains(" column ") => &raw[..i],
        _ => raw,
    }
}

/// `` `x` `` → `x`.
fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('`')
        .and_then(|s| s.strip_suffix('`'))
        .unwrap_or(s)
}

/// A client-supplied key, bounded and without control characters.
fn name(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_LEN)
        .collect()
}

/// `` `given`, expected one of `a`, `b` `` → (`` `given` ``, `["\"a\"", "\"b\""]`).
/// serde writes the list as `` one of `a`, `b` ``, `` `a` or `b` `` or `` `a` ``.
fn split_expected(rest: &str) -> (&str, Option<Vec<String>>) {
    let Some((given, expected)) = rest.split_once(", expected ") else {
        return (rest.split(',').next().unwrap_or(rest), None);
    };
    let list = expected.strip_prefix("one of ").unwrap_or(expected);
    let names = list
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, n)| format!("\"{n}\""))
        .collect();
    (given, Some(names))
}

/// serde's "expected …" in plain words.
fn wanted(expected: &str) -> String {
    let e = expected
        .trim()
        .trim_start_matches("a ")
        .trim_start_matches("an ");
    let (nonzero, e) = match e.strip_prefix("nonzero ") {
        Some(rest) => (true, rest),
        None => (false, e),
    };
    let unsigned_max: Option<u128> = match e {
        "u8" => Some(u8::MAX.into()),
        "u16" => Some(u16::MAX.into()),
        "u32" => Some(u32::MAX.into()),
        "u64" | "usize" => Some(u64::MAX.into()),
        _ => None,
    };
    if let Some(max) = unsigned_max {
        let min = u8::from(nonzero);
        return format!("a whole number from {min} to {max}");
    }
    match e {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "string" | "borrowed string" | "string or a byte array" => "a string".to_owned(),
        "boolean" => "true or false".to_owned(),
        "character" => "a single character".to_owned(),
        "map" => "a JSON object".to_owned(),
        "sequence" => "a JSON array".to_owned(),
        "unit" | "null" => "null".to_owned(),
        _ if e.starts_with("struct ") || e.starts_with("map") => "a JSON object".to_owned(),
        _ if e.starts_with("tuple") || e.starts_with("sequence") || e.starts_with("array") => {
            "a JSON array".to_owned()
        }
        _ if e.starts_with("enum ") || e.starts_with("variant") => {
            "one of the accepted values".to_owned()
        }
        // A visitor's own description ("a phone number in E.164 form"): plain already.
        _ if !expected.is_empty() && !expected.contains('`') => expected.to_owned(),
        _ => "of another type".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_read_as_plain_words() {
        let cases = [
            (
                "trunkStrategy",
                "unknown variant `x`, expected `shared` or `dedicated` at line 1 column 20",
                r#"trunkStrategy: must be one of "shared", "dedicated""#,
            ),
            (
                "originationTargets[0].weight",
                "invalid value: integer `70000`, expected u16",
                "originationTargets[0].weight: must be a whole number from 0 to 65535",
            ),
            (
                "w",
                "invalid value: integer `0`, expected a nonzero u16",
                "w: must be a whole number from 1 to 65535",
            ),
            (
                ".",
                "invalid type: sequence, expected struct CredentialsRequest",
                "body: must be a JSON object",
            ),
            (
                ".",
                "invalid length 0, expected struct CredentialsRequest with 4 elements",
                "body: must be a JSON object",
            ),
            (".", "missing field `accountSid`", "accountSid: is required"),
            (
                "routing",
                "missing field `agentName`",
                "routing.agentName: is required",
            ),
            (
                ".",
                "unknown field `x`, expected one of `a`, `b`",
                r#"x: is not a known field; the fields here are "a", "b""#,
            ),
            (
                "authToken",
                "invalid type: integer `14155550100`, expected a string",
                "authToken: must be a string",
            ),
            (
                "routing.x",
                "unknown field `x`, expected `agentName`",
                r#"routing.x: is not a known field; the fields here are "agentName""#,
            ),
            (
                "n",
                "can not parse \"abc\" to a u32",
                "n: must be a whole number from 0 to 4294967295",
            ),
        ];
        for (path, raw, want) in cases {
            assert_eq!(describe(BODY, path, raw), want, "{raw}");
        }
    }

    #[test]
    fn values_are_not_echoed() {
        let m = describe(
            BODY,
            "authToken",
            "invalid type: string \"hunter2\", expected u32",
        );
        assert!(!m.contains("hunter2"), "{m}");
        let m = describe(BODY, "x", "something about \"hunter2\"");
        assert!(!m.contains("hunter2"), "{m}");
        let m = describe(
            BODY,
            "trunkStrategy",
            "unknown variant `hunter2`, expected `a`",
        );
        assert!(!m.contains("hunter2"), "{m}");
    }
}
