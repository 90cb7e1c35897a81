//! Diagnostics: calls and webhooks as a customer or support sees them.

use super::{CallActivity, CallViewer, Calls};
use crate::error::{Error, ErrorCode};
use crate::ids::{CallId, ConnectionId, RoomName};
use crate::model::{CallRecord, NumberConnection};

impl Calls {
    fn not_found() -> Error {
        Error::new(ErrorCode::NotFound, "no such call")
    }

    /// One call, if `viewer` may see it (another customer's is "not found").
    pub async fn get_call(&self, viewer: &CallViewer, id: CallId) -> Result<CallRecord, Error> {
        self.ports
            .calls
            .get_call(id)
            .await?
            .filter(|c| viewer.may_see(c))
            .ok_or_else(Self::not_found)
    }

    /// The call of a LiveKit room, if `viewer` may see it.
    pub async fn get_call_by_room(
        &self,
        viewer: &CallViewer,
        room: &RoomName,
    ) -> Result<CallRecord, Error> {
        self.ports
            .calls
            .get_call_by_room(room)
            .await?
            .filter(|c| viewer.may_see(c))
            .ok_or_else(Self::not_found)
    }

    /// A connection's most recent calls, newest first, if `viewer` may see the connection.
    pub async fn recent_calls(
        &self,
        viewer: &CallViewer,
        connection: ConnectionId,
        limit: u32,
    ) -> Result<Vec<CallRecord>, Error> {
        self.visible_connection(viewer, connection).await?;
        Ok(self.ports.calls.recent_calls(connection, limit).await?)
    }

    /// Recent calls and the last webhook seen, for a number's status.
    pub async fn activity(
        &self,
        viewer: &CallViewer,
        connection: ConnectionId,
        limit: u32,
    ) -> Result<CallActivity, Error> {
        let recent_calls = self.recent_calls(viewer, connection, limit).await?;
        let last_webhook = match recent_calls.first() {
            Some(call) => self.ports.calls.last_webhook_event(&call.room_name).await?,
            None => None,
        };
        Ok(CallActivity {
            recent_calls,
            last_webhook,
        })
    }

    async fn visible_connection(
        &self,
        viewer: &CallViewer,
        connection: ConnectionId,
    ) -> Result<NumberConnection, Error> {
        self.ports
            .connections
            .get_connection_by_id(connection)
            .await?
            .filter(|c| match viewer {
                CallViewer::Support => true,
                CallViewer::Customer(id) => &c.customer_id == id,
            })
            .ok_or_else(|| Error::new(ErrorCode::NotFound, "no such connection"))
    }
}
