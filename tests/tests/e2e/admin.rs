//! Administration through the gateway, over gRPC and JSON: a county's business administrator manages grids,
//! persons and 一格一员 inside the county and is refused outside it; a person outside scope is not found; the
//! security administrator grants roles to others but never to itself; a dispatcher administers nothing.

#![allow(clippy::unwrap_used)]

use proto::intake::v1::PutCategoryRequest;
use proto::registry::v1::{
    AssignGridWorkerRequest, CreateGridRequest, CreatePersonRequest, GetPersonRequest, ListGrantsRequest,
    SetGrantRequest,
};
use serde_json::json;
use tests::World;
use tonic::Code;

const COUNTY_VILLAGE: &str = "532901003002"; // a community of 下关街道, 大理市
const OTHER_COUNTY_VILLAGE: &str = "532922101001"; // 漾濞县

fn grid(village: &str, name: &str) -> CreateGridRequest {
    CreateGridRequest {
        village_code: village.into(),
        name: name.into(),
        kind: proto::registry::v1::GridKind::Grid.into(),
        ..Default::default()
    }
}

fn worker(home: &str) -> CreatePersonRequest {
    CreatePersonRequest {
        name: "王五".into(),
        role: proto::vocab::v1::PersonRole::GridWorker.into(),
        phone: "13912345678".into(),
        home_code: home.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_county_business_admin_manages_its_county_over_grpc_and_http() {
    let world = World::start().await;
    let (mut desk, token) = world.sign_in("dl-bizadmin").await;

    // gRPC: a grid in a 大理市 community, a worker living there, and the assignment.
    let g = desk.create_grid(grid(COUNTY_VILLAGE, "二网格")).await.expect("own county").into_inner().grid.unwrap();
    let p = desk.create_person(worker(COUNTY_VILLAGE)).await.expect("own county").into_inner().person.unwrap();
    let assigned = desk
        .assign_grid_worker(AssignGridWorkerRequest { grid_code: g.code.clone(), person_id: p.id.clone() })
        .await
        .expect("own grid")
        .into_inner();
    assert_eq!(assigned.grid.unwrap().primary_worker_id, p.id);
    assert_eq!(
        desk.get_person(GetPersonRequest { id: p.id.clone() }).await.unwrap().into_inner().person.unwrap().phone,
        "139****5678"
    );
    let status = desk.create_grid(grid(OTHER_COUNTY_VILLAGE, "越界")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{}", status.message());

    // HTTP: the same, as JSON.
    let t = Some(token.as_str());
    let body = json!({"village_code": COUNTY_VILLAGE, "name": "三网格", "kind": "grid"}).to_string();
    let (code, created) = world.http_as(t, "POST", "/v1/admin/grids", &body).await;
    assert_eq!(code, 200, "{created}");
    let grid_code = created["grid"]["code"].as_str().unwrap().to_owned();
    let body = json!({"name": "赵六", "role": "grid_worker", "home_code": COUNTY_VILLAGE}).to_string();
    let (code, person) = world.http_as(t, "POST", "/v1/admin/persons", &body).await;
    assert_eq!(code, 200, "{person}");
    let person_id = person["person"]["id"].as_str().unwrap();
    let path = format!("/v1/admin/grids/{grid_code}/worker");
    let (code, assigned) = world.http_as(t, "POST", &path, &json!({"person_id": person_id}).to_string()).await;
    assert_eq!((code, assigned["grid"]["primary_worker_id"].as_str()), (200, Some(person_id)), "{assigned}");
    let (code, renamed) = world
        .http_as(t, "PATCH", &format!("/v1/admin/grids/{grid_code}"), &json!({"name": "三网格（新）"}).to_string())
        .await;
    assert_eq!((code, renamed["grid"]["name"].as_str()), (200, Some("三网格（新）")), "{renamed}");
    let (code, ended) = world.http_as(t, "DELETE", &path, "").await;
    assert_eq!((code, ended["previous_worker_id"].as_str()), (200, Some(person_id)), "{ended}");

    let body = json!({"village_code": OTHER_COUNTY_VILLAGE, "name": "越界", "kind": "grid"}).to_string();
    let (code, refused) = world.http_as(t, "POST", "/v1/admin/grids", &body).await;
    assert_eq!((code, refused["code"].as_str()), (403, Some("PERMISSION_DENIED")), "{refused}");
    let body = json!({"name": "外县人", "role": "grid_worker", "home_code": OTHER_COUNTY_VILLAGE}).to_string();
    let (code, refused) = world.http_as(t, "POST", "/v1/admin/persons", &body).await;
    assert_eq!(code, 403, "{refused}");

    // The rule table and the tariff are there to read for the business administrator.
    let (code, rules) = world.http_as(t, "GET", "/v1/admin/rules", "").await;
    assert_eq!(code, 200, "{rules}");
    assert!(!rules["rules"].as_array().unwrap().is_empty(), "{rules}");
    let (code, tariffs) = world.http_as(t, "GET", "/v1/admin/tariffs", "").await;
    assert_eq!(code, 200, "{tariffs}");
    world.stop().await;
}

#[tokio::test]
async fn a_person_outside_scope_is_not_found() {
    let world = World::start().await;
    let mut root = world.desk.clone();
    let far = root.create_person(worker(OTHER_COUNTY_VILLAGE)).await.unwrap().into_inner().person.unwrap();
    let (mut desk, token) = world.sign_in("dl-bizadmin").await;

    let status = desk.get_person(GetPersonRequest { id: far.id.clone() }).await.unwrap_err();
    assert_eq!((status.code(), status.message().to_owned()), (Code::NotFound, format!("person {} not found", far.id)));
    let (code, body) = world.http_as(Some(&token), "GET", &format!("/v1/persons/{}", far.id), "").await;
    assert_eq!((code, body["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");
    let (code, body) =
        world.http_as(Some(&token), "GET", &format!("/v1/admin/persons/{}/eligibility", far.id), "").await;
    assert_eq!(code, 404, "{body}");
    world.stop().await;
}

#[tokio::test]
async fn the_security_admin_grants_to_others_but_never_to_itself() {
    let world = World::start().await;
    let (mut desk, token) = world.sign_in("secadmin").await;

    // gRPC: a second role for the 下关 clerk, within the clerk's township.
    let granted = desk
        .set_grant(SetGrantRequest {
            username: "xg-clerk".into(),
            role: "follow_up_clerk".into(),
            scope: suite::seed::DEMO_TOWNSHIP.into(),
            ..Default::default()
        })
        .await
        .expect("a grant to another account")
        .into_inner()
        .grant
        .unwrap();
    let listed = desk.list_grants(ListGrantsRequest { username: "xg-clerk".into() }).await.unwrap().into_inner();
    assert!(listed.grants.iter().any(|g| g.id == granted.id && g.role == "follow_up_clerk"), "{listed:?}");

    // HTTP: revoke it, grant again, and list.
    let (code, body) = world.http_as(Some(&token), "DELETE", &format!("/v1/admin/grants/{}", granted.id), "").await;
    assert_eq!(code, 200, "{body}");
    let body = json!({"username": "xg-clerk", "role": "supervisor", "scope": suite::seed::DEMO_TOWNSHIP}).to_string();
    let (code, granted) = world.http_as(Some(&token), "POST", "/v1/admin/grants", &body).await;
    assert_eq!((code, granted["grant"]["role"].as_str()), (200, Some("supervisor")), "{granted}");
    let (code, listed) = world.http_as(Some(&token), "GET", "/v1/admin/grants?username=xg-clerk", "").await;
    assert_eq!(code, 200, "{listed}");
    let roles: Vec<&str> = listed["grants"].as_array().unwrap().iter().filter_map(|g| g["role"].as_str()).collect();
    assert!(roles.contains(&"supervisor") && !roles.contains(&"follow_up_clerk"), "{roles:?}");

    // Never to itself, on either face.
    let to_self = SetGrantRequest {
        username: "secadmin".into(),
        role: "audit_admin".into(),
        scope: "*".into(),
        ..Default::default()
    };
    let status = desk.set_grant(to_self).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{}", status.message());
    let body = json!({"username": "secadmin", "role": "security_admin", "scope": "*"}).to_string();
    let (code, refused) = world.http_as(Some(&token), "POST", "/v1/admin/grants", &body).await;
    assert_eq!((code, refused["code"].as_str()), (403, Some("PERMISSION_DENIED")), "{refused}");

    // Grants are the security administrator's, accounts the system administrator's: neither does the other's.
    let body = json!({"username": "new-user", "person_id": uuid_of_nobody(), "display_name": "新用户", "initial_password": "Zongzhi@2027"});
    let (code, refused) = world.http_as(Some(&token), "POST", "/v1/admin/accounts", &body.to_string()).await;
    assert_eq!(code, 403, "{refused}");
    world.stop().await;
}

fn uuid_of_nobody() -> String {
    "00000000-0000-4000-8000-000000000001".into()
}

#[tokio::test]
async fn a_dispatcher_administers_nothing() {
    let world = World::start().await;
    let (mut desk, token) = world.sign_in("dl-dispatcher").await;
    let status = desk.create_grid(grid(COUNTY_VILLAGE, "调度员的网格")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{}", status.message());
    let body = json!({"village_code": COUNTY_VILLAGE, "name": "调度员的网格", "kind": "grid"}).to_string();
    for (method, path, payload) in [
        ("POST", "/v1/admin/grids", body.as_str()),
        ("POST", "/v1/admin/persons", "{}"),
        ("PUT", "/v1/admin/rules", "{}"),
        ("PUT", "/v1/admin/categories", "{}"),
        ("PUT", "/v1/admin/tariffs", "{}"),
        ("POST", "/v1/admin/grants", "{}"),
        ("GET", "/v1/admin/grants?username=dl-dispatcher", ""),
    ] {
        let (code, refused) = world.http_as(Some(&token), method, path, payload).await;
        assert_eq!((code, refused["code"].as_str()), (403, Some("PERMISSION_DENIED")), "{method} {path}: {refused}");
    }
    world.stop().await;
}

#[tokio::test]
async fn the_code_tables_take_new_versions_from_a_prefecture_admin_only() {
    let world = World::start().await;
    // A county's business administrator: the tables are deployment-wide, so refused over gRPC and JSON.
    let (mut desk, county) = world.sign_in("dl-bizadmin").await;
    let put = PutCategoryRequest { code: "0102".into(), kind: "dispute".into(), name: "邻里".into(), active: None };
    let status = desk.put_category(put).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{}", status.message());
    let category = json!({"code": "0102", "kind": "dispute", "name": "邻里纠纷（含噪音）"}).to_string();
    let tariff = json!({"id": "major-land", "category_prefix": "0104", "amount_fen": 35000,
                        "description": "重大 土地山林水利权属纠纷: 350 元"})
    .to_string();
    for (path, body) in [("/v1/admin/categories", &category), ("/v1/admin/tariffs", &tariff)] {
        let (code, refused) = world.http_as(Some(&county), "PUT", path, body).await;
        assert_eq!((code, refused["code"].as_str()), (403, Some("PERMISSION_DENIED")), "{path}: {refused}");
    }
    // Every signed-in user reads the category table (to register).
    let (code, listed) = world.http_as(Some(&county), "GET", "/v1/admin/categories", "").await;
    assert_eq!(code, 200, "{listed}");
    let current = |listed: &serde_json::Value| {
        listed["categories"].as_array().unwrap().iter().find(|c| c["code"] == "0102").cloned().unwrap()
    };
    assert_eq!(current(&listed)["version"], 1, "{listed}");

    // A prefecture's business administrator adds the next versions.
    let prefecture = kit::testing::keys().token("p", &[("business_admin", "532900000000")]);
    let t = Some(prefecture.as_str());
    let (code, saved) = world.http_as(t, "PUT", "/v1/admin/categories", &category).await;
    assert_eq!(code, 200, "{saved}");
    assert_eq!((saved["category"]["version"].as_u64(), saved["category"]["created_by"].as_str()), (Some(2), Some("p")));
    let (code, listed) = world.http_as(t, "GET", "/v1/admin/categories", "").await;
    assert_eq!((code, current(&listed)["version"].as_u64()), (200, Some(2)), "{listed}");
    let (code, saved) = world.http_as(t, "PUT", "/v1/admin/tariffs", &tariff).await;
    assert_eq!(code, 200, "{saved}");
    assert_eq!((saved["rule"]["version"].as_u64(), saved["rule"]["amount_fen"].as_i64()), (Some(2), Some(35000)));
    let (code, tariffs) = world.http_as(t, "GET", "/v1/admin/tariffs", "").await;
    assert_eq!(code, 200, "{tariffs}");
    let land: Vec<_> = tariffs["rules"].as_array().unwrap().iter().filter(|r| r["id"] == "major-land").collect();
    assert_eq!((land.len(), land[0]["version"].as_u64()), (1, Some(2)), "{tariffs}");
    // Bad input names its field.
    let bad = json!({"code": "12", "kind": "dispute", "name": "x"}).to_string();
    let (code, refused) = world.http_as(t, "PUT", "/v1/admin/categories", &bad).await;
    assert_eq!((code, refused["code"].as_str()), (400, Some("INVALID_ARGUMENT")), "{refused}");
    assert_eq!(refused["fields"], json!(["code"]), "{refused}");
    let bad = json!({"id": "x", "amount_fen": -5, "description": "x"}).to_string();
    let (code, refused) = world.http_as(t, "PUT", "/v1/admin/tariffs", &bad).await;
    assert_eq!((code, &refused["fields"]), (400, &json!(["amount_fen"])), "{refused}");
    world.stop().await;
}
