//! Every Telnyx operation the adapter can call, named by the spec's `operationId`.
//!
//! The adapter builds each request from this catalogue, and the conformance test checks the
//! catalogue (and every request actually sent) against Telnyx's OpenAPI spec.

use std::fmt;

/// How safe an operation is to repeat, which decides what the adapter retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Idempotency {
    /// Reads (GET): retried on 429, 5xx, timeouts and connection failures.
    Read,
    /// PATCH of a named resource to given values, and DELETE whose "already gone" is
    /// success: repeating leaves the same state, so retried like reads.
    Idempotent,
    /// Creates (POST): never retried. Telnyx has no idempotency keys, so a create whose
    /// answer was lost may have happened; the caller re-reads state (finds the connection by
    /// name, lists the FQDNs) instead of creating a duplicate.
    Create,
}

/// The operations, each an `operationId` of Telnyx's spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TelnyxOperation {
    GetUserBalance,
    ListPhoneNumbers,
    RetrievePhoneNumber,
    UpdatePhoneNumber,
    ListFqdnConnections,
    CreateFqdnConnection,
    RetrieveFqdnConnection,
    UpdateFqdnConnection,
    DeleteFqdnConnection,
    ListFqdns,
    CreateFqdn,
    UpdateFqdn,
    DeleteFqdn,
    /// Not in the trimmed spec: Telnyx's SDKs (`fqdn_connections.fqdn_authentication.list`).
    RetrieveFqdnAuthentication,
    /// Not in the trimmed spec: Telnyx's SDKs (`fqdn_connections.fqdn_authentication.patch_all`).
    UpdateFqdnAuthentication,
    ListOutboundVoiceProfiles,
    CreateVoiceProfile,
    UpdateOutboundVoiceProfile,
    DeleteOutboundVoiceProfile,
}

/// What the catalogue says about one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationInfo {
    pub operation_id: &'static str,
    pub method: &'static str,
    /// The spec's path template (relative to the `/v2` base), e.g. `/fqdns/{id}`.
    pub template: &'static str,
    pub idempotency: Idempotency,
    /// Query parameters the adapter may send, as on the wire (`page[size]`).
    pub query: &'static [&'static str],
    /// JSON body fields the adapter may send, nested ones dotted (`inbound.dnis_number_format`).
    pub body: &'static [&'static str],
    /// Whether Telnyx's OpenAPI spec (`telnyx_byoc_v2.json`) has the operation. The two
    /// `fqdn_authentication` operations are only in Telnyx's official SDKs (the spec's README
    /// says so); the conformance test checks them against the SDKs' field names instead.
    pub in_spec: bool,
}

const CONNECTION_BODY: &[&str] = &[
    "connection_name",
    "active",
    "transport_protocol",
    "inbound.ani_number_format",
    "inbound.dnis_number_format",
];
const FQDN_BODY: &[&str] = &["connection_id", "fqdn", "port", "dns_record_type"];
const PROFILE_BODY: &[&str] = &["name", "enabled", "whitelisted_destinations"];

/// The body fields of `PATCH /fqdn_connections/{id}/fqdn_authentication` trunkline sends, as
/// Telnyx's SDKs name them (`FqdnAuthenticationPatchAllParams`).
pub const FQDN_AUTHENTICATION_BODY: &[&str] =
    &["fqdn_outbound_authentication", "user_name", "password"];

/// Every body field Telnyx's SDKs know for that PATCH (the conformance test's reference for
/// an operation the spec does not have).
pub const FQDN_AUTHENTICATION_SDK_FIELDS: &[&str] = &[
    "failover_url",
    "fqdn_outbound_authentication",
    "ip_authentication_method",
    "password",
    "txt_name",
    "txt_ttl",
    "txt_value",
    "user_name",
    "webhook_url",
];

impl TelnyxOperation {
    pub const ALL: [TelnyxOperation; 19] = [
        Self::GetUserBalance,
        Self::ListPhoneNumbers,
        Self::RetrievePhoneNumber,
        Self::UpdatePhoneNumber,
        Self::ListFqdnConnections,
        Self::CreateFqdnConnection,
        Self::RetrieveFqdnConnection,
        Self::UpdateFqdnConnection,
        Self::DeleteFqdnConnection,
        Self::ListFqdns,
        Self::CreateFqdn,
        Self::UpdateFqdn,
        Self::DeleteFqdn,
        Self::RetrieveFqdnAuthentication,
        Self::UpdateFqdnAuthentication,
        Self::ListOutboundVoiceProfiles,
        Self::CreateVoiceProfile,
        Self::UpdateOutboundVoiceProfile,
        Self::DeleteOutboundVoiceProfile,
    ];

    pub fn info(self) -> OperationInfo {
        use Idempotency::{Create, Idempotent, Read};
        let (operation_id, method, template, idempotency, query, body): (
            _,
            _,
            _,
            _,
            &'static [&'static str],
            &'static [&'static str],
        ) = match self {
            Self::GetUserBalance => ("GetUserBalance", "GET", "/balance", Read, &[], &[]),
            Self::ListPhoneNumbers => (
                "ListPhoneNumbers",
                "GET",
                "/phone_numbers",
                Read,
                &[
                    "page[number]",
                    "page[size]",
                    "filter[phone_number]",
                    "filter[connection_id]",
                ],
                &[],
            ),
            Self::RetrievePhoneNumber => (
                "RetrievePhoneNumber",
                "GET",
                "/phone_numbers/{id}",
                Read,
                &[],
                &[],
            ),
            Self::UpdatePhoneNumber => (
                "UpdatePhoneNumber",
                "PATCH",
                "/phone_numbers/{id}",
                Idempotent,
                &[],
                &["connection_id"],
            ),
            Self::ListFqdnConnections => (
                "ListFqdnConnections",
                "GET",
                "/fqdn_connections",
                Read,
                &[
                    "page[number]",
                    "page[size]",
                    "filter[connection_name][contains]",
                ],
                &[],
            ),
            Self::CreateFqdnConnection => (
                "CreateFqdnConnection",
                "POST",
                "/fqdn_connections",
                Create,
                &[],
                CONNECTION_BODY,
            ),
            Self::RetrieveFqdnConnection => (
                "RetrieveFqdnConnection",
                "GET",
                "/fqdn_connections/{id}",
                Read,
                &[],
                &[],
            ),
            Self::UpdateFqdnConnection => (
                "UpdateFqdnConnection",
                "PATCH",
                "/fqdn_connections/{id}",
                Idempotent,
                &[],
                &[
                    "connection_name",
                    "active",
                    "transport_protocol",
                    "inbound.ani_number_format",
                    "inbound.dnis_number_format",
                    "inbound.default_primary_fqdn_id",
                    "inbound.default_secondary_fqdn_id",
                    "inbound.default_tertiary_fqdn_id",
                    "inbound.default_routing_method",
                    "outbound.outbound_voice_profile_id",
                ],
            ),
            Self::DeleteFqdnConnection => (
                "DeleteFqdnConnection",
                "DELETE",
                "/fqdn_connections/{id}",
                Idempotent,
                &[],
                &[],
            ),
            Self::ListFqdns => (
                "ListFqdns",
                "GET",
                "/fqdns",
                Read,
                &["page[number]", "page[size]", "filter[connection_id]"],
                &[],
            ),
            Self::CreateFqdn => ("CreateFqdn", "POST", "/fqdns", Create, &[], FQDN_BODY),
            Self::UpdateFqdn => (
                "UpdateFqdn",
                "PATCH",
                "/fqdns/{id}",
                Idempotent,
                &[],
                &["fqdn", "port", "dns_record_type"],
            ),
            Self::DeleteFqdn => ("DeleteFqdn", "DELETE", "/fqdns/{id}", Idempotent, &[], &[]),
            Self::RetrieveFqdnAuthentication => (
                "RetrieveFqdnAuthentication",
                "GET",
                "/fqdn_connections/{id}/fqdn_authentication",
                Read,
                &[],
                &[],
            ),
            Self::UpdateFqdnAuthentication => (
                "UpdateFqdnAuthentication",
                "PATCH",
                "/fqdn_connections/{id}/fqdn_authentication",
                Idempotent,
                &[],
                FQDN_AUTHENTICATION_BODY,
            ),
            Self::ListOutboundVoiceProfiles => (
                "ListOutboundVoiceProfiles",
                "GET",
                "/outbound_voice_profiles",
                Read,
                &["page[number]", "page[size]", "filter[name][contains]"],
                &[],
            ),
            Self::CreateVoiceProfile => (
                "CreateVoiceProfile",
                "POST",
                "/outbound_voice_profiles",
                Create,
                &[],
                PROFILE_BODY,
            ),
            Self::UpdateOutboundVoiceProfile => (
                "UpdateOutboundVoiceProfile",
                "PATCH",
                "/outbound_voice_profiles/{id}",
                Idempotent,
                &[],
                PROFILE_BODY,
            ),
            Self::DeleteOutboundVoiceProfile => (
                "DeleteOutboundVoiceProfile",
                "DELETE",
                "/outbound_voice_profiles/{id}",
                Idempotent,
                &[],
                &[],
            ),
        };
        let in_spec = !matches!(
            self,
            Self::RetrieveFqdnAuthentication | Self::UpdateFqdnAuthentication
        );
        OperationInfo {
            operation_id,
            method,
            template,
            idempotency,
            query,
            body,
            in_spec,
        }
    }

    /// The path for the given id (ignored by templates without `{id}`).
    pub fn path(self, id: Option<&str>) -> String {
        let template = self.info().template;
        match id {
            Some(id) => template.replace("{id}", id),
            None => template.to_owned(),
        }
    }
}

impl fmt::Display for TelnyxOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.info().operation_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_posts_are_creates_and_paths_fill_the_id() {
        for op in TelnyxOperation::ALL {
            let info = op.info();
            assert_eq!(
                info.method == "POST",
                info.idempotency == Idempotency::Create,
                "{op}"
            );
            assert_eq!(
                info.method == "GET",
                info.idempotency == Idempotency::Read,
                "{op}"
            );
            let path = op.path(Some("123"));
            assert!(!path.contains('{'), "{op}: {path}");
        }
        assert_eq!(TelnyxOperation::DeleteFqdn.path(Some("9")), "/fqdns/9");
    }
}
