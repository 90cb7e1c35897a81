//! The webhook load: which events, in which order, to which instance.
//!
//! A run is `events` distinct LiveKit webhook events, a fixed share of them (20% by default)
//! `participant_joined` of a SIP participant, each for its own call (room) to one of the
//! connected numbers; the rest are events trunkline acknowledges without touching the
//! database (`room_started`, track events, agents joining and leaving). Every event is
//! delivered `copies` times; copy `k` of event `i` goes to instance `(i + k) % instances`
//! (so with several instances the duplicates race on different instances), and the
//! deliveries are shuffled inside small windows so that the copies of one event are close
//! in time and often concurrent.
//!
//! Everything here is deterministic for a seed, so a run can be replayed.

use std::collections::HashMap;

use rand::SeedableRng as _;
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use serde::Serialize;
use trunkline_testkit::livekit::proto;

/// What kind of event, as trunkline sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum EventKind {
    RoomStarted,
    TrackPublished,
    TrackUnpublished,
    AgentJoined,
    AgentLeft,
    /// `participant_joined` of a SIP participant: a call to dispatch the agent to.
    SipJoined,
}

impl EventKind {
    /// The events that need no action, drawn uniformly.
    pub const NO_ACTION: [EventKind; 5] = [
        Self::RoomStarted,
        Self::TrackPublished,
        Self::TrackUnpublished,
        Self::AgentJoined,
        Self::AgentLeft,
    ];

    pub fn needs_action(self) -> bool {
        self == Self::SipJoined
    }

    /// LiveKit's event name.
    pub fn name(self) -> &'static str {
        match self {
            Self::RoomStarted => "room_started",
            Self::TrackPublished => "track_published",
            Self::TrackUnpublished => "track_unpublished",
            Self::AgentJoined | Self::SipJoined => "participant_joined",
            Self::AgentLeft => "participant_left",
        }
    }
}

/// One planned event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEvent {
    pub id: String,
    pub kind: EventKind,
    pub room: String,
    /// SIP calls: the connected number that was called and the caller.
    pub called: Option<String>,
    pub caller: Option<String>,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct MixSpec {
    /// Distinct events.
    pub events: usize,
    /// Percent of them that are SIP `participant_joined` (0..=100).
    pub sip_percent: u32,
    /// Makes ids and rooms unique across runs against one database.
    pub tag: String,
    /// Numbers trunkline has connected (E.164); calls go round them. Must not be empty
    /// when `sip_percent > 0`.
    pub numbers: Vec<String>,
    pub seed: u64,
}

/// How many SIP events `events` at `sip_percent` gives (rounded down).
pub fn sip_count(events: usize, sip_percent: u32) -> usize {
    events.saturating_mul(sip_percent.min(100) as usize) / 100
}

/// The events of a run, in a random order; exactly [`sip_count`] are SIP joins, each with
/// its own room. Without numbers no SIP event is planned.
pub fn plan(spec: &MixSpec) -> Vec<PlannedEvent> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let sip = if spec.numbers.is_empty() {
        0
    } else {
        sip_count(spec.events, spec.sip_percent)
    };
    let mut kinds: Vec<EventKind> = (0..spec.events)
        .map(|i| {
            if i < sip {
                EventKind::SipJoined
            } else {
                EventKind::NO_ACTION[i % EventKind::NO_ACTION.len()]
            }
        })
        .collect();
    kinds.shuffle(&mut rng);
    let mut calls = 0usize;
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let id = format!("EV_{}_{i:07}", spec.tag);
            if kind == EventKind::SipJoined {
                let n = calls;
                calls += 1;
                PlannedEvent {
                    id,
                    kind,
                    room: format!("bench-{}-call-{n:07}", spec.tag),
                    called: Some(spec.numbers[n % spec.numbers.len()].clone()),
                    caller: Some(format!("+1415{:07}", n % 10_000_000)),
                }
            } else {
                PlannedEvent {
                    id,
                    kind,
                    room: format!("bench-{}-room-{:05}", spec.tag, i % 10_000),
                    called: None,
                    caller: None,
                }
            }
        })
        .collect()
}

/// One POST: which event, to which instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub event: usize,
    pub target: usize,
}

/// Every event `copies` times (at least once), copy `k` of event `i` to target
/// `(i + k) % targets`, shuffled inside consecutive windows of `window` deliveries.
pub fn deliveries(
    events: usize,
    copies: usize,
    targets: usize,
    window: usize,
    seed: u64,
) -> Vec<Delivery> {
    let copies = copies.max(1);
    let targets = targets.max(1);
    let mut out: Vec<Delivery> = (0..events)
        .flat_map(|event| {
            (0..copies).map(move |k| Delivery {
                event,
                target: (event + k) % targets,
            })
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_5eed);
    for chunk in out.chunks_mut(window.max(1)) {
        chunk.shuffle(&mut rng);
    }
    out
}

/// The webhook body LiveKit would send for `event` (its protojson), created at `now`
/// (seconds).
pub fn body(event: &PlannedEvent, now: i64) -> serde_json::Value {
    let room = proto::Room {
        sid: format!("RM_{}", event.room),
        name: event.room.clone(),
        empty_timeout: 300,
        departure_timeout: 20,
        creation_time: now,
        creation_time_ms: now * 1000,
        ..proto::Room::default()
    };
    let agent = |state: proto::participant_info::State| proto::ParticipantInfo {
        sid: format!("PA_agent_{}", event.id),
        identity: "agent-bench".to_owned(),
        name: "bench agent".to_owned(),
        state: state as i32,
        kind: proto::participant_info::Kind::Agent as i32,
        joined_at: now,
        joined_at_ms: now * 1000,
        ..proto::ParticipantInfo::default()
    };
    let track = || proto::TrackInfo {
        sid: format!("TR_{}", event.id),
        name: "microphone".to_owned(),
        r#type: proto::TrackType::Audio as i32,
        source: proto::TrackSource::Microphone as i32,
        ..proto::TrackInfo::default()
    };
    let (participant, track) = match event.kind {
        EventKind::RoomStarted => (None, None),
        EventKind::TrackPublished | EventKind::TrackUnpublished => (
            Some(agent(proto::participant_info::State::Active)),
            Some(track()),
        ),
        EventKind::AgentJoined => (Some(agent(proto::participant_info::State::Active)), None),
        EventKind::AgentLeft => (
            Some(agent(proto::participant_info::State::Disconnected)),
            None,
        ),
        EventKind::SipJoined => {
            let caller = event.caller.clone().unwrap_or_default();
            let to_number = event.called.clone().unwrap_or_default();
            let call_id = format!("SCL_{}", event.room);
            let attributes = HashMap::from([
                ("sip.callID".to_owned(), call_id.clone()),
                ("sip.callStatus".to_owned(), "active".to_owned()),
                ("sip.phoneNumber".to_owned(), caller.clone()),
                ("sip.trunkPhoneNumber".to_owned(), to_number),
            ]);
            (
                Some(proto::ParticipantInfo {
                    sid: format!("PA_{call_id}"),
                    identity: format!("sip_{caller}"),
                    name: format!("Phone {caller}"),
                    state: proto::participant_info::State::Active as i32,
                    kind: proto::participant_info::Kind::Sip as i32,
                    attributes,
                    joined_at: now,
                    joined_at_ms: now * 1000,
                    ..proto::ParticipantInfo::default()
                }),
                None,
            )
        }
    };
    let ev = proto::WebhookEvent {
        event: event.kind.name().to_owned(),
        room: Some(room),
        participant,
        track,
        id: event.id.clone(),
        created_at: now,
        ..proto::WebhookEvent::default()
    };
    serde_json::to_value(&ev).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn spec(events: usize) -> MixSpec {
        MixSpec {
            events,
            sip_percent: 20,
            tag: "t1".to_owned(),
            numbers: vec!["+14155550100".to_owned(), "+14155550101".to_owned()],
            seed: 7,
        }
    }

    #[test]
    fn twenty_percent_are_sip_joins_each_for_its_own_call() {
        let events = plan(&spec(1000));
        assert_eq!(events.len(), 1000);
        let sip: Vec<&PlannedEvent> = events.iter().filter(|e| e.kind.needs_action()).collect();
        assert_eq!(sip.len(), 200);
        let rooms: BTreeSet<&str> = sip.iter().map(|e| e.room.as_str()).collect();
        assert_eq!(rooms.len(), 200, "one room per call");
        assert!(sip.iter().all(|e| e.called.is_some() && e.caller.is_some()));
        let ids: BTreeSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), 1000, "event ids are distinct");
        // The no-action kinds are all present, in roughly equal numbers.
        let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
        for e in events.iter().filter(|e| !e.kind.needs_action()) {
            *per_kind.entry(format!("{:?}", e.kind)).or_default() += 1;
        }
        assert_eq!(per_kind.len(), 5, "{per_kind:?}");
        assert!(per_kind.values().all(|n| *n == 160), "{per_kind:?}");
    }

    #[test]
    fn calls_go_round_the_connected_numbers() {
        let events = plan(&spec(100));
        let mut per_number: BTreeMap<&str, usize> = BTreeMap::new();
        for e in events.iter().filter(|e| e.kind.needs_action()) {
            *per_number.entry(e.called.as_deref().unwrap()).or_default() += 1;
        }
        assert_eq!(per_number.values().copied().collect::<Vec<_>>(), [10, 10]);
    }

    #[test]
    fn plans_are_reproducible_and_seeds_matter() {
        assert_eq!(plan(&spec(300)), plan(&spec(300)));
        let mut other = spec(300);
        other.seed = 8;
        assert_ne!(plan(&spec(300)), plan(&other));
    }

    #[test]
    fn no_numbers_means_no_calls_and_percent_is_capped() {
        let mut s = spec(50);
        s.numbers.clear();
        assert!(plan(&s).iter().all(|e| !e.kind.needs_action()));
        assert_eq!(sip_count(50, 250), 50);
        assert_eq!(sip_count(7, 20), 1);
        assert_eq!(sip_count(0, 20), 0);
    }

    #[test]
    fn every_event_is_delivered_exactly_twice_to_different_instances() {
        let d = deliveries(1000, 2, 3, 32, 1);
        assert_eq!(d.len(), 2000);
        let mut per_event: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for x in &d {
            per_event.entry(x.event).or_default().push(x.target);
        }
        assert_eq!(per_event.len(), 1000);
        for targets in per_event.values() {
            assert_eq!(targets.len(), 2);
            assert_ne!(targets[0], targets[1], "copies go to different instances");
            assert!(targets.iter().all(|t| *t < 3));
        }
        // Shuffled inside windows: copies stay close to each other.
        for (pos, x) in d.iter().enumerate() {
            let other = d
                .iter()
                .enumerate()
                .find(|(p, y)| *p != pos && y.event == x.event)
                .map(|(p, _)| p)
                .unwrap();
            assert!(pos.abs_diff(other) < 64, "{pos} vs {other}");
        }
        assert_ne!(d, deliveries(1000, 2, 3, 1, 1), "the windows shuffle");
    }

    #[test]
    fn a_single_instance_gets_every_copy() {
        let d = deliveries(10, 2, 1, 8, 3);
        assert_eq!(d.len(), 20);
        assert!(d.iter().all(|x| x.target == 0));
        assert_eq!(deliveries(10, 0, 1, 8, 3).len(), 10, "at least one copy");
    }

    #[test]
    fn bodies_are_livekit_protojson() {
        let events = plan(&spec(20));
        let sip = events.iter().find(|e| e.kind.needs_action()).unwrap();
        let b = body(sip, 1_700_000_000);
        assert_eq!(b["event"], "participant_joined");
        assert_eq!(b["id"], sip.id.as_str());
        assert_eq!(b["room"]["name"], sip.room.as_str());
        assert_eq!(b["participant"]["kind"], "SIP");
        assert_eq!(
            b["participant"]["attributes"]["sip.trunkPhoneNumber"],
            sip.called.as_deref().unwrap()
        );
        let other = events.iter().find(|e| !e.kind.needs_action()).unwrap();
        let b = body(other, 1_700_000_000);
        assert_eq!(b["event"], other.kind.name());
        assert_ne!(b["participant"]["kind"], "SIP");
        // It parses back as LiveKit's type.
        let back: proto::WebhookEvent = serde_json::from_value(b).unwrap();
        assert_eq!(back.id, other.id);
    }
}
