//! The routes the emulator serves, named by Telnyx's OpenAPI `operationId`s.

use std::fmt;

/// A route, named by the `operationId` of the operation in Telnyx's OpenAPI spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
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
    RetrieveFqdn,
    UpdateFqdn,
    DeleteFqdn,
    /// Not in the trimmed spec (Telnyx's SDKs have it).
    RetrieveFqdnAuthentication,
    /// Not in the trimmed spec (Telnyx's SDKs have it).
    UpdateFqdnAuthentication,
    ListOutboundVoiceProfiles,
    CreateVoiceProfile,
    GetOutboundVoiceProfile,
    UpdateOutboundVoiceProfile,
    DeleteOutboundVoiceProfile,
}

impl Route {
    pub const ALL: [Route; 21] = [
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
        Self::RetrieveFqdn,
        Self::UpdateFqdn,
        Self::DeleteFqdn,
        Self::RetrieveFqdnAuthentication,
        Self::UpdateFqdnAuthentication,
        Self::ListOutboundVoiceProfiles,
        Self::CreateVoiceProfile,
        Self::GetOutboundVoiceProfile,
        Self::UpdateOutboundVoiceProfile,
        Self::DeleteOutboundVoiceProfile,
    ];

    /// The spec's `operationId`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GetUserBalance => "GetUserBalance",
            Self::ListPhoneNumbers => "ListPhoneNumbers",
            Self::RetrievePhoneNumber => "RetrievePhoneNumber",
            Self::UpdatePhoneNumber => "UpdatePhoneNumber",
            Self::ListFqdnConnections => "ListFqdnConnections",
            Self::CreateFqdnConnection => "CreateFqdnConnection",
            Self::RetrieveFqdnConnection => "RetrieveFqdnConnection",
            Self::UpdateFqdnConnection => "UpdateFqdnConnection",
            Self::DeleteFqdnConnection => "DeleteFqdnConnection",
            Self::ListFqdns => "ListFqdns",
            Self::CreateFqdn => "CreateFqdn",
            Self::RetrieveFqdn => "RetrieveFqdn",
            Self::UpdateFqdn => "UpdateFqdn",
            Self::DeleteFqdn => "DeleteFqdn",
            Self::RetrieveFqdnAuthentication => "RetrieveFqdnAuthentication",
            Self::UpdateFqdnAuthentication => "UpdateFqdnAuthentication",
            Self::ListOutboundVoiceProfiles => "ListOutboundVoiceProfiles",
            Self::CreateVoiceProfile => "CreateVoiceProfile",
            Self::GetOutboundVoiceProfile => "GetOutboundVoiceProfile",
            Self::UpdateOutboundVoiceProfile => "UpdateOutboundVoiceProfile",
            Self::DeleteOutboundVoiceProfile => "DeleteOutboundVoiceProfile",
        }
    }

    /// Whether Telnyx's spec (`telnyx_byoc_v2.json`) has the route; the two
    /// `fqdn_authentication` routes follow Telnyx's SDK types instead.
    pub fn in_spec(self) -> bool {
        !matches!(
            self,
            Self::RetrieveFqdnAuthentication | Self::UpdateFqdnAuthentication
        )
    }

    pub fn parse(op: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == op)
    }

    /// Whether the route reads or changes phone numbers (what a key without number
    /// permissions may not do).
    pub fn is_numbers(self) -> bool {
        matches!(
            self,
            Self::ListPhoneNumbers | Self::RetrievePhoneNumber | Self::UpdatePhoneNumber
        )
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which requests a fault or a count applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSelector {
    /// Every request, including ones to unknown paths.
    Any,
    /// One route.
    Route(Route),
}

impl RouteSelector {
    pub fn matches(self, route: Option<Route>) -> bool {
        match self {
            Self::Any => true,
            Self::Route(r) => route == Some(r),
        }
    }
}

impl From<Route> for RouteSelector {
    fn from(r: Route) -> Self {
        Self::Route(r)
    }
}

/// The result of matching a request line (the path below `/v2`).
pub(crate) enum Resolved {
    /// The route and the `{id}` of the path, if it has one.
    Found(Route, Option<String>),
    /// The path exists but not with this method.
    MethodNotAllowed,
    NotFound,
}

/// The emulator serves Telnyx's paths under `/v2`, as `https://api.telnyx.com/v2` does.
pub(crate) const PREFIX: &str = "/v2";

pub(crate) fn resolve(method: &str, path: &str) -> Resolved {
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Resolved::NotFound;
    };
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let by_method = |table: &[(&str, Route)], id: Option<&str>| {
        table
            .iter()
            .find(|(m, _)| *m == method)
            .map_or(Resolved::MethodNotAllowed, |(_, r)| {
                Resolved::Found(*r, id.map(str::to_owned))
            })
    };
    match segments.as_slice() {
        ["balance"] => by_method(&[("GET", Route::GetUserBalance)], None),
        ["phone_numbers"] => by_method(&[("GET", Route::ListPhoneNumbers)], None),
        ["phone_numbers", id] if !id.is_empty() => by_method(
            &[
                ("GET", Route::RetrievePhoneNumber),
                ("PATCH", Route::UpdatePhoneNumber),
            ],
            Some(id),
        ),
        ["fqdn_connections"] => by_method(
            &[
                ("GET", Route::ListFqdnConnections),
                ("POST", Route::CreateFqdnConnection),
            ],
            None,
        ),
        ["fqdn_connections", id] if !id.is_empty() => by_method(
            &[
                ("GET", Route::RetrieveFqdnConnection),
                ("PATCH", Route::UpdateFqdnConnection),
                ("DELETE", Route::DeleteFqdnConnection),
            ],
            Some(id),
        ),
        ["fqdn_connections", id, "fqdn_authentication"] if !id.is_empty() => by_method(
            &[
                ("GET", Route::RetrieveFqdnAuthentication),
                ("PATCH", Route::UpdateFqdnAuthentication),
            ],
            Some(id),
        ),
        ["outbound_voice_profiles"] => by_method(
            &[
                ("GET", Route::ListOutboundVoiceProfiles),
                ("POST", Route::CreateVoiceProfile),
            ],
            None,
        ),
        ["outbound_voice_profiles", id] if !id.is_empty() => by_method(
            &[
                ("GET", Route::GetOutboundVoiceProfile),
                ("PATCH", Route::UpdateOutboundVoiceProfile),
                ("DELETE", Route::DeleteOutboundVoiceProfile),
            ],
            Some(id),
        ),
        ["fqdns"] => by_method(
            &[("GET", Route::ListFqdns), ("POST", Route::CreateFqdn)],
            None,
        ),
        ["fqdns", id] if !id.is_empty() => by_method(
            &[
                ("GET", Route::RetrieveFqdn),
                ("PATCH", Route::UpdateFqdn),
                ("DELETE", Route::DeleteFqdn),
            ],
            Some(id),
        ),
        _ => Resolved::NotFound,
    }
}
