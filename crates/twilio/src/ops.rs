//! Every Twilio operation the adapter can call, named by the spec's `operationId`.
//!
//! The adapter builds each request from this catalogue, and the conformance test checks the
//! catalogue (and every request actually sent) against Twilio's OpenAPI specs.

use std::fmt;

/// Which Twilio host serves an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TwilioHost {
    /// `api.twilio.com` (2010 API).
    Api,
    /// `trunking.twilio.com` (Elastic SIP Trunking v1).
    Trunking,
}

/// How safe an operation is to repeat, which decides what the adapter retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Idempotency {
    /// Reads: retried on 429, 503, timeouts and connection failures.
    Read,
    /// Writes that leave the same state when repeated (updates of a named resource,
    /// deletes whose "already gone" is success): retried like reads.
    Idempotent,
    /// Creates: retried only when Twilio certainly did nothing (429, connection refused).
    /// After a timeout or a 503 the caller re-reads state instead.
    Create,
}

/// The operations, each an `operationId` of Twilio's specs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TwilioOperation {
    FetchAccount,
    ListIncomingPhoneNumber,
    FetchIncomingPhoneNumber,
    UpdateIncomingPhoneNumber,
    ListTrunk,
    CreateTrunk,
    FetchTrunk,
    DeleteTrunk,
    ListOriginationUrl,
    CreateOriginationUrl,
    UpdateOriginationUrl,
    DeleteOriginationUrl,
    ListPhoneNumber,
    CreatePhoneNumber,
    DeletePhoneNumber,
    UpdateTrunk,
    ListSipCredentialList,
    CreateSipCredentialList,
    DeleteSipCredentialList,
    ListSipCredential,
    CreateSipCredential,
    ListCredentialList,
    CreateCredentialList,
    DeleteCredentialList,
}

/// What the catalogue says about one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationInfo {
    pub operation_id: &'static str,
    pub host: TwilioHost,
    pub method: &'static str,
    /// The spec's path template, e.g. `/v1/Trunks/{TrunkSid}/OriginationUrls/{Sid}`.
    pub template: &'static str,
    pub idempotency: Idempotency,
    /// Query parameters the adapter may send.
    pub query: &'static [&'static str],
    /// Form parameters the adapter may send.
    pub form: &'static [&'static str],
}

const PAGING: &[&str] = &["PageSize", "Page", "PageToken"];
const VOICE_FORM: &[&str] = &[
    "VoiceUrl",
    "VoiceMethod",
    "VoiceFallbackUrl",
    "VoiceFallbackMethod",
    "VoiceApplicationSid",
    "StatusCallback",
];
const ORIGINATION_FORM: &[&str] = &["Weight", "Priority", "Enabled", "FriendlyName", "SipUrl"];

impl TwilioOperation {
    pub const ALL: [TwilioOperation; 24] = [
        Self::FetchAccount,
        Self::ListIncomingPhoneNumber,
        Self::FetchIncomingPhoneNumber,
        Self::UpdateIncomingPhoneNumber,
        Self::ListTrunk,
        Self::CreateTrunk,
        Self::FetchTrunk,
        Self::DeleteTrunk,
        Self::ListOriginationUrl,
        Self::CreateOriginationUrl,
        Self::UpdateOriginationUrl,
        Self::DeleteOriginationUrl,
        Self::ListPhoneNumber,
        Self::CreatePhoneNumber,
        Self::DeletePhoneNumber,
        Self::UpdateTrunk,
        Self::ListSipCredentialList,
        Self::CreateSipCredentialList,
        Self::DeleteSipCredentialList,
        Self::ListSipCredential,
        Self::CreateSipCredential,
        Self::ListCredentialList,
        Self::CreateCredentialList,
        Self::DeleteCredentialList,
    ];

    pub fn info(self) -> OperationInfo {
        use Idempotency::{Create, Idempotent, Read};
        use TwilioHost::{Api, Trunking};
        let (operation_id, host, method, template, idempotency, query, form): (
            _,
            _,
            _,
            _,
            _,
            &'static [&'static str],
            &'static [&'static str],
        ) = match self {
            Self::FetchAccount => (
                "FetchAccount",
                Api,
                "GET",
                "/2010-04-01/Accounts/{Sid}.json",
                Read,
                &[],
                &[],
            ),
            Self::ListIncomingPhoneNumber => (
                "ListIncomingPhoneNumber",
                Api,
                "GET",
                "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json",
                Read,
                &["PageSize", "Page", "PageToken", "PhoneNumber"],
                &[],
            ),
            Self::FetchIncomingPhoneNumber => (
                "FetchIncomingPhoneNumber",
                Api,
                "GET",
                "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json",
                Read,
                &[],
                &[],
            ),
            Self::UpdateIncomingPhoneNumber => (
                "UpdateIncomingPhoneNumber",
                Api,
                "POST",
                "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json",
                Idempotent,
                &[],
                VOICE_FORM,
            ),
            Self::ListTrunk => (
                "ListTrunk",
                Trunking,
                "GET",
                "/v1/Trunks",
                Read,
                PAGING,
                &[],
            ),
            Self::CreateTrunk => (
                "CreateTrunk",
                Trunking,
                "POST",
                "/v1/Trunks",
                Create,
                &[],
                &["FriendlyName"],
            ),
            Self::FetchTrunk => (
                "FetchTrunk",
                Trunking,
                "GET",
                "/v1/Trunks/{Sid}",
                Read,
                &[],
                &[],
            ),
            Self::DeleteTrunk => (
                "DeleteTrunk",
                Trunking,
                "DELETE",
                "/v1/Trunks/{Sid}",
                Idempotent,
                &[],
                &[],
            ),
            Self::ListOriginationUrl => (
                "ListOriginationUrl",
                Trunking,
                "GET",
                "/v1/Trunks/{TrunkSid}/OriginationUrls",
                Read,
                PAGING,
                &[],
            ),
            Self::CreateOriginationUrl => (
                "CreateOriginationUrl",
                Trunking,
                "POST",
                "/v1/Trunks/{TrunkSid}/OriginationUrls",
                Create,
                &[],
                ORIGINATION_FORM,
            ),
            Self::UpdateOriginationUrl => (
                "UpdateOriginationUrl",
                Trunking,
                "POST",
                "/v1/Trunks/{TrunkSid}/OriginationUrls/{Sid}",
                Idempotent,
                &[],
                ORIGINATION_FORM,
            ),
            Self::DeleteOriginationUrl => (
                "DeleteOriginationUrl",
                Trunking,
                "DELETE",
                "/v1/Trunks/{TrunkSid}/OriginationUrls/{Sid}",
                Idempotent,
                &[],
                &[],
            ),
            Self::ListPhoneNumber => (
                "ListPhoneNumber",
                Trunking,
                "GET",
                "/v1/Trunks/{TrunkSid}/PhoneNumbers",
                Read,
                PAGING,
                &[],
            ),
            Self::CreatePhoneNumber => (
                "CreatePhoneNumber",
                Trunking,
                "POST",
                "/v1/Trunks/{TrunkSid}/PhoneNumbers",
                Create,
                &[],
                &["PhoneNumberSid"],
            ),
            Self::DeletePhoneNumber => (
                "DeletePhoneNumber",
                Trunking,
                "DELETE",
                "/v1/Trunks/{TrunkSid}/PhoneNumbers/{Sid}",
                Idempotent,
                &[],
                &[],
            ),
            Self::UpdateTrunk => (
                "UpdateTrunk",
                Trunking,
                "POST",
                "/v1/Trunks/{Sid}",
                Idempotent,
                &[],
                &["DomainName"],
            ),
            Self::ListSipCredentialList => (
                "ListSipCredentialList",
                Api,
                "GET",
                "/2010-04-01/Accounts/{AccountSid}/SIP/CredentialLists.json",
                Read,
                PAGING,
                &[],
            ),
            Self::CreateSipCredentialList => (
                "CreateSipCredentialList",
                Api,
                "POST",
                "/2010-04-01/Accounts/{AccountSid}/SIP/CredentialLists.json",
                Create,
                &[],
                &["FriendlyName"],
            ),
            Self::DeleteSipCredentialList => (
                "DeleteSipCredentialList",
                Api,
                "DELETE",
                "/2010-04-01/Accounts/{AccountSid}/SIP/CredentialLists/{Sid}.json",
                Idempotent,
                &[],
                &[],
            ),
            Self::ListSipCredential => (
                "ListSipCredential",
                Api,
                "GET",
                "/2010-04-01/Accounts/{AccountSid}/SIP/CredentialLists/{CredentialListSid}/Credentials.json",
                Read,
                PAGING,
                &[],
            ),
            Self::CreateSipCredential => (
                "CreateSipCredential",
                Api,
                "POST",
                "/2010-04-01/Accounts/{AccountSid}/SIP/CredentialLists/{CredentialListSid}/Credentials.json",
                Create,
                &[],
                &["Username", "Password"],
            ),
            Self::ListCredentialList => (
                "ListCredentialList",
                Trunking,
                "GET",
                "/v1/Trunks/{TrunkSid}/CredentialLists",
                Read,
                PAGING,
                &[],
            ),
            Self::CreateCredentialList => (
                "CreateCredentialList",
                Trunking,
                "POST",
                "/v1/Trunks/{TrunkSid}/CredentialLists",
                Create,
                &[],
                &["CredentialListSid"],
            ),
            Self::DeleteCredentialList => (
                "DeleteCredentialList",
                Trunking,
                "DELETE",
                "/v1/Trunks/{TrunkSid}/CredentialLists/{Sid}",
                Idempotent,
                &[],
                &[],
            ),
        };
        OperationInfo {
            operation_id,
            host,
            method,
            template,
            idempotency,
            query,
            form,
        }
    }

    /// The concrete path: the template with `ids` substituted in order. Every id is a parsed
    /// SID (two letters and 32 hex digits), so nothing needs escaping.
    pub(crate) fn path(self, ids: &[&str]) -> String {
        let template = self.info().template;
        let mut out = String::with_capacity(template.len() + 34 * ids.len());
        let mut ids = ids.iter();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            out.push_str(ids.next().copied().unwrap_or_default());
            rest = rest[open..].find('}').map_or("", |c| &rest[open + c + 1..]);
        }
        out.push_str(rest);
        out
    }
}

impl fmt::Display for TwilioOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.info().operation_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_substitute_ids_in_order() {
        let tk = format!("TK{}", "a".repeat(32));
        let ou = format!("OU{}", "b".repeat(32));
        assert_eq!(
            TwilioOperation::UpdateOriginationUrl.path(&[&tk, &ou]),
            format!("/v1/Trunks/{tk}/OriginationUrls/{ou}")
        );
        let ac = format!("AC{}", "c".repeat(32));
        assert_eq!(
            TwilioOperation::FetchAccount.path(&[&ac]),
            format!("/2010-04-01/Accounts/{ac}.json")
        );
        assert_eq!(TwilioOperation::ListTrunk.path(&[]), "/v1/Trunks");
    }

    #[test]
    fn operation_ids_are_unique() {
        let mut ids: Vec<_> = TwilioOperation::ALL
            .iter()
            .map(|o| o.info().operation_id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), TwilioOperation::ALL.len());
    }
}
