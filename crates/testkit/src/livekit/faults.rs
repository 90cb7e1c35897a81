//! The Twirp methods the emulator serves, fault injection per method, and the request log.

use std::fmt;
use std::time::Duration;

/// A LiveKit Twirp service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `livekit.SIP`: inbound trunks and dispatch rules.
    Sip,
    /// `livekit.AgentDispatchService`: explicit agent dispatch.
    AgentDispatch,
    /// `livekit.RoomService`: the participants of a room (what a retried outbound call
    /// looks for before it dials again).
    Room,
}

impl Service {
    /// The name in the path: `/twirp/livekit.<name>/<method>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sip => "SIP",
            Self::AgentDispatch => "AgentDispatchService",
            Self::Room => "RoomService",
        }
    }
}

/// A Twirp method the emulator serves, named as in LiveKit's `.proto` files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    CreateSipInboundTrunk,
    UpdateSipInboundTrunk,
    GetSipInboundTrunk,
    ListSipInboundTrunk,
    DeleteSipTrunk,
    CreateSipDispatchRule,
    UpdateSipDispatchRule,
    ListSipDispatchRule,
    DeleteSipDispatchRule,
    CreateDispatch,
    ListDispatch,
    DeleteDispatch,
    CreateSipOutboundTrunk,
    UpdateSipOutboundTrunk,
    ListSipOutboundTrunk,
    CreateSipParticipant,
    GetParticipant,
}

impl Method {
    pub const ALL: [Method; 17] = [
        Self::CreateSipInboundTrunk,
        Self::UpdateSipInboundTrunk,
        Self::GetSipInboundTrunk,
        Self::ListSipInboundTrunk,
        Self::DeleteSipTrunk,
        Self::CreateSipDispatchRule,
        Self::UpdateSipDispatchRule,
        Self::ListSipDispatchRule,
        Self::DeleteSipDispatchRule,
        Self::CreateDispatch,
        Self::ListDispatch,
        Self::DeleteDispatch,
        Self::CreateSipOutboundTrunk,
        Self::UpdateSipOutboundTrunk,
        Self::ListSipOutboundTrunk,
        Self::CreateSipParticipant,
        Self::GetParticipant,
    ];

    /// The method name in the path.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateSipInboundTrunk => "CreateSIPInboundTrunk",
            Self::UpdateSipInboundTrunk => "UpdateSIPInboundTrunk",
            Self::GetSipInboundTrunk => "GetSIPInboundTrunk",
            Self::ListSipInboundTrunk => "ListSIPInboundTrunk",
            Self::DeleteSipTrunk => "DeleteSIPTrunk",
            Self::CreateSipDispatchRule => "CreateSIPDispatchRule",
            Self::UpdateSipDispatchRule => "UpdateSIPDispatchRule",
            Self::ListSipDispatchRule => "ListSIPDispatchRule",
            Self::DeleteSipDispatchRule => "DeleteSIPDispatchRule",
            Self::CreateDispatch => "CreateDispatch",
            Self::ListDispatch => "ListDispatch",
            Self::DeleteDispatch => "DeleteDispatch",
            Self::CreateSipOutboundTrunk => "CreateSIPOutboundTrunk",
            Self::UpdateSipOutboundTrunk => "UpdateSIPOutboundTrunk",
            Self::ListSipOutboundTrunk => "ListSIPOutboundTrunk",
            Self::CreateSipParticipant => "CreateSIPParticipant",
            Self::GetParticipant => "GetParticipant",
        }
    }

    pub fn service(self) -> Service {
        match self {
            Self::CreateDispatch | Self::ListDispatch | Self::DeleteDispatch => {
                Service::AgentDispatch
            }
            Self::GetParticipant => Service::Room,
            _ => Service::Sip,
        }
    }

    /// Whether the method changes state (what "reconnect changes nothing" counts).
    pub fn is_write(self) -> bool {
        !matches!(
            self,
            Self::GetSipInboundTrunk
                | Self::ListSipInboundTrunk
                | Self::ListSipOutboundTrunk
                | Self::ListSipDispatchRule
                | Self::ListDispatch
                | Self::GetParticipant
        )
    }

    /// The method a path names, if the emulator serves it.
    pub fn from_path(path: &str) -> Option<Self> {
        let rest = path.strip_prefix("/twirp/livekit.")?;
        let (service, method) = rest.split_once('/')?;
        Self::ALL
            .into_iter()
            .find(|m| m.service().as_str() == service && m.as_str() == method)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service().as_str(), self.as_str())
    }
}

/// Which requests a fault or a count applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodSelector {
    Any,
    Service(Service),
    Method(Method),
    /// Every method that changes state.
    Writes,
}

impl MethodSelector {
    pub fn matches(self, method: Option<Method>) -> bool {
        match (self, method) {
            (Self::Any, _) => true,
            (Self::Service(s), Some(m)) => m.service() == s,
            (Self::Method(want), Some(m)) => want == m,
            (Self::Writes, Some(m)) => m.is_write(),
            (_, None) => false,
        }
    }
}

impl From<Method> for MethodSelector {
    fn from(m: Method) -> Self {
        Self::Method(m)
    }
}

impl From<Service> for MethodSelector {
    fn from(s: Service) -> Self {
        Self::Service(s)
    }
}

/// A fault injected on the methods a [`MethodSelector`] picks.
///
/// `Latency` stays until [`super::LiveKitEmulator::clear_faults`]; the others act on the next
/// `count` matching requests and then disappear. Faults act before authentication, as a load
/// balancer in front of LiveKit would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Delay every matching request by this much before serving it.
    Latency(Duration),
    /// Answer with this HTTP status and the Twirp error code LiveKit uses for it
    /// (`unavailable` for 503, `internal` for 500, `resource_exhausted` for 429, ...);
    /// the request is not served.
    Fail { count: u32, status: u16 },
    /// Serve the request (its change happens), then answer as `Fail` would: the answer was
    /// lost on the way back.
    LoseAnswer { count: u32, status: u16 },
    /// Accept the request and answer nothing for the emulator's hang time; the request is
    /// not served.
    Hang { count: u32 },
}

pub(crate) struct ActiveFault {
    pub selector: MethodSelector,
    pub fault: Fault,
    pub remaining: u32,
}

impl ActiveFault {
    pub fn new(selector: MethodSelector, fault: Fault) -> Self {
        let remaining = match &fault {
            Fault::Latency(_) => u32::MAX,
            Fault::Fail { count, .. } | Fault::LoseAnswer { count, .. } | Fault::Hang { count } => {
                *count
            }
        };
        Self {
            selector,
            fault,
            remaining,
        }
    }
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Proceed,
    Hang,
    Fail(u16),
    LoseAnswer(u16),
}

pub(crate) struct Decision {
    pub latency: Duration,
    pub action: Action,
}

/// Every matching latency adds up; the first matching counted fault with uses left is used
/// up by one.
pub(crate) fn decide(faults: &mut Vec<ActiveFault>, method: Option<Method>) -> Decision {
    let mut latency = Duration::ZERO;
    let mut action = Action::Proceed;
    for f in faults.iter_mut() {
        if !f.selector.matches(method) {
            continue;
        }
        match &f.fault {
            Fault::Latency(d) => latency += *d,
            counted if action == Action::Proceed && f.remaining > 0 => {
                action = match counted {
                    Fault::Fail { status, .. } => Action::Fail(*status),
                    Fault::LoseAnswer { status, .. } => Action::LoseAnswer(*status),
                    Fault::Hang { .. } => Action::Hang,
                    Fault::Latency(_) => Action::Proceed,
                };
                f.remaining -= 1;
            }
            _ => {}
        }
    }
    faults.retain(|f| f.remaining > 0);
    Decision { latency, action }
}

/// One request as the emulator received it. Tokens are never kept: only the API key that
/// signed it (the unverified `iss`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Arrival order, from 0.
    pub seq: u64,
    /// `None` for a path the emulator does not serve.
    pub method: Option<Method>,
    pub http_method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    pub api_key: Option<String>,
    /// The answer's status; `None` while the request is being served (or hangs).
    pub status: Option<u16>,
    /// The Twirp error code of a failed answer.
    pub error_code: Option<String>,
}
