//! The typed operations: what a carrier port implementation calls.

use secrecy::SecretString;
use serde_json::{Value, json};
use trunkline_core::ports::ProviderError;
use trunkline_core::{E164, ErrorCode};

use crate::client::{Call, Http};
use crate::config::{TelnyxConfig, TelnyxConfigError};
use crate::cursor::{self, Position};
use crate::error::{Resource, TransportFailure, invalid, transport};
use crate::model::{
    ANI_NUMBER_FORMAT, Balance, Capability, ConnectionId, DNIS_NUMBER_FORMAT, DnsRecordType,
    FailoverPlan, Fqdn, FqdnConnection, FqdnId, FqdnSpec, MAX_FAILOVER, NewConnection, NumberId,
    NumberPage, NumberQuery, RoutingMethod, TelnyxNumber, Transport, Verification,
};
use crate::ops::TelnyxOperation as Op;
use crate::wire;

/// Longest listing read whole (connections, FQDNs): a runaway `total_pages` stops here.
pub(crate) const MAX_PAGES: u64 = 200;

/// The Telnyx adapter. Cheap to clone (one connection pool). Every operation takes the
/// customer's API key; the client keeps none.
#[derive(Debug, Clone)]
pub struct TelnyxClient {
    pub(crate) http: Http,
}

pub(crate) fn bad_response(what: &str) -> ProviderError {
    tracing::warn!(what, "Telnyx answered a value trunkline cannot read");
    transport(TransportFailure::BadResponse)
}

fn number(n: wire::Number) -> Result<TelnyxNumber, ProviderError> {
    Ok(TelnyxNumber {
        id: NumberId::parse(&n.id).map_err(|_| bad_response("phone number id"))?,
        phone_number: E164::parse(&n.phone_number)
            .ok()
            .filter(|e| e.as_str() == n.phone_number)
            .ok_or_else(|| bad_response("phone_number"))?,
        connection_id: n
            .connection_id
            .filter(|c| !c.is_empty())
            .map(|c| ConnectionId::parse(&c).map_err(|_| bad_response("connection_id")))
            .transpose()?,
        connection_name: n.connection_name.filter(|c| !c.is_empty()),
        status: n.status.unwrap_or_default(),
        country: n
            .country_iso_alpha2
            .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
            .map(|c| c.to_ascii_uppercase()),
    })
}

pub(crate) fn connection_of(c: wire::Connection) -> Result<FqdnConnection, ProviderError> {
    connection(c)
}

fn connection(c: wire::Connection) -> Result<FqdnConnection, ProviderError> {
    let inbound = c.inbound.unwrap_or_default();
    let failover = [
        inbound.default_primary_fqdn_id,
        inbound.default_secondary_fqdn_id,
        inbound.default_tertiary_fqdn_id,
    ]
    .into_iter()
    .flatten()
    .filter(|f| !f.is_empty())
    .map(|f| FqdnId::parse(&f).map_err(|_| bad_response("fqdn id")))
    .collect::<Result<Vec<_>, _>>()?;
    Ok(FqdnConnection {
        id: ConnectionId::parse(&c.id).map_err(|_| bad_response("connection id"))?,
        name: c.connection_name.unwrap_or_default(),
        active: c.active.unwrap_or(true),
        transport: c.transport_protocol.as_deref().and_then(Transport::parse),
        ani_number_format: inbound.ani_number_format,
        dnis_number_format: inbound.dnis_number_format,
        failover,
        routing_method: inbound
            .default_routing_method
            .as_deref()
            .and_then(RoutingMethod::parse),
        outbound_voice_profile_id: c
            .outbound
            .and_then(|o| o.outbound_voice_profile_id)
            .filter(|p| !p.is_empty()),
    })
}

fn fqdn(f: wire::Fqdn) -> Result<Fqdn, ProviderError> {
    Ok(Fqdn {
        id: FqdnId::parse(&f.id).map_err(|_| bad_response("fqdn id"))?,
        connection_id: ConnectionId::parse(&f.connection_id)
            .map_err(|_| bad_response("fqdn connection_id"))?,
        host: f.fqdn,
        port: f.port.unwrap_or(5060),
        record_type: f.dns_record_type.as_deref().and_then(DnsRecordType::parse),
    })
}

fn check_fqdn_spec(spec: &FqdnSpec) -> Result<(), ProviderError> {
    let host = spec.host.as_str();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.len() > 253 || !host.contains('.') || !host.split('.').all(label_ok) {
        return Err(invalid("host", "must be a fully qualified domain name"));
    }
    if host
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid(
            "host",
            "an IP address needs an IP connection, not an FQDN",
        ));
    }
    if spec.port == 0 {
        return Err(invalid("port", "must be from 1 to 65535"));
    }
    Ok(())
}

impl TelnyxClient {
    pub fn new(config: TelnyxConfig) -> Result<Self, TelnyxConfigError> {
        Ok(Self {
            http: Http::new(config)?,
        })
    }

    pub fn config(&self) -> &TelnyxConfig {
        self.http.config()
    }

    /// Check a key: `GET /balance` and `GET /phone_numbers?page[size]=1`, concurrently.
    /// A key Telnyx refuses is `AUTH_INVALID`; a key it accepts is described by what it may
    /// do (403 on either probe is a missing capability, not an error). Other failures
    /// (rate limit, outage) are errors: nothing is known then.
    pub async fn verify(&self, key: &SecretString) -> Result<Verification, ProviderError> {
        let balance_call = Call::new(Op::GetUserBalance, Resource::Balance, None);
        let numbers_call =
            Call::new(Op::ListPhoneNumbers, Resource::Number, None).query("page[size]", "1");
        let (balance, numbers) = tokio::join!(
            self.http
                .json::<wire::Data<wire::Balance>>(key, &balance_call),
            self.http
                .json::<wire::Page<wire::Number>>(key, &numbers_call),
        );
        let forbidden = |e: &ProviderError| e.code == ErrorCode::InsufficientPermissions;
        // A refused key decides, whichever probe said so.
        for e in [balance.as_ref().err(), numbers.as_ref().err()]
            .into_iter()
            .flatten()
        {
            if e.code == ErrorCode::AuthInvalid {
                return Err(e.clone());
            }
        }
        let balance = match balance {
            Ok(b) => Some(Balance {
                balance: b.data.balance.unwrap_or_default(),
                currency: b.data.currency.unwrap_or_default(),
            }),
            Err(e) if forbidden(&e) => None,
            Err(e) => return Err(e),
        };
        let (numbers_read, number_count) = match numbers {
            Ok(page) => (Capability::Allowed, page.meta.and_then(|m| m.total_results)),
            Err(e) if forbidden(&e) => (Capability::Forbidden, None),
            Err(e) => return Err(e),
        };
        Ok(Verification {
            numbers_read,
            balance,
            number_count,
        })
    }

    /// One page of the account's numbers. Without a cursor: page 1 of `page_size`
    /// (1..=250), optionally only `phone_number`. With a cursor: the page it names, with
    /// the size and filter of the listing it came from. A cursor the adapter did not make
    /// is `VALIDATION_FAILED` (field `cursor`).
    pub async fn list_numbers(
        &self,
        key: &SecretString,
        query: &NumberQuery,
    ) -> Result<NumberPage, ProviderError> {
        let position = if let Some(c) = &query.cursor {
            cursor::decode(c)?
        } else {
            if !(1..=TelnyxConfig::MAX_PAGE_SIZE).contains(&query.page_size) {
                return Err(invalid("pageSize", "must be from 1 to 250"));
            }
            Position {
                page: 1,
                size: query.page_size,
                digits: query
                    .phone_number
                    .as_ref()
                    .map(|p| p.as_str().trim_start_matches('+').to_owned()),
            }
        };
        let mut call = Call::new(Op::ListPhoneNumbers, Resource::Number, None)
            .query("page[number]", position.page.to_string())
            .query("page[size]", position.size.to_string());
        if let Some(d) = &position.digits {
            // Digits only: Telnyx returns nothing for a filter with any other character.
            call = call.query("filter[phone_number]", d.as_str());
        }
        let page: wire::Page<wire::Number> = self.http.json(key, &call).await?;
        let full = page.data.len() as u64 >= u64::from(position.size);
        let meta = page.meta.unwrap_or_default();
        let more = match (meta.page_number, meta.total_pages) {
            (Some(n), Some(total)) => n < total,
            // Without meta, a full page may have a next one; an empty next page ends it.
            _ => full,
        };
        let mut numbers = Vec::with_capacity(page.data.len());
        for n in page.data {
            let n = number(n)?;
            // Telnyx's filter matches digits anywhere; the caller asked for one number.
            if position
                .digits
                .as_ref()
                .is_none_or(|d| n.phone_number.as_str().trim_start_matches('+') == d)
            {
                numbers.push(n);
            }
        }
        let next_cursor = (more && position.page < u32::MAX).then(|| {
            cursor::encode(&Position {
                page: position.page + 1,
                ..position
            })
        });
        Ok(NumberPage {
            numbers,
            next_cursor,
            total: meta.total_results,
        })
    }

    /// One number; `NUMBER_NOT_FOUND` when the account has no such number.
    pub async fn get_number(
        &self,
        key: &SecretString,
        id: &NumberId,
    ) -> Result<TelnyxNumber, ProviderError> {
        let call = Call::new(Op::RetrievePhoneNumber, Resource::Number, Some(id.as_str()));
        let data: wire::Data<wire::Number> = self.http.json(key, &call).await?;
        number(data.data)
    }

    /// Every number on a connection (`filter[connection_id]`, every page).
    pub async fn list_connection_numbers(
        &self,
        key: &SecretString,
        connection_id: &ConnectionId,
    ) -> Result<Vec<TelnyxNumber>, ProviderError> {
        let listed: Vec<wire::Number> = self
            .read_all(key, |page, size| {
                Call::new(Op::ListPhoneNumbers, Resource::Number, None)
                    .query("page[number]", page)
                    .query("page[size]", size)
                    .query("filter[connection_id]", connection_id.as_str())
            })
            .await?;
        let mut out = Vec::new();
        for n in listed {
            let n = number(n)?;
            // Defensive, as for FQDNs: only what was asked for.
            if n.connection_id.as_ref() == Some(connection_id) {
                out.push(n);
            }
        }
        Ok(out)
    }

    /// Put a number on a connection (`Some`) or on none (`None`), with
    /// `PATCH /phone_numbers/{id}`. Telnyx moves the number silently from wherever it was:
    /// read it first ([`Self::get_number`]) to keep the old `connection_id`. Clearing sends
    /// `"connection_id": ""` (the spec types the field as a non-null string).
    pub async fn set_number_connection(
        &self,
        key: &SecretString,
        id: &NumberId,
        connection: Option<&ConnectionId>,
    ) -> Result<TelnyxNumber, ProviderError> {
        let call = Call::new(Op::UpdatePhoneNumber, Resource::Number, Some(id.as_str()))
            .body(json!({"connection_id": connection.map_or("", ConnectionId::as_str)}));
        let data: wire::Data<wire::Number> = self.http.json(key, &call).await?;
        number(data.data)
    }

    /// Every FQDN connection whose `connection_name` is exactly `name`, oldest (lowest id)
    /// first. Names of three characters or more are filtered by Telnyx
    /// (`filter[connection_name][contains]`, case-insensitive) and then compared exactly;
    /// shorter names page through every connection.
    pub async fn find_connections_by_name(
        &self,
        key: &SecretString,
        name: &str,
    ) -> Result<Vec<FqdnConnection>, ProviderError> {
        let filter = (name.chars().count() >= 3).then_some(name);
        let listed: Vec<wire::Connection> = self
            .read_all(key, |page, size| {
                let call = Call::new(Op::ListFqdnConnections, Resource::Connection, None)
                    .query("page[number]", page)
                    .query("page[size]", size);
                match filter {
                    Some(f) => call.query("filter[connection_name][contains]", f),
                    None => call,
                }
            })
            .await?;
        let mut found = Vec::new();
        for c in listed {
            let c = connection(c)?;
            if c.name == name {
                found.push(c);
            }
        }
        found.sort_by_key(|c| (c.id.as_str().len(), c.id.as_str().to_owned()));
        Ok(found)
    }

    /// Create an FQDN connection with trunkline's settings: `inbound.ani_number_format =
    /// "+E.164"`, `inbound.dnis_number_format = "+e164"`, the given transport, active.
    /// Never retried (see the README).
    pub async fn create_connection(
        &self,
        key: &SecretString,
        spec: &NewConnection,
    ) -> Result<FqdnConnection, ProviderError> {
        if spec.name.trim().is_empty() {
            return Err(invalid("connectionName", "must not be blank"));
        }
        let call = Call::new(Op::CreateFqdnConnection, Resource::Connection, None)
            .body(connection_body(spec));
        let data: wire::Data<wire::Connection> = self.http.json(key, &call).await?;
        connection(data.data)
    }

    /// Set a connection back to what [`Self::create_connection`] makes (name, transport,
    /// number formats, active): the repair for drift.
    pub async fn reset_connection(
        &self,
        key: &SecretString,
        id: &ConnectionId,
        spec: &NewConnection,
    ) -> Result<FqdnConnection, ProviderError> {
        let call = Call::new(
            Op::UpdateFqdnConnection,
            Resource::Connection,
            Some(id.as_str()),
        )
        .body(connection_body(spec));
        let data: wire::Data<wire::Connection> = self.http.json(key, &call).await?;
        connection(data.data)
    }

    /// One connection; `None` when it does not exist (deleted behind trunkline's back).
    pub async fn get_connection(
        &self,
        key: &SecretString,
        id: &ConnectionId,
    ) -> Result<Option<FqdnConnection>, ProviderError> {
        let call = Call::new(
            Op::RetrieveFqdnConnection,
            Resource::Connection,
            Some(id.as_str()),
        );
        match self
            .http
            .json_or_failure::<wire::Data<wire::Connection>>(key, &call)
            .await
        {
            Ok(data) => connection(data.data).map(Some),
            Err(f) if f.status() == Some(404) => Ok(None),
            Err(f) => Err(f.into_error(Resource::Connection)),
        }
    }

    /// Delete a connection; one already gone is success. Telnyx refuses while numbers
    /// still use it (`VALIDATION_FAILED`): detach them first.
    pub async fn delete_connection(
        &self,
        key: &SecretString,
        id: &ConnectionId,
    ) -> Result<(), ProviderError> {
        let call = Call::new(
            Op::DeleteFqdnConnection,
            Resource::Connection,
            Some(id.as_str()),
        );
        self.delete(key, &call).await
    }

    /// Write the failover order on a connection: the plan's FQDNs (at most three, all of
    /// this connection) into `inbound.default_primary/secondary/tertiary_fqdn_id`, unused
    /// slots cleared, and the routing method.
    pub async fn set_failover(
        &self,
        key: &SecretString,
        id: &ConnectionId,
        plan: &FailoverPlan,
    ) -> Result<FqdnConnection, ProviderError> {
        if plan.order.len() > MAX_FAILOVER {
            return Err(invalid(
                "sipTargets",
                "Telnyx orders at most three SIP targets per connection",
            ));
        }
        let slot = |i: usize| plan.order.get(i).map_or(Value::Null, |f| json!(f.as_str()));
        let call = Call::new(
            Op::UpdateFqdnConnection,
            Resource::Connection,
            Some(id.as_str()),
        )
        .body(json!({"inbound": {
            "default_primary_fqdn_id": slot(0),
            "default_secondary_fqdn_id": slot(1),
            "default_tertiary_fqdn_id": slot(2),
            "default_routing_method": plan.method.as_str(),
        }}));
        let data: wire::Data<wire::Connection> = self.http.json(key, &call).await?;
        connection(data.data)
    }

    /// Every FQDN of a connection, in Telnyx's order.
    pub async fn list_fqdns(
        &self,
        key: &SecretString,
        connection_id: &ConnectionId,
    ) -> Result<Vec<Fqdn>, ProviderError> {
        let listed: Vec<wire::Fqdn> = self
            .read_all(key, |page, size| {
                Call::new(Op::ListFqdns, Resource::Fqdn, None)
                    .query("page[number]", page)
                    .query("page[size]", size)
                    .query("filter[connection_id]", connection_id.as_str())
            })
            .await?;
        let mut out = Vec::new();
        for f in listed {
            let f = fqdn(f)?;
            // Defensive: only what was asked for, whatever a proxy answered.
            if f.connection_id == *connection_id {
                out.push(f);
            }
        }
        Ok(out)
    }

    /// Add an FQDN (one SIP target) to a connection. Never retried (see the README).
    pub async fn create_fqdn(
        &self,
        key: &SecretString,
        connection_id: &ConnectionId,
        spec: &FqdnSpec,
    ) -> Result<Fqdn, ProviderError> {
        check_fqdn_spec(spec)?;
        let call = Call::new(Op::CreateFqdn, Resource::Fqdn, None).body(json!({
            "connection_id": connection_id.as_str(),
            "fqdn": spec.host,
            "port": spec.port,
            "dns_record_type": spec.record_type.as_str(),
        }));
        let data: wire::Data<wire::Fqdn> = self.http.json(key, &call).await?;
        fqdn(data.data)
    }

    /// Change an FQDN's host, port and record type; `NOT_FOUND` when it is gone.
    pub async fn update_fqdn(
        &self,
        key: &SecretString,
        id: &FqdnId,
        spec: &FqdnSpec,
    ) -> Result<Fqdn, ProviderError> {
        check_fqdn_spec(spec)?;
        let call = Call::new(Op::UpdateFqdn, Resource::Fqdn, Some(id.as_str())).body(json!({
            "fqdn": spec.host,
            "port": spec.port,
            "dns_record_type": spec.record_type.as_str(),
        }));
        let data: wire::Data<wire::Fqdn> = self.http.json(key, &call).await?;
        fqdn(data.data)
    }

    /// Delete an FQDN; one already gone is success.
    pub async fn delete_fqdn(&self, key: &SecretString, id: &FqdnId) -> Result<(), ProviderError> {
        let call = Call::new(Op::DeleteFqdn, Resource::Fqdn, Some(id.as_str()));
        self.delete(key, &call).await
    }

    /// Every item of a listing, page by page (`page[size]` = `list_page_size`), up to
    /// `MAX_PAGES`. `call(page, size)` builds the request for one page.
    pub(crate) async fn read_all<W: serde::de::DeserializeOwned>(
        &self,
        key: &SecretString,
        call: impl Fn(String, String) -> Call<'static>,
    ) -> Result<Vec<W>, ProviderError> {
        let size = self.config().list_page_size;
        let mut out = Vec::new();
        let mut page = 1u64;
        loop {
            let listed: wire::Page<W> = self
                .http
                .json(key, &call(page.to_string(), size.to_string()))
                .await?;
            let count = listed.data.len();
            out.extend(listed.data);
            if !has_next(listed.meta.as_ref(), page, count, size) {
                return Ok(out);
            }
            page += 1;
        }
    }

    pub(crate) async fn delete(
        &self,
        key: &SecretString,
        call: &Call<'_>,
    ) -> Result<(), ProviderError> {
        // Telnyx answers the deleted object; only the status matters.
        match self.http.json_or_failure::<Value>(key, call).await {
            Ok(_) => Ok(()),
            // A retried delete whose first attempt went through meets 404: the goal holds.
            Err(f) if f.status() == Some(404) => Ok(()),
            Err(f) => Err(f.into_error(call.resource)),
        }
    }
}

fn connection_body(spec: &NewConnection) -> Value {
    json!({
        "connection_name": spec.name,
        "active": true,
        "transport_protocol": spec.transport.as_str(),
        "inbound": {
            "ani_number_format": ANI_NUMBER_FORMAT,
            "dnis_number_format": DNIS_NUMBER_FORMAT,
        },
    })
}

/// Whether a listing read whole goes on after `page`.
fn has_next(meta: Option<&wire::Meta>, page: u64, count: usize, size: u32) -> bool {
    if page >= MAX_PAGES {
        tracing::warn!(
            pages = page,
            "stopped reading a Telnyx listing at the page limit"
        );
        return false;
    }
    match meta.and_then(|m| m.total_pages) {
        Some(total) => page < total,
        None => count as u64 >= u64::from(size),
    }
}
