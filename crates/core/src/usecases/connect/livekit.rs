//! Connect's LiveKit half: the connection's inbound trunk and dispatch rule.

use super::{HELD_ELSEWHERE, Progress};
use crate::error::{Error, ErrorCode};
use crate::ids::{ConnectionId, SipTrunkId};
use crate::ports::{CarrierNumber, DispatchRuleSpec, InboundTrunkSpec, SipDigestAuth};
use crate::usecases::Onboarding;
use crate::usecases::steps::{Step, StepAction, StepKind};

impl Onboarding {
    /// The LiveKit inbound trunk and dispatch rule. For a `fresh` connection (made by this
    /// call) nothing of it can exist at LiveKit yet, so both are created without looking first.
    pub(in crate::usecases) async fn livekit_half(
        &self,
        number: &CarrierNumber,
        fresh: bool,
        routing_changed: bool,
        auth: Option<SipDigestAuth>,
        progress: &Progress<'_>,
    ) -> Result<Vec<Step>, Error> {
        // Only a race with another holder gets this far (connect checks LiveKit first); the
        // adapter's message names the holder's trunk, which is not this customer's to see.
        self.livekit_steps(number, fresh, routing_changed, auth, progress)
            .await
            .map_err(|e| {
                if e.code == ErrorCode::NumberInUse {
                    Error::new(
                        ErrorCode::NumberInUse,
                        format!("{HELD_ELSEWHERE} (LiveKit)"),
                    )
                } else {
                    e
                }
            })
    }

    pub(in crate::usecases) async fn livekit_steps(
        &self,
        number: &CarrierNumber,
        fresh: bool,
        routing_changed: bool,
        auth: Option<SipDigestAuth>,
        progress: &Progress<'_>,
    ) -> Result<Vec<Step>, Error> {
        let Some(sip) = &self.ports.sip else {
            return Ok(vec![
                Step::new(StepKind::LivekitTrunk, StepAction::Skipped, None)
                    .detail("LiveKit is not configured on this server"),
            ]);
        };
        let (connection_id, old_trunk, old_rule, routing) = {
            let c = progress.conn.lock().await;
            (
                c.id,
                c.livekit_trunk_id.clone(),
                c.livekit_rule_id.clone(),
                c.routing.clone(),
            )
        };
        let trunk_spec = InboundTrunkSpec {
            connection_id,
            name: livekit_name(connection_id),
            number: number.e164.clone(),
            attributes: routing.attributes().clone(),
            auth,
        };
        let rule_spec = |trunk_id: &SipTrunkId| DispatchRuleSpec {
            connection_id,
            name: livekit_name(connection_id),
            trunk_id: trunk_id.clone(),
            room_prefix: self.settings.room_prefix.clone(),
            routing: routing.clone(),
        };
        let store_trunk = |id: SipTrunkId| progress.update(|c| c.livekit_trunk_id = Some(id));
        let rule = match (&old_trunk, fresh) {
            (_, true) => {
                let trunk = sip.create_inbound_trunk(&trunk_spec).await?;
                store_trunk(trunk.id.clone()).await?;
                let rule = sip.create_dispatch_rule(&rule_spec(&trunk.id)).await?;
                (trunk, rule)
            }
            // Both stored (a reconnect): read, and repair if needed, both at once. The rule is
            // checked against the stored trunk; a trunk that had to be recreated gets the
            // rule pointed at it afterwards.
            (Some(stored), false) => {
                let stored_rule = rule_spec(stored);
                let (trunk, rule) = futures::join!(
                    sip.ensure_inbound_trunk(&trunk_spec, Some(stored.clone())),
                    sip.ensure_dispatch_rule(&stored_rule, old_rule.clone()),
                );
                let trunk = trunk?;
                store_trunk(trunk.id.clone()).await?;
                let rule = if &trunk.id == stored {
                    rule?
                } else {
                    let existing = rule.ok().map(|r| r.id).or_else(|| old_rule.clone());
                    sip.ensure_dispatch_rule(&rule_spec(&trunk.id), existing)
                        .await?
                };
                (trunk, rule)
            }
            (None, false) => {
                let trunk = sip.ensure_inbound_trunk(&trunk_spec, None).await?;
                store_trunk(trunk.id.clone()).await?;
                let rule = sip
                    .ensure_dispatch_rule(&rule_spec(&trunk.id), old_rule.clone())
                    .await?;
                (trunk, rule)
            }
        };
        let (trunk, rule) = rule;
        progress
            .update(|c| c.livekit_rule_id = Some(rule.id.clone()))
            .await?;
        Ok(vec![
            Step::new(
                StepKind::LivekitTrunk,
                reuse_or_create(old_trunk.as_ref(), &trunk.id),
                Some(trunk.id.to_string()),
            ),
            match reuse_or_create(old_rule.as_ref(), &rule.id) {
                StepAction::Reused if routing_changed => Step::new(
                    StepKind::LivekitRule,
                    StepAction::Updated,
                    Some(rule.id.to_string()),
                )
                .detail("routing changed"),
                action => Step::new(StepKind::LivekitRule, action, Some(rule.id.to_string())),
            },
        ])
    }
}

/// The name of a connection's LiveKit trunk and rule: how connect knows its own.
pub(super) fn livekit_name(connection: ConnectionId) -> String {
    format!("trunkline {connection}")
}

pub(super) fn reuse_or_create<T: PartialEq>(old: Option<&T>, new: &T) -> StepAction {
    if old == Some(new) {
        StepAction::Reused
    } else {
        StepAction::Created
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use futures::lock::Mutex;

    use super::*;
    use crate::model::{NumberConnection, NumberRouting};
    use crate::ports::ConnectionStore as _;
    use crate::usecases::OnboardingSettings;
    use crate::usecases::fakes::MemoryStore;
    use crate::usecases::fakes::calls::{FakeSip, sample_connection};

    const NUMBER: &str = "+14155550100";

    fn onboarding(sip: Option<&FakeSip>, store: &MemoryStore) -> Onboarding {
        let sip = sip.map(|s| Arc::new(s.clone()) as Arc<dyn crate::ports::SipPlatform>);
        Onboarding::new(
            store.onboarding_ports(HashMap::new(), sip),
            OnboardingSettings::default(),
        )
    }

    fn number(conn: &NumberConnection) -> CarrierNumber {
        CarrierNumber {
            id: conn.number_id.clone(),
            e164: conn.e164.clone(),
            friendly_name: None,
            voice_capable: true,
            route_id: None,
            routing: NumberRouting(serde_json::json!({})),
        }
    }

    /// The LiveKit half run once on `conn`; the steps and the connection as it stored it.
    async fn run(
        sip: Option<&FakeSip>,
        conn: NumberConnection,
        fresh: bool,
        routing_changed: bool,
    ) -> (Vec<Step>, NumberConnection) {
        let store = MemoryStore::default();
        store.save_connection(&conn).await.unwrap();
        let onboarding = onboarding(sip, &store);
        let progress = Progress {
            onboarding: &onboarding,
            conn: Mutex::new(conn.clone()),
        };
        let steps = onboarding
            .livekit_half(&number(&conn), fresh, routing_changed, None, &progress)
            .await
            .unwrap();
        let stored = store.get_connection_by_id(conn.id).await.unwrap().unwrap();
        (steps, stored)
    }

    fn kinds(steps: &[Step]) -> Vec<(StepKind, StepAction)> {
        steps.iter().map(|s| (s.step, s.action)).collect()
    }

    #[tokio::test]
    async fn a_fresh_connection_gets_a_trunk_and_a_rule_stored_at_once() {
        let sip = FakeSip::default();
        let (steps, stored) = run(Some(&sip), sample_connection(NUMBER), true, false).await;
        assert_eq!(
            kinds(&steps),
            [
                (StepKind::LivekitTrunk, StepAction::Created),
                (StepKind::LivekitRule, StepAction::Created)
            ]
        );
        let s = sip.state();
        assert_eq!(s.inbound_trunks.len(), 1);
        assert_eq!(s.inbound_trunks[0].numbers, [NUMBER]);
        assert_eq!(s.inbound_trunks[0].name, livekit_name(stored.id));
        assert_eq!(
            stored.livekit_trunk_id,
            Some(s.inbound_trunks[0].id.clone())
        );
        assert_eq!(s.rules.len(), 1);
        assert_eq!(s.rules[0].trunk_ids, [s.inbound_trunks[0].id.to_string()]);
        assert_eq!(s.rules[0].agent_names, ["support-agent"]);
        assert_eq!(stored.livekit_rule_id, Some(s.rules[0].id.clone()));
    }

    #[tokio::test]
    async fn a_reconnect_reuses_both_and_reports_a_routing_change_on_the_rule() {
        let sip = FakeSip::default();
        let (_, first) = run(Some(&sip), sample_connection(NUMBER), true, false).await;
        let (steps, again) = run(Some(&sip), first.clone(), false, false).await;
        assert_eq!(
            kinds(&steps),
            [
                (StepKind::LivekitTrunk, StepAction::Reused),
                (StepKind::LivekitRule, StepAction::Reused)
            ]
        );
        assert_eq!(
            (&again.livekit_trunk_id, &again.livekit_rule_id),
            (&first.livekit_trunk_id, &first.livekit_rule_id)
        );
        let (steps, _) = run(Some(&sip), first, false, true).await;
        assert_eq!(steps[1].action, StepAction::Updated);
        assert_eq!(steps[1].detail.as_deref(), Some("routing changed"));
        assert_eq!(sip.state().inbound_trunks.len(), 1);
        assert_eq!(sip.state().rules.len(), 1);
    }

    #[tokio::test]
    async fn a_trunk_deleted_at_livekit_is_recreated_and_the_rule_pointed_at_it() {
        let sip = FakeSip::default();
        let (_, first) = run(Some(&sip), sample_connection(NUMBER), true, false).await;
        sip.state().inbound_trunks.clear();
        let (steps, again) = run(Some(&sip), first.clone(), false, false).await;
        assert_eq!(
            kinds(&steps),
            [
                (StepKind::LivekitTrunk, StepAction::Created),
                (StepKind::LivekitRule, StepAction::Reused)
            ]
        );
        let s = sip.state();
        assert_ne!(again.livekit_trunk_id, first.livekit_trunk_id);
        assert_eq!(again.livekit_trunk_id, Some(s.inbound_trunks[0].id.clone()));
        assert_eq!(s.rules.len(), 1);
        assert_eq!(s.rules[0].trunk_ids, [s.inbound_trunks[0].id.to_string()]);
    }

    #[tokio::test]
    async fn without_livekit_the_half_is_one_skipped_step_and_stores_nothing() {
        let (steps, stored) = run(None, sample_connection(NUMBER), true, false).await;
        assert_eq!(
            kinds(&steps),
            [(StepKind::LivekitTrunk, StepAction::Skipped)]
        );
        assert_eq!(stored.livekit_trunk_id, None);
        assert_eq!(stored.livekit_rule_id, None);
    }

    #[test]
    fn a_step_is_reused_only_for_the_same_id() {
        assert_eq!(reuse_or_create(Some(&1), &1), StepAction::Reused);
        assert_eq!(reuse_or_create(Some(&1), &2), StepAction::Created);
        assert_eq!(reuse_or_create(None, &1), StepAction::Created);
    }
}
