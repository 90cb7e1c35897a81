//! The routes the emulator serves, named by Twilio's OpenAPI `operationId`s.

use std::fmt;

/// Which Twilio host a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host {
    /// `api.twilio.com`: the 2010 REST API.
    Api,
    /// `trunking.twilio.com`: Elastic SIP Trunking v1.
    Trunking,
}

/// A route, named by the `operationId` of the operation in Twilio's OpenAPI spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    FetchAccount,
    ListIncomingPhoneNumber,
    FetchIncomingPhoneNumber,
    UpdateIncomingPhoneNumber,
    ListTrunk,
    CreateTrunk,
    FetchTrunk,
    UpdateTrunk,
    DeleteTrunk,
    ListOriginationUrl,
    CreateOriginationUrl,
    FetchOriginationUrl,
    UpdateOriginationUrl,
    DeleteOriginationUrl,
    ListPhoneNumber,
    CreatePhoneNumber,
    FetchPhoneNumber,
    DeletePhoneNumber,
    ListSipCredentialList,
    CreateSipCredentialList,
    DeleteSipCredentialList,
    ListSipCredential,
    CreateSipCredential,
    UpdateSipCredential,
    DeleteSipCredential,
    ListCredentialList,
    CreateCredentialList,
    DeleteCredentialList,
}

impl Route {
    pub const ALL: [Route; 28] = [
        Self::FetchAccount,
        Self::ListIncomingPhoneNumber,
        Self::FetchIncomingPhoneNumber,
        Self::UpdateIncomingPhoneNumber,
        Self::ListTrunk,
        Self::CreateTrunk,
        Self::FetchTrunk,
        Self::UpdateTrunk,
        Self::DeleteTrunk,
        Self::ListOriginationUrl,
        Self::CreateOriginationUrl,
        Self::FetchOriginationUrl,
        Self::UpdateOriginationUrl,
        Self::DeleteOriginationUrl,
        Self::ListPhoneNumber,
        Self::CreatePhoneNumber,
        Self::FetchPhoneNumber,
        Self::DeletePhoneNumber,
        Self::ListSipCredentialList,
        Self::CreateSipCredentialList,
        Self::DeleteSipCredentialList,
        Self::ListSipCredential,
        Self::CreateSipCredential,
        Self::UpdateSipCredential,
        Self::DeleteSipCredential,
        Self::ListCredentialList,
        Self::CreateCredentialList,
        Self::DeleteCredentialList,
    ];

    /// The spec's `operationId`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FetchAccount => "FetchAccount",
            Self::ListIncomingPhoneNumber => "ListIncomingPhoneNumber",
            Self::FetchIncomingPhoneNumber => "FetchIncomingPhoneNumber",
            Self::UpdateIncomingPhoneNumber => "UpdateIncomingPhoneNumber",
            Self::ListTrunk => "ListTrunk",
            Self::CreateTrunk => "CreateTrunk",
            Self::FetchTrunk => "FetchTrunk",
            Self::UpdateTrunk => "UpdateTrunk",
            Self::DeleteTrunk => "DeleteTrunk",
            Self::ListOriginationUrl => "ListOriginationUrl",
            Self::CreateOriginationUrl => "CreateOriginationUrl",
            Self::FetchOriginationUrl => "FetchOriginationUrl",
            Self::UpdateOriginationUrl => "UpdateOriginationUrl",
            Self::DeleteOriginationUrl => "DeleteOriginationUrl",
            Self::ListPhoneNumber => "ListPhoneNumber",
            Self::CreatePhoneNumber => "CreatePhoneNumber",
            Self::FetchPhoneNumber => "FetchPhoneNumber",
            Self::DeletePhoneNumber => "DeletePhoneNumber",
            Self::ListSipCredentialList => "ListSipCredentialList",
            Self::CreateSipCredentialList => "CreateSipCredentialList",
            Self::DeleteSipCredentialList => "DeleteSipCredentialList",
            Self::ListSipCredential => "ListSipCredential",
            Self::CreateSipCredential => "CreateSipCredential",
            Self::UpdateSipCredential => "UpdateSipCredential",
            Self::DeleteSipCredential => "DeleteSipCredential",
            Self::ListCredentialList => "ListCredentialList",
            Self::CreateCredentialList => "CreateCredentialList",
            Self::DeleteCredentialList => "DeleteCredentialList",
        }
    }

    pub fn parse(op: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == op)
    }

    pub fn host(self) -> Host {
        match self {
            Self::FetchAccount
            | Self::ListIncomingPhoneNumber
            | Self::FetchIncomingPhoneNumber
            | Self::UpdateIncomingPhoneNumber
            | Self::ListSipCredentialList
            | Self::CreateSipCredentialList
            | Self::DeleteSipCredentialList
            | Self::ListSipCredential
            | Self::CreateSipCredential
            | Self::UpdateSipCredential
            | Self::DeleteSipCredential => Host::Api,
            _ => Host::Trunking,
        }
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
    /// Every request to one host.
    Host(Host),
    /// One route.
    Route(Route),
}

impl RouteSelector {
    pub fn matches(self, host: Host, route: Option<Route>) -> bool {
        match self {
            Self::Any => true,
            Self::Host(h) => h == host,
            Self::Route(r) => route == Some(r),
        }
    }
}

impl From<Route> for RouteSelector {
    fn from(r: Route) -> Self {
        Self::Route(r)
    }
}

impl From<Host> for RouteSelector {
    fn from(h: Host) -> Self {
        Self::Host(h)
    }
}

/// Form or query parameters in arrival order. Twilio takes the first of repeated names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(raw: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(raw).into_owned().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }
}

/// The identifiers a path carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PathIds {
    pub account: Option<String>,
    pub trunk: Option<String>,
    pub sid: Option<String>,
    /// A SIP credential list (`CL…`) whose credentials the path names.
    pub list: Option<String>,
}

/// The result of matching a request line.
pub(crate) enum Resolved {
    Found(Route, PathIds),
    /// The path exists but not with this method.
    MethodNotAllowed,
    NotFound,
}

pub(crate) fn resolve(host: Host, method: &str, path: &str) -> Resolved {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match host {
        Host::Api => resolve_api(method, &segments),
        Host::Trunking => resolve_trunking(method, &segments),
    }
}

fn by_method(method: &str, table: &[(&str, Route)], ids: PathIds) -> Resolved {
    table
        .iter()
        .find(|(m, _)| *m == method)
        .map_or(Resolved::MethodNotAllowed, |(_, r)| {
            Resolved::Found(*r, ids)
        })
}

fn resolve_api(method: &str, s: &[&str]) -> Resolved {
    match s {
        ["2010-04-01", "Accounts", file] => match file.strip_suffix(".json") {
            Some(sid) if !sid.is_empty() => by_method(
                method,
                &[("GET", Route::FetchAccount)],
                PathIds {
                    account: Some(sid.to_owned()),
                    ..PathIds::default()
                },
            ),
            _ => Resolved::NotFound,
        },
        [
            "2010-04-01",
            "Accounts",
            account,
            "IncomingPhoneNumbers.json",
        ] => by_method(
            method,
            &[("GET", Route::ListIncomingPhoneNumber)],
            PathIds {
                account: Some((*account).to_owned()),
                ..PathIds::default()
            },
        ),
        [
            "2010-04-01",
            "Accounts",
            account,
            "IncomingPhoneNumbers",
            file,
        ] => match file.strip_suffix(".json") {
            Some(sid) if !sid.is_empty() => by_method(
                method,
                &[
                    ("GET", Route::FetchIncomingPhoneNumber),
                    ("POST", Route::UpdateIncomingPhoneNumber),
                ],
                PathIds {
                    account: Some((*account).to_owned()),
                    sid: Some(sid.to_owned()),
                    ..PathIds::default()
                },
            ),
            _ => Resolved::NotFound,
        },
        [
            "2010-04-01",
            "Accounts",
            account,
            "SIP",
            "CredentialLists.json",
        ] => by_method(
            method,
            &[
                ("GET", Route::ListSipCredentialList),
                ("POST", Route::CreateSipCredentialList),
            ],
            PathIds {
                account: Some((*account).to_owned()),
                ..PathIds::default()
            },
        ),
        [
            "2010-04-01",
            "Accounts",
            account,
            "SIP",
            "CredentialLists",
            file,
        ] => match file.strip_suffix(".json") {
            Some(sid) if !sid.is_empty() => by_method(
                method,
                &[("DELETE", Route::DeleteSipCredentialList)],
                PathIds {
                    account: Some((*account).to_owned()),
                    sid: Some(sid.to_owned()),
                    ..PathIds::default()
                },
            ),
            _ => Resolved::NotFound,
        },
        [
            "2010-04-01",
            "Accounts",
            account,
            "SIP",
            "CredentialLists",
            list,
            "Credentials.json",
        ] => by_method(
            method,
            &[
                ("GET", Route::ListSipCredential),
                ("POST", Route::CreateSipCredential),
            ],
            PathIds {
                account: Some((*account).to_owned()),
                list: Some((*list).to_owned()),
                ..PathIds::default()
            },
        ),
        [
            "2010-04-01",
            "Accounts",
            account,
            "SIP",
            "CredentialLists",
            list,
            "Credentials",
            file,
        ] => match file.strip_suffix(".json") {
            Some(sid) if !sid.is_empty() => by_method(
                method,
                &[
                    ("POST", Route::UpdateSipCredential),
                    ("DELETE", Route::DeleteSipCredential),
                ],
                PathIds {
                    account: Some((*account).to_owned()),
                    list: Some((*list).to_owned()),
                    sid: Some(sid.to_owned()),
                    ..PathIds::default()
                },
            ),
            _ => Resolved::NotFound,
        },
        _ => Resolved::NotFound,
    }
}

fn resolve_trunking(method: &str, s: &[&str]) -> Resolved {
    let ids = |trunk: Option<&str>, sid: Option<&str>| PathIds {
        account: None,
        trunk: trunk.map(str::to_owned),
        sid: sid.map(str::to_owned),
        list: None,
    };
    match s {
        ["v1", "Trunks"] => by_method(
            method,
            &[("GET", Route::ListTrunk), ("POST", Route::CreateTrunk)],
            ids(None, None),
        ),
        ["v1", "Trunks", trunk] => by_method(
            method,
            &[
                ("GET", Route::FetchTrunk),
                ("POST", Route::UpdateTrunk),
                ("DELETE", Route::DeleteTrunk),
            ],
            ids(Some(trunk), None),
        ),
        ["v1", "Trunks", trunk, "OriginationUrls"] => by_method(
            method,
            &[
                ("GET", Route::ListOriginationUrl),
                ("POST", Route::CreateOriginationUrl),
            ],
            ids(Some(trunk), None),
        ),
        ["v1", "Trunks", trunk, "OriginationUrls", sid] => by_method(
            method,
            &[
                ("GET", Route::FetchOriginationUrl),
                ("POST", Route::UpdateOriginationUrl),
                ("DELETE", Route::DeleteOriginationUrl),
            ],
            ids(Some(trunk), Some(sid)),
        ),
        ["v1", "Trunks", trunk, "PhoneNumbers"] => by_method(
            method,
            &[
                ("GET", Route::ListPhoneNumber),
                ("POST", Route::CreatePhoneNumber),
            ],
            ids(Some(trunk), None),
        ),
        ["v1", "Trunks", trunk, "CredentialLists"] => by_method(
            method,
            &[
                ("GET", Route::ListCredentialList),
                ("POST", Route::CreateCredentialList),
            ],
            ids(Some(trunk), None),
        ),
        ["v1", "Trunks", trunk, "CredentialLists", sid] => by_method(
            method,
            &[("DELETE", Route::DeleteCredentialList)],
            ids(Some(trunk), Some(sid)),
        ),
        ["v1", "Trunks", trunk, "PhoneNumbers", sid] => by_method(
            method,
            &[
                ("GET", Route::FetchPhoneNumber),
                ("DELETE", Route::DeletePhoneNumber),
            ],
            ids(Some(trunk), Some(sid)),
        ),
        _ => Resolved::NotFound,
    }
}
