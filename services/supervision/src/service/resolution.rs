//! Read-your-writes for 核查 (VerifyCase). Supervision learns that a task was resolved (办结) from routing's
//! `case.resolved` event, so for a moment after ResolveTask answers, supervision may not have it yet. Refusing
//! then with FAILED_PRECONDITION ("not resolved") would tell the client something false that it cannot tell
//! from a real refusal. So when the latest task supervision has seen is not resolved, it asks routing, the
//! task's owner, with the caller's own token (the caller sees there what they may see): if routing has the
//! case's latest task resolved and supervision has not received it, the event is on its way, and the
//! verification waits for it up to [`WAIT`], then answers UNAVAILABLE (retry). Only a case routing too has
//! unresolved is refused as not resolved.

use std::time::Duration;

use kit::ids::CaseId;
use proto::routing::v1::ListTasksRequest;
use proto::routing::v1::routing_client::RoutingClient;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};

use crate::error::{Error, Result};

/// How long a verification waits for a resolution routing has recorded and supervision has not yet received:
/// the relay and the consumer take milliseconds; seconds mean the bus or the consumer is behind.
pub const WAIT: Duration = Duration::from_secs(5);

/// How often supervision looks for the event while it waits, on a connection taken for each look.
pub const POLL: Duration = Duration::from_millis(50);

/// Routing, asked on behalf of the caller.
#[derive(Clone, Debug)]
pub struct Routing {
    client: RoutingClient<kit::grpc::Channel>,
}

/// The caller's bearer token, passed on to routing as the caller sent it.
#[derive(Clone, Debug, Default)]
pub struct Caller(Option<AsciiMetadataValue>);

impl Caller {
    pub fn of(metadata: &MetadataMap) -> Self {
        Self(metadata.get("authorization").cloned())
    }
}

impl Routing {
    pub fn connect(url: &str) -> anyhow::Result<Self> {
        Ok(Self { client: RoutingClient::new(kit::grpc::channel(url)?) })
    }

    /// The id of the case's latest task at routing, when that task is resolved; None when it is not, or the
    /// case has no task the caller may see there.
    pub async fn latest_resolved(&self, case_id: CaseId, caller: &Caller) -> Result<Option<String>> {
        let mut request = tonic::Request::new(ListTasksRequest { case_id: case_id.to_string() });
        if let Some(token) = &caller.0 {
            request.metadata_mut().insert("authorization", token.clone());
        }
        match self.client.clone().list_tasks(request).await {
            Ok(answer) => {
                let tasks = answer.into_inner().tasks;
                Ok(tasks
                    .into_iter()
                    .last()
                    .filter(|t| t.state == i32::from(kit::vocab::TaskState::Resolved))
                    .map(|t| t.id))
            }
            Err(status) if matches!(status.code(), tonic::Code::NotFound | tonic::Code::PermissionDenied) => Ok(None),
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "routing did not answer a task lookup");
                Err(Error::Unavailable("routing"))
            }
        }
    }
}

/// The answer when the resolution is still on its way after [`WAIT`].
pub fn still_on_its_way() -> Error {
    Error::Unavailable("the task's resolution, recorded by routing but not yet received by supervision,")
}
