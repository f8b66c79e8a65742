//! Grids, grid workers and 一格一员, and where a grid or village lies, against real PostgreSQL and gRPC.

#![allow(clippy::unwrap_used)]

use crate::common;

use kit::testing::TestInfra;
use proto::registry::v1::registry_client::RegistryClient;
use proto::registry::v1::*;
use tonic::Code;

/// Creates a grid under a village, or a micro-grid under a grid.
async fn create(
    client: &mut RegistryClient<kit::testing::AuthedChannel>,
    kind: &str,
    parent: &str,
    name: &str,
) -> Grid {
    let grid = kind == "grid";
    let request = CreateGridRequest {
        village_code: if grid { parent.into() } else { String::new() },
        parent_grid_code: if grid { String::new() } else { parent.into() },
        name: name.into(),
        kind: proto::json::wire::<proto::registry::v1::GridKind>(kind),
    };
    client.create_grid(request).await.unwrap().into_inner().grid.unwrap()
}

#[tokio::test]
async fn grids_workers_and_location_resolution() {
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, true).await;
    let village = "532901003001";
    let grid = create(&mut s.registry, "grid", village, "一网格").await;
    assert_eq!(grid.code, format!("{village}001"));
    let second = create(&mut s.registry, "grid", village, "二网格").await;
    assert_eq!(second.code, format!("{village}002"));
    let micro = create(&mut s.registry, "micro_grid", &grid.code, "微网格").await;
    assert_eq!(micro.code, format!("{}001", grid.code));

    let person = |name: &str| CreatePersonRequest {
        name: name.into(),
        role: proto::vocab::v1::PersonRole::GridWorker.into(),
        phone: "13812345678".into(),
        id_number: "11010519491231002X".into(),
        home_code: village.into(),
        subsidy_eligible: true,
        eligibility_source: "州综治办 2025-01 名册".into(),
    };
    let a = s.registry.create_person(person("李网格")).await.unwrap().into_inner().person.unwrap();
    assert_eq!(a.phone, "138****5678", "phone masked");
    assert_eq!(a.id_number, "1101**********002X", "id masked");
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT phone_sealed FROM persons WHERE name = '李网格'").fetch_one(&s.pool).await.unwrap();
    assert!(!stored.windows(11).any(|w| w == b"13812345678"), "phone stored encrypted");
    let b = s.registry.create_person(person("王网格")).await.unwrap().into_inner().person.unwrap();

    let r = s
        .registry
        .assign_grid_worker(AssignGridWorkerRequest { grid_code: grid.code.clone(), person_id: a.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.previous_worker_id, "");
    let r = s
        .registry
        .assign_grid_worker(AssignGridWorkerRequest { grid_code: grid.code.clone(), person_id: b.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.previous_worker_id, a.id, "the previous worker's assignment ended");
    assert_eq!(r.grid.unwrap().primary_worker_id, b.id);

    // Concurrent assignments to one grid: each succeeds in turn, and at every moment one worker is active.
    let mut handles = Vec::new();
    for p in [&a, &b, &a, &b] {
        let mut c = s.registry.clone();
        let req = AssignGridWorkerRequest { grid_code: second.code.clone(), person_id: p.id.clone() };
        handles.push(tokio::spawn(async move { c.assign_grid_worker(req).await.map(|_| ()) }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let active: i64 =
        sqlx::query_scalar("SELECT count(*) FROM grid_assignments WHERE grid_code = $1 AND ended_at IS NULL")
            .bind(&second.code)
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert_eq!(active, 1);
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM grid_assignments WHERE grid_code = $1")
        .bind(&second.code)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(history, 4, "every assignment kept in the history");
    // The database itself refuses a second active worker, whatever the code does.
    let dup = sqlx::query("INSERT INTO grid_assignments (grid_code, person_id) VALUES ($1, $2)")
        .bind(&second.code)
        .bind(uuid::Uuid::parse_str(&a.id).unwrap())
        .execute(&s.pool)
        .await;
    assert_eq!(kit::db::violated_constraint(&dup.unwrap_err()), Some("one_active_worker_per_grid"));

    let resolved = s
        .registry
        .resolve_location(ResolveLocationRequest { location_code: grid.code.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.village_code, village);
    assert_eq!(resolved.grid_worker_id, b.id);
    let path: Vec<&str> = resolved.path.iter().map(|n| n.code.as_str()).collect();
    assert_eq!(path, vec![village, "532901003000", "532901000000", "532900000000", "530000000000"]);
    assert!(resolved.path[0].has_center && !resolved.path[4].has_center);

    let children = s
        .registry
        .list_children(ListChildrenRequest { code: "532900000000".into(), page_size: 5, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(children.children.len(), 5);
    let rest = s
        .registry
        .list_children(ListChildrenRequest {
            code: "532900000000".into(),
            page_size: 100,
            page_token: children.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.children.len(), 7, "12 counties over two pages");
    let node = s.registry.get_node(GetNodeRequest { code: "532931000000".into() }).await.unwrap().into_inner();
    assert_eq!(node.node.unwrap().name, "剑川县");
    assert_eq!(node.ancestors.len(), 2);
    s.stop.stop();
}

#[tokio::test]
async fn grids_are_renamed_left_and_retired_with_their_micro_grids() {
    use proto::registry::v1::geo_client::GeoClient;
    let infra = TestInfra::new().await;
    let r = common::start(&infra, true).await;
    let mut client = RegistryClient::new(r.channel.clone());
    let mut geo = GeoClient::new(r.channel.clone());
    let village = "532901003001";
    let grid = create(&mut client, "grid", village, "网格").await;
    let micro = create(&mut client, "micro_grid", &grid.code, "网格").await;
    let worker = |name: &str| CreatePersonRequest {
        name: name.into(),
        role: proto::vocab::v1::PersonRole::GridWorker.into(),
        home_code: village.into(),
        ..Default::default()
    };
    let a = client.create_person(worker("甲")).await.unwrap().into_inner().person.unwrap();
    let b = client.create_person(worker("乙")).await.unwrap().into_inner().person.unwrap();
    client
        .assign_grid_worker(AssignGridWorkerRequest { grid_code: grid.code.clone(), person_id: a.id.clone() })
        .await
        .unwrap();
    client
        .assign_grid_worker(AssignGridWorkerRequest { grid_code: micro.code.clone(), person_id: b.id.clone() })
        .await
        .unwrap();

    let renamed =
        client.update_grid(UpdateGridRequest { code: grid.code.clone(), name: "滨河网格".into() }).await.unwrap();
    assert_eq!(renamed.into_inner().grid.unwrap().name, "滨河网格");

    // A boundary around 下关 makes the grid answer location lookups, until it is retired.
    let square = [(100.22, 25.58), (100.24, 25.58), (100.24, 25.60), (100.22, 25.60), (100.22, 25.58)];
    let ring = Ring { points: square.iter().map(|&(lon, lat)| LonLat { lon, lat }).collect() };
    geo.set_grid_geometry(SetGridGeometryRequest {
        grid_code: grid.code.clone(),
        boundary: vec![ring],
        centre: None,
        datum: "wgs84".into(),
    })
    .await
    .unwrap();
    let here = ResolvePointRequest { lon: 100.23, lat: 25.59, datum: "wgs84".into() };
    assert_eq!(geo.resolve_point(here.clone()).await.unwrap().into_inner().resolved_by, "grid");

    let retired = client.retire_grid(RetireGridRequest { code: grid.code.clone() }).await.unwrap().into_inner();
    assert!(retired.grid.unwrap().retired);
    assert_eq!(retired.retired_micro_grids, vec![micro.code.clone()]);
    let mut ended = retired.ended_worker_ids.clone();
    ended.sort();
    let mut both = vec![a.id.clone(), b.id.clone()];
    both.sort();
    assert_eq!(ended, both, "both assignments ended");
    assert_eq!(geo.resolve_point(here).await.unwrap().into_inner().resolved_by, "county", "out of the index");
    let gone = client.resolve_location(ResolveLocationRequest { location_code: micro.code.clone() }).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "a retired micro-grid is no place for a new case");
    for (name, status) in [
        (
            "assign",
            client
                .assign_grid_worker(AssignGridWorkerRequest { grid_code: grid.code.clone(), person_id: a.id.clone() })
                .await
                .unwrap_err(),
        ),
        (
            "rename",
            client.update_grid(UpdateGridRequest { code: grid.code.clone(), name: "x".into() }).await.unwrap_err(),
        ),
        ("retire twice", client.retire_grid(RetireGridRequest { code: grid.code.clone() }).await.unwrap_err()),
    ] {
        assert_eq!(status.code(), Code::FailedPrecondition, "{name} on a retired grid");
    }
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM grid_assignments WHERE ended_at IS NOT NULL")
        .fetch_one(&r.pool)
        .await
        .unwrap();
    assert_eq!(history, 2, "the history keeps the ended assignments");

    // A worker leaves without a successor.
    let other = create(&mut client, "grid", village, "网格").await;
    assert_eq!(other.code, format!("{village}002"), "codes are never reused");
    client
        .assign_grid_worker(AssignGridWorkerRequest { grid_code: other.code.clone(), person_id: a.id.clone() })
        .await
        .unwrap();
    let left = client
        .end_grid_assignment(EndGridAssignmentRequest { grid_code: other.code.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((left.previous_worker_id.as_str(), left.grid.unwrap().primary_worker_id.as_str()), (a.id.as_str(), ""));
    let bad = client.update_grid(UpdateGridRequest { code: other.code.clone(), name: " ".into() }).await.unwrap_err();
    assert_eq!(kit::grpc::violated_fields(&bad), vec!["name"]);
    let bad = client.retire_grid(RetireGridRequest { code: "5329".into() }).await.unwrap_err();
    assert_eq!(kit::grpc::violated_fields(&bad), vec!["code"]);
    r.stop.stop();
}
