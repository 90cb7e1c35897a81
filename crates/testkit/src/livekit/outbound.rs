//! Outbound: SIP outbound trunks and `CreateSIPParticipant`, with a scripted outcome per
//! destination number. LiveKit's rules as the emulator applies them: an outbound trunk needs
//! an address without a `sip:` scheme and at least one number; `CreateSIPParticipant` needs a
//! trunk that exists, a number to call and a room; the room is created for the call. With
//! `wait_until_answered` a failed call answers a Twirp error whose `meta` holds the SIP status
//! (`sip_status_code`, `sip_status`), as LiveKit's does; without it the call is accepted and
//! its failure shows in the webhooks only (no `participant_joined`).

use chrono::Utc;
use livekit_protocol as proto;

use super::state::{Store, TwirpError, apply_list, new_id, normalize_number, now_timestamp};

/// How the far end answers a call to one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The callee answers (the default).
    Answered,
    /// 486 Busy Here.
    Busy,
    /// 480 Temporarily Unavailable: nobody answered.
    NoAnswer,
    /// 403 Forbidden: the callee or the carrier refused.
    Rejected,
    /// 403 with the carrier's caller-ID refusal.
    CallerIdRefused,
    /// 403 with the carrier's destination refusal (geographic permissions).
    DestinationRefused,
}

impl CallOutcome {
    /// The SIP status LiveKit reports for a failure, with its Twirp code.
    fn failure(self) -> Option<(&'static str, u16, &'static str)> {
        match self {
            Self::Answered => None,
            Self::Busy => Some(("unavailable", 486, "Busy Here")),
            Self::NoAnswer => Some(("deadline_exceeded", 480, "Temporarily Unavailable")),
            Self::Rejected => Some(("permission_denied", 403, "Forbidden")),
            Self::CallerIdRefused => Some((
                "permission_denied",
                403,
                "Caller ID not allowed: the From number is not verified for this trunk",
            )),
            Self::DestinationRefused => Some((
                "permission_denied",
                403,
                "Destination not permitted by the account's geographic permissions",
            )),
        }
    }
}

/// A call `CreateSIPParticipant` placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundCall {
    pub trunk_id: String,
    pub room: String,
    pub participant_identity: String,
    pub sip_call_id: String,
    /// `sip_number`: the caller ID.
    pub from: String,
    pub to: String,
    pub outcome: CallOutcome,
    pub wait_until_answered: bool,
    /// The trunk's address and username when the call was placed.
    pub address: String,
    pub auth_username: String,
}

fn check(trunk: &proto::SipOutboundTrunkInfo) -> Result<(), TwirpError> {
    if trunk.address.is_empty() {
        return Err(TwirpError::invalid("no trunk address specified"));
    }
    if trunk.address.contains("sip:") || trunk.address.contains("sips:") {
        return Err(TwirpError::invalid(
            "trunk address should be a hostname or IP, not SIP URI",
        ));
    }
    if trunk.numbers.is_empty() {
        return Err(TwirpError::invalid("no trunk numbers specified"));
    }
    Ok(())
}

impl Store {
    pub fn create_outbound_trunk(
        &mut self,
        req: proto::CreateSipOutboundTrunkRequest,
    ) -> Result<proto::SipOutboundTrunkInfo, TwirpError> {
        let mut trunk = req
            .trunk
            .ok_or_else(|| TwirpError::invalid("trunk info is required"))?;
        check(&trunk)?;
        trunk.sip_trunk_id = new_id("ST_");
        trunk.numbers = trunk.numbers.iter().map(|n| normalize_number(n)).collect();
        trunk.created_at = Some(now_timestamp());
        trunk.updated_at = trunk.created_at;
        self.outbound_trunks.push(trunk.clone());
        Ok(redacted(trunk))
    }

    pub fn update_outbound_trunk(
        &mut self,
        req: proto::UpdateSipOutboundTrunkRequest,
    ) -> Result<proto::SipOutboundTrunkInfo, TwirpError> {
        let index = self
            .outbound_trunks
            .iter()
            .position(|t| t.sip_trunk_id == req.sip_trunk_id)
            .ok_or_else(|| TwirpError::not_found("requested sip trunk does not exist"))?;
        let current = self.outbound_trunks[index].clone();
        let mut next = match req.action {
            Some(proto::update_sip_outbound_trunk_request::Action::Replace(t)) => t,
            Some(proto::update_sip_outbound_trunk_request::Action::Update(u)) => {
                let mut t = current.clone();
                if let Some(a) = u.address {
                    t.address = a;
                }
                if let Some(x) = u.transport {
                    t.transport = x;
                }
                apply_list(&mut t.numbers, u.numbers);
                if let Some(x) = u.auth_username {
                    t.auth_username = x;
                }
                if let Some(x) = u.auth_password {
                    t.auth_password = x;
                }
                if let Some(x) = u.name {
                    t.name = x;
                }
                if let Some(x) = u.metadata {
                    t.metadata = x;
                }
                t
            }
            None => return Err(TwirpError::invalid("missing or unsupported action")),
        };
        next.sip_trunk_id.clone_from(&current.sip_trunk_id);
        next.numbers = next.numbers.iter().map(|n| normalize_number(n)).collect();
        check(&next)?;
        next.created_at = current.created_at;
        next.updated_at = Some(now_timestamp());
        self.outbound_trunks[index] = next.clone();
        Ok(redacted(next))
    }

    pub fn list_outbound_trunks(
        &self,
        req: &proto::ListSipOutboundTrunkRequest,
    ) -> proto::ListSipOutboundTrunkResponse {
        let items = if req.trunk_ids.is_empty() {
            self.outbound_trunks
                .iter()
                .filter(|t| {
                    req.numbers.is_empty()
                        || t.numbers.is_empty()
                        || t.numbers.iter().any(|n| req.numbers.contains(n))
                })
                .cloned()
                .map(redacted)
                .collect()
        } else {
            // In the order asked, an empty item for a missing id (as LiveKit answers).
            req.trunk_ids
                .iter()
                .map(|id| {
                    self.outbound_trunks
                        .iter()
                        .find(|t| &t.sip_trunk_id == id)
                        .cloned()
                        .map(redacted)
                        .unwrap_or_default()
                })
                .collect()
        };
        proto::ListSipOutboundTrunkResponse { items }
    }

    pub fn create_sip_participant(
        &mut self,
        req: &proto::CreateSipParticipantRequest,
    ) -> Result<proto::SipParticipantInfo, TwirpError> {
        if req.sip_call_to.is_empty() {
            return Err(TwirpError::invalid("call-to number must be set"));
        }
        if req.room_name.is_empty() {
            return Err(TwirpError::invalid("room name must be set"));
        }
        let trunk = self
            .outbound_trunks
            .iter()
            .find(|t| t.sip_trunk_id == req.sip_trunk_id)
            .cloned()
            .ok_or_else(|| TwirpError::not_found("requested sip trunk does not exist"))?;
        let to = normalize_number(&req.sip_call_to);
        let outcome = self
            .scripts
            .get(&to)
            .copied()
            .unwrap_or(CallOutcome::Answered);
        let from = if req.sip_number.is_empty() {
            trunk.numbers.first().cloned().unwrap_or_default()
        } else {
            normalize_number(&req.sip_number)
        };
        let identity = if req.participant_identity.is_empty() {
            format!("sip_{to}")
        } else {
            req.participant_identity.clone()
        };
        let sip_call_id = new_id("SCL_");
        {
            let room = self.room_mut(&req.room_name);
            room.open = true;
        }
        self.outbound_calls.push(OutboundCall {
            trunk_id: trunk.sip_trunk_id.clone(),
            room: req.room_name.clone(),
            participant_identity: identity.clone(),
            sip_call_id: sip_call_id.clone(),
            from,
            to,
            outcome,
            wait_until_answered: req.wait_until_answered,
            address: trunk.address.clone(),
            auth_username: trunk.auth_username.clone(),
        });
        if let (true, Some((code, status, phrase))) = (req.wait_until_answered, outcome.failure()) {
            let mut e = TwirpError::new(code, format!("sip status: {status}: {phrase}"));
            e.meta
                .insert("sip_status_code".to_owned(), status.to_string());
            e.meta.insert("sip_status".to_owned(), phrase.to_owned());
            return Err(e);
        }
        Ok(proto::SipParticipantInfo {
            participant_id: format!("PA_{}", &sip_call_id[4..]),
            participant_identity: identity,
            room_name: req.room_name.clone(),
            sip_call_id,
        })
    }
}

impl Store {
    /// `RoomService.GetParticipant`: the SIP participant a call placed in an open room, with
    /// the attributes LiveKit gives it (`sip.callID`, `sip.callStatus`); `not_found` for a
    /// room that is closed or unknown, or nobody of that identity in it.
    pub fn get_participant(
        &self,
        req: &proto::RoomParticipantIdentity,
    ) -> Result<proto::ParticipantInfo, TwirpError> {
        let open = self.rooms.get(&req.room).is_some_and(|r| r.open);
        let call = self
            .outbound_calls
            .iter()
            .rev()
            .find(|c| c.room == req.room && c.participant_identity == req.identity)
            .filter(|_| open)
            .ok_or_else(|| TwirpError::not_found("participant not found"))?;
        let answered = call.outcome == CallOutcome::Answered;
        let attributes = [
            ("sip.callID", call.sip_call_id.clone()),
            (
                "sip.callStatus",
                if answered { "active" } else { "dialing" }.to_owned(),
            ),
            ("sip.phoneNumber", call.to.clone()),
            ("sip.trunkID", call.trunk_id.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Ok(proto::ParticipantInfo {
            sid: format!("PA_{}", &call.sip_call_id[4..]),
            identity: call.participant_identity.clone(),
            state: if answered {
                proto::participant_info::State::Active
            } else {
                proto::participant_info::State::Joining
            } as i32,
            kind: proto::participant_info::Kind::Sip as i32,
            attributes,
            ..proto::ParticipantInfo::default()
        })
    }
}

/// LiveKit does not show a trunk's password back.
fn redacted(mut t: proto::SipOutboundTrunkInfo) -> proto::SipOutboundTrunkInfo {
    t.auth_password = String::new();
    t
}

/// The webhooks LiveKit sends for an outbound call: `participant_joined` when answered,
/// then `participant_left` and `room_finished`.
pub(crate) fn call_events(call: &OutboundCall, room_sid: &str) -> Vec<proto::WebhookEvent> {
    let now = Utc::now().timestamp();
    let room = proto::Room {
        sid: room_sid.to_owned(),
        name: call.room.clone(),
        creation_time: now,
        creation_time_ms: now * 1000,
        ..proto::Room::default()
    };
    let participant = |state: proto::participant_info::State, status: &str| {
        let attributes = [
            ("sip.callID", call.sip_call_id.as_str()),
            ("sip.callStatus", status),
            ("sip.phoneNumber", call.to.as_str()),
            ("sip.trunkPhoneNumber", call.from.as_str()),
            ("sip.trunkID", call.trunk_id.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        proto::ParticipantInfo {
            sid: format!("PA_{}", &call.sip_call_id[4..]),
            identity: call.participant_identity.clone(),
            name: "Phone".to_owned(),
            state: state as i32,
            kind: proto::participant_info::Kind::Sip as i32,
            attributes,
            joined_at: now,
            joined_at_ms: now * 1000,
            ..proto::ParticipantInfo::default()
        }
    };
    let event = |name: &str, participant: Option<proto::ParticipantInfo>| proto::WebhookEvent {
        event: name.to_owned(),
        room: Some(room.clone()),
        participant,
        id: new_id("EV_"),
        created_at: now,
        ..proto::WebhookEvent::default()
    };
    let mut events = Vec::new();
    if call.outcome == CallOutcome::Answered {
        events.push(event(
            "participant_joined",
            Some(participant(
                proto::participant_info::State::Active,
                "active",
            )),
        ));
        events.push(event(
            "participant_left",
            Some(participant(
                proto::participant_info::State::Disconnected,
                "hangup",
            )),
        ));
    }
    events.push(event("room_finished", None));
    events
}
