//! Connect's carrier half: read and refuse before any write, then the trunk (under the trunk's
//! lease), its origination URLs, and the number's attachment.

use super::{Desired, HELD_ELSEWHERE, Job, Progress, pending_connection};
use crate::error::{Error, ErrorCode};
use crate::ids::{CarrierNumberId, CustomerId, ProviderKind, RouteId};
use crate::model::{
    CarrierCredentials, ConnectionStatus, LeaseKey, LeaseState, NumberConnection,
    OriginationTarget, StoredRouteTarget, TrunkStrategy,
};
use crate::ports::{
    CarrierNumber, CarrierProvider, CarrierRoute, CarrierRouteTarget, RouteSpec, RouteTargetSpec,
};
use crate::sip::SipTarget;
use crate::usecases::Onboarding;
use crate::usecases::naming::{
    is_customers_trunk, is_ours, origination_friendly_name, trunk_friendly_name,
};
use crate::usecases::steps::{Step, StepAction, StepKind};
use chrono::Utc;
use std::time::Instant;

impl Onboarding {
    /// Read what connect acts on (the number and the trunk it should go on, at once), refuse
    /// what must be refused before anything is written, then store the pending connection.
    pub(super) async fn prepare_connect(
        &self,
        job: &Job<'_>,
        desired: &Desired,
        existing: Option<NumberConnection>,
    ) -> Result<Prepared, Error> {
        let Job {
            carrier,
            creds,
            customer,
            number_id,
            req,
            desired_name,
            ..
        } = *job;
        let stored_trunk = existing.as_ref().and_then(|c| c.route_id.clone());
        let (number, found) = futures::try_join!(
            async { Ok::<_, Error>(carrier.fetch_number(creds, number_id).await?) },
            find_trunk(carrier, creds, desired_name, stored_trunk.as_ref()),
        )?;
        if !number.voice_capable {
            return Err(Error::new(
                ErrorCode::ValidationFailed,
                "this number cannot receive voice calls",
            ));
        }
        // Every side that can refuse is asked before the carrier is touched: a refusal after
        // the number moved would leave it on a trunk whose calls reach nobody.
        self.refuse_numbers_held_elsewhere(customer, existing.as_ref(), &number.e164)
            .await?;

        // Whose trunk is the number on? Ours (by stored id, or by the names we give this
        // customer's trunks) may be moved; anybody else's is a conflict unless forced.
        let mut moved_from: Option<RouteId> = None;
        let mut on_our_trunk = false;
        if let Some(current) = &number.route_id {
            if found.as_ref().map(|f| &f.trunk.id) == Some(current) {
                on_our_trunk = true;
            } else {
                on_our_trunk = stored_trunk.as_ref() == Some(current) || {
                    let current_trunk = carrier.fetch_route(creds, current).await?;
                    let name = current_trunk.as_ref().and_then(|t| t.name.as_deref());
                    is_customers_trunk(name, customer, number_id)
                };
                if !on_our_trunk && !req.force {
                    return Err(Error::new(
                        ErrorCode::NumberInUse,
                        format!(
                            "{HELD_ELSEWHERE}: it is on a trunk this connection did not create; \
                             pass force=true to move it"
                        ),
                    ));
                }
                moved_from = Some(current.clone());
            }
        }

        let now = Utc::now();
        let (mut conn, was_disconnected) = pending_connection(job, existing, &number, desired, now);
        let mut steps = Vec::new();
        // Attaching overrides the number's own voice configuration: remember it first, unless
        // the number already sits on one of our trunks (then what we hold is the original).
        if (conn.previous_routing.is_none() || was_disconnected) && !on_our_trunk {
            conn.previous_routing = Some(number.routing.clone());
            steps.push(
                Step::new(StepKind::VoiceConfig, StepAction::Created, None).detail("recorded"),
            );
        } else if conn.previous_routing.is_some() {
            steps.push(
                Step::new(StepKind::VoiceConfig, StepAction::Reused, None)
                    .detail("the configuration recorded before trunkline attached the number"),
            );
        } else {
            steps.push(
                Step::new(StepKind::VoiceConfig, StepAction::Skipped, None)
                    .detail("the number was already on trunkline's trunk; nothing to record"),
            );
        }
        conn.updated_at = now;
        self.ports.connections.save_connection(&conn).await?;
        Ok(Prepared {
            number,
            found,
            moved_from,
            conn,
            steps,
            was_disconnected,
        })
    }

    /// The trunk the number goes on, with origination URLs matching `targets`.
    ///
    /// Most connects to a shared trunk find it as it must be and change nothing on it. Such a
    /// connect takes no lease: it records the trunk on its connection (from then on, the guard
    /// of anyone changing the trunk counts this number), then checks that nobody held the
    /// trunk's lease since before it read the trunk (`peek_lease` then and now, the same
    /// state). A holder at work meanwhile means the read may be stale: wait, read again.
    /// Otherwise any holder that came later saw this number, and one that came earlier had
    /// finished before the read. Without this, the numbers of a bulk connect to one trunk
    /// queued one by one behind its lease (331 s for 1,000 numbers, docs/benchmarks.md).
    ///
    /// A connect that must change the trunk (create it, reconcile its URLs) does so under the
    /// lease, reading the shared trunk again under it unless it took the lease in the state it
    /// peeked before the first read (nobody held it since: that read stands): two such
    /// connects never both create a URL. A dedicated trunk is only ever changed under its
    /// number's lease, which the caller holds, so what was read stays true.
    pub(super) async fn trunk_in_place(
        &self,
        job: &Job<'_>,
        read: TrunkRead<'_>,
        targets: &[OriginationTarget],
        progress: &Progress<'_>,
    ) -> Result<(RouteId, Vec<Step>), Error> {
        let TrunkRead {
            key,
            mut found,
            mut seen,
            deadline,
            reread,
        } = read;
        let started = Instant::now();
        let stored = progress.conn.lock().await.route_id.clone();
        loop {
            if let Some(f) = found.take_if(|f| urls_in_place(&f.urls, targets)) {
                let result = self.trunk_and_urls(job, Some(f), targets, progress).await?;
                if self.ports.leases.peek_lease(key).await? == seen {
                    return Ok(result);
                }
            } else if let Some((lease, read_stands)) =
                self.try_acquire_lease_since(key, seen).await?
            {
                let work = async {
                    let found = if reread && !read_stands {
                        find_trunk(job.carrier, job.creds, job.desired_name, stored.as_ref())
                            .await?
                    } else {
                        found
                    };
                    self.trunk_and_urls(job, found, targets, progress).await
                };
                let result = self.holding(&lease, work).await;
                self.release_lease(&lease).await;
                return result;
            }
            // Somebody changed the trunk, or is changing it: read again once they are done.
            if Instant::now() >= deadline {
                return Err(crate::usecases::lease_conflict(
                    self.settings.lease_ttl,
                    started.elapsed(),
                ));
            }
            seen = self.wait_for_free_lease(key, deadline).await?;
            found = find_trunk(job.carrier, job.creds, job.desired_name, stored.as_ref()).await?;
        }
    }

    /// The trunk found (or a new one), then its origination URLs. Changes the trunk only
    /// under its lease (`trunk_in_place`).
    pub(super) async fn trunk_and_urls(
        &self,
        job: &Job<'_>,
        found: Option<FoundTrunk>,
        targets: &[OriginationTarget],
        progress: &Progress<'_>,
    ) -> Result<(RouteId, Vec<Step>), Error> {
        let Job {
            carrier,
            creds,
            customer,
            provider,
            desired_name,
            ..
        } = *job;
        let (trunk, live, step) = match found {
            Some(FoundTrunk { trunk, urls }) => {
                let step = Step::new(
                    StepKind::Trunk,
                    StepAction::Reused,
                    Some(trunk.id.to_string()),
                );
                (trunk, urls, step)
            }
            None => create_trunk(carrier, creds, desired_name).await?,
        };
        progress
            .update(|c| {
                c.route_created = is_ours(trunk.name.as_deref());
                c.route_id = Some(trunk.id.clone());
            })
            .await?;
        let mut steps = vec![step];
        if !job.req.force {
            self.guard_shared_trunk_targets(
                customer, provider, &trunk.id, &live, targets, progress,
            )
            .await?;
        }
        steps.extend(
            self.ensure_origination_urls(carrier, creds, &trunk.id, targets, live, progress)
                .await?,
        );
        Ok((trunk.id, steps))
    }

    /// Origination URLs belong to the trunk, not to a number: on a trunk other live numbers
    /// share, different targets would silently re-point their calls too. Refuse unless forced.
    pub(super) async fn guard_shared_trunk_targets(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        trunk: &RouteId,
        live: &[CarrierRouteTarget],
        targets: &[OriginationTarget],
        progress: &Progress<'_>,
    ) -> Result<(), Error> {
        let ours: Vec<_> = live.iter().filter(|u| is_ours(u.name.as_deref())).collect();
        let same = ours.len() == targets.len()
            && targets.iter().all(|t| {
                ours.iter().any(|u| {
                    u.enabled
                        && u.priority == t.priority()
                        && u.weight == t.weight()
                        && SipTarget::parse(&u.sip_url).is_ok_and(|p| &p == t.sip_url())
                })
            });
        if same || ours.is_empty() {
            return Ok(());
        }
        let this = progress.conn.lock().await.id;
        let others = self
            .ports
            .connections
            .list_connections(customer, provider)
            .await?
            .into_iter()
            .filter(|c| {
                c.id != this
                    && c.route_id.as_ref() == Some(trunk)
                    && c.status != ConnectionStatus::Disconnected
            })
            .count();
        if others == 0 {
            return Ok(());
        }
        Err(Error::new(
            ErrorCode::Conflict,
            format!(
                "trunk {trunk} is shared with {others} other connected number(s) whose calls go \
                 to different SIP targets; these targets would re-point them too. Connect with \
                 the same targets, use trunkStrategy \"dedicated\", or pass force=true to \
                 re-point every number on the trunk"
            ),
        ))
    }

    /// Make the trunk's origination URLs match the targets: reuse equal ones, update ones
    /// whose priority/weight/enabled differ, create missing ones, delete stale ones trunkline
    /// created. URLs someone else created are left alone (status reports them as drift).
    pub(super) async fn ensure_origination_urls(
        &self,
        carrier: &dyn CarrierProvider,
        creds: &CarrierCredentials,
        trunk: &RouteId,
        targets: &[OriginationTarget],
        live: Vec<CarrierRouteTarget>,
        progress: &Progress<'_>,
    ) -> Result<Vec<Step>, Error> {
        let mut steps = Vec::new();
        let mut kept = Vec::new();
        for target in targets {
            let spec = RouteTargetSpec {
                target: target.clone(),
                enabled: true,
                name: origination_friendly_name(target.priority(), target.weight()),
            };
            let same_url = live.iter().find(|u| {
                SipTarget::parse(&u.sip_url).is_ok_and(|parsed| &parsed == target.sip_url())
            });
            let (sid, action) = match same_url {
                Some(u)
                    if u.priority == target.priority()
                        && u.weight == target.weight()
                        && u.enabled =>
                {
                    (u.id.clone(), StepAction::Reused)
                }
                Some(u) => {
                    let updated = carrier
                        .update_route_target(creds, trunk, &u.id, &spec)
                        .await?;
                    (updated.id, StepAction::Updated)
                }
                None => {
                    let created = carrier.create_route_target(creds, trunk, &spec).await?;
                    (created.id, StepAction::Created)
                }
            };
            let stored = StoredRouteTarget {
                id: sid.clone(),
                target: target.clone(),
            };
            progress
                .update(|c| {
                    c.route_targets.retain(|o| {
                        o.id != stored.id && o.target.sip_url() != stored.target.sip_url()
                    });
                    c.route_targets.push(stored);
                })
                .await?;
            steps.push(
                Step::new(StepKind::OriginationUrl, action, Some(sid.to_string()))
                    .detail(target.sip_url().to_string()),
            );
            kept.push(sid);
        }
        for stale in live
            .iter()
            .filter(|u| !kept.contains(&u.id) && is_ours(u.name.as_deref()))
        {
            carrier.delete_route_target(creds, trunk, &stale.id).await?;
            steps.push(
                Step::new(
                    StepKind::OriginationUrl,
                    StepAction::Deleted,
                    Some(stale.id.to_string()),
                )
                .detail(stale.sip_url.clone()),
            );
        }
        progress
            .update(|c| c.route_targets.retain(|o| kept.contains(&o.id)))
            .await?;
        Ok(steps)
    }
}

/// What `trunk_in_place` starts from: the trunk as read, and the trunk lease's state from
/// before that read.
pub(super) struct TrunkRead<'a> {
    pub(super) key: &'a LeaseKey,
    pub(super) found: Option<FoundTrunk>,
    pub(super) seen: Option<LeaseState>,
    pub(super) deadline: Instant,
    /// Read the trunk again under its lease: it is shared, so others change it too.
    pub(super) reread: bool,
}

/// Whether the trunk's URLs are the targets already, so that `trunk_and_urls` changes
/// nothing and its guard refuses nothing: each target's URL (the one
/// `ensure_origination_urls` picks) is trunkline's, enabled, with the target's priority and
/// weight, and trunkline has no other URL there.
pub(super) fn urls_in_place(live: &[CarrierRouteTarget], targets: &[OriginationTarget]) -> bool {
    let ours = live.iter().filter(|u| is_ours(u.name.as_deref())).count();
    ours == targets.len()
        && targets.iter().all(|t| {
            live.iter()
                .find(|u| SipTarget::parse(&u.sip_url).is_ok_and(|p| &p == t.sip_url()))
                .is_some_and(|u| {
                    is_ours(u.name.as_deref())
                        && u.enabled
                        && u.priority == t.priority()
                        && u.weight == t.weight()
                })
        })
}

/// A trunk connect found before writing anything, with its origination URLs.
pub(super) struct FoundTrunk {
    pub(super) trunk: CarrierRoute,
    pub(super) urls: Vec<CarrierRouteTarget>,
}

/// What connect read and checked before its first write to a carrier.
pub(super) struct Prepared {
    pub(super) number: CarrierNumber,
    /// The trunk the number should go on, when it exists already.
    pub(super) found: Option<FoundTrunk>,
    /// Our trunk (or, forced, someone else's) the number leaves.
    pub(super) moved_from: Option<RouteId>,
    pub(super) conn: NumberConnection,
    pub(super) steps: Vec<Step>,
    pub(super) was_disconnected: bool,
}

/// The trunk the number should go on, if it exists: the stored one while it keeps the desired
/// name, else one found by name. Its origination URLs are read in the same round trip as the
/// stored trunk, since a reconnect needs both.
pub(super) async fn find_trunk(
    carrier: &dyn CarrierProvider,
    creds: &CarrierCredentials,
    desired_name: &str,
    stored: Option<&RouteId>,
) -> Result<Option<FoundTrunk>, Error> {
    if let Some(sid) = stored {
        let (trunk, urls) = futures::join!(
            carrier.fetch_route(creds, sid),
            carrier.list_route_targets(creds, sid)
        );
        // The URLs only count if the trunk is still there (a deleted one lists as not found).
        if let Some(trunk) = trunk?
            && trunk.name.as_deref() == Some(desired_name)
        {
            return Ok(Some(FoundTrunk { trunk, urls: urls? }));
        }
    }
    let Some(trunk) = find_one(carrier, creds, desired_name).await? else {
        return Ok(None);
    };
    let urls = carrier.list_route_targets(creds, &trunk.id).await?;
    Ok(Some(FoundTrunk { trunk, urls }))
}

/// Create the trunk (the caller holds its lease and found none). A trunk created just now has
/// no origination URLs, so none are listed.
pub(super) async fn create_trunk(
    carrier: &dyn CarrierProvider,
    creds: &CarrierCredentials,
    desired_name: &str,
) -> Result<(CarrierRoute, Vec<CarrierRouteTarget>, Step), Error> {
    let spec = RouteSpec {
        name: desired_name.to_owned(),
    };
    let trunk = match carrier.create_route(creds, &spec).await {
        Ok(t) => t,
        // A create is never retried blindly: the request may have succeeded with its answer
        // lost, so look again before giving up.
        Err(e) if e.is_transient() => match find_one(carrier, creds, desired_name).await {
            Ok(Some(t)) => {
                let urls = carrier.list_route_targets(creds, &t.id).await?;
                let step = Step::new(StepKind::Trunk, StepAction::Created, Some(t.id.to_string()));
                return Ok((t, urls, step));
            }
            _ => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    };
    let step = Step::new(
        StepKind::Trunk,
        StepAction::Created,
        Some(trunk.id.to_string()),
    );
    Ok((trunk, Vec::new(), step))
}

/// Put the number on `trunk`, taking it off `moved_from` first. Last of the carrier steps, so
/// calls only reach the trunk once its origination URLs exist.
pub(super) async fn attach(
    carrier: &dyn CarrierProvider,
    creds: &CarrierCredentials,
    number: &CarrierNumber,
    trunk: &RouteId,
    moved_from: Option<RouteId>,
) -> Result<Step, Error> {
    if number.route_id.as_ref() == Some(trunk) {
        return Ok(Step::new(
            StepKind::Attachment,
            StepAction::Reused,
            Some(trunk.to_string()),
        ));
    }
    if let Some(old) = &moved_from {
        carrier.detach_number(creds, old, &number.id).await?;
    }
    carrier.attach_number(creds, trunk, &number.id).await?;
    let action = if moved_from.is_some() {
        StepAction::Moved
    } else {
        StepAction::Created
    };
    let mut step = Step::new(StepKind::Attachment, action, Some(trunk.to_string()));
    if let Some(old) = moved_from {
        step = step.detail(format!("moved from trunk {old}"));
    }
    Ok(step)
}

pub(super) async fn find_one(
    carrier: &dyn CarrierProvider,
    creds: &CarrierCredentials,
    name: &str,
) -> Result<Option<CarrierRoute>, Error> {
    let mut found = carrier.find_routes(creds, name).await?;
    // Deterministic choice if a race ever produced two: every instance picks the same one.
    found.sort_by(|a, b| a.id.cmp(&b.id));
    if found.len() > 1 {
        tracing::warn!(
            count = found.len(),
            "several trunks share trunkline's name; using the first by sid"
        );
    }
    Ok(found.into_iter().next())
}

/// This number's dedicated trunks (`trunkline-dedicated-PN…`) that hold no number: only a
/// trunk named for this very number, and only once the carrier lists no number on it.
pub(in crate::usecases) async fn empty_dedicated_trunks(
    carrier: &dyn CarrierProvider,
    creds: &CarrierCredentials,
    customer: &CustomerId,
    number: &CarrierNumberId,
) -> Result<Vec<RouteId>, crate::ports::ProviderError> {
    let name = trunk_friendly_name(TrunkStrategy::Dedicated, customer, number);
    let mut empty = Vec::new();
    for trunk in carrier.find_routes(creds, &name).await? {
        if carrier
            .list_route_numbers(creds, &trunk.id)
            .await?
            .is_empty()
        {
            empty.push(trunk.id);
        }
    }
    Ok(empty)
}

/// Remove this number's dedicated trunk if no number is on it: emptied by a change to
/// `shared`, or left behind by an earlier one (deleting a trunk removes its origination URLs
/// too). A failure here leaves the number connected; the next connect or disconnect tries
/// again, so it is reported as a skipped step rather than as an error.
pub(in crate::usecases) async fn remove_empty_dedicated(
    carrier: &dyn CarrierProvider,
    creds: &CarrierCredentials,
    customer: &CustomerId,
    number: &CarrierNumberId,
) -> Vec<Step> {
    let removed = async {
        let mut steps = Vec::new();
        for trunk in empty_dedicated_trunks(carrier, creds, customer, number).await? {
            carrier.delete_route(creds, &trunk).await?;
            steps.push(
                Step::new(
                    StepKind::Trunk,
                    StepAction::Deleted,
                    Some(trunk.to_string()),
                )
                .detail("the number's dedicated trunk, left empty"),
            );
        }
        Ok::<_, crate::ports::ProviderError>(steps)
    };
    match removed.await {
        Ok(steps) => steps,
        Err(e) => {
            tracing::warn!(
                error = %e,
                "could not remove an empty dedicated trunk; the next connect or disconnect retries"
            );
            vec![
                Step::new(StepKind::Trunk, StepAction::Skipped, None).detail(
                    "an empty dedicated trunk could not be removed yet; the next connect or \
                     disconnect retries",
                ),
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::ids::{CredentialKeyId, RouteTargetId};
    use crate::usecases::fakes::{FakeCarrier, account};

    fn creds() -> CarrierCredentials {
        CarrierCredentials {
            account_id: Some(account()),
            key_id: Some(CredentialKeyId::parse("SK0123456789abcdef0123456789abcdef").unwrap()),
            secret: SecretString::from("s3cr3t-value"),
        }
    }

    fn route(n: usize) -> RouteId {
        RouteId::parse(&format!("TK{n:032x}")).unwrap()
    }

    fn url(target: &OriginationTarget, name: &str, enabled: bool) -> CarrierRouteTarget {
        CarrierRouteTarget {
            id: RouteTargetId::parse(&format!("OU{:032x}", target.priority())).unwrap(),
            route_id: route(1),
            sip_url: target.sip_url().to_string(),
            priority: target.priority(),
            weight: target.weight(),
            enabled,
            name: Some(name.to_owned()),
        }
    }

    #[test]
    fn urls_are_in_place_only_when_trunkline_set_exactly_the_targets() {
        let a = OriginationTarget::with_defaults(SipTarget::parse("sip:a.example").unwrap());
        let b = OriginationTarget::new(
            SipTarget::parse("sip:b.example").unwrap(),
            20,
            OriginationTarget::DEFAULT_WEIGHT,
        )
        .unwrap();
        let ours =
            |t: &OriginationTarget| url(t, &origination_friendly_name(t.priority(), 1), true);
        assert!(urls_in_place(&[ours(&a)], std::slice::from_ref(&a)));
        // Someone else's URL beside ours changes nothing we own.
        assert!(urls_in_place(
            &[ours(&a), url(&b, "pbx", true)],
            std::slice::from_ref(&a)
        ));
        // A target missing, one of ours too many, one disabled, one someone else's.
        assert!(!urls_in_place(&[ours(&a)], &[a.clone(), b.clone()]));
        assert!(!urls_in_place(
            &[ours(&a), ours(&b)],
            std::slice::from_ref(&a)
        ));
        assert!(!urls_in_place(
            &[url(&a, &origination_friendly_name(a.priority(), 1), false)],
            std::slice::from_ref(&a)
        ));
        assert!(!urls_in_place(
            &[url(&a, "pbx", true)],
            std::slice::from_ref(&a)
        ));
    }

    #[tokio::test]
    async fn a_created_trunk_whose_answer_was_lost_is_found_not_created_twice() {
        let carrier = FakeCarrier::default();
        carrier.state().lose_create_answer = true;
        let (trunk, urls, step) = create_trunk(&carrier, &creds(), "trunkline-shared-x")
            .await
            .unwrap();
        assert_eq!(carrier.state().trunks, std::slice::from_ref(&trunk));
        assert!(urls.is_empty());
        assert_eq!(
            (step.step, step.action),
            (StepKind::Trunk, StepAction::Created)
        );
    }

    #[tokio::test]
    async fn of_two_trunks_with_one_name_every_instance_picks_the_lowest_id() {
        let carrier = FakeCarrier::default();
        for n in [7, 3, 5] {
            carrier.state().trunks.push(CarrierRoute {
                id: route(n),
                name: Some("trunkline-shared-x".to_owned()),
            });
        }
        let found = find_one(&carrier, &creds(), "trunkline-shared-x")
            .await
            .unwrap();
        assert_eq!(found.map(|t| t.id), Some(route(3)));
    }

    #[tokio::test]
    async fn attach_reuses_the_trunk_the_number_is_on_and_moves_it_off_another() {
        let (carrier, numbers) = FakeCarrier::with_numbers(1);
        let number = carrier.state().numbers[0].clone();
        let step = attach(&carrier, &creds(), &number, &route(1), None)
            .await
            .unwrap();
        assert_eq!(
            (step.step, step.action),
            (StepKind::Attachment, StepAction::Created)
        );
        let on_1 = CarrierNumber {
            route_id: Some(route(1)),
            ..number
        };
        let step = attach(&carrier, &creds(), &on_1, &route(1), None)
            .await
            .unwrap();
        assert_eq!(step.action, StepAction::Reused);
        let step = attach(&carrier, &creds(), &on_1, &route(2), Some(route(1)))
            .await
            .unwrap();
        assert_eq!(step.action, StepAction::Moved);
        assert_eq!(
            step.detail.as_deref(),
            Some(format!("moved from trunk {}", route(1)).as_str())
        );
        let s = carrier.state();
        assert_eq!(s.calls.get("detach_number"), Some(&1));
        assert_eq!(s.calls.get("attach_number"), Some(&2));
        assert_eq!(s.numbers[0].id, numbers[0]);
    }
}
