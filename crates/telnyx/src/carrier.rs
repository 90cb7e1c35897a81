//! [`CarrierProvider`] for Telnyx, on top of [`TelnyxClient`]: a route is an FQDN connection,
//! a route target is an FQDN, a number's routing record is its previous `connection_id`.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use async_trait::async_trait;
use serde_json::{Value, json};
use trunkline_core::model::{CarrierCredentials, NumberRouting, OriginationTarget};
use trunkline_core::ports::{
    Capabilities, Capability, CarrierNumber, CarrierProvider, CarrierRoute, CarrierRouteTarget,
    CredentialForm, CredentialInput, IdFormat, NumberPage, NumberQuery, ProviderError, RouteSpec,
    RouteTargetSpec, Termination, TerminationSpec, TerminationState, VerifyReport,
};
use trunkline_core::sip::SipTransport;
use trunkline_core::usecases::TRUNKLINE_NAME_PREFIX;
use trunkline_core::{
    CarrierNumberId, ErrorCode, ProviderKind, RouteId, RouteTargetId, SipTarget, ValidationError,
};

use crate::api::TelnyxClient;
use crate::config::{TelnyxConfig, TelnyxConfigError};
use crate::credentials::{self, bearer};
use crate::model::{
    self, ConnectionId, DnsRecordType, FailoverPlan, Fqdn, FqdnConnection, FqdnId, FqdnSpec,
    MAX_FAILOVER, NewConnection, NumberId, RoutingMethod, TelnyxNumber, Transport,
};

/// The port an FQDN gets when the SIP target names none, and the one left out when a target
/// is rebuilt (so `sip:host` round-trips).
pub const DEFAULT_SIP_PORT: u16 = 5060;

/// The field of the routing record: the connection the number was on before trunkline.
const ROUTING_FIELD: &str = "connectionId";

/// The Telnyx carrier adapter. Cheap to clone; one instance serves every customer.
#[derive(Debug, Clone)]
pub struct TelnyxCarrier {
    client: TelnyxClient,
}

impl TelnyxCarrier {
    pub fn new(config: TelnyxConfig) -> Result<Self, TelnyxConfigError> {
        Ok(Self::from_client(TelnyxClient::new(config)?))
    }

    pub fn from_client(client: TelnyxClient) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &TelnyxClient {
        &self.client
    }

    /// The connection, or `NOT_FOUND`.
    async fn connection(
        &self,
        creds: &CarrierCredentials,
        id: &ConnectionId,
    ) -> Result<FqdnConnection, ProviderError> {
        self.client
            .get_connection(bearer(creds)?, id)
            .await?
            .ok_or_else(|| {
                ProviderError::new(ErrorCode::NotFound, "no such FQDN connection at Telnyx")
            })
    }

    /// Write the failover plan of `entries` (`(fqdn, priority, weight)`), unless the
    /// connection already has it.
    async fn apply_failover(
        &self,
        creds: &CarrierCredentials,
        conn: FqdnConnection,
        entries: &[(FqdnId, u16, u16)],
    ) -> Result<FqdnConnection, ProviderError> {
        let plan = FailoverPlan::from_priorities(entries).map_err(|_| too_many_targets())?;
        let method = conn.routing_method.unwrap_or_default();
        if conn.failover == plan.order && (plan.order.len() < 2 || method == plan.method) {
            return Ok(conn);
        }
        self.client
            .set_failover(bearer(creds)?, &conn.id, &plan)
            .await
    }
}

fn too_many_targets() -> ProviderError {
    ProviderError::new(
        ErrorCode::InvalidSipTarget,
        format!(
            "a Telnyx FQDN connection orders at most {MAX_FAILOVER} SIP targets (primary, \
             secondary, tertiary); give at most {MAX_FAILOVER}"
        ),
    )
}

fn invalid_target(why: &str) -> ProviderError {
    ProviderError::new(ErrorCode::InvalidSipTarget, format!("sipTarget: {why}"))
}

/// A value trunkline made itself that the core's id type refused: cannot happen for digits.
fn own_id<T>(r: Result<T, ValidationError>) -> Result<T, ProviderError> {
    r.map_err(|e| ProviderError::new(ErrorCode::Internal, e.to_string()))
}

fn route_id(c: &ConnectionId) -> Result<RouteId, ProviderError> {
    own_id(RouteId::parse(c.as_str()))
}

/// A route id that is not a Telnyx id names no connection: `None`, and callers decide what
/// absence means for them.
pub(crate) fn connection_id(route: &RouteId) -> Option<ConnectionId> {
    let id = ConnectionId::parse(route.as_str()).ok();
    if id.is_none() {
        tracing::warn!("a route id of another format reached the Telnyx adapter");
    }
    id
}

fn fqdn_id(target: &RouteTargetId) -> Option<FqdnId> {
    let id = FqdnId::parse(target.as_str()).ok();
    if id.is_none() {
        tracing::warn!("a route target id of another format reached the Telnyx adapter");
    }
    id
}

pub(crate) fn no_route() -> ProviderError {
    ProviderError::new(ErrorCode::NotFound, "no such FQDN connection at Telnyx")
}

fn no_target() -> ProviderError {
    ProviderError::new(
        ErrorCode::NotFound,
        "no such FQDN on this connection at Telnyx",
    )
}

/// A number id from the core (which only holds what [`TelnyxCarrier::parse_number_id`]
/// made): `VALIDATION_FAILED` naming `numberId` otherwise.
fn number_id(id: &CarrierNumberId) -> Result<NumberId, ProviderError> {
    NumberId::parse(id.as_str())
}

fn routing_of(connection: Option<&ConnectionId>) -> NumberRouting {
    NumberRouting(json!({ ROUTING_FIELD: connection.map(ConnectionId::as_str) }))
}

/// The connection a routing record names: `Ok(None)` for "on no connection".
fn parse_routing(routing: &NumberRouting) -> Result<Option<ConnectionId>, ProviderError> {
    let foreign = || {
        tracing::warn!("a routing record another adapter wrote reached the Telnyx adapter");
        ProviderError::new(
            ErrorCode::ValidationFailed,
            "previousRouting: not a Telnyx routing record",
        )
    };
    let Value::Object(record) = &routing.0 else {
        return Err(foreign());
    };
    if record.len() != 1 {
        return Err(foreign());
    }
    match record.get(ROUTING_FIELD) {
        Some(Value::Null) => Ok(None),
        Some(Value::String(id)) => ConnectionId::parse(id).map(Some).map_err(|_| foreign()),
        _ => Err(foreign()),
    }
}

fn carrier_number(n: TelnyxNumber) -> Result<CarrierNumber, ProviderError> {
    Ok(CarrierNumber {
        id: own_id(CarrierNumberId::parse(n.id.as_str()))?,
        e164: n.phone_number,
        friendly_name: None,
        // Telnyx numbers sold for voice all take a connection; there is no per-number flag.
        voice_capable: true,
        route_id: n.connection_id.as_ref().map(route_id).transpose()?,
        routing: routing_of(n.connection_id.as_ref()),
    })
}

fn carrier_route(c: &FqdnConnection) -> Result<CarrierRoute, ProviderError> {
    Ok(CarrierRoute {
        id: route_id(&c.id)?,
        name: Some(c.name.clone()).filter(|n| !n.is_empty()),
    })
}

/// What an FQDN's failover slot means as a priority: all the same on a round-robin
/// connection, else 10, 20, 30 for primary, secondary, tertiary (so the usual targets, one
/// priority or 10/20/30, read back as they were given). FQDNs in no slot come after.
fn priority(conn: &FqdnConnection, slot: usize) -> u16 {
    slot_priority(conn.failover.len(), conn.routing_method, slot)
}

fn slot_priority(slots: usize, method: Option<RoutingMethod>, slot: usize) -> u16 {
    if slots > 1 && method == Some(RoutingMethod::RoundRobin) && slot < slots {
        return OriginationTarget::DEFAULT_PRIORITY;
    }
    u16::try_from(slot + 1)
        .ok()
        .and_then(|s| s.checked_mul(OriginationTarget::DEFAULT_PRIORITY))
        .unwrap_or(u16::MAX)
}

/// The FQDNs as the port's targets, each with its priority from the connection's failover
/// order; an FQDN in no slot receives no calls, so it reads as disabled. An FQDN is named
/// after its connection when trunkline made that connection, and has no name otherwise.
fn targets(
    conn: &FqdnConnection,
    fqdns: &[Fqdn],
) -> Result<Vec<CarrierRouteTarget>, ProviderError> {
    // FQDNs have no name. Those on a connection trunkline made are trunkline's, as the
    // origination URLs it names are on Twilio: the core then replaces stale ones and guards
    // a shared connection's targets exactly as it does there.
    let owner = conn
        .name
        .starts_with(TRUNKLINE_NAME_PREFIX)
        .then(|| conn.name.clone());
    let mut unslotted = conn.failover.len();
    fqdns
        .iter()
        .map(|f| {
            let slot = conn.failover.iter().position(|s| *s == f.id);
            let order = slot.unwrap_or_else(|| {
                unslotted += 1;
                unslotted - 1
            });
            Ok(CarrierRouteTarget {
                id: own_id(RouteTargetId::parse(f.id.as_str()))?,
                route_id: route_id(&conn.id)?,
                sip_url: sip_url(f, conn.transport),
                priority: priority(conn, order),
                // Telnyx has no weights: the port's default, as the trait asks.
                weight: OriginationTarget::DEFAULT_WEIGHT,
                enabled: slot.is_some(),
                name: owner.clone(),
            })
        })
        .collect()
}

/// The `sip:` URI of an FQDN, written as [`SipTarget`] displays the target trunkline made
/// it from, so the core's comparison finds it: the connection's TCP is left implicit and so
/// is port 5060. Anything trunkline would not have made (another transport, an SRV record,
/// an unknown value) is written so that it does not parse as a `SipTarget`, or parses as a
/// different one, and shows as drift.
fn sip_url(f: &Fqdn, transport: Option<Transport>) -> String {
    let mut url = format!("sip:{}", f.host.to_ascii_lowercase());
    match f.record_type {
        Some(DnsRecordType::A) if f.port != DEFAULT_SIP_PORT => {
            // Writing to a String cannot fail.
            let _ = write!(url, ":{}", f.port);
        }
        Some(DnsRecordType::A) => {}
        Some(DnsRecordType::Srv) => url.push_str(";dns=srv"),
        None => url.push_str(";dns=unknown"),
    }
    match transport {
        Some(Transport::Tcp) => {}
        Some(Transport::Udp) => url.push_str(";transport=udp"),
        Some(Transport::Tls) => url.push_str(";transport=tls"),
        None => url.push_str(";transport=unknown"),
    }
    url
}

/// The FQDN for a SIP target: its host and port (5060 when none), an A record. Only targets
/// that read back equal are accepted: the transport belongs to the connection (TCP), so a
/// `;transport=` is refused, and so is an explicit `:5060` (it would read back as `sip:host`).
/// SRV records are never created: a `sip:` URI without a port would mean an SRV lookup in
/// RFC 3263, but LiveKit's ingress is reached through its A record on 5060.
fn fqdn_spec(target: &SipTarget) -> Result<FqdnSpec, ProviderError> {
    match target.transport() {
        None => {}
        Some(SipTransport::Tcp) => {
            return Err(invalid_target(
                "Telnyx sets the transport on the FQDN connection (trunkline's use TCP); give \
                 the target without ;transport=",
            ));
        }
        Some(_) => {
            return Err(invalid_target(
                "trunkline's Telnyx FQDN connections use TCP; give the target without \
                 ;transport=",
            ));
        }
    }
    let host = target.host();
    if host.starts_with('[') || host.parse::<Ipv4Addr>().is_ok() {
        return Err(invalid_target(
            "Telnyx FQDN connections need a host name; an IP address needs an IP connection",
        ));
    }
    if target.port() == Some(DEFAULT_SIP_PORT) {
        return Err(invalid_target(
            "5060 is the default port on Telnyx; give the target without it",
        ));
    }
    Ok(FqdnSpec {
        host: host.to_owned(),
        port: target.port().unwrap_or(DEFAULT_SIP_PORT),
        record_type: DnsRecordType::A,
    })
}

/// The client's own checks on an FQDN (a host that is not a full domain name) say the
/// target cannot be expressed: `INVALID_SIP_TARGET`, as the port asks.
fn as_target_error(e: ProviderError) -> ProviderError {
    if e.code == ErrorCode::ValidationFailed {
        ProviderError {
            code: ErrorCode::InvalidSipTarget,
            ..e
        }
    } else {
        e
    }
}

/// The slotted FQDNs other than `except`, with the priorities they would read back with
/// once `except` is out of the order (so that re-placing `except` compares its new priority
/// with the others' as they stand without it).
fn kept_entries(conn: &FqdnConnection, except: Option<&FqdnId>) -> Vec<(FqdnId, u16, u16)> {
    let kept: Vec<&FqdnId> = conn
        .failover
        .iter()
        .filter(|f| Some(*f) != except)
        .collect();
    kept.iter()
        .enumerate()
        .map(|(i, f)| {
            (
                (*f).clone(),
                slot_priority(kept.len(), conn.routing_method, i),
                OriginationTarget::DEFAULT_WEIGHT,
            )
        })
        .collect()
}

fn target_of(conn: &FqdnConnection, fqdn: &Fqdn) -> Result<CarrierRouteTarget, ProviderError> {
    targets(conn, std::slice::from_ref(fqdn))?
        .pop()
        .ok_or_else(no_target)
}

#[async_trait]
impl CarrierProvider for TelnyxCarrier {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Telnyx
    }

    fn credential_form(&self) -> CredentialForm {
        credentials::form()
    }

    fn parse_credentials(
        &self,
        input: &CredentialInput,
    ) -> Result<CarrierCredentials, ValidationError> {
        credentials::parse(input)
    }

    fn number_id_format(&self) -> IdFormat {
        IdFormat {
            pattern: "^[0-9]{1,20}$",
            example: "1293384261075731499",
            description: "A Telnyx phone number id (digits).",
        }
    }

    fn parse_number_id(&self, raw: &str) -> Result<CarrierNumberId, ValidationError> {
        let id = NumberId::parse(raw).map_err(|_| {
            ValidationError::new("must be a Telnyx phone number id (digits)").field("numberId")
        })?;
        CarrierNumberId::parse(id.as_str()).map_err(|e| e.field("numberId"))
    }

    /// `GET /balance` and `GET /phone_numbers?page[size]=1`. Every key Telnyx accepts may
    /// manage FQDN connections (API v2 keys are not scoped per product), so trunking is
    /// available once the key authenticates.
    async fn verify(&self, creds: &CarrierCredentials) -> Result<VerifyReport, ProviderError> {
        let v = self.client.verify(bearer(creds)?).await?;
        let numbers = match v.numbers_read {
            model::Capability::Allowed => Capability::Available,
            model::Capability::Forbidden => Capability::Forbidden,
        };
        tracing::info!(numbers = ?numbers, "telnyx credentials verified");
        Ok(VerifyReport {
            account_id: None,
            friendly_name: None,
            capabilities: Capabilities {
                numbers,
                trunking: Capability::Available,
            },
        })
    }

    /// Pages of at most 250 (Telnyx's limit): a larger `page_size` fetches 250, which the
    /// port allows; the cursor carries on from there.
    async fn list_numbers(
        &self,
        creds: &CarrierCredentials,
        query: &NumberQuery,
    ) -> Result<NumberPage, ProviderError> {
        if !(1..=NumberQuery::MAX_PAGE_SIZE).contains(&query.page_size) {
            return Err(ProviderError::new(
                ErrorCode::ValidationFailed,
                format!("pageSize: must be 1 to {}", NumberQuery::MAX_PAGE_SIZE),
            ));
        }
        let page = self
            .client
            .list_numbers(
                bearer(creds)?,
                &model::NumberQuery {
                    page_size: query.page_size.min(TelnyxConfig::MAX_PAGE_SIZE),
                    phone_number: query.e164.clone(),
                    cursor: query.cursor.clone(),
                },
            )
            .await?;
        Ok(NumberPage {
            items: page
                .numbers
                .into_iter()
                .map(carrier_number)
                .collect::<Result<_, _>>()?,
            next_cursor: page.next_cursor,
        })
    }

    async fn fetch_number(
        &self,
        creds: &CarrierCredentials,
        number: &CarrierNumberId,
    ) -> Result<CarrierNumber, ProviderError> {
        let id = number_id(number)?;
        carrier_number(self.client.get_number(bearer(creds)?, &id).await?)
    }

    async fn find_routes(
        &self,
        creds: &CarrierCredentials,
        name: &str,
    ) -> Result<Vec<CarrierRoute>, ProviderError> {
        self.client
            .find_connections_by_name(bearer(creds)?, name)
            .await?
            .iter()
            .map(carrier_route)
            .collect()
    }

    async fn fetch_route(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
    ) -> Result<Option<CarrierRoute>, ProviderError> {
        let Some(id) = connection_id(route) else {
            return Ok(None);
        };
        self.client
            .get_connection(bearer(creds)?, &id)
            .await?
            .as_ref()
            .map(carrier_route)
            .transpose()
    }

    /// An FQDN connection with TCP and `+E.164` / `+e164` number formats.
    async fn create_route(
        &self,
        creds: &CarrierCredentials,
        spec: &RouteSpec,
    ) -> Result<CarrierRoute, ProviderError> {
        let created = self
            .client
            .create_connection(
                bearer(creds)?,
                &NewConnection {
                    name: spec.name.clone(),
                    transport: Transport::Tcp,
                },
            )
            .await?;
        tracing::info!(connection = %created.id, "telnyx FQDN connection created");
        carrier_route(&created)
    }

    async fn delete_route(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
    ) -> Result<(), ProviderError> {
        let Some(id) = connection_id(route) else {
            return Ok(());
        };
        self.client.delete_connection(bearer(creds)?, &id).await
    }

    async fn list_route_targets(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
    ) -> Result<Vec<CarrierRouteTarget>, ProviderError> {
        let id = connection_id(route).ok_or_else(no_route)?;
        let conn = self.connection(creds, &id).await?;
        let fqdns = self.client.list_fqdns(bearer(creds)?, &id).await?;
        targets(&conn, &fqdns)
    }

    /// An FQDN (A record, the target's port or 5060), then the connection's failover order
    /// rewritten from every enabled target's priority. Checked before anything is created:
    /// the target must be expressible and fit in Telnyx's three failover slots. A failure
    /// after the create leaves the FQDN outside the order, where the next connect finds it
    /// (disabled) and updates it.
    async fn create_route_target(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        spec: &RouteTargetSpec,
    ) -> Result<CarrierRouteTarget, ProviderError> {
        let fqdn = fqdn_spec(spec.target.sip_url())?;
        let id = connection_id(route).ok_or_else(no_route)?;
        let conn = self.connection(creds, &id).await?;
        let mut entries = kept_entries(&conn, None);
        if spec.enabled && entries.len() >= MAX_FAILOVER {
            return Err(too_many_targets());
        }
        let key = bearer(creds)?;
        let created = self
            .client
            .create_fqdn(key, &id, &fqdn)
            .await
            .map_err(as_target_error)?;
        tracing::info!(connection = %id, fqdn = %created.id, "telnyx FQDN created");
        if spec.enabled {
            entries.push((
                created.id.clone(),
                spec.target.priority(),
                spec.target.weight(),
            ));
        }
        let conn = self.apply_failover(creds, conn, &entries).await?;
        target_of(&conn, &created)
    }

    /// The FQDN's host and port when they differ, then the failover order with this
    /// target at its new priority (or out of it, when disabled).
    async fn update_route_target(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        target: &RouteTargetId,
        spec: &RouteTargetSpec,
    ) -> Result<CarrierRouteTarget, ProviderError> {
        let fqdn = fqdn_spec(spec.target.sip_url())?;
        let id = connection_id(route).ok_or_else(no_route)?;
        let target = fqdn_id(target).ok_or_else(no_target)?;
        let conn = self.connection(creds, &id).await?;
        let key = bearer(creds)?;
        let live = self
            .client
            .list_fqdns(key, &id)
            .await?
            .into_iter()
            .find(|f| f.id == target)
            .ok_or_else(no_target)?;
        let mut entries = kept_entries(&conn, Some(&target));
        if spec.enabled {
            entries.push((target.clone(), spec.target.priority(), spec.target.weight()));
        }
        if entries.len() > MAX_FAILOVER {
            return Err(too_many_targets());
        }
        let same = live.host.eq_ignore_ascii_case(&fqdn.host)
            && live.port == fqdn.port
            && live.record_type == Some(fqdn.record_type);
        let live = if same {
            live
        } else {
            self.client
                .update_fqdn(key, &target, &fqdn)
                .await
                .map_err(as_target_error)?
        };
        let conn = self.apply_failover(creds, conn, &entries).await?;
        target_of(&conn, &live)
    }

    /// Out of the failover order first (Telnyx would keep pointing a slot at it), then the
    /// FQDN itself.
    async fn delete_route_target(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        target: &RouteTargetId,
    ) -> Result<(), ProviderError> {
        let (Some(id), Some(target)) = (connection_id(route), fqdn_id(target)) else {
            return Ok(());
        };
        let key = bearer(creds)?;
        let Some(conn) = self.client.get_connection(key, &id).await? else {
            return Ok(());
        };
        if conn.failover.contains(&target) {
            let entries = kept_entries(&conn, Some(&target));
            self.apply_failover(creds, conn, &entries).await?;
        }
        self.client.delete_fqdn(key, &target).await
    }

    async fn list_route_numbers(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
    ) -> Result<Vec<CarrierNumberId>, ProviderError> {
        let Some(id) = connection_id(route) else {
            return Ok(Vec::new());
        };
        self.client
            .list_connection_numbers(bearer(creds)?, &id)
            .await?
            .iter()
            .map(|n| own_id(CarrierNumberId::parse(n.id.as_str())))
            .collect()
    }

    /// Telnyx moves a number silently; the core has read it and decided it may.
    async fn attach_number(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        number: &CarrierNumberId,
    ) -> Result<(), ProviderError> {
        let number = number_id(number)?;
        let id = connection_id(route).ok_or_else(no_route)?;
        let key = bearer(creds)?;
        let live = self.client.get_number(key, &number).await?;
        if live.connection_id.as_ref() == Some(&id) {
            return Ok(());
        }
        self.client
            .set_number_connection(key, &number, Some(&id))
            .await?;
        tracing::info!(number = %number, connection = %id, "number attached");
        Ok(())
    }

    async fn detach_number(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        number: &CarrierNumberId,
    ) -> Result<(), ProviderError> {
        let number = number_id(number)?;
        let Some(id) = connection_id(route) else {
            return Ok(());
        };
        let key = bearer(creds)?;
        let live = self.client.get_number(key, &number).await?;
        if live.connection_id.as_ref() != Some(&id) {
            return Ok(());
        }
        self.client
            .set_number_connection(key, &number, None)
            .await?;
        tracing::info!(number = %number, "number detached");
        Ok(())
    }

    /// Telnyx's documented default: 20 per second per SIP username (see
    /// [`crate::TERMINATION_CALLS_PER_SECOND`]).
    fn termination_calls_per_second(&self) -> u32 {
        crate::outbound::TERMINATION_CALLS_PER_SECOND
    }

    /// Credential authentication on the FQDN connection and an outbound voice profile
    /// (named `spec.name`) assigned to it; LiveKit dials `sip.telnyx.com` with the
    /// `X-Telnyx-Username` header. See `outbound.rs`.
    async fn ensure_termination(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        spec: &TerminationSpec,
    ) -> Result<Termination, ProviderError> {
        self.ensure_termination_impl(creds, route, spec).await
    }

    async fn inspect_termination(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        name: &str,
        username: &str,
    ) -> Result<TerminationState, ProviderError> {
        self.inspect_termination_impl(creds, route, name, username)
            .await
    }

    async fn remove_termination(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        name: &str,
    ) -> Result<(), ProviderError> {
        self.remove_termination_impl(creds, route, name).await
    }

    /// Puts the number back on the connection it was on. Only a number on no connection
    /// (detached, as the core leaves it) is moved: one someone has put on another
    /// connection since is theirs now and left alone. `null` (nothing recorded) and
    /// `{"connectionId": null}` leave it detached.
    async fn restore_routing(
        &self,
        creds: &CarrierCredentials,
        number: &CarrierNumberId,
        routing: &NumberRouting,
    ) -> Result<(), ProviderError> {
        if routing.0.is_null() {
            return Ok(());
        }
        let previous = parse_routing(routing)?;
        let number = number_id(number)?;
        let Some(previous) = previous else {
            return Ok(());
        };
        let key = bearer(creds)?;
        let live = self.client.get_number(key, &number).await?;
        match &live.connection_id {
            Some(now) if *now == previous => return Ok(()),
            Some(_) => {
                tracing::info!(number = %number, "number re-routed since it was detached; left as is");
                return Ok(());
            }
            None => {}
        }
        self.client
            .set_number_connection(key, &number, Some(&previous))
            .await?;
        tracing::info!(number = %number, connection = %previous, "number routing restored");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(failover: &[&str], method: RoutingMethod) -> FqdnConnection {
        FqdnConnection {
            id: ConnectionId::parse("1").unwrap(),
            name: "trunkline-x".into(),
            active: true,
            transport: Some(Transport::Tcp),
            ani_number_format: None,
            dnis_number_format: None,
            failover: failover.iter().map(|f| FqdnId::parse(f).unwrap()).collect(),
            routing_method: Some(method),
            outbound_voice_profile_id: None,
        }
    }

    fn fqdn(id: &str, host: &str, port: u16, record: DnsRecordType) -> Fqdn {
        Fqdn {
            id: FqdnId::parse(id).unwrap(),
            connection_id: ConnectionId::parse("1").unwrap(),
            host: host.into(),
            port,
            record_type: Some(record),
        }
    }

    #[test]
    fn targets_trunkline_makes_read_back_equal() {
        for raw in ["sip:a.example", "sip:a.example:5080", "SIP:A.Example"] {
            let target = SipTarget::parse(raw).unwrap();
            let spec = fqdn_spec(&target).unwrap();
            let f = fqdn("2", &spec.host, spec.port, spec.record_type);
            let back = sip_url(&f, Some(Transport::Tcp));
            assert_eq!(SipTarget::parse(&back).unwrap(), target, "{raw} -> {back}");
        }
        for raw in [
            "sip:a.example;transport=tcp",
            "sip:a.example;transport=udp",
            "sip:a.example:5060",
            "sip:10.0.0.1",
            "sip:[2001:db8::1]",
        ] {
            let e = fqdn_spec(&SipTarget::parse(raw).unwrap()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidSipTarget, "{raw}");
        }
        // What trunkline would not have made does not read back as one of its targets.
        let srv = fqdn("2", "a.example", 5060, DnsRecordType::Srv);
        assert!(SipTarget::parse(&sip_url(&srv, Some(Transport::Tcp))).is_err());
        let udp = fqdn("2", "a.example", 5060, DnsRecordType::A);
        assert_eq!(
            sip_url(&udp, Some(Transport::Udp)),
            "sip:a.example;transport=udp"
        );
    }

    #[test]
    fn failover_slots_read_as_priorities() {
        let fs = [
            fqdn("2", "a.example", 5060, DnsRecordType::A),
            fqdn("3", "b.example", 5060, DnsRecordType::A),
            fqdn("4", "c.example", 5060, DnsRecordType::A),
        ];
        let seq = targets(&conn(&["3", "2"], RoutingMethod::Sequential), &fs).unwrap();
        let got: Vec<_> = seq.iter().map(|t| (t.priority, t.enabled)).collect();
        assert_eq!(got, [(20, true), (10, true), (30, false)]);
        assert!(
            seq.iter()
                .all(|t| t.weight == 10 && t.name.as_deref() == Some("trunkline-x"))
        );
        let mut foreign = conn(&["2"], RoutingMethod::Sequential);
        foreign.name = "Acme PBX".into();
        assert_eq!(targets(&foreign, &fs[..1]).unwrap()[0].name, None);
        let rr = targets(&conn(&["2", "3"], RoutingMethod::RoundRobin), &fs[..2]).unwrap();
        assert!(rr.iter().all(|t| t.priority == 10 && t.enabled));
    }

    #[test]
    fn routing_records_are_telnyx_connections_only() {
        let c = ConnectionId::parse("77").unwrap();
        assert_eq!(parse_routing(&routing_of(Some(&c))).unwrap(), Some(c));
        assert_eq!(parse_routing(&routing_of(None)).unwrap(), None);
        for foreign in [
            json!({"voiceUrl": "https://user:pw@example.com"}),
            json!({"connectionId": "abc"}),
            json!({"connectionId": "1", "voiceUrl": "x"}),
            json!("77"),
        ] {
            let e = parse_routing(&NumberRouting(foreign)).unwrap_err();
            assert_eq!(e.code, ErrorCode::ValidationFailed);
            assert_eq!(e.message, "previousRouting: not a Telnyx routing record");
        }
    }

    #[test]
    fn builds_without_a_process_wide_tls_provider() {
        let c = TelnyxCarrier::new(TelnyxConfig::default()).unwrap();
        assert_eq!(c.kind(), ProviderKind::Telnyx);
        let e = c.parse_number_id("PN123").unwrap_err();
        assert_eq!(
            e.to_string(),
            "numberId: must be a Telnyx phone number id (digits)"
        );
        assert_eq!(c.parse_number_id("123").unwrap().as_str(), "123");
    }

    /// Telnyx has no voice-URL mode: the port's default answers, without any request, and
    /// says what to do instead.
    #[tokio::test]
    async fn voice_url_mode_is_not_supported_with_a_clear_error() {
        let c = TelnyxCarrier::new(TelnyxConfig::default()).unwrap();
        let creds = trunkline_core::model::CarrierCredentials {
            account_id: None,
            key_id: None,
            secret: secrecy::SecretString::from("KEY0123"),
        };
        let number = c.parse_number_id("123").unwrap();
        let e = c
            .set_voice_url(&creds, &number, "https://tl.example.com/v")
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationFailed);
        assert!(
            e.message
                .contains("telnyx numbers cannot be connected by voice URL")
                && e.message.contains("mode \"trunk\""),
            "{}",
            e.message
        );
        assert!(!c.routing_points_at(&NumberRouting::none(), "https://tl.example.com/v"));
        let input = trunkline_core::ports::CredentialInput::default();
        assert!(c.parse_webhook_secret(&input).unwrap().is_none());
    }
}
