//! Disconnect: detach the number, optionally restore its voice configuration, remove what
//! trunkline created for it and nothing else, keep the connection row as history. Idempotent.

use super::Onboarding;
use super::connect::{Progress, remove_empty_dedicated};
use super::steps::{Step, StepAction, StepKind};
use crate::error::{Error, ErrorCode};
use crate::ids::{CarrierNumberId, CustomerId, ProviderKind};
use crate::model::{
    Actor, AuditAction, CarrierCredentials, ConnectionStatus, LeaseKey, NumberConnection,
    TrunkStrategy,
};
use crate::ports::CarrierProvider;
use chrono::Utc;
use futures::lock::Mutex;
use serde_json::json;

#[derive(Debug, Clone, PartialEq)]
pub struct DisconnectOutcome {
    pub connection: NumberConnection,
    pub steps: Vec<Step>,
    /// The connection was already disconnected; nothing was changed.
    pub already_disconnected: bool,
}

impl Onboarding {
    /// Disconnect a number: detach it, optionally restore its previous voice configuration,
    /// delete a dedicated trunk trunkline created once it is empty, remove the LiveKit trunk
    /// and rule, keep the connection row as history. Idempotent.
    pub async fn disconnect(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        provider: ProviderKind,
        number: &CarrierNumberId,
        restore_voice_config: bool,
        request_id: Option<&str>,
    ) -> Result<DisconnectOutcome, Error> {
        let not_connected = || {
            Error::new(
                ErrorCode::NotConnected,
                "this number is not connected by trunkline",
            )
        };
        let Some(existing) = self
            .ports
            .connections
            .get_connection(customer, provider, number)
            .await?
        else {
            return Err(not_connected());
        };
        if existing.status == ConnectionStatus::Disconnected {
            return Ok(DisconnectOutcome {
                connection: existing,
                steps: Vec::new(),
                already_disconnected: true,
            });
        }
        let carrier = self.carrier(provider)?.clone();
        let integration = self.integration(customer, provider).await?;
        let creds = self.credentials_of(&integration).await?;
        let outbound = self
            .disconnect_outbound(&*carrier, &creds, &integration, existing.id)
            .await?;
        let key = LeaseKey::number(customer.clone(), provider, number.clone());
        let mut outcome = self
            .with_lease(
                &key,
                self.disconnect_locked(
                    &*carrier,
                    &creds,
                    customer,
                    provider,
                    number,
                    restore_voice_config,
                ),
            )
            .await?;
        outcome.steps.splice(0..0, outbound);
        if !outcome.already_disconnected {
            self.audit(
                customer,
                provider,
                actor,
                AuditAction::NumberDisconnected,
                json!({
                    "connectionId": outcome.connection.id,
                    "numberId": number,
                    "routeId": outcome.connection.route_id,
                    "restoreVoiceConfig": restore_voice_config,
                    "steps": outcome.steps,
                }),
                request_id,
            )
            .await?;
        }
        Ok(outcome)
    }

    async fn disconnect_locked(
        &self,
        carrier: &dyn CarrierProvider,
        creds: &CarrierCredentials,
        customer: &CustomerId,
        provider: ProviderKind,
        number_id: &CarrierNumberId,
        restore: bool,
    ) -> Result<DisconnectOutcome, Error> {
        // Re-read under the lease: a concurrent disconnect may have finished meanwhile.
        let Some(conn) = self
            .ports
            .connections
            .get_connection(customer, provider, number_id)
            .await?
        else {
            return Err(Error::new(
                ErrorCode::NotConnected,
                "this number is not connected by trunkline",
            ));
        };
        if conn.status == ConnectionStatus::Disconnected {
            return Ok(DisconnectOutcome {
                connection: conn,
                steps: Vec::new(),
                already_disconnected: true,
            });
        }
        let progress = Progress {
            onboarding: self,
            conn: Mutex::new(conn.clone()),
        };
        let route_gone = std::sync::atomic::AtomicBool::new(false);
        let carrier_half = async {
            let mut steps = Vec::new();
            let number = match carrier.fetch_number(creds, number_id).await {
                Ok(n) => Some(n),
                // Released or ported away: nothing left to detach or restore.
                Err(e) if e.code == ErrorCode::NumberNotFound => None,
                Err(e) => return Err(Error::from(e)),
            };
            if let Some(steps) = self
                .disconnect_voice_url(carrier, creds, &conn, number.as_ref())
                .await?
            {
                return Ok(steps);
            }
            if let (Some(n), Some(trunk)) = (&number, &conn.route_id) {
                if n.route_id.as_ref() == Some(trunk) {
                    carrier.detach_number(creds, trunk, number_id).await?;
                    steps.push(Step::new(
                        StepKind::Attachment,
                        StepAction::Deleted,
                        Some(trunk.to_string()),
                    ));
                } else {
                    steps.push(
                        Step::new(
                            StepKind::Attachment,
                            StepAction::Skipped,
                            Some(trunk.to_string()),
                        )
                        .detail("the number was not on trunkline's trunk"),
                    );
                }
            }
            if restore && number.is_some() {
                match &conn.previous_routing {
                    Some(voice) => {
                        carrier.restore_routing(creds, number_id, voice).await?;
                        steps.push(Step::new(StepKind::VoiceConfig, StepAction::Restored, None));
                    }
                    None => steps.push(
                        Step::new(StepKind::VoiceConfig, StepAction::Skipped, None)
                            .detail("no previous voice configuration was recorded"),
                    ),
                }
            }
            if let (TrunkStrategy::Dedicated, true, Some(trunk)) =
                (conn.trunk_strategy, conn.route_created, &conn.route_id)
            {
                if carrier.fetch_route(creds, trunk).await?.is_none() {
                    // Deleted already: by an earlier attempt that died before recording it
                    // (its answer lost), or by hand. The record must not keep naming it.
                    route_gone.store(true, std::sync::atomic::Ordering::SeqCst);
                    steps.push(
                        Step::new(
                            StepKind::Trunk,
                            StepAction::Skipped,
                            Some(trunk.to_string()),
                        )
                        .detail("the trunk was already gone"),
                    );
                } else if carrier.list_route_numbers(creds, trunk).await?.is_empty() {
                    carrier.delete_route(creds, trunk).await?;
                    steps.push(Step::new(
                        StepKind::Trunk,
                        StepAction::Deleted,
                        Some(trunk.to_string()),
                    ));
                } else {
                    steps.push(
                        Step::new(
                            StepKind::Trunk,
                            StepAction::Skipped,
                            Some(trunk.to_string()),
                        )
                        .detail("other numbers are still on the trunk"),
                    );
                }
            }
            if conn.trunk_strategy == TrunkStrategy::Shared && number.is_some() {
                // A dedicated trunk an earlier change to `shared` left behind.
                steps.extend(remove_empty_dedicated(carrier, creds, customer, number_id).await);
            }
            Ok(steps)
        };
        let livekit_half = async {
            let mut steps = Vec::new();
            let Some(sip) = &self.ports.sip else {
                return Ok(steps);
            };
            if let Some(rule) = &conn.livekit_rule_id {
                sip.delete_dispatch_rule(rule).await?;
                progress.update(|c| c.livekit_rule_id = None).await?;
                steps.push(Step::new(
                    StepKind::LivekitRule,
                    StepAction::Deleted,
                    Some(rule.to_string()),
                ));
            }
            if let Some(trunk) = &conn.livekit_trunk_id {
                sip.delete_inbound_trunk(trunk).await?;
                progress.update(|c| c.livekit_trunk_id = None).await?;
                steps.push(Step::new(
                    StepKind::LivekitTrunk,
                    StepAction::Deleted,
                    Some(trunk.to_string()),
                ));
            }
            Ok::<_, Error>(steps)
        };
        let (carrier_result, livekit_result) = futures::join!(carrier_half, livekit_half);
        let mut steps = carrier_result?;
        steps.extend(livekit_result?);
        let stored_trunk = conn.route_id.as_ref().map(ToString::to_string);
        let trunk_deleted = route_gone.load(std::sync::atomic::Ordering::SeqCst)
            || steps.iter().any(|s| {
                s.step == StepKind::Trunk && s.action == StepAction::Deleted && s.id == stored_trunk
            });
        progress
            .update(|c| {
                c.status = ConnectionStatus::Disconnected;
                c.disconnected_at = Some(Utc::now());
                c.last_error = None;
                c.route_targets.clear();
                if trunk_deleted {
                    c.route_id = None;
                    c.route_created = false;
                }
            })
            .await?;
        Ok(DisconnectOutcome {
            connection: progress.snapshot().await,
            steps,
            already_disconnected: false,
        })
    }
}
