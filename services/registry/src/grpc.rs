//! The four gRPC services of the registry's own rooms (the fifth, Auth, is `identity::AuthService`), wired to the rooms that answer them: each method hands its
//! request to one room's `grpc` function and wraps the answer. Nothing else happens here.

use proto::registry::v1 as pb;
use sqlx::PgPool;
use tonic::{Request, Response, Status, Streaming};

use crate::geo::Geo;
use crate::grids::service::Grids;
use crate::{centers, geo, grids, ledger, tree};

/// Implements a service trait by delegating each listed method to `room_fn(&self.field, request)`; `extra`
/// holds the methods that do not follow that shape.
macro_rules! delegate {
    ($trait:path, $ty:ty, [$($method:ident: $req:ident -> $resp:ident => $room:path, $field:tt;)*] $($extra:tt)*) => {
        #[tonic::async_trait]
        impl $trait for $ty {
            $(
                async fn $method(&self, request: Request<pb::$req>) -> Result<Response<pb::$resp>, Status> {
                    Ok(Response::new($room(&self.$field, request).await?))
                }
            )*
            $($extra)*
        }
    };
}

/// The Registry service: the tree's nodes, grids and people, departments.
pub struct RegistryService {
    pub pool: PgPool,
    pub grids: Grids,
}

delegate!(pb::registry_server::Registry, RegistryService, [
    get_node: GetNodeRequest -> GetNodeResponse => tree::grpc::get_node, pool;
    list_children: ListChildrenRequest -> ListChildrenResponse => grids::grpc::list_children, grids;
    resolve_location: ResolveLocationRequest -> ResolveLocationResponse => grids::grpc::resolve_location, grids;
    create_grid: CreateGridRequest -> CreateGridResponse => grids::grpc::create_grid, grids;
    get_grid: GetGridRequest -> GetGridResponse => grids::grpc::get_grid, grids;
    update_grid: UpdateGridRequest -> UpdateGridResponse => grids::grpc::update_grid, grids;
    retire_grid: RetireGridRequest -> RetireGridResponse => grids::grpc::retire_grid, grids;
    end_grid_assignment: EndGridAssignmentRequest -> EndGridAssignmentResponse => grids::grpc::end_grid_assignment, grids;
    create_person: CreatePersonRequest -> CreatePersonResponse => grids::grpc::create_person, grids;
    get_person: GetPersonRequest -> GetPersonResponse => grids::grpc::get_person, grids;
    assign_grid_worker: AssignGridWorkerRequest -> AssignGridWorkerResponse => grids::grpc::assign_grid_worker, grids;
    list_departments: ListDepartmentsRequest -> ListDepartmentsResponse => centers::grpc::list_departments, pool;
    put_department: PutDepartmentRequest -> PutDepartmentResponse => centers::grpc::put_department, pool;
    get_department: GetDepartmentRequest -> GetDepartmentResponse => centers::grpc::get_department, pool;
]);

/// The Tree service: the tree at national scale and its import, centers and their departments' duty,
/// eligibility changes.
pub struct TreeService {
    pub pool: PgPool,
    pub grids: Grids,
}

delegate!(pb::tree_server::Tree, TreeService, [
    list_descendants: ListDescendantsRequest -> ListDescendantsResponse => tree::grpc::list_descendants, pool;
    count_by_level: CountByLevelRequest -> CountByLevelResponse => tree::grpc::count_by_level, pool;
    search_names: SearchNamesRequest -> SearchNamesResponse => tree::grpc::search_names, pool;
    establish_center: EstablishCenterRequest -> EstablishCenterResponse => centers::grpc::establish_center, pool;
    close_center: CloseCenterRequest -> CloseCenterResponse => centers::grpc::close_center, pool;
    set_rotation: SetRotationRequest -> SetRotationResponse => centers::grpc::set_rotation, pool;
    list_stationed_departments: ListStationedDepartmentsRequest -> ListStationedDepartmentsResponse
        => centers::grpc::list_stationed_departments, pool;
    change_eligibility: ChangeEligibilityRequest -> ChangeEligibilityResponse => grids::grpc::change_eligibility, grids;
    list_eligibility_changes: ListEligibilityChangesRequest -> ListEligibilityChangesResponse
        => grids::grpc::list_eligibility_changes, grids;
]
    type ImportDivisionsStream = tree::grpc::ImportStream;

    async fn import_divisions(
        &self,
        request: Request<Streaming<pb::ImportDivisionsChunk>>,
    ) -> Result<Response<Self::ImportDivisionsStream>, Status> {
        Ok(Response::new(tree::grpc::import_divisions(&self.pool, request).await?))
    }
);

/// The Ledger service: the tree ledger and directives.
pub struct LedgerService(pub PgPool);

delegate!(pb::ledger_server::Ledger, LedgerService, [
    get_ledger: GetLedgerRequest -> GetLedgerResponse => ledger::grpc::get_ledger, 0;
    list_ledger: ListLedgerRequest -> ListLedgerResponse => ledger::grpc::list_ledger, 0;
    issue_directive: IssueDirectiveRequest -> IssueDirectiveResponse => ledger::grpc::issue_directive, 0;
    acknowledge_directive: AcknowledgeDirectiveRequest -> AcknowledgeDirectiveResponse
        => ledger::grpc::acknowledge_directive, 0;
    answer_directive: AnswerDirectiveRequest -> AnswerDirectiveResponse => ledger::grpc::answer_directive, 0;
    get_directive: GetDirectiveRequest -> GetDirectiveResponse => ledger::grpc::get_directive, 0;
    list_directive_recipients: ListDirectiveRecipientsRequest -> ListDirectiveRecipientsResponse
        => ledger::grpc::list_directive_recipients, 0;
]);

/// The Geo service: location lookup and grid boundaries.
pub struct GeoService(pub Geo);

delegate!(pb::geo_server::Geo, GeoService, [
    set_grid_geometry: SetGridGeometryRequest -> SetGridGeometryResponse => geo::grpc::set_grid_geometry, 0;
]
    async fn resolve_point(
        &self,
        request: Request<pb::ResolvePointRequest>,
    ) -> Result<Response<pb::ResolvePointResponse>, Status> {
        Ok(Response::new(geo::grpc::resolve_point(&self.0, request)?))
    }
);
