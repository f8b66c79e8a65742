//! Per-object scope at the registry itself: a county's administrator reaches its subtree and nothing else,
//! directives are issued, answered and seen only within the callers' subtrees, and actors come from the token.

#![allow(clippy::unwrap_used)]

use crate::common;

use kit::testing::{AuthedChannel, TestInfra, connect_as, keys};
use proto::registry::v1::geo_client::GeoClient;
use proto::registry::v1::ledger_client::LedgerClient;
use proto::registry::v1::registry_client::RegistryClient;
use proto::registry::v1::tree_client::TreeClient;
use proto::registry::v1::*;
use tonic::Code;

const PREFECTURE: &str = "532900000000"; // 大理州
const COUNTY: &str = "532901000000"; // 大理市
const TOWNSHIP: &str = "532901003000"; // 下关街道
const VILLAGE: &str = "532901003001";
const OTHER_TOWNSHIP: &str = "532901004000"; // 太和街道, also 大理市
const OTHER_TOWNSHIP_VILLAGE: &str = "532901004001";
const OTHER_COUNTY: &str = "532922000000"; // 漾濞县
const OTHER_COUNTY_VILLAGE: &str = "532922101001";

async fn as_person(url: &str, person: &str, role: &str, scope: &str) -> AuthedChannel {
    connect_as(url, &keys().token(person, &[(role, scope)])).await
}

fn person(home: &str) -> CreatePersonRequest {
    CreatePersonRequest {
        name: "李四".into(),
        role: proto::vocab::v1::PersonRole::GridWorker.into(),
        home_code: home.into(),
        ..Default::default()
    }
}

fn grid(village: &str) -> CreateGridRequest {
    CreateGridRequest {
        village_code: village.into(),
        name: "一网格".into(),
        kind: proto::registry::v1::GridKind::Grid.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_county_administrator_reaches_its_subtree_only() {
    let infra = TestInfra::new().await;
    let r = common::start(&infra, true).await;
    let mut root = RegistryClient::new(r.channel.clone());
    let admin = as_person(&r.url, "biz-dali", "business_admin", COUNTY).await;
    let (mut reg, mut tree, mut geo) =
        (RegistryClient::new(admin.clone()), TreeClient::new(admin.clone()), GeoClient::new(admin));

    // Inside: a grid, a person, the assignment, a center, a department.
    let g = reg.create_grid(grid(VILLAGE)).await.expect("own village").into_inner().grid.unwrap();
    let p = reg.create_person(person(VILLAGE)).await.expect("own person").into_inner().person.unwrap();
    reg.assign_grid_worker(AssignGridWorkerRequest { grid_code: g.code.clone(), person_id: p.id.clone() })
        .await
        .expect("own grid, own worker");
    reg.get_person(GetPersonRequest { id: p.id.clone() }).await.expect("own person is read");

    // Outside: the objects of another county, made by the deployment-wide test principal.
    let far_grid = root.create_grid(grid(OTHER_COUNTY_VILLAGE)).await.unwrap().into_inner().grid.unwrap();
    let far = root.create_person(person(OTHER_COUNTY_VILLAGE)).await.unwrap().into_inner().person.unwrap();
    let department = |center: &str| PutDepartmentRequest {
        department: Some(Department {
            code: "YB-SFS".into(),
            name: "漾濞县司法局".into(),
            center_code: center.into(),
            stationing: "resident".into(),
            category_prefixes: vec![],
            retired: false,
        }),
    };
    root.put_department(department(OTHER_COUNTY)).await.unwrap();

    let refused = [
        ("create grid elsewhere", reg.create_grid(grid(OTHER_COUNTY_VILLAGE)).await.unwrap_err()),
        (
            "rename a grid elsewhere",
            reg.update_grid(UpdateGridRequest { code: far_grid.code.clone(), name: "改名".into() }).await.unwrap_err(),
        ),
        (
            "retire a grid elsewhere",
            reg.retire_grid(RetireGridRequest { code: far_grid.code.clone() }).await.unwrap_err(),
        ),
        (
            "end an assignment elsewhere",
            reg.end_grid_assignment(EndGridAssignmentRequest { grid_code: far_grid.code.clone() }).await.unwrap_err(),
        ),
        (
            "a boundary elsewhere",
            geo.set_grid_geometry(SetGridGeometryRequest { grid_code: far_grid.code.clone(), ..Default::default() })
                .await
                .unwrap_err(),
        ),
        ("create a person elsewhere", reg.create_person(person(OTHER_COUNTY_VILLAGE)).await.unwrap_err()),
        (
            "assign a worker from elsewhere",
            reg.assign_grid_worker(AssignGridWorkerRequest { grid_code: g.code.clone(), person_id: far.id.clone() })
                .await
                .unwrap_err(),
        ),
        ("move a department in from elsewhere", reg.put_department(department(COUNTY)).await.unwrap_err()),
        ("station a department elsewhere", reg.put_department(department(OTHER_COUNTY)).await.unwrap_err()),
        (
            "a rotation elsewhere",
            tree.set_rotation(SetRotationRequest { department_code: "YB-SFS".into(), entries: vec![] })
                .await
                .unwrap_err(),
        ),
        (
            "open a center elsewhere",
            tree.establish_center(EstablishCenterRequest { code: OTHER_COUNTY.into() }).await.unwrap_err(),
        ),
        ("close a center above", tree.close_center(CloseCenterRequest { code: PREFECTURE.into() }).await.unwrap_err()),
        (
            "eligibility elsewhere",
            tree.change_eligibility(ChangeEligibilityRequest {
                person_id: far.id.clone(),
                subsidy_eligible: true,
                eligibility_source: "名册".into(),
                reason: String::new(),
            })
            .await
            .unwrap_err(),
        ),
    ];
    for (case, status) in &refused {
        assert_eq!(status.code(), Code::PermissionDenied, "{case}: {}", status.message());
    }

    // Reads of a person elsewhere answer as for nobody at all.
    let hidden = reg.get_person(GetPersonRequest { id: far.id.clone() }).await.unwrap_err();
    assert_eq!((hidden.code(), hidden.message().to_owned()), (Code::NotFound, format!("person {} not found", far.id)));
    let history = tree.list_eligibility_changes(ListEligibilityChangesRequest { person_id: far.id.clone() }).await;
    assert_eq!(history.unwrap_err().code(), Code::NotFound);

    // The subsidy service reads any person with its own identity: it checks a resolver's eligibility.
    let subsidy = keys().auth("subsidy").identity("subsidy").unwrap().bearer().unwrap();
    let mut service = RegistryClient::new(connect_as(&r.url, &subsidy).await);
    service.get_person(GetPersonRequest { id: far.id.clone() }).await.expect("subsidy reads any person");

    // The division import rewrites the whole tree: a county's administrator may not run it.
    let chunk = ImportDivisionsChunk { data: b"code,name,level,parent_code\n".to_vec(), ..Default::default() };
    let import = tree.import_divisions(tokio_stream_once(chunk)).await;
    let status = match import {
        Err(s) => s,
        Ok(mut stream) => loop {
            match stream.get_mut().message().await {
                Err(s) => break s,
                Ok(Some(_)) => {}
                Ok(None) => panic!("an import by a county administrator ran"),
            }
        },
    };
    assert_eq!(status.code(), Code::PermissionDenied, "{}", status.message());
    r.stop.stop();
}

fn tokio_stream_once(
    chunk: ImportDivisionsChunk,
) -> impl tonic::codegen::tokio_stream::Stream<Item = ImportDivisionsChunk> {
    tonic::codegen::tokio_stream::iter([chunk])
}

#[tokio::test]
async fn directives_are_issued_answered_and_seen_within_scope() {
    let infra = TestInfra::new().await;
    let r = common::start(&infra, true).await;
    let mut leader = LedgerClient::new(as_person(&r.url, "leader-dali", "center_leader", COUNTY).await);
    let mut xiaguan = LedgerClient::new(as_person(&r.url, "disp-xiaguan", "dispatcher", TOWNSHIP).await);
    let mut taihe = LedgerClient::new(as_person(&r.url, "disp-taihe", "dispatcher", OTHER_TOWNSHIP).await);
    let mut yangbi = LedgerClient::new(as_person(&r.url, "leader-yangbi", "center_leader", OTHER_COUNTY).await);

    // Issued from the leader's own center into its subtree, with the leader recorded as the issuer.
    let issued = leader.issue_directive(common::issue(COUNTY, TOWNSHIP)).await.expect("own center").into_inner();
    let id = issued.directive.unwrap().id;
    let issued_by: String = sqlx::query_scalar("SELECT issued_by FROM directives WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&r.pool)
        .await
        .unwrap();
    assert_eq!(issued_by, "leader-dali");

    for (case, request) in [
        ("from a center above the grant", common::issue(PREFECTURE, TOWNSHIP)),
        ("from another county's center", common::issue(OTHER_COUNTY, OTHER_COUNTY)),
    ] {
        let status = leader.issue_directive(request).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{case}: {}", status.message());
    }

    // A recipient center answers only for itself; another township of the county is not a recipient's side.
    let ack = |center: &str| AcknowledgeDirectiveRequest { directive_id: id.clone(), center_code: center.into() };
    xiaguan.acknowledge_directive(ack(VILLAGE)).await.expect("a village of its township");
    let by: String = sqlx::query_scalar(
        "SELECT acknowledged_by FROM directive_recipients WHERE directive_id = $1::uuid AND center_code = $2",
    )
    .bind(&id)
    .bind(VILLAGE)
    .fetch_one(&r.pool)
    .await
    .unwrap();
    assert_eq!(by, "disp-xiaguan");
    let status = taihe.acknowledge_directive(ack(VILLAGE)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{}", status.message());
    let status = taihe
        .answer_directive(AnswerDirectiveRequest {
            directive_id: id.clone(),
            center_code: OTHER_TOWNSHIP_VILLAGE.into(),
            report: "已排查".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "in its scope but not a recipient: {}", status.message());

    // Seen from the issuing side and the receiving side; elsewhere it is not found, worded as for no directive.
    leader.get_directive(GetDirectiveRequest { id: id.clone() }).await.expect("the issuer's side");
    xiaguan.get_directive(GetDirectiveRequest { id: id.clone() }).await.expect("a recipient's side");
    let list = ListDirectiveRecipientsRequest { directive_id: id.clone(), ..Default::default() };
    xiaguan.list_directive_recipients(list.clone()).await.expect("a recipient lists");
    for (who, client) in [("another township", &mut taihe), ("another county", &mut yangbi)] {
        let status = client.get_directive(GetDirectiveRequest { id: id.clone() }).await.unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::NotFound, format!("directive {id} not found").as_str()),
            "{who}"
        );
        let status = client.list_directive_recipients(list.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{who}");
    }
    r.stop.stop();
}
