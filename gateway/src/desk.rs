//! The gRPC face of the gateway: every client-facing operation, forwarded to the service that owns it. This is
//! the one place authentication and tree-scoped authorization will sit, in front of every method.

use proto::gateway::v1::desk_server::Desk;
use proto::intake::v1::intake_client::IntakeClient;
use proto::registry::v1::geo_client::GeoClient;
use proto::registry::v1::ledger_client::LedgerClient;
use proto::registry::v1::registry_client::RegistryClient;
use proto::registry::v1::tree_client::TreeClient;
use proto::routing::v1::routing_client::RoutingClient;
use proto::subsidy::v1::subsidy_client::SubsidyClient;
use proto::supervision::v1::supervision_client::SupervisionClient;
use proto::{intake::v1 as intake, registry::v1 as registry, routing::v1 as routing};
use proto::{subsidy::v1 as subsidy, supervision::v1 as supervision};
use tonic::{Request, Response, Status};

use crate::Backends;

/// Clients of every backend; cloning a tonic client is cheap (it shares the channel).
#[derive(Clone)]
pub struct DeskService {
    intake: IntakeClient<kit::grpc::Channel>,
    routing: RoutingClient<kit::grpc::Channel>,
    supervision: SupervisionClient<kit::grpc::Channel>,
    subsidy: SubsidyClient<kit::grpc::Channel>,
    registry: RegistryClient<kit::grpc::Channel>,
    tree: TreeClient<kit::grpc::Channel>,
    geo: GeoClient<kit::grpc::Channel>,
    ledger: LedgerClient<kit::grpc::Channel>,
}

impl DeskService {
    pub fn connect(b: &Backends) -> anyhow::Result<Self> {
        Ok(Self {
            intake: IntakeClient::new(kit::grpc::channel(&b.intake)?),
            routing: RoutingClient::new(kit::grpc::channel(&b.routing)?),
            supervision: SupervisionClient::new(kit::grpc::channel(&b.supervision)?),
            subsidy: SubsidyClient::new(kit::grpc::channel(&b.subsidy)?),
            registry: RegistryClient::new(kit::grpc::channel(&b.registry)?),
            tree: TreeClient::new(kit::grpc::channel(&b.registry)?),
            geo: GeoClient::new(kit::grpc::channel(&b.registry)?),
            ledger: LedgerClient::new(kit::grpc::channel(&b.registry)?),
        })
    }
}

/// Each line forwards one method to one backend; the backend validates, so its statuses (and their field
/// violations) reach the client unchanged.
macro_rules! forward {
    ($($backend:ident . $method:ident ( $req:ty ) -> $resp:ty;)*) => {
        #[tonic::async_trait]
        impl Desk for DeskService {
            $(
                async fn $method(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let mut client = self.$backend.clone();
                    Ok(Response::new(client.$method(request.into_inner()).await?.into_inner()))
                }
            )*
        }
    };
}

forward! {
    intake.register_case(intake::RegisterCaseRequest) -> intake::RegisterCaseResponse;
    intake.get_case(intake::GetCaseRequest) -> intake::GetCaseResponse;
    intake.list_cases(intake::ListCasesRequest) -> intake::ListCasesResponse;
    routing.get_task(routing::GetTaskRequest) -> routing::GetTaskResponse;
    routing.list_tasks(routing::ListTasksRequest) -> routing::ListTasksResponse;
    routing.accept_task(routing::AcceptTaskRequest) -> routing::AcceptTaskResponse;
    routing.return_task(routing::ReturnTaskRequest) -> routing::ReturnTaskResponse;
    routing.review_return(routing::ReviewReturnRequest) -> routing::ReviewReturnResponse;
    routing.resolve_task(routing::ResolveTaskRequest) -> routing::ResolveTaskResponse;
    supervision.verify_case(supervision::VerifyCaseRequest) -> supervision::VerifyCaseResponse;
    supervision.follow_up(supervision::FollowUpRequest) -> supervision::FollowUpResponse;
    supervision.list_deadlines(supervision::ListDeadlinesRequest) -> supervision::ListDeadlinesResponse;
    subsidy.list_credits(subsidy::ListCreditsRequest) -> subsidy::ListCreditsResponse;
    registry.get_node(registry::GetNodeRequest) -> registry::GetNodeResponse;
    registry.list_children(registry::ListChildrenRequest) -> registry::ListChildrenResponse;
    registry.get_person(registry::GetPersonRequest) -> registry::GetPersonResponse;
    tree.list_descendants(registry::ListDescendantsRequest) -> registry::ListDescendantsResponse;
    tree.count_by_level(registry::CountByLevelRequest) -> registry::CountByLevelResponse;
    tree.search_names(registry::SearchNamesRequest) -> registry::SearchNamesResponse;
    geo.resolve_point(registry::ResolvePointRequest) -> registry::ResolvePointResponse;
    ledger.get_ledger(registry::GetLedgerRequest) -> registry::GetLedgerResponse;
    ledger.list_ledger(registry::ListLedgerRequest) -> registry::ListLedgerResponse;
    ledger.issue_directive(registry::IssueDirectiveRequest) -> registry::IssueDirectiveResponse;
    ledger.acknowledge_directive(registry::AcknowledgeDirectiveRequest) -> registry::AcknowledgeDirectiveResponse;
    ledger.answer_directive(registry::AnswerDirectiveRequest) -> registry::AnswerDirectiveResponse;
    ledger.get_directive(registry::GetDirectiveRequest) -> registry::GetDirectiveResponse;
    ledger.list_directive_recipients(registry::ListDirectiveRecipientsRequest) -> registry::ListDirectiveRecipientsResponse;
}
