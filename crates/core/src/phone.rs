//! E.164 phone numbers, and masking them for logs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ValidationError;

/// A phone number in E.164 form (`+14155550100`), valid for its country.
///
/// Parsing accepts what people paste (`+1 (415) 555-0100`, `+44 20 7946 0958`, with
/// spaces, dots, dashes, parentheses, non-breaking spaces) but requires the leading `+`:
/// a number without its country code is ambiguous and rejected rather than guessed.
/// The `Debug` form is masked, because phone numbers are personal data.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct E164(String);

/// Longest input we look at; anything longer is not a phone number someone pasted.
const MAX_INPUT: usize = 64;

impl E164 {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.len() > MAX_INPUT {
            return Err(ValidationError::new("is too long to be a phone number"));
        }
        let mut compact = String::with_capacity(raw.len());
        for c in raw.chars() {
            match c {
                '0'..='9' | '+' => compact.push(c),
                ' ' | '\u{a0}' | '\t' | '-' | '.' | '(' | ')' | '/' | '\u{2010}'..='\u{2015}' => {}
                _ => {
                    return Err(ValidationError::new(
                        "must be a phone number in international form, e.g. +14155550100",
                    ));
                }
            }
        }
        if !compact.starts_with('+') || compact[1..].contains('+') {
            return Err(ValidationError::new(
                "must start with '+' and the country code (e.g. +14155550100); \
                 a number without its country code is ambiguous",
            ));
        }
        let digits = &compact[1..];
        if !(8..=15).contains(&digits.len()) {
            return Err(ValidationError::new("must have 8 to 15 digits after '+'"));
        }
        let parsed = phonenumber::parse(None, &compact)
            .map_err(|_| ValidationError::new("is not a valid phone number"))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(ValidationError::new(
                "is not a valid phone number for its country code",
            ));
        }
        Ok(Self(
            parsed.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    /// The canonical `+` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A form safe for logs: country code and the last two digits, e.g. `+1********00`.
    pub fn masked(&self) -> String {
        mask_phone(&self.0)
    }

    /// The national significant number, without the country code (`4155550100`): what an
    /// area code or a number prefix is matched against.
    pub fn national_digits(&self) -> String {
        phonenumber::parse(None, &self.0)
            .map(|p| p.national().value().to_string())
            .unwrap_or_default()
    }
}

/// Mask any phone-number-like string for logs: keep the leading `+` and first digit and the
/// last two digits. Works on raw input that has not been parsed (it never fails).
pub fn mask_phone(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    if chars.len() <= 4 {
        return "*".repeat(chars.len());
    }
    let keep_head = if chars[0] == '+' { 2 } else { 1 };
    let keep_tail = 2;
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_head || i >= chars.len() - keep_tail {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

impl fmt::Display for E164 {
    /// The full number: use it in API responses, never in logs (log [`E164::masked`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164({})", self.masked())
    }
}

impl FromStr for E164 {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for E164 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_pasted_forms() {
        for raw in [
            "+1 (415) 555-0100",
            "+14155550100",
            " +1.415.555.0100 ",
            "+1\u{a0}415\u{a0}555\u{a0}0100",
            "+1-415-555-0100",
        ] {
            assert_eq!(E164::parse(raw).unwrap().as_str(), "+14155550100", "{raw}");
        }
        assert_eq!(
            E164::parse("+44 20 7946 0958").unwrap().as_str(),
            "+442079460958"
        );
    }

    #[test]
    fn rejects_ambiguous_and_garbage() {
        for raw in [
            "4155550100",     // no country code: ambiguous
            "(415) 555-0100", // same
            "0044 20 7946 0958",
            "+1 415 555 0100 ext 3",
            "++14155550100",
            "+1415555010",    // too short for NANP
            "+999 1234 5678", // unassigned country code
            "+1 (415) 555-0100; DROP",
            "",
            "+",
            "+1234567890123456",
        ] {
            assert!(E164::parse(raw).is_err(), "accepted {raw:?}");
        }
        assert!(E164::parse(&"1".repeat(100)).is_err());
    }

    #[test]
    fn debug_is_masked_display_is_full() {
        let n = E164::parse("+14155550100").unwrap();
        assert_eq!(format!("{n}"), "+14155550100");
        let dbg = format!("{n:?}");
        assert!(!dbg.contains("4155550100"), "{dbg}");
        assert!(dbg.ends_with("00)"), "{dbg}");
        assert_eq!(n.masked(), "+1********00");
    }

    #[test]
    fn mask_never_panics_on_odd_input() {
        assert_eq!(mask_phone(""), "");
        assert_eq!(mask_phone("+1"), "**");
        assert_eq!(mask_phone("12345"), "1**45");
        assert_eq!(mask_phone("ééééé"), "é**éé");
    }
}
