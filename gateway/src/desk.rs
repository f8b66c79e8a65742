//! The gRPC face of the gateway: every client-facing operation, forwarded to the service that owns it. The
//! gateway checks the caller's token and role before forwarding (so a bad token goes no further), and forwards
//! the token itself: each service verifies it again and decides on the object's place in the tree, which only
//! it knows.

use proto::gateway::v1::desk_server::Desk;
use proto::intake::v1::intake_client::IntakeClient;
use proto::registry::v1::auth_client::AuthClient;
use proto::registry::v1::geo_client::GeoClient;
use proto::registry::v1::ledger_client::LedgerClient;
use proto::registry::v1::registry_client::RegistryClient;
use proto::registry::v1::tree_client::TreeClient;
use proto::routing::v1::routing_client::RoutingClient;
use proto::subsidy::v1::subsidy_client::SubsidyClient;
use proto::supervision::v1::supervision_client::SupervisionClient;
use proto::{intake::v1 as intake, registry::v1 as registry, routing::v1 as routing};
use proto::{subsidy::v1 as subsidy, supervision::v1 as supervision};
use std::net::IpAddr;
use std::sync::Arc;

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
    auth: AuthClient<kit::grpc::Channel>,
    verifier: Arc<kit::auth::Verifier>,
    edge: Arc<crate::limit::Edge>,
    /// Proxies (an ingress) whose X-Forwarded-For is believed (GATEWAY_TRUSTED_PROXIES).
    trusted_proxies: kit::proxies::Proxies,
    /// Where the calls refused here are recorded (none in a test of the limits alone).
    trail: Option<Arc<crate::trail::Trail>>,
}

/// The metadata key the JSON face puts its TCP peer in, for the Desk; never read on the gRPC face.
pub const PEER: &str = "x-zongzhi-peer";

impl DeskService {
    pub fn connect(
        b: &Backends,
        verifier: Arc<kit::auth::Verifier>,
        edge: Arc<crate::limit::Edge>,
        trusted_proxies: &kit::proxies::Proxies,
        trail: Option<Arc<crate::trail::Trail>>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            intake: IntakeClient::new(kit::grpc::channel(&b.intake)?),
            routing: RoutingClient::new(kit::grpc::channel(&b.routing)?),
            supervision: SupervisionClient::new(kit::grpc::channel(&b.supervision)?),
            subsidy: SubsidyClient::new(kit::grpc::channel(&b.subsidy)?),
            registry: RegistryClient::new(kit::grpc::channel(&b.registry)?),
            tree: TreeClient::new(kit::grpc::channel(&b.registry)?),
            geo: GeoClient::new(kit::grpc::channel(&b.registry)?),
            ledger: LedgerClient::new(kit::grpc::channel(&b.registry)?),
            auth: AuthClient::new(kit::grpc::channel(&b.registry)?),
            verifier,
            edge,
            trusted_proxies: trusted_proxies.clone(),
            trail,
        })
    }

    /// Admits a call to `method` (a Desk method name) as the backend would, takes its place in flight (the
    /// message is decoded by now), and builds the request that carries the caller's token (and address, for
    /// the backend's audit record) on. The place is held until the returned [`Admitted`] drops. A refusal
    /// here reaches no backend, so it is recorded in the gateway's own trail ([`crate::trail`]).
    async fn admit<T>(
        &self,
        method: &str,
        request: Request<T>,
    ) -> Result<(Request<T>, crate::limit::Admitted), Status> {
        let (metadata, extensions, message) = request.into_parts();
        let headers = metadata.into_headers();
        let path = format!("/zongzhi.gateway.v1.Desk/{method}");
        // The client: the TCP peer (the gRPC face's socket; the JSON face's, carried in PEER), or behind a
        // trusted proxy the address X-Forwarded-For gives. It is what the limits count and what the audit
        // records name; a header a client chose counts for nothing.
        use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
        let socket = extensions
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .or_else(|| extensions.get::<TlsConnectInfo<TcpConnectInfo>>().and_then(|i| i.get_ref().remote_addr()));
        let peer = match socket {
            Some(addr) => Some(addr.ip()),
            None => headers.get(PEER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()),
        };
        let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        let client = peer.map(|p| self.trusted_proxies.client(p, forwarded));
        // A gRPC call was admitted by the server's auth layer already (its principal is attached, its refusals
        // recorded there); a call from the JSON face arrives in process and is admitted here.
        let principal = match extensions.get::<Arc<kit::auth::Principal>>() {
            Some(principal) => Some(principal.clone()),
            None => match kit::auth::layer::decide(&self.verifier, &path, &headers) {
                Ok(principal) => principal,
                Err(r) => return Err(self.refused(&path, r.principal.as_deref(), peer, client, r.status).await),
            },
        };
        let public = kit::auth::policy::access(&path) == Some(kit::auth::policy::Access::Public);
        let admitted = match self.edge.admit(client, public) {
            Ok(admitted) => admitted,
            Err(status) => return Err(self.refused(&path, principal.as_deref(), peer, client, status).await),
        };
        let mut out = Request::new(message);
        if let Some(token) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            out.metadata_mut()
                .insert("authorization", token.parse().map_err(|_| Status::unauthenticated("malformed token"))?);
        }
        if let Some(addr) = client.and_then(|a| a.to_string().parse().ok()) {
            out.metadata_mut().insert("x-forwarded-for", addr);
        }
        Ok((out, admitted))
    }

    /// Records a call refused here (with who made it, when the token was good) and gives back its status.
    async fn refused(
        &self,
        path: &str,
        principal: Option<&kit::auth::Principal>,
        peer: Option<IpAddr>,
        client: Option<IpAddr>,
        status: Status,
    ) -> Status {
        if let Some(trail) = &self.trail {
            trail.refused(kit::auth::layer::entry(path, principal, peer, client), client, &status).await;
        }
        status
    }
}

/// Each line forwards one method to one backend; the backend validates, so its statuses (and their field
/// violations) reach the client unchanged.
macro_rules! forward {
    ($($backend:ident . $method:ident / $name:literal ( $req:ty ) -> $resp:ty;)*) => {
        #[tonic::async_trait]
        impl Desk for DeskService {
            $(
                async fn $method(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let (request, _in_flight) = self.admit($name, request).await?;
                    let mut client = self.$backend.clone();
                    Ok(Response::new(client.$method(request).await?.into_inner()))
                }
            )*
        }
    };
}

forward! {
    auth.sign_in / "SignIn" (registry::SignInRequest) -> registry::TokenResponse;
    auth.refresh / "Refresh" (registry::RefreshRequest) -> registry::TokenResponse;
    auth.sign_out / "SignOut" (registry::SignOutRequest) -> registry::SignOutResponse;
    auth.client_token / "ClientToken" (registry::ClientTokenRequest) -> registry::TokenResponse;
    auth.change_password / "ChangePassword" (registry::ChangePasswordRequest) -> registry::ChangePasswordResponse;
    auth.who_am_i / "WhoAmI" (registry::WhoAmIRequest) -> registry::WhoAmIResponse;
    intake.register_case / "RegisterCase" (intake::RegisterCaseRequest) -> intake::RegisterCaseResponse;
    intake.get_case / "GetCase" (intake::GetCaseRequest) -> intake::GetCaseResponse;
    intake.list_cases / "ListCases" (intake::ListCasesRequest) -> intake::ListCasesResponse;
    intake.unmask_party / "UnmaskParty" (intake::UnmaskPartyRequest) -> intake::UnmaskPartyResponse;
    routing.get_task / "GetTask" (routing::GetTaskRequest) -> routing::GetTaskResponse;
    routing.list_tasks / "ListTasks" (routing::ListTasksRequest) -> routing::ListTasksResponse;
    routing.accept_task / "AcceptTask" (routing::AcceptTaskRequest) -> routing::AcceptTaskResponse;
    routing.return_task / "ReturnTask" (routing::ReturnTaskRequest) -> routing::ReturnTaskResponse;
    routing.review_return / "ReviewReturn" (routing::ReviewReturnRequest) -> routing::ReviewReturnResponse;
    routing.resolve_task / "ResolveTask" (routing::ResolveTaskRequest) -> routing::ResolveTaskResponse;
    routing.summon_co_handlers / "SummonCoHandlers" (routing::SummonCoHandlersRequest) -> routing::SummonCoHandlersResponse;
    routing.report_in / "ReportIn" (routing::ReportInRequest) -> routing::ReportInResponse;
    routing.record_contribution / "RecordContribution" (routing::RecordContributionRequest) -> routing::RecordContributionResponse;
    routing.release_co_handler / "ReleaseCoHandler" (routing::ReleaseCoHandlerRequest) -> routing::ReleaseCoHandlerResponse;
    routing.list_co_handlers / "ListCoHandlers" (routing::ListCoHandlersRequest) -> routing::ListCoHandlersResponse;
    routing.dispatch_case / "DispatchCase" (routing::DispatchCaseRequest) -> routing::DispatchCaseResponse;
    routing.recall_task / "RecallTask" (routing::RecallTaskRequest) -> routing::RecallTaskResponse;
    routing.escalate_case / "EscalateCase" (routing::EscalateCaseRequest) -> routing::EscalateCaseResponse;
    supervision.verify_case / "VerifyCase" (supervision::VerifyCaseRequest) -> supervision::VerifyCaseResponse;
    supervision.follow_up / "FollowUp" (supervision::FollowUpRequest) -> supervision::FollowUpResponse;
    supervision.list_deadlines / "ListDeadlines" (supervision::ListDeadlinesRequest) -> supervision::ListDeadlinesResponse;
    supervision.list_slips / "ListSlips" (supervision::ListSlipsRequest) -> supervision::ListSlipsResponse;
    supervision.acknowledge_slip / "AcknowledgeSlip" (supervision::AcknowledgeSlipRequest) -> supervision::AcknowledgeSlipResponse;
    supervision.get_slip_pdf / "GetSlipPdf" (supervision::GetSlipPdfRequest) -> supervision::GetSlipPdfResponse;
    supervision.request_clock_change / "RequestClockChange" (supervision::RequestClockChangeRequest) -> supervision::RequestClockChangeResponse;
    supervision.decide_clock_change / "DecideClockChange" (supervision::DecideClockChangeRequest) -> supervision::DecideClockChangeResponse;
    supervision.resume_clock / "ResumeClock" (supervision::ResumeClockRequest) -> supervision::ResumeClockResponse;
    supervision.list_clock_changes / "ListClockChanges" (supervision::ListClockChangesRequest) -> supervision::ListClockChangesResponse;
    supervision.add_time_policy / "AddTimePolicy" (supervision::AddTimePolicyRequest) -> supervision::AddTimePolicyResponse;
    supervision.list_time_policies / "ListTimePolicies" (supervision::ListTimePoliciesRequest) -> supervision::ListTimePoliciesResponse;
    subsidy.list_credits / "ListCredits" (subsidy::ListCreditsRequest) -> subsidy::ListCreditsResponse;
    registry.get_node / "GetNode" (registry::GetNodeRequest) -> registry::GetNodeResponse;
    registry.list_children / "ListChildren" (registry::ListChildrenRequest) -> registry::ListChildrenResponse;
    registry.get_person / "GetPerson" (registry::GetPersonRequest) -> registry::GetPersonResponse;
    tree.list_descendants / "ListDescendants" (registry::ListDescendantsRequest) -> registry::ListDescendantsResponse;
    tree.count_by_level / "CountByLevel" (registry::CountByLevelRequest) -> registry::CountByLevelResponse;
    tree.search_names / "SearchNames" (registry::SearchNamesRequest) -> registry::SearchNamesResponse;
    geo.resolve_point / "ResolvePoint" (registry::ResolvePointRequest) -> registry::ResolvePointResponse;
    ledger.get_ledger / "GetLedger" (registry::GetLedgerRequest) -> registry::GetLedgerResponse;
    ledger.list_ledger / "ListLedger" (registry::ListLedgerRequest) -> registry::ListLedgerResponse;
    ledger.issue_directive / "IssueDirective" (registry::IssueDirectiveRequest) -> registry::IssueDirectiveResponse;
    ledger.acknowledge_directive / "AcknowledgeDirective" (registry::AcknowledgeDirectiveRequest) -> registry::AcknowledgeDirectiveResponse;
    ledger.answer_directive / "AnswerDirective" (registry::AnswerDirectiveRequest) -> registry::AnswerDirectiveResponse;
    ledger.get_directive / "GetDirective" (registry::GetDirectiveRequest) -> registry::GetDirectiveResponse;
    ledger.list_directive_recipients / "ListDirectiveRecipients" (registry::ListDirectiveRecipientsRequest) -> registry::ListDirectiveRecipientsResponse;
    registry.create_grid / "CreateGrid" (registry::CreateGridRequest) -> registry::CreateGridResponse;
    registry.get_grid / "GetGrid" (registry::GetGridRequest) -> registry::GetGridResponse;
    registry.update_grid / "UpdateGrid" (registry::UpdateGridRequest) -> registry::UpdateGridResponse;
    registry.retire_grid / "RetireGrid" (registry::RetireGridRequest) -> registry::RetireGridResponse;
    geo.set_grid_geometry / "SetGridGeometry" (registry::SetGridGeometryRequest) -> registry::SetGridGeometryResponse;
    registry.create_person / "CreatePerson" (registry::CreatePersonRequest) -> registry::CreatePersonResponse;
    registry.assign_grid_worker / "AssignGridWorker" (registry::AssignGridWorkerRequest) -> registry::AssignGridWorkerResponse;
    registry.end_grid_assignment / "EndGridAssignment" (registry::EndGridAssignmentRequest) -> registry::EndGridAssignmentResponse;
    registry.list_departments / "ListDepartments" (registry::ListDepartmentsRequest) -> registry::ListDepartmentsResponse;
    registry.put_department / "PutDepartment" (registry::PutDepartmentRequest) -> registry::PutDepartmentResponse;
    tree.set_rotation / "SetRotation" (registry::SetRotationRequest) -> registry::SetRotationResponse;
    tree.list_stationed_departments / "ListStationedDepartments" (registry::ListStationedDepartmentsRequest) -> registry::ListStationedDepartmentsResponse;
    tree.establish_center / "EstablishCenter" (registry::EstablishCenterRequest) -> registry::EstablishCenterResponse;
    tree.close_center / "CloseCenter" (registry::CloseCenterRequest) -> registry::CloseCenterResponse;
    tree.change_eligibility / "ChangeEligibility" (registry::ChangeEligibilityRequest) -> registry::ChangeEligibilityResponse;
    tree.list_eligibility_changes / "ListEligibilityChanges" (registry::ListEligibilityChangesRequest) -> registry::ListEligibilityChangesResponse;
    routing.list_rules / "ListRules" (routing::ListRulesRequest) -> routing::ListRulesResponse;
    routing.put_rule / "PutRule" (routing::PutRuleRequest) -> routing::PutRuleResponse;
    subsidy.list_tariff_rules / "ListTariffRules" (subsidy::ListTariffRulesRequest) -> subsidy::ListTariffRulesResponse;
    subsidy.put_tariff_rule / "PutTariffRule" (subsidy::PutTariffRuleRequest) -> subsidy::PutTariffRuleResponse;
    intake.list_categories / "ListCategories" (intake::ListCategoriesRequest) -> intake::ListCategoriesResponse;
    intake.put_category / "PutCategory" (intake::PutCategoryRequest) -> intake::PutCategoryResponse;
    auth.create_account / "CreateAccount" (registry::CreateAccountRequest) -> registry::CreateAccountResponse;
    auth.activate_account / "ActivateAccount" (registry::ActivateAccountRequest) -> registry::ActivateAccountResponse;
    auth.approve_account / "ApproveAccount" (registry::ApproveAccountRequest) -> registry::ApproveAccountResponse;
    auth.disable_account / "DisableAccount" (registry::DisableAccountRequest) -> registry::DisableAccountResponse;
    auth.create_client / "CreateClient" (registry::CreateClientRequest) -> registry::CreateClientResponse;
    auth.activate_client / "ActivateClient" (registry::ActivateClientRequest) -> registry::ActivateClientResponse;
    auth.revoke_client / "RevokeClient" (registry::RevokeClientRequest) -> registry::RevokeClientResponse;
    auth.rotate_client_secret / "RotateClientSecret" (registry::RotateClientSecretRequest) -> registry::RotateClientSecretResponse;
    auth.set_grant / "SetGrant" (registry::SetGrantRequest) -> registry::SetGrantResponse;
    auth.revoke_grant / "RevokeGrant" (registry::RevokeGrantRequest) -> registry::RevokeGrantResponse;
    auth.list_grants / "ListGrants" (registry::ListGrantsRequest) -> registry::ListGrantsResponse;
    intake.list_case_board / "ListCaseBoard" (intake::ListCaseBoardRequest) -> intake::ListCaseBoardResponse;
    intake.list_duplicate_candidates / "ListDuplicateCandidates" (intake::ListDuplicateCandidatesRequest) -> intake::ListDuplicateCandidatesResponse;
    intake.merge_case / "MergeCase" (intake::MergeCaseRequest) -> intake::MergeCaseResponse;
    intake.unmerge_case / "UnmergeCase" (intake::UnmergeCaseRequest) -> intake::UnmergeCaseResponse;
    routing.list_task_queue / "ListTaskQueue" (routing::ListTaskQueueRequest) -> routing::ListTaskQueueResponse;
    supervision.get_rates / "GetRates" (supervision::GetRatesRequest) -> supervision::GetRatesResponse;
    supervision.export_rates / "ExportRates" (supervision::ExportRatesRequest) -> supervision::ExportRatesResponse;
}
