//! The sealed byte layout and the associated data (see the README for the rationale).
//!
//! ```text
//! version:u8 = 0x01 | kid_len:u8 | kid (kid_len bytes) | nonce (12) | ciphertext | tag (16)
//! ```

use trunkline_core::model::SealContext;
use trunkline_core::ports::VaultError;

use crate::keyring::is_valid_key_id;

pub(crate) const VERSION: u8 = 0x01;
pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;

/// Separates this use of the keys from any other that might ever share them.
const AAD_LABEL: &[u8] = b"trunkline-vault/credential";

/// A sealed value split into its parts; borrowed from the input bytes.
#[derive(Debug)]
pub(crate) struct Parts<'a> {
    pub kid: &'a str,
    pub nonce: &'a [u8],
    pub ciphertext: &'a [u8],
    pub tag: &'a [u8],
}

/// The bytes before the nonce: version, key id length and key id.
pub(crate) fn header(kid: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + kid.len());
    out.push(VERSION);
    // Key ids are validated to 1..=32 ASCII bytes when the ring is built.
    out.push(u8::try_from(kid.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(kid.as_bytes());
    out
}

/// Split sealed bytes into their parts without trusting any of them.
pub(crate) fn parse(bytes: &[u8]) -> Result<Parts<'_>, VaultError> {
    let (&version, rest) = bytes
        .split_first()
        .ok_or(VaultError::Malformed("empty sealed value"))?;
    if version != VERSION {
        return Err(VaultError::Malformed("unsupported format version"));
    }
    let (&kid_len, rest) = rest
        .split_first()
        .ok_or(VaultError::Malformed("truncated header"))?;
    let kid_len = usize::from(kid_len);
    if kid_len == 0 {
        return Err(VaultError::Malformed("empty key id"));
    }
    let (kid, rest) = rest
        .split_at_checked(kid_len)
        .ok_or(VaultError::Malformed("truncated key id"))?;
    let kid = std::str::from_utf8(kid)
        .ok()
        .filter(|k| is_valid_key_id(k))
        .ok_or(VaultError::Malformed("invalid key id"))?;
    let (nonce, rest) = rest
        .split_at_checked(NONCE_LEN)
        .ok_or(VaultError::Malformed("truncated nonce"))?;
    let ciphertext_len = rest
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(VaultError::Malformed("too short for an authentication tag"))?;
    let (ciphertext, tag) = rest.split_at(ciphertext_len);
    Ok(Parts {
        kid,
        nonce,
        ciphertext,
        tag,
    })
}

/// AES-GCM associated data: every field length-prefixed, so no two different
/// (kid, customer, integration, provider) tuples encode to the same bytes.
pub(crate) fn associated_data(kid: &str, ctx: &SealContext) -> Vec<u8> {
    encode_associated_data(
        kid,
        ctx.customer_id.as_str(),
        ctx.integration_id.as_uuid().as_bytes(),
        ctx.provider.as_str(),
    )
}

/// [`associated_data`] from plain fields; tests use it to vary the provider, which has a
/// single value in `ProviderKind` today.
pub(crate) fn encode_associated_data(
    kid: &str,
    customer: &str,
    integration: &[u8; 16],
    provider: &str,
) -> Vec<u8> {
    let fields: [&[u8]; 5] = [
        AAD_LABEL,
        kid.as_bytes(),
        customer.as_bytes(),
        integration,
        provider.as_bytes(),
    ];
    let mut out = Vec::with_capacity(1 + fields.iter().map(|f| 4 + f.len()).sum::<usize>());
    out.push(VERSION);
    for field in fields {
        // Every field is bounded far below u32::MAX (customer ids are at most 128 bytes).
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline_core::{CustomerId, IntegrationId, ProviderKind};

    fn ctx(customer: &str) -> SealContext {
        SealContext {
            customer_id: CustomerId::parse(customer).unwrap(),
            integration_id: IntegrationId::new(),
            provider: ProviderKind::Twilio,
        }
    }

    #[test]
    fn associated_data_is_length_prefixed() {
        let c = ctx("ab");
        let mut shifted = c.clone();
        shifted.customer_id = CustomerId::parse("a").unwrap();
        // "ab" + "c…" vs "a" + "bc…": a plain concatenation of kid and customer would collide.
        assert_ne!(
            associated_data("c", &shifted),
            associated_data("bc", &c),
            "kid/customer boundary must be unambiguous"
        );
        assert_ne!(associated_data("k1", &c), associated_data("k2", &c));
    }

    #[test]
    fn associated_data_layout() {
        let c = ctx("cust");
        let aad = associated_data("k1", &c);
        let mut expected = vec![VERSION];
        for f in [
            AAD_LABEL,
            b"k1".as_slice(),
            b"cust",
            c.integration_id.as_uuid().as_bytes(),
            b"twilio",
        ] {
            expected.extend_from_slice(&u32::try_from(f.len()).unwrap().to_be_bytes());
            expected.extend_from_slice(f);
        }
        assert_eq!(aad, expected);
    }

    #[test]
    fn parse_splits_the_parts() {
        let mut bytes = header("key-1");
        bytes.extend_from_slice(&[7; NONCE_LEN]);
        bytes.extend_from_slice(b"ct");
        bytes.extend_from_slice(&[9; TAG_LEN]);
        let parts = parse(&bytes).unwrap();
        assert_eq!(parts.kid, "key-1");
        assert_eq!(parts.nonce, &[7; NONCE_LEN]);
        assert_eq!(parts.ciphertext, b"ct");
        assert_eq!(parts.tag, &[9; TAG_LEN]);
    }

    #[test]
    fn parse_rejects_bad_headers() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "empty sealed value"),
            (b"\x02\x02k1", "unsupported format version"),
            (b"\x01", "truncated header"),
            (b"\x01\x00", "empty key id"),
            (b"\x01\x05k1", "truncated key id"),
            (b"\x01\x02k!", "invalid key id"),
        ];
        for (bytes, why) in cases {
            assert_eq!(
                parse(bytes).unwrap_err(),
                VaultError::Malformed(why),
                "{bytes:?}"
            );
        }
        let mut no_tag = header("k1");
        no_tag.extend_from_slice(&[0; NONCE_LEN + TAG_LEN - 1]);
        assert_eq!(
            parse(&no_tag).unwrap_err(),
            VaultError::Malformed("too short for an authentication tag")
        );
    }
}
