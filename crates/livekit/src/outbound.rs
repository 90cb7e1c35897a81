//! Outbound: the long-lived outbound trunk of a carrier route, and `CreateSIPParticipant`.

use std::collections::{BTreeMap, HashMap};

use livekit_protocol as proto;
use secrecy::ExposeSecret;
use trunkline_core::ports::{
    OutboundTrunkInfo, OutboundTrunkSpec, ProviderError, SipCallInfo, SipCallRequest,
    SipParticipantState,
};
use trunkline_core::{ErrorCode, RoomName, SipTrunkId};

use crate::platform::normalize_number;
use crate::twirp::{Grant, Twirp};

const SIP: &str = "SIP";

fn info(t: &proto::SipOutboundTrunkInfo) -> Result<OutboundTrunkInfo, ProviderError> {
    Ok(OutboundTrunkInfo {
        id: SipTrunkId::parse(&t.sip_trunk_id).map_err(|e| {
            ProviderError::unavailable(format!("LiveKit answered an unusable trunk id: {e}"))
                .with_provider_code("decode")
        })?,
        name: t.name.clone(),
        address: t.address.clone(),
        numbers: t.numbers.clone(),
        auth_username: t.auth_username.clone(),
        tcp: t.transport == proto::SipTransport::Tcp as i32,
        headers: t.headers.clone().into_iter().collect(),
    })
}

fn desired(spec: &OutboundTrunkSpec) -> proto::SipOutboundTrunkInfo {
    proto::SipOutboundTrunkInfo {
        name: spec.name.clone(),
        metadata: serde_json::json!({ "managedBy": "trunkline" }).to_string(),
        address: spec.address.clone(),
        transport: proto::SipTransport::Tcp as i32,
        numbers: spec.numbers.iter().map(|n| n.as_str().to_owned()).collect(),
        auth_username: spec.auth_username.clone(),
        auth_password: spec.auth_password.expose_secret().to_owned(),
        headers: spec.headers.clone().into_iter().collect::<HashMap<_, _>>(),
        ..proto::SipOutboundTrunkInfo::default()
    }
}

/// Whether the trunk already is what `spec` asks for (the password is not shown back and is
/// compared only by `password_changed`).
fn matches(current: &proto::SipOutboundTrunkInfo, spec: &OutboundTrunkSpec) -> bool {
    let mut have: Vec<String> = current
        .numbers
        .iter()
        .map(|n| normalize_number(n))
        .collect();
    let mut want: Vec<String> = spec.numbers.iter().map(|n| n.as_str().to_owned()).collect();
    have.sort();
    want.sort();
    let headers: BTreeMap<_, _> = current.headers.clone().into_iter().collect();
    current.name == spec.name
        && current.address == spec.address
        && current.transport == proto::SipTransport::Tcp as i32
        && have == want
        && current.auth_username == spec.auth_username
        && headers == spec.headers
        && !spec.password_changed
}

pub(crate) async fn get(
    twirp: &Twirp,
    id: &str,
) -> Result<Option<proto::SipOutboundTrunkInfo>, ProviderError> {
    let req = proto::ListSipOutboundTrunkRequest {
        trunk_ids: vec![id.to_owned()],
        ..proto::ListSipOutboundTrunkRequest::default()
    };
    let resp: proto::ListSipOutboundTrunkResponse = twirp
        .call(SIP, "ListSIPOutboundTrunk", &req, &Grant::SipAdmin)
        .await?;
    Ok(resp.items.into_iter().find(|t| t.sip_trunk_id == id))
}

async fn find_by_name(
    twirp: &Twirp,
    name: &str,
) -> Result<Option<proto::SipOutboundTrunkInfo>, ProviderError> {
    let resp: proto::ListSipOutboundTrunkResponse = twirp
        .call(
            SIP,
            "ListSIPOutboundTrunk",
            &proto::ListSipOutboundTrunkRequest::default(),
            &Grant::SipAdmin,
        )
        .await?;
    let mut found: Vec<_> = resp.items.into_iter().filter(|t| t.name == name).collect();
    found.sort_by(|a, b| a.sip_trunk_id.cmp(&b.sip_trunk_id));
    Ok(found.into_iter().next())
}

pub(crate) async fn ensure(
    twirp: &Twirp,
    spec: &OutboundTrunkSpec,
    existing: Option<SipTrunkId>,
) -> Result<OutboundTrunkInfo, ProviderError> {
    let current = match &existing {
        Some(id) => get(twirp, id.as_str()).await?,
        None => None,
    };
    let current = match current {
        Some(t) => Some(t),
        None => find_by_name(twirp, &spec.name).await?,
    };
    let Some(current) = current else {
        let req = proto::CreateSipOutboundTrunkRequest {
            trunk: Some(desired(spec)),
        };
        return match twirp
            .call::<_, proto::SipOutboundTrunkInfo>(
                SIP,
                "CreateSIPOutboundTrunk",
                &req,
                &Grant::SipAdmin,
            )
            .await
        {
            Ok(created) => {
                tracing::info!(trunk_id = %created.sip_trunk_id, numbers = created.numbers.len(), "created LiveKit outbound trunk");
                info(&created)
            }
            // The answer may be lost with the trunk made: look before giving up.
            Err(e) if e.is_transient() => match find_by_name(twirp, &spec.name).await {
                Ok(Some(t)) => info(&t),
                _ => Err(e),
            },
            Err(e) => Err(e),
        };
    };
    if matches(&current, spec) {
        return info(&current);
    }
    let mut replacement = desired(spec);
    replacement.sip_trunk_id.clone_from(&current.sip_trunk_id);
    let req = proto::UpdateSipOutboundTrunkRequest {
        sip_trunk_id: current.sip_trunk_id.clone(),
        action: Some(proto::update_sip_outbound_trunk_request::Action::Replace(
            replacement,
        )),
    };
    let updated: proto::SipOutboundTrunkInfo = twirp
        .call(SIP, "UpdateSIPOutboundTrunk", &req, &Grant::SipAdmin)
        .await?;
    tracing::info!(trunk_id = %updated.sip_trunk_id, numbers = updated.numbers.len(), "updated LiveKit outbound trunk");
    info(&updated)
}

pub(crate) async fn fetch(
    twirp: &Twirp,
    id: &SipTrunkId,
) -> Result<Option<OutboundTrunkInfo>, ProviderError> {
    get(twirp, id.as_str())
        .await?
        .as_ref()
        .map(info)
        .transpose()
}

pub(crate) async fn list(twirp: &Twirp) -> Result<Vec<OutboundTrunkInfo>, ProviderError> {
    let resp: proto::ListSipOutboundTrunkResponse = twirp
        .call(
            SIP,
            "ListSIPOutboundTrunk",
            &proto::ListSipOutboundTrunkRequest::default(),
            &Grant::SipAdmin,
        )
        .await?;
    resp.items.iter().map(info).collect()
}

pub(crate) async fn delete(twirp: &Twirp, id: &SipTrunkId) -> Result<(), ProviderError> {
    let req = proto::DeleteSipTrunkRequest {
        sip_trunk_id: id.as_str().to_owned(),
    };
    match twirp
        .call::<_, proto::SipTrunkInfo>(SIP, "DeleteSIPTrunk", &req, &Grant::SipAdmin)
        .await
    {
        Ok(_) => {
            tracing::info!(trunk_id = %id, "deleted LiveKit outbound trunk");
            Ok(())
        }
        Err(e) if e.code == ErrorCode::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

pub(crate) async fn dial(
    twirp: &Twirp,
    request: &SipCallRequest,
) -> Result<SipCallInfo, ProviderError> {
    #[allow(deprecated)] // `play_ringtone`, `media_encryption`: left at their defaults
    let req = proto::CreateSipParticipantRequest {
        sip_trunk_id: request.trunk_id.as_str().to_owned(),
        sip_call_to: request.to.as_str().to_owned(),
        sip_number: request.from.as_str().to_owned(),
        room_name: request.room.as_str().to_owned(),
        participant_identity: request.participant_identity.clone(),
        participant_metadata: request.metadata.clone().unwrap_or_default(),
        participant_attributes: request.attributes.clone().into_iter().collect(),
        wait_until_answered: request.wait_until_answered,
        ringing_timeout: request.ringing_timeout.map(|d| pbjson_types::Duration {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: 0,
        }),
        ..proto::CreateSipParticipantRequest::default()
    };
    let grant = Grant::SipCall;
    let info: proto::SipParticipantInfo = twirp
        .call(SIP, "CreateSIPParticipant", &req, &grant)
        .await?;
    Ok(SipCallInfo {
        participant_id: info.participant_id,
        participant_identity: info.participant_identity,
        sip_call_id: info.sip_call_id,
    })
}

/// `RoomService.GetParticipant` (a room admin's token for that room): the participant's
/// `sip.callID` and whether the callee answered; `None` when LiveKit knows no such room or
/// participant.
pub(crate) async fn find_participant(
    twirp: &Twirp,
    room: &RoomName,
    identity: &str,
) -> Result<Option<SipParticipantState>, ProviderError> {
    let req = proto::RoomParticipantIdentity {
        room: room.as_str().to_owned(),
        identity: identity.to_owned(),
        ..proto::RoomParticipantIdentity::default()
    };
    let grant = Grant::RoomAdmin(room.as_str().to_owned());
    let found: Result<proto::ParticipantInfo, _> = twirp
        .call("RoomService", "GetParticipant", &req, &grant)
        .await;
    match found {
        Ok(p) => Ok(Some(SipParticipantState {
            sip_call_id: p.attributes.get("sip.callID").cloned(),
            answered: p.attributes.get("sip.callStatus").map(String::as_str) == Some("active"),
        })),
        Err(e) if e.code == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
