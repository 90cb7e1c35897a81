//! The opaque paging cursor of `list_numbers`.
//!
//! A cursor is `t1.` + base64url of `page.size[.digits]`: the next `page[number]`, the
//! `page[size]` and the digits of the `filter[phone_number]` of the listing it continues.
//! Decoding checks every part (page from 2, size 1 to 250, 3 to 15 digits), so a cursor the
//! adapter did not produce is refused with `VALIDATION_FAILED` rather than sent to Telnyx,
//! and the request is always rebuilt from the configured base and the adapter's own path.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use trunkline_core::ports::ProviderError;

use crate::config::TelnyxConfig;
use crate::error::invalid;

const PREFIX: &str = "t1.";
const MAX_CURSOR_LEN: usize = 64;

/// Where a listing goes on from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub page: u32,
    pub size: u32,
    /// Digits of the phone number filter, without `+`.
    pub digits: Option<String>,
}

fn refused() -> ProviderError {
    invalid(
        "cursor",
        "not a cursor returned by this listing; start again without one",
    )
}

pub(crate) fn encode(p: &Position) -> String {
    let mut raw = format!("{}.{}", p.page, p.size);
    if let Some(d) = &p.digits {
        raw.push('.');
        raw.push_str(d);
    }
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
}

pub(crate) fn decode(cursor: &str) -> Result<Position, ProviderError> {
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(refused());
    }
    let body = cursor.strip_prefix(PREFIX).ok_or_else(refused)?;
    let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| refused())?;
    let text = String::from_utf8(bytes).map_err(|_| refused())?;
    let mut parts = text.split('.');
    let number = |s: Option<&str>| -> Option<u32> {
        let s = s?;
        // Canonical decimal only: "02" or "+2" were not made here.
        (!s.is_empty() && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let page = number(parts.next())
        .filter(|p| *p >= 2)
        .ok_or_else(refused)?;
    let size = number(parts.next())
        .filter(|s| (1..=TelnyxConfig::MAX_PAGE_SIZE).contains(s))
        .ok_or_else(refused)?;
    let digits = match parts.next() {
        None => None,
        Some(d) if (3..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) => {
            Some(d.to_owned())
        }
        Some(_) => return Err(refused()),
    };
    if parts.next().is_some() {
        return Err(refused());
    }
    Ok(Position { page, size, digits })
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline_core::ErrorCode;

    #[test]
    fn cursors_round_trip() {
        for p in [
            Position {
                page: 2,
                size: 250,
                digits: None,
            },
            Position {
                page: 99,
                size: 1,
                digits: Some("13125550100".to_owned()),
            },
        ] {
            let c = encode(&p);
            assert!(c.starts_with("t1."));
            assert_eq!(decode(&c).unwrap(), p);
        }
    }

    #[test]
    fn cursors_not_made_here_are_refused() {
        let forge = |raw: &str| format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
        for bad in [
            String::new(),
            "t1.".to_owned(),
            "n1.abc".to_owned(),
            "t1.!!!".to_owned(),
            forge("1.20"),
            forge("0.20"),
            forge("02.20"),
            forge("2.251"),
            forge("2.0"),
            forge("2.20.12"),
            forge("2.20.12a45"),
            forge("2.20.123.4"),
            forge("2.20.https://evil.example"),
            format!("t1.{}", "A".repeat(100)),
        ] {
            let e = decode(&bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::ValidationFailed, "{bad}");
            assert!(e.message.starts_with("cursor"), "{e:?}");
        }
    }
}
