//! Support's read-only views of the whole fleet: customers, the carrier routes trunkline
//! manages, and the LiveKit objects it manages plus its orphans. Who may read them (the
//! support role) is decided at the edge.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::fleet::Fleet;
use super::naming::is_ours;
use crate::error::{Error, ErrorCode};
use crate::ids::{ConnectionId, CustomerId, IntegrationId, ProviderKind, RouteId};
use crate::model::{ConnectionCheck, ConnectionStatus, IntegrationStatus, NumberConnection};

/// One customer's integration at one carrier, with its numbers' health.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationView {
    pub provider: ProviderKind,
    /// `None`: the credentials were deleted but connections remain.
    pub integration_id: Option<IntegrationId>,
    pub status: Option<IntegrationStatus>,
    pub auto_repair: bool,
    pub connected: u64,
    /// Live connections whose last check found drift.
    pub drifted: u64,
    /// Live connections never checked by the reconciler.
    pub unchecked: u64,
    /// Connections whose last connect did not finish (`pending`, `failed`).
    pub incomplete: u64,
    pub oldest_check: Option<DateTime<Utc>>,
}

impl IntegrationView {
    /// `ok`, `drifted`, `incomplete`, `credentials_missing` or `unchecked`: the worst first.
    pub fn health(&self) -> &'static str {
        if self.integration_id.is_none() {
            "credentials_missing"
        } else if self.drifted > 0 {
            "drifted"
        } else if self.incomplete > 0 {
            "incomplete"
        } else if self.unchecked > 0 {
            "unchecked"
        } else {
            "ok"
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomerView {
    pub customer_id: CustomerId,
    pub integrations: Vec<IntegrationView>,
}

/// One number on a carrier route.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteNumber {
    pub connection: NumberConnection,
    pub check: Option<ConnectionCheck>,
}

/// A carrier route (Twilio trunk, Telnyx connection) trunkline attached numbers to.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteView {
    pub provider: ProviderKind,
    pub route_id: RouteId,
    /// trunkline created it (and may delete it when its last number leaves).
    pub created: bool,
    pub numbers: Vec<RouteNumber>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRoutes {
    pub customer_id: CustomerId,
    pub routes: Vec<RouteView>,
}

/// A page of a fleet view. `next_cursor` is `None` on the last page.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminPage<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Which connection owns a LiveKit object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveKitOwner {
    pub connection_id: ConnectionId,
    pub customer_id: CustomerId,
    pub provider: ProviderKind,
    pub status: ConnectionStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LiveKitKind {
    InboundTrunk,
    DispatchRule,
    OutboundTrunk,
}

impl LiveKitKind {
    pub const ALL: [LiveKitKind; 3] = [Self::InboundTrunk, Self::DispatchRule, Self::OutboundTrunk];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InboundTrunk => "inbound_trunk",
            Self::DispatchRule => "dispatch_rule",
            Self::OutboundTrunk => "outbound_trunk",
        }
    }
}

/// A trunkline-named LiveKit object: owned by a connection, or an orphan (`owner: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveKitObject {
    pub kind: LiveKitKind,
    pub id: String,
    pub name: String,
    /// Inbound trunk: the numbers it accepts. Outbound trunk: the numbers it may call from.
    /// Dispatch rule: empty.
    pub numbers: Vec<String>,
    /// Dispatch rule: the trunks it applies to. Inbound trunk: empty.
    pub trunk_ids: Vec<String>,
    pub owner: Option<LiveKitOwner>,
}

const MAX_PAGE: u32 = 200;

fn clamp(limit: u32) -> u32 {
    limit.clamp(1, MAX_PAGE)
}

fn bad_cursor() -> Error {
    Error::from(crate::ValidationError::new("not a cursor this listing produced").field("cursor"))
}

impl Fleet {
    /// One page of customers (ids after `cursor`).
    async fn customer_page(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<CustomerId>, Option<String>), Error> {
        let after = cursor
            .map(|c| CustomerId::parse(c).map_err(|_| bad_cursor()))
            .transpose()?;
        let limit = clamp(limit);
        let mut ids = self.ports.store.list_customers(after, limit + 1).await?;
        let next = (ids.len() > limit as usize).then(|| {
            ids.truncate(limit as usize);
            ids.last().map(|c| c.as_str().to_owned())
        });
        Ok((ids, next.flatten()))
    }

    fn providers(&self) -> Vec<ProviderKind> {
        let mut p: Vec<ProviderKind> = self.onboarding.ports.carriers.keys().copied().collect();
        p.sort_by_key(|k| k.as_str());
        p
    }

    async fn checks_of(
        &self,
        conns: &[NumberConnection],
    ) -> Result<HashMap<ConnectionId, ConnectionCheck>, Error> {
        let ids: Vec<ConnectionId> = conns.iter().map(|c| c.id).collect();
        Ok(self
            .ports
            .store
            .get_checks(&ids)
            .await?
            .into_iter()
            .map(|c| (c.connection_id, c))
            .collect())
    }

    /// Customers with their integrations, connected-number counts and health.
    pub async fn admin_customers(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<AdminPage<CustomerView>, Error> {
        let (ids, next_cursor) = self.customer_page(cursor, limit).await?;
        let mut items = Vec::with_capacity(ids.len());
        for customer in ids {
            let mut integrations = Vec::new();
            for provider in self.providers() {
                let integration = self
                    .onboarding
                    .ports
                    .integrations
                    .get_integration(&customer, provider)
                    .await?;
                let conns = self
                    .onboarding
                    .ports
                    .connections
                    .list_connections(&customer, provider)
                    .await?;
                if integration.is_none() && conns.is_empty() {
                    continue;
                }
                let checks = self.checks_of(&conns).await?;
                let mut view = IntegrationView {
                    provider,
                    integration_id: integration.as_ref().map(|i| i.id),
                    status: integration.as_ref().map(|i| i.status),
                    auto_repair: self
                        .integration_settings(&customer, provider)
                        .await?
                        .auto_repair,
                    connected: 0,
                    drifted: 0,
                    unchecked: 0,
                    incomplete: 0,
                    oldest_check: None,
                };
                for c in conns
                    .iter()
                    .filter(|c| c.status != ConnectionStatus::Disconnected)
                {
                    match c.status {
                        ConnectionStatus::Connected => view.connected += 1,
                        _ => view.incomplete += 1,
                    }
                    match checks.get(&c.id) {
                        None => view.unchecked += 1,
                        Some(k) => {
                            view.drifted += u64::from(!k.drifts.is_empty());
                            view.oldest_check = Some(
                                view.oldest_check
                                    .map_or(k.checked_at, |o| o.min(k.checked_at)),
                            );
                        }
                    }
                }
                integrations.push(view);
            }
            items.push(CustomerView {
                customer_id: customer,
                integrations,
            });
        }
        Ok(AdminPage { items, next_cursor })
    }

    /// The carrier routes trunkline attached numbers to, per customer (live connections).
    pub async fn admin_routes(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<AdminPage<CustomerRoutes>, Error> {
        let (ids, next_cursor) = self.customer_page(cursor, limit).await?;
        let mut items = Vec::with_capacity(ids.len());
        for customer in ids {
            let mut routes: Vec<RouteView> = Vec::new();
            for provider in self.providers() {
                let conns: Vec<NumberConnection> = self
                    .onboarding
                    .ports
                    .connections
                    .list_connections(&customer, provider)
                    .await?
                    .into_iter()
                    .filter(|c| c.status != ConnectionStatus::Disconnected)
                    .collect();
                let mut checks = self.checks_of(&conns).await?;
                let mut by_route: BTreeMap<String, RouteView> = BTreeMap::new();
                for c in conns {
                    let Some(route) = c.route_id.clone() else {
                        continue;
                    };
                    let view = by_route
                        .entry(route.as_str().to_owned())
                        .or_insert_with(|| RouteView {
                            provider,
                            route_id: route,
                            created: false,
                            numbers: Vec::new(),
                        });
                    view.created |= c.route_created;
                    let check = checks.remove(&c.id);
                    view.numbers.push(RouteNumber {
                        connection: c,
                        check,
                    });
                }
                routes.extend(by_route.into_values());
            }
            items.push(CustomerRoutes {
                customer_id: customer,
                routes,
            });
        }
        Ok(AdminPage { items, next_cursor })
    }

    /// The trunkline-named LiveKit inbound trunks, dispatch rules and outbound trunks, each
    /// with the connection that owns it, or none (an orphan: a connect or disconnect that did
    /// not finish, or a row removed behind trunkline's back). An outbound trunk belongs to a
    /// carrier route; its owner is the route's first connection (lowest id). Paged by
    /// `(kind, id)`.
    pub async fn admin_livekit(
        &self,
        cursor: Option<&str>,
        limit: u32,
        orphans_only: bool,
    ) -> Result<AdminPage<LiveKitObject>, Error> {
        let Some(sip) = self.onboarding.ports.sip.clone() else {
            return Err(Error::new(
                ErrorCode::NotConfigured,
                "LiveKit is not configured on this trunkline",
            ));
        };
        let (trunks, rules, outbound) = futures::join!(
            sip.list_inbound_trunks(),
            sip.list_dispatch_rules(),
            sip.list_outbound_trunks()
        );
        let (trunks, rules) = (trunks?, rules?);
        let outbound = match outbound {
            Ok(t) => t,
            // An adapter without the outbound half has no outbound trunks to show.
            Err(e) if e.code == ErrorCode::NotConfigured => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut trunk_owner: HashMap<String, LiveKitOwner> = HashMap::new();
        let mut rule_owner: HashMap<String, LiveKitOwner> = HashMap::new();
        // Every carrier route of a live connection, with its first connection as the owner.
        let mut routes: BTreeMap<(CustomerId, ProviderKind, RouteId), LiveKitOwner> =
            BTreeMap::new();
        let mut after = None;
        loop {
            let page = self.ports.store.list_all_connections(after, 500).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let full = page.len() == 500;
            for c in page {
                let owner = LiveKitOwner {
                    connection_id: c.id,
                    customer_id: c.customer_id.clone(),
                    provider: c.provider,
                    status: c.status,
                };
                if let Some(t) = &c.livekit_trunk_id {
                    trunk_owner.insert(t.as_str().to_owned(), owner.clone());
                }
                if let Some(route) = &c.route_id {
                    routes
                        .entry((c.customer_id.clone(), c.provider, route.clone()))
                        .or_insert_with(|| owner.clone());
                }
                if let Some(r) = &c.livekit_rule_id {
                    rule_owner.insert(r.as_str().to_owned(), owner);
                }
            }
            if !full {
                break;
            }
        }
        let mut outbound_owner: HashMap<String, LiveKitOwner> = HashMap::new();
        if let Some(store) = &self.onboarding.ports.outbound {
            for ((customer, provider, route), owner) in routes {
                let held = store
                    .get_outbound_route(&customer, provider, &route)
                    .await?;
                if let Some(trunk) = held.and_then(|r| r.livekit_trunk_id) {
                    outbound_owner.insert(trunk.as_str().to_owned(), owner);
                }
            }
        }
        let mut all: Vec<LiveKitObject> = trunks
            .into_iter()
            .filter(|t| is_ours(Some(&t.name)))
            .map(|t| LiveKitObject {
                kind: LiveKitKind::InboundTrunk,
                owner: trunk_owner.get(t.id.as_str()).cloned(),
                id: t.id.as_str().to_owned(),
                name: t.name,
                numbers: t.numbers,
                trunk_ids: Vec::new(),
            })
            .chain(
                rules
                    .into_iter()
                    .filter(|r| is_ours(Some(&r.name)))
                    .map(|r| LiveKitObject {
                        kind: LiveKitKind::DispatchRule,
                        owner: rule_owner.get(r.id.as_str()).cloned(),
                        id: r.id.as_str().to_owned(),
                        name: r.name,
                        numbers: Vec::new(),
                        trunk_ids: r.trunk_ids,
                    }),
            )
            .chain(
                outbound
                    .into_iter()
                    .filter(|t| is_ours(Some(&t.name)))
                    .map(|t| LiveKitObject {
                        kind: LiveKitKind::OutboundTrunk,
                        owner: outbound_owner.get(t.id.as_str()).cloned(),
                        id: t.id.as_str().to_owned(),
                        name: t.name,
                        numbers: t.numbers,
                        trunk_ids: Vec::new(),
                    }),
            )
            .filter(|o| !orphans_only || o.owner.is_none())
            .collect();
        all.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        let key = |o: &LiveKitObject| format!("{}:{}", o.kind.as_str(), o.id);
        if let Some(c) = cursor {
            let (kind, id) = parse_cursor(c).ok_or_else(bad_cursor)?;
            all.retain(|o| (o.kind, o.id.as_str()) > (kind, id));
        }
        let limit = clamp(limit) as usize;
        let next_cursor = (all.len() > limit).then(|| key(&all[limit - 1]));
        all.truncate(limit);
        Ok(AdminPage {
            items: all,
            next_cursor,
        })
    }
}

/// `inbound_trunk:<id>`, `dispatch_rule:<id>` or `outbound_trunk:<id>`, as the previous page's last object.
fn parse_cursor(c: &str) -> Option<(LiveKitKind, &str)> {
    let (kind, id) = c.split_once(':')?;
    let kind = LiveKitKind::ALL.into_iter().find(|k| k.as_str() == kind)?;
    Some((kind, id))
}
