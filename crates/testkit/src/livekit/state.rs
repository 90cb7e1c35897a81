//! The emulator's state and LiveKit's rules on it: inbound trunks, dispatch rules, rooms and
//! their agent dispatches. Validation follows LiveKit's own (`livekit/protocol` `sip.go`,
//! `livekit/sip.go`; `livekit/livekit` `pkg/service/sip.go`, `agent_dispatch_service.go`).

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;
use livekit_protocol as proto;
use proto::sip_dispatch_rule::Rule;
use rand::Rng;

/// A Twirp error: HTTP status, Twirp code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwirpError {
    pub status: u16,
    pub code: &'static str,
    pub msg: String,
    /// Twirp's `meta`: a failed SIP call carries `sip_status_code` and `sip_status`.
    pub meta: BTreeMap<String, String>,
}

impl TwirpError {
    pub fn new(code: &'static str, msg: impl Into<String>) -> Self {
        Self {
            status: status_of(code),
            code,
            msg: msg.into(),
            meta: BTreeMap::new(),
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new("invalid_argument", msg)
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new("not_found", msg)
    }

    /// The Twirp code LiveKit answers an HTTP status with.
    pub fn for_status(status: u16) -> Self {
        let code = match status {
            400 => "invalid_argument",
            401 => "unauthenticated",
            403 => "permission_denied",
            404 => "not_found",
            408 => "deadline_exceeded",
            409 => "already_exists",
            412 => "failed_precondition",
            429 => "resource_exhausted",
            501 => "unimplemented",
            503 => "unavailable",
            _ => "internal",
        };
        Self {
            status,
            code,
            msg: format!("injected fault: HTTP {status}"),
            meta: BTreeMap::new(),
        }
    }

    pub fn body(&self) -> serde_json::Value {
        if self.meta.is_empty() {
            serde_json::json!({ "code": self.code, "msg": self.msg })
        } else {
            serde_json::json!({ "code": self.code, "msg": self.msg, "meta": self.meta })
        }
    }
}

/// Twirp's code → HTTP status table.
fn status_of(code: &str) -> u16 {
    match code {
        "invalid_argument" | "malformed" | "out_of_range" => 400,
        "unauthenticated" => 401,
        "permission_denied" => 403,
        "not_found" | "bad_route" => 404,
        "canceled" | "deadline_exceeded" => 408,
        "already_exists" | "aborted" => 409,
        "failed_precondition" => 412,
        "resource_exhausted" => 429,
        "unimplemented" => 501,
        "unavailable" => 503,
        _ => 500,
    }
}

pub(crate) fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..12)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{tail}")
}

pub(crate) fn now_timestamp() -> pbjson_types::Timestamp {
    let now = Utc::now();
    pbjson_types::Timestamp {
        seconds: now.timestamp(),
        nanos: i32::try_from(now.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// LiveKit's `NormalizeNumber`: a value of digits, spaces, dashes and parentheses (with an
/// optional `+`) loses the formatting and gains the `+`; anything else is kept as is.
pub fn normalize_number(num: &str) -> String {
    if num.is_empty() {
        return String::new();
    }
    let body = num.strip_prefix('+').unwrap_or(num);
    if body.is_empty()
        || !body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | ' ' | '(' | ')'))
    {
        return num.to_owned();
    }
    let digits: String = body
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '(' | ')'))
        .collect();
    format!("+{digits}")
}

/// One room: created by an agent dispatch or by an inbound call.
#[derive(Debug, Clone)]
pub struct Room {
    pub sid: String,
    pub created_at: i64,
    /// Closed rooms answer ListDispatch with `not_found`, as LiveKit does after a room ends.
    pub open: bool,
    pub dispatches: Vec<proto::AgentDispatch>,
    /// Every dispatch ever created here, deleted ones included.
    pub history: Vec<proto::AgentDispatch>,
}

#[derive(Debug, Default)]
pub struct Store {
    pub trunks: Vec<proto::SipInboundTrunkInfo>,
    pub rules: Vec<proto::SipDispatchRuleInfo>,
    pub rooms: BTreeMap<String, Room>,
    /// Outbound trunks and calls (see `outbound.rs`).
    pub outbound_trunks: Vec<proto::SipOutboundTrunkInfo>,
    pub outbound_calls: Vec<super::outbound::OutboundCall>,
    pub scripts: BTreeMap<String, super::outbound::CallOutcome>,
}

impl Store {
    // --- inbound trunks ------------------------------------------------------------------

    /// LiveKit's `SIPInboundTrunkInfo.Validate`.
    fn validate_trunk(t: &proto::SipInboundTrunkInfo) -> Result<(), TwirpError> {
        let has_auth = !t.auth_username.is_empty() || !t.auth_password.is_empty();
        if !has_auth && t.allowed_addresses.is_empty() && t.numbers.is_empty() {
            return Err(TwirpError::invalid(
                "for security, one of the fields must be set: AuthUsername+AuthPassword, \
                 AllowedAddresses or Numbers",
            ));
        }
        Ok(())
    }

    /// LiveKit's `ValidateTrunks` over every trunk with `candidate` in place of its stored
    /// version: two trunks may not accept the same called number unless they tell callers
    /// apart by `allowed_numbers`.
    fn check_trunk_conflicts(
        &self,
        candidate: &proto::SipInboundTrunkInfo,
    ) -> Result<(), TwirpError> {
        let print_id = |id: &str| {
            if id.is_empty() {
                "<new>".to_owned()
            } else {
                id.to_owned()
            }
        };
        let numbers_of = |t: &proto::SipInboundTrunkInfo| -> Vec<String> {
            if t.numbers.is_empty() {
                vec![String::new()]
            } else {
                t.numbers.iter().map(|n| normalize_number(n)).collect()
            }
        };
        let callers_of = |t: &proto::SipInboundTrunkInfo| -> Vec<String> {
            if t.allowed_numbers.is_empty() {
                vec![String::new()]
            } else {
                t.allowed_numbers
                    .iter()
                    .map(|n| normalize_number(n))
                    .collect()
            }
        };
        let candidate_numbers = numbers_of(candidate);
        let candidate_callers = callers_of(candidate);
        for other in &self.trunks {
            if !candidate.sip_trunk_id.is_empty() && other.sip_trunk_id == candidate.sip_trunk_id {
                continue;
            }
            let other_numbers = numbers_of(other);
            if !candidate_numbers.iter().any(|n| other_numbers.contains(n)) {
                continue;
            }
            let other_callers = callers_of(other);
            if let Some(caller) = candidate_callers.iter().find(|c| other_callers.contains(c)) {
                let printed = if candidate.numbers.is_empty() {
                    "<any>".to_owned()
                } else {
                    format!("{:?}", candidate.numbers)
                };
                return Err(if caller.is_empty() {
                    TwirpError::invalid(format!(
                        "Conflicting inbound SIP Trunks: {:?} and {:?}, using the same number(s) {printed} without AllowedNumbers set",
                        print_id(&candidate.sip_trunk_id),
                        other.sip_trunk_id
                    ))
                } else {
                    TwirpError::invalid(format!(
                        "Conflicting inbound SIP Trunks: {:?} and {:?}, using the same number(s) {printed} and AllowedNumber {caller:?}",
                        print_id(&candidate.sip_trunk_id),
                        other.sip_trunk_id
                    ))
                });
            }
        }
        Ok(())
    }

    pub fn create_trunk(
        &mut self,
        req: proto::CreateSipInboundTrunkRequest,
    ) -> Result<proto::SipInboundTrunkInfo, TwirpError> {
        let Some(mut trunk) = req.trunk else {
            return Err(TwirpError::invalid("missing trunk"));
        };
        if !trunk.sip_trunk_id.is_empty() {
            return Err(TwirpError::invalid("trunk id must not be set"));
        }
        Self::validate_trunk(&trunk)?;
        self.check_trunk_conflicts(&trunk)?;
        trunk.sip_trunk_id = new_id("ST_");
        trunk.created_at = Some(now_timestamp());
        trunk.updated_at = trunk.created_at;
        self.trunks.push(trunk.clone());
        Ok(trunk)
    }

    pub fn update_trunk(
        &mut self,
        req: proto::UpdateSipInboundTrunkRequest,
    ) -> Result<proto::SipInboundTrunkInfo, TwirpError> {
        use proto::update_sip_inbound_trunk_request::Action;
        if req.sip_trunk_id.is_empty() {
            return Err(TwirpError::invalid("trunk id must be set"));
        }
        let Some(current) = self
            .trunks
            .iter()
            .find(|t| t.sip_trunk_id == req.sip_trunk_id)
            .cloned()
        else {
            return Err(TwirpError::not_found("requested sip trunk does not exist"));
        };
        let mut next = match req.action {
            None => return Err(TwirpError::invalid("missing or unsupported update action")),
            Some(Action::Replace(info)) => {
                if !info.sip_trunk_id.is_empty() && info.sip_trunk_id != req.sip_trunk_id {
                    return Err(TwirpError::invalid(
                        "trunk id in the info must be empty or match the id in the update",
                    ));
                }
                proto::SipInboundTrunkInfo {
                    sip_trunk_id: req.sip_trunk_id.clone(),
                    ..info
                }
            }
            Some(Action::Update(update)) => apply_trunk_update(current.clone(), update),
        };
        next.created_at = current.created_at;
        next.updated_at = Some(now_timestamp());
        Self::validate_trunk(&next)?;
        self.check_trunk_conflicts(&next)?;
        if let Some(slot) = self
            .trunks
            .iter_mut()
            .find(|t| t.sip_trunk_id == req.sip_trunk_id)
        {
            *slot = next.clone();
        }
        Ok(next)
    }

    pub fn get_trunk(
        &self,
        req: &proto::GetSipInboundTrunkRequest,
    ) -> Result<proto::GetSipInboundTrunkResponse, TwirpError> {
        if req.sip_trunk_id.is_empty() {
            return Err(TwirpError::invalid("trunk ID is required"));
        }
        self.trunks
            .iter()
            .find(|t| t.sip_trunk_id == req.sip_trunk_id)
            .map(|t| proto::GetSipInboundTrunkResponse {
                trunk: Some(t.clone()),
            })
            .ok_or_else(|| TwirpError::not_found("requested sip trunk does not exist"))
    }

    pub fn list_trunks(
        &self,
        req: &proto::ListSipInboundTrunkRequest,
    ) -> proto::ListSipInboundTrunkResponse {
        let by_number = |t: &proto::SipInboundTrunkInfo| {
            req.numbers.is_empty()
                || t.numbers.is_empty()
                || req.numbers.iter().any(|want| {
                    let want = normalize_number(want);
                    t.numbers.iter().any(|n| normalize_number(n) == want)
                })
        };
        let items = if req.trunk_ids.is_empty() {
            self.trunks
                .iter()
                .filter(|t| by_number(t))
                .cloned()
                .collect()
        } else {
            // In the order asked, an empty item where a trunk is missing (LiveKit sends nil).
            req.trunk_ids
                .iter()
                .map(|id| {
                    self.trunks
                        .iter()
                        .find(|t| &t.sip_trunk_id == id && by_number(t))
                        .cloned()
                        .unwrap_or_default()
                })
                .collect()
        };
        proto::ListSipInboundTrunkResponse { items }
    }

    pub fn delete_trunk(
        &mut self,
        req: &proto::DeleteSipTrunkRequest,
    ) -> Result<proto::SipTrunkInfo, TwirpError> {
        if req.sip_trunk_id.is_empty() {
            return Err(TwirpError::invalid("trunk ID is required"));
        }
        let before = self.trunks.len() + self.outbound_trunks.len();
        self.trunks.retain(|t| t.sip_trunk_id != req.sip_trunk_id);
        self.outbound_trunks
            .retain(|t| t.sip_trunk_id != req.sip_trunk_id);
        if self.trunks.len() + self.outbound_trunks.len() == before {
            return Err(TwirpError::not_found("requested sip trunk does not exist"));
        }
        Ok(proto::SipTrunkInfo {
            sip_trunk_id: req.sip_trunk_id.clone(),
            ..Default::default()
        })
    }

    // --- dispatch rules ------------------------------------------------------------------

    /// LiveKit's `DispatchRuleValidator`: no two rules for the same trunk, caller number,
    /// called number and PIN (an empty list is its own "any" bucket).
    fn check_rule_conflicts(
        &self,
        candidate: &proto::SipDispatchRuleInfo,
    ) -> Result<(), TwirpError> {
        let keys = |r: &proto::SipDispatchRuleInfo| -> HashSet<(String, String, String, String)> {
            let pin = match r.rule.as_ref().and_then(|x| x.rule.as_ref()) {
                Some(Rule::DispatchRuleDirect(d)) => d.pin.clone(),
                Some(Rule::DispatchRuleIndividual(i)) => i.pin.clone(),
                Some(Rule::DispatchRuleCallee(c)) => c.pin.clone(),
                None => String::new(),
            };
            let or_any = |v: &[String], norm: bool| -> Vec<String> {
                if v.is_empty() {
                    vec![String::new()]
                } else if norm {
                    v.iter().map(|n| normalize_number(n)).collect()
                } else {
                    v.to_vec()
                }
            };
            let mut out = HashSet::new();
            for trunk in or_any(&r.trunk_ids, false) {
                for inbound in or_any(&r.inbound_numbers, true) {
                    for number in or_any(&r.numbers, true) {
                        out.insert((pin.clone(), trunk.clone(), inbound.clone(), number));
                    }
                }
            }
            out
        };
        let mine = keys(candidate);
        for other in &self.rules {
            if !candidate.sip_dispatch_rule_id.is_empty()
                && other.sip_dispatch_rule_id == candidate.sip_dispatch_rule_id
            {
                continue;
            }
            if !keys(other).is_disjoint(&mine) {
                let name = if other.name.is_empty() {
                    "<blank name>"
                } else {
                    &other.name
                };
                return Err(TwirpError::invalid(format!(
                    "Dispatch rule for the same trunk, inbound number, number, and PIN combination already exists in dispatch rule {:?} {name:?}",
                    other.sip_dispatch_rule_id
                )));
            }
        }
        Ok(())
    }

    #[allow(deprecated)] // the request's legacy fields, for clients that still send them
    pub fn create_rule(
        &mut self,
        req: proto::CreateSipDispatchRuleRequest,
    ) -> Result<proto::SipDispatchRuleInfo, TwirpError> {
        let mut rule = match req.dispatch_rule {
            Some(info) => {
                if !info.sip_dispatch_rule_id.is_empty() {
                    return Err(TwirpError::invalid("rule id must not be set"));
                }
                info
            }
            None => proto::SipDispatchRuleInfo {
                rule: req.rule,
                trunk_ids: req.trunk_ids,
                hide_phone_number: req.hide_phone_number,
                inbound_numbers: req.inbound_numbers,
                name: req.name,
                metadata: req.metadata,
                attributes: req.attributes,
                room_preset: req.room_preset,
                room_config: req.room_config,
                ..Default::default()
            },
        };
        if rule.rule.as_ref().and_then(|r| r.rule.as_ref()).is_none() {
            return Err(TwirpError::invalid("missing rule"));
        }
        self.check_rule_conflicts(&rule)?;
        rule.sip_dispatch_rule_id = new_id("SDR_");
        rule.created_at = Some(now_timestamp());
        rule.updated_at = rule.created_at;
        self.rules.push(rule.clone());
        Ok(rule)
    }

    pub fn update_rule(
        &mut self,
        req: proto::UpdateSipDispatchRuleRequest,
    ) -> Result<proto::SipDispatchRuleInfo, TwirpError> {
        use proto::update_sip_dispatch_rule_request::Action;
        if req.sip_dispatch_rule_id.is_empty() {
            return Err(TwirpError::invalid("rule id must be set"));
        }
        let Some(current) = self
            .rules
            .iter()
            .find(|r| r.sip_dispatch_rule_id == req.sip_dispatch_rule_id)
            .cloned()
        else {
            return Err(TwirpError::not_found(
                "requested sip dispatch rule does not exist",
            ));
        };
        let mut next = match req.action {
            None => return Err(TwirpError::invalid("missing or unsupported update action")),
            Some(Action::Replace(info)) => {
                if !info.sip_dispatch_rule_id.is_empty()
                    && info.sip_dispatch_rule_id != req.sip_dispatch_rule_id
                {
                    return Err(TwirpError::invalid(
                        "rule id in the info must be empty or match the id in the update",
                    ));
                }
                proto::SipDispatchRuleInfo {
                    sip_dispatch_rule_id: req.sip_dispatch_rule_id.clone(),
                    ..info
                }
            }
            Some(Action::Update(update)) => apply_rule_update(current.clone(), update),
        };
        if next.rule.as_ref().and_then(|r| r.rule.as_ref()).is_none() {
            return Err(TwirpError::invalid("missing rule"));
        }
        next.created_at = current.created_at;
        next.updated_at = Some(now_timestamp());
        self.check_rule_conflicts(&next)?;
        if let Some(slot) = self
            .rules
            .iter_mut()
            .find(|r| r.sip_dispatch_rule_id == req.sip_dispatch_rule_id)
        {
            *slot = next.clone();
        }
        Ok(next)
    }

    pub fn list_rules(
        &self,
        req: &proto::ListSipDispatchRuleRequest,
    ) -> proto::ListSipDispatchRuleResponse {
        let by_trunk = |r: &proto::SipDispatchRuleInfo| {
            req.trunk_ids.is_empty()
                || r.trunk_ids.is_empty()
                || r.trunk_ids.iter().any(|t| req.trunk_ids.contains(t))
        };
        let items = if req.dispatch_rule_ids.is_empty() {
            self.rules.iter().filter(|r| by_trunk(r)).cloned().collect()
        } else {
            req.dispatch_rule_ids
                .iter()
                .map(|id| {
                    self.rules
                        .iter()
                        .find(|r| &r.sip_dispatch_rule_id == id && by_trunk(r))
                        .cloned()
                        .unwrap_or_default()
                })
                .collect()
        };
        proto::ListSipDispatchRuleResponse { items }
    }

    pub fn delete_rule(
        &mut self,
        req: &proto::DeleteSipDispatchRuleRequest,
    ) -> Result<proto::SipDispatchRuleInfo, TwirpError> {
        if req.sip_dispatch_rule_id.is_empty() {
            return Err(TwirpError::invalid("dispatch rule ID is required"));
        }
        let Some(pos) = self
            .rules
            .iter()
            .position(|r| r.sip_dispatch_rule_id == req.sip_dispatch_rule_id)
        else {
            return Err(TwirpError::not_found(
                "requested sip dispatch rule does not exist",
            ));
        };
        Ok(self.rules.remove(pos))
    }

    // --- rooms and agent dispatch ------------------------------------------------------

    /// The room, created (open) if it does not exist.
    pub fn room_mut(&mut self, name: &str) -> &mut Room {
        self.rooms.entry(name.to_owned()).or_insert_with(|| Room {
            sid: new_id("RM_"),
            created_at: Utc::now().timestamp(),
            open: true,
            dispatches: Vec::new(),
            history: Vec::new(),
        })
    }

    pub fn add_dispatch(
        &mut self,
        room: &str,
        agent_name: &str,
        metadata: &str,
    ) -> proto::AgentDispatch {
        let dispatch = proto::AgentDispatch {
            id: new_id("AD_"),
            agent_name: agent_name.to_owned(),
            room: room.to_owned(),
            metadata: metadata.to_owned(),
            state: Some(proto::AgentDispatchState {
                created_at: Utc::now().timestamp_nanos_opt().unwrap_or_default(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = self.room_mut(room);
        // A dispatch to a room that had ended starts a new session of it.
        r.open = true;
        r.dispatches.push(dispatch.clone());
        r.history.push(dispatch.clone());
        dispatch
    }

    pub fn create_dispatch(
        &mut self,
        req: &proto::CreateAgentDispatchRequest,
    ) -> Result<proto::AgentDispatch, TwirpError> {
        if req.room.is_empty() {
            return Err(TwirpError::invalid("room is required"));
        }
        Ok(self.add_dispatch(&req.room, &req.agent_name, &req.metadata))
    }

    pub fn list_dispatch(
        &self,
        req: &proto::ListAgentDispatchRequest,
    ) -> Result<proto::ListAgentDispatchResponse, TwirpError> {
        let Some(room) = self.rooms.get(&req.room).filter(|r| r.open) else {
            return Err(TwirpError::not_found("requested room does not exist"));
        };
        let agent_dispatches = room
            .dispatches
            .iter()
            .filter(|d| req.dispatch_id.is_empty() || d.id == req.dispatch_id)
            .cloned()
            .collect();
        Ok(proto::ListAgentDispatchResponse { agent_dispatches })
    }

    pub fn delete_dispatch(
        &mut self,
        req: &proto::DeleteAgentDispatchRequest,
    ) -> Result<proto::AgentDispatch, TwirpError> {
        let room = self
            .rooms
            .get_mut(&req.room)
            .filter(|r| r.open)
            .ok_or_else(|| TwirpError::not_found("requested room does not exist"))?;
        let pos = room
            .dispatches
            .iter()
            .position(|d| d.id == req.dispatch_id)
            .ok_or_else(|| TwirpError::not_found("dispatch does not exist"))?;
        let mut removed = room.dispatches.remove(pos);
        if let Some(state) = removed.state.as_mut() {
            state.deleted_at = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        }
        Ok(removed)
    }

    /// The trunk LiveKit would pick for a call to `called`: the one holding the number, else
    /// one that accepts any number.
    pub fn trunk_for(&self, called: &str) -> Option<&proto::SipInboundTrunkInfo> {
        let called = normalize_number(called);
        self.trunks
            .iter()
            .find(|t| t.numbers.iter().any(|n| normalize_number(n) == called))
            .or_else(|| self.trunks.iter().find(|t| t.numbers.is_empty()))
    }

    /// The rule LiveKit would apply to a call on `trunk`: one naming the trunk, else one for
    /// every trunk.
    pub fn rule_for(&self, trunk: Option<&str>) -> Option<&proto::SipDispatchRuleInfo> {
        trunk
            .and_then(|t| {
                self.rules
                    .iter()
                    .find(|r| r.trunk_ids.iter().any(|x| x == t))
            })
            .or_else(|| self.rules.iter().find(|r| r.trunk_ids.is_empty()))
    }
}

pub(crate) fn apply_list(list: &mut Vec<String>, update: Option<proto::ListUpdate>) {
    let Some(u) = update else {
        return;
    };
    if u.clear {
        list.clear();
    }
    if !u.set.is_empty() {
        list.clone_from(&u.set);
    }
    for add in u.add {
        if !list.contains(&add) {
            list.push(add);
        }
    }
    list.retain(|x| !u.remove.contains(x));
}

#[allow(deprecated)] // `media_encryption` is still honoured, as LiveKit does
fn apply_trunk_update(
    mut t: proto::SipInboundTrunkInfo,
    u: proto::SipInboundTrunkUpdate,
) -> proto::SipInboundTrunkInfo {
    apply_list(&mut t.numbers, u.numbers);
    apply_list(&mut t.allowed_addresses, u.allowed_addresses);
    apply_list(&mut t.allowed_numbers, u.allowed_numbers);
    if let Some(v) = u.auth_username {
        t.auth_username = v;
    }
    if let Some(v) = u.auth_password {
        t.auth_password = v;
    }
    if let Some(v) = u.auth_realm {
        t.auth_realm = v;
    }
    if let Some(v) = u.name {
        t.name = v;
    }
    if let Some(v) = u.metadata {
        t.metadata = v;
    }
    if let Some(m) = u.media {
        t.media = Some(m);
    }
    if let Some(e) = u.media_encryption {
        t.media_encryption = e;
    }
    t
}

#[allow(deprecated)]
fn apply_rule_update(
    mut r: proto::SipDispatchRuleInfo,
    u: proto::SipDispatchRuleUpdate,
) -> proto::SipDispatchRuleInfo {
    apply_list(&mut r.trunk_ids, u.trunk_ids);
    if let Some(rule) = u.rule {
        r.rule = Some(rule);
    }
    if let Some(v) = u.name {
        r.name = v;
    }
    if let Some(v) = u.metadata {
        r.metadata = v;
    }
    for (k, v) in u.attributes {
        if v.is_empty() {
            r.attributes.remove(&k);
        } else {
            r.attributes.insert(k, v);
        }
    }
    if let Some(m) = u.media {
        r.media = Some(m);
    }
    if let Some(e) = u.media_encryption {
        r.media_encryption = e;
    }
    r
}
