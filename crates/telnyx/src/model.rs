//! The adapter's own types: Telnyx ids, numbers, FQDN connections, FQDNs, verification.

use std::fmt;

use trunkline_core::E164;
use trunkline_core::ports::ProviderError;

use crate::error::invalid;

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        ///
        /// Telnyx ids are decimal integers sent as strings (up to 19 digits); the adapter
        /// accepts 1 to 20 ASCII digits and nothing else, so an id can never change a path.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// `VALIDATION_FAILED` naming the field when `raw` is not a Telnyx id.
            pub fn parse(raw: &str) -> Result<Self, ProviderError> {
                if (1..=20).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(invalid($field, "must be a Telnyx id (digits only)"))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

numeric_id!(
    /// A phone number's id (`/phone_numbers/{id}`).
    NumberId,
    "numberId"
);
numeric_id!(
    /// An FQDN connection's id, which is also a number's `connection_id`.
    ConnectionId,
    "connectionId"
);
numeric_id!(
    /// An FQDN's id.
    FqdnId,
    "fqdnId"
);

/// A phone number of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelnyxNumber {
    pub id: NumberId,
    pub phone_number: E164,
    /// The connection that receives its calls now: what to restore on disconnect.
    pub connection_id: Option<ConnectionId>,
    /// That connection's name (Telnyx fills it in), to tell whose connection it is.
    pub connection_name: Option<String>,
    /// Telnyx's `status` (`active`, `port-pending`, …).
    pub status: String,
    /// `country_iso_alpha2` (`US`), when Telnyx says: the default destination country of
    /// outbound calls from the number.
    pub country: Option<String>,
}

/// What to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberQuery {
    /// `page[size]`, 1 to 250; ignored with a cursor (the cursor carries its own).
    pub page_size: u32,
    /// Only this number (`filter[phone_number]` with its digits: Telnyx returns nothing for
    /// a filter with a `+`, and matches the digits anywhere in the number).
    pub phone_number: Option<E164>,
    /// A [`NumberPage::next_cursor`] from an earlier call.
    pub cursor: Option<String>,
}

/// One page of numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberPage {
    pub numbers: Vec<TelnyxNumber>,
    /// Opaque; `None` on the last page.
    pub next_cursor: Option<String>,
    /// Telnyx's `meta.total_results`, when it says.
    pub total: Option<u64>,
}

/// `transport_protocol` of an FQDN connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    Udp,
    /// The adapter's default: LiveKit recommends TCP; Telnyx's own default is UDP.
    #[default]
    Tcp,
    Tls,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "UDP" => Some(Self::Udp),
            "TCP" => Some(Self::Tcp),
            "TLS" => Some(Self::Tls),
            _ => None,
        }
    }
}

/// `inbound.default_routing_method`: how Telnyx picks among the primary, secondary and
/// tertiary FQDNs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RoutingMethod {
    /// Primary first, then secondary, then tertiary (failover order).
    #[default]
    Sequential,
    /// Spread calls across them.
    RoundRobin,
}

impl RoutingMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sequential => "sequential",
            Self::RoundRobin => "round-robin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "sequential" => Some(Self::Sequential),
            "round-robin" => Some(Self::RoundRobin),
            _ => None,
        }
    }
}

/// The inbound number formats trunkline needs: with `+`, or LiveKit matches no trunk
/// (Telnyx's defaults are `E.164-national` and `e164`).
pub const ANI_NUMBER_FORMAT: &str = "+E.164";
pub const DNIS_NUMBER_FORMAT: &str = "+e164";

/// An FQDN connection (Telnyx's SIP route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FqdnConnection {
    pub id: ConnectionId,
    pub name: String,
    pub active: bool,
    /// `None` when Telnyx answered a value the adapter does not know.
    pub transport: Option<Transport>,
    pub ani_number_format: Option<String>,
    pub dnis_number_format: Option<String>,
    /// The primary, secondary and tertiary FQDNs that are set, in that order.
    pub failover: Vec<FqdnId>,
    pub routing_method: Option<RoutingMethod>,
    /// `outbound.outbound_voice_profile_id`: what outbound calls of the connection may do.
    pub outbound_voice_profile_id: Option<String>,
}

impl FqdnConnection {
    /// Whether inbound calls reach LiveKit with `+` on both numbers.
    pub fn has_trunkline_number_formats(&self) -> bool {
        self.ani_number_format.as_deref() == Some(ANI_NUMBER_FORMAT)
            && self.dnis_number_format.as_deref() == Some(DNIS_NUMBER_FORMAT)
    }
}

/// How to create (or reset) a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConnection {
    /// `connection_name`; trunkline finds its connections again by this name.
    pub name: String,
    pub transport: Transport,
}

/// `dns_record_type` of an FQDN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsRecordType {
    /// The host's A record; the port is used as given.
    A,
    /// The host's SRV records (`_sip._tcp.host`); they give the ports.
    Srv,
}

impl DnsRecordType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "a",
            Self::Srv => "srv",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw.to_ascii_lowercase().as_str() {
            "a" => Some(Self::A),
            "srv" => Some(Self::Srv),
            _ => None,
        }
    }
}

/// An FQDN: one SIP target of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fqdn {
    pub id: FqdnId,
    pub connection_id: ConnectionId,
    pub host: String,
    pub port: u16,
    /// `None` when Telnyx answered a type the adapter does not know.
    pub record_type: Option<DnsRecordType>,
}

/// What an FQDN should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FqdnSpec {
    /// A hostname (not an IP address: Telnyx takes those as IP connections).
    pub host: String,
    pub port: u16,
    pub record_type: DnsRecordType,
}

/// Telnyx's FQDNs carry no priority or weight. Failover order lives on the connection: up
/// to three FQDN ids (`inbound.default_primary/secondary/tertiary_fqdn_id`) and a routing
/// method. This plan is what [`crate::TelnyxClient::set_failover`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverPlan {
    /// Primary, then secondary, then tertiary; at most three.
    pub order: Vec<FqdnId>,
    pub method: RoutingMethod,
}

/// At most three FQDNs can be ordered on a connection.
pub const MAX_FAILOVER: usize = 3;

impl FailoverPlan {
    /// Order SIP targets given as `(fqdn, priority, weight)`, lower priority first (as
    /// Twilio's origination URLs and SRV records mean it), higher weight first within a
    /// priority. All on one priority → `round-robin` (a load split; weights cannot be
    /// expressed, so they are spread evenly); otherwise `sequential` (failover). More than
    /// three targets is a `VALIDATION_FAILED` error: Telnyx has three slots.
    pub fn from_priorities(targets: &[(FqdnId, u16, u16)]) -> Result<Self, ProviderError> {
        if targets.len() > MAX_FAILOVER {
            return Err(invalid(
                "sipTargets",
                "Telnyx orders at most three SIP targets per connection",
            ));
        }
        let mut sorted: Vec<&(FqdnId, u16, u16)> = targets.iter().collect();
        sorted.sort_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)));
        let one_priority = targets.len() > 1 && targets.iter().all(|t| t.1 == targets[0].1);
        Ok(Self {
            order: sorted.into_iter().map(|t| t.0.clone()).collect(),
            method: if one_priority {
                RoutingMethod::RoundRobin
            } else {
                RoutingMethod::Sequential
            },
        })
    }
}

/// Whether the key may do something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    Allowed,
    /// Telnyx answered 403 (10010).
    Forbidden,
}

/// The account's balance, as Telnyx reports it (decimal strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub balance: String,
    pub currency: String,
}

/// What [`crate::TelnyxClient::verify`] found out about a key that Telnyx accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// `GET /phone_numbers`.
    pub numbers_read: Capability,
    /// `GET /balance`: `None` when the key may not read it (403).
    pub balance: Option<Balance>,
    /// How many numbers the account has, when the key may read them.
    pub number_count: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline_core::ErrorCode;

    #[test]
    fn ids_are_digits_only() {
        assert_eq!(
            NumberId::parse("1293384261075731499").unwrap().as_str(),
            "1293384261075731499"
        );
        for bad in [
            "",
            "12a",
            "../balance",
            "1 2",
            "-1",
            "123456789012345678901",
            "PN123",
        ] {
            let e = NumberId::parse(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::ValidationFailed, "{bad}");
            assert!(e.message.starts_with("numberId"), "{e:?}");
        }
        assert!(
            ConnectionId::parse("x")
                .unwrap_err()
                .message
                .starts_with("connectionId")
        );
    }

    fn id(n: u8) -> FqdnId {
        FqdnId::parse(&n.to_string()).unwrap()
    }

    #[test]
    fn failover_plans_order_by_priority_then_weight() {
        let p = FailoverPlan::from_priorities(&[(id(1), 20, 1), (id(2), 10, 5), (id(3), 10, 9)])
            .unwrap();
        assert_eq!(p.order, vec![id(3), id(2), id(1)]);
        assert_eq!(p.method, RoutingMethod::Sequential);
        let p = FailoverPlan::from_priorities(&[(id(1), 10, 1), (id(2), 10, 1)]).unwrap();
        assert_eq!(p.method, RoutingMethod::RoundRobin);
        assert_eq!(p.order, vec![id(1), id(2)], "stable within equal keys");
        let p = FailoverPlan::from_priorities(&[(id(1), 10, 1)]).unwrap();
        assert_eq!(p.method, RoutingMethod::Sequential);
        let e = FailoverPlan::from_priorities(&[
            (id(1), 1, 1),
            (id(2), 2, 1),
            (id(3), 3, 1),
            (id(4), 4, 1),
        ])
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationFailed);
    }
}

/// `fqdn_outbound_authentication` of an FQDN connection.
pub const CREDENTIAL_AUTHENTICATION: &str = "credential-authentication";
/// What `remove_termination` puts back: outbound calls are then only taken from the
/// connection's FQDNs' addresses.
pub const IP_AUTHENTICATION: &str = "ip-authentication";

/// How an FQDN connection authenticates outbound calls
/// (`GET /fqdn_connections/{id}/fqdn_authentication`). The password is never read: Telnyx
/// shows it back masked on newer accounts, and trunkline keeps its own sealed copy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboundAuth {
    /// `fqdn_outbound_authentication` (`credential-authentication`, `ip-authentication`).
    pub method: Option<String>,
    pub user_name: Option<String>,
}

impl OutboundAuth {
    /// Whether outbound calls authenticate with `user_name`'s credentials.
    pub fn is_credentials_of(&self, user_name: &str) -> bool {
        self.method.as_deref() == Some(CREDENTIAL_AUTHENTICATION)
            && self.user_name.as_deref() == Some(user_name)
    }
}

/// An outbound voice profile: where outbound calls of its connections may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceProfile {
    /// Telnyx's numeric id, as text.
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// `whitelisted_destinations`: ISO 3166-1 alpha-2 codes, sorted.
    pub destinations: Vec<String>,
}
