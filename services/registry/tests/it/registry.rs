//! The registry against real PostgreSQL and gRPC over a socket.

#![allow(clippy::unwrap_used)]

use crate::common;

use kit::testing::TestInfra;
use proto::registry::v1::*;
use tonic::Code;

async fn level_counts(pool: &sqlx::PgPool, prefix: &str) -> Vec<(i16, i64)> {
    sqlx::query_as(
        "SELECT level, count(*) FROM divisions WHERE code LIKE $1 || '%' AND retired_at IS NULL GROUP BY level ORDER BY level",
    )
    .bind(prefix)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn dali_import_counts_and_reimport_is_a_no_op() {
    let infra = TestInfra::new().await;
    let s = common::start(&infra, false).await;
    let first = registry::import_dali(&s.pool).await.unwrap();
    assert_eq!(first.rows, 1285);
    assert_eq!(first.added, 1285);
    assert_eq!(level_counts(&s.pool, "5329").await, vec![(2, 1), (3, 12), (4, 112), (5, 1159)]);
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM divisions c LEFT JOIN divisions p ON p.code = c.parent_code \
         WHERE c.parent_code IS NOT NULL AND (p.code IS NULL OR p.level >= c.level)",
    )
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert_eq!(orphans, 0, "every parent exists and is of a lower level");
    let centers: i64 = sqlx::query_scalar("SELECT count(*) FROM centers").fetch_one(&s.pool).await.unwrap();
    assert_eq!(centers, 1 + 12 + 112 + 1159, "a center at every prefecture, county, township and village");

    let changes_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM division_changes").fetch_one(&s.pool).await.unwrap();
    let again = registry::import_dali(&s.pool).await.unwrap();
    assert_eq!((again.added, again.changed, again.unchanged), (0, 0, 1285), "re-import changes nothing");
    let changes_after: i64 =
        sqlx::query_scalar("SELECT count(*) FROM division_changes").fetch_one(&s.pool).await.unwrap();
    assert_eq!(changes_before, changes_after);
    s.stop.stop();
}

#[tokio::test]
async fn a_newer_edition_renames_and_retires_and_a_damaged_file_changes_nothing() {
    use registry::tree::domain::ImportOptions;
    use registry::tree::import::{import, parse};
    let infra = TestInfra::new().await;
    let s = common::start(&infra, false).await;
    registry::import_dali(&s.pool).await.unwrap();

    // A damaged file: the last village's level contradicts its code.
    let mut lines: Vec<String> = registry::DALI_CSV.lines().map(str::to_owned).collect();
    let last = lines.len() - 1;
    lines[last] = lines[last].replacen(",5,", ",4,", 1);
    let err = parse(lines.join("\n").as_bytes(), &mut |_| {}).expect_err("rejected");
    assert!(err.to_string().starts_with("line 1286:"), "names the line: {err}");

    // A child whose parent exists nowhere is caught against the database, and nothing is written.
    let orphan = "code,name,level,parent_code\n532999001001,无主村,5,532999001000\n";
    let rows = parse(orphan.as_bytes(), &mut |_| {}).unwrap();
    let opts = ImportOptions { edition: "2024".into(), ..Default::default() };
    let err = import(&s.pool, &rows, &opts, &mut |_| {}).await.expect_err("rejected");
    assert!(err.to_string().contains("line 2"), "{err}");
    assert_eq!(level_counts(&s.pool, "5329").await, vec![(2, 1), (3, 12), (4, 112), (5, 1159)]);

    // A newer edition of the whole table: one village renamed, one gone.
    let mut lines: Vec<String> = registry::DALI_CSV.lines().map(str::to_owned).collect();
    let renamed = lines.iter().position(|l| l.starts_with("532901003001,")).unwrap();
    lines[renamed] = "532901003001,新名社区,5,532901003000".into();
    let gone = lines.iter().position(|l| l.starts_with("532901003002,")).unwrap();
    lines.remove(gone);
    let newer = lines.join("\n");
    let rows = parse(newer.as_bytes(), &mut |_| {}).unwrap();
    let opts = ImportOptions { edition: "2024".into(), retire_missing: true, establish_centers: false };
    let mut phases = Vec::new();
    let r = import(&s.pool, &rows, &opts, &mut |p| phases.push(p.phase)).await.unwrap();
    assert_eq!((r.added, r.changed, r.retired), (0, 1, 1));
    assert!(phases.contains(&"loaded") && phases.contains(&"merged"), "progress reported: {phases:?}");
    let retired: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT retired_at FROM divisions WHERE code = '532901003002'")
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert!(retired.is_some(), "the vanished unit is retired, not deleted");
    let history: Vec<String> =
        sqlx::query_scalar("SELECT change FROM division_changes WHERE edition = '2024' ORDER BY change")
            .fetch_all(&s.pool)
            .await
            .unwrap();
    assert_eq!(history, vec!["renamed", "retired"]);
    s.stop.stop();
}

#[tokio::test]
async fn bad_inputs_name_their_field() {
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, false).await;
    registry::import_dali(&s.pool).await.unwrap();
    let c = &mut s.registry;
    // One refusal per RPC over the socket (the contract: INVALID_ARGUMENT naming the field) and the NOT_FOUND
    // cases; the field-by-field cases are unit tests in the rooms' domains.
    let cases: Vec<(&str, tonic::Status, Code, &str)> = vec![
        (
            "get_node short code",
            c.get_node(GetNodeRequest { code: "5329".into() }).await.unwrap_err(),
            Code::InvalidArgument,
            "code",
        ),
        (
            "get_node unknown",
            c.get_node(GetNodeRequest { code: "532999000000".into() }).await.unwrap_err(),
            Code::NotFound,
            "",
        ),
        (
            "resolve empty",
            c.resolve_location(ResolveLocationRequest::default()).await.unwrap_err(),
            Code::InvalidArgument,
            "location_code",
        ),
        (
            "resolve a county",
            c.resolve_location(ResolveLocationRequest { location_code: "532901000000".into() }).await.unwrap_err(),
            Code::InvalidArgument,
            "location_code",
        ),
        (
            "resolve unknown grid",
            c.resolve_location(ResolveLocationRequest { location_code: "532901003001999".into() }).await.unwrap_err(),
            Code::NotFound,
            "",
        ),
        (
            "grid kind",
            c.create_grid(CreateGridRequest {
                village_code: "532901003001".into(),
                name: "x".into(),
                kind: 99,
                ..Default::default()
            })
            .await
            .unwrap_err(),
            Code::InvalidArgument,
            "kind",
        ),
        (
            "grid under a township",
            c.create_grid(CreateGridRequest {
                village_code: "532901003000".into(),
                name: "x".into(),
                kind: proto::registry::v1::GridKind::Grid.into(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
            Code::InvalidArgument,
            "village_code",
        ),
        (
            "person phone",
            c.create_person(CreatePersonRequest {
                name: "x".into(),
                role: proto::vocab::v1::PersonRole::Mediator.into(),
                phone: "1381234".into(),
                home_code: "532901003001".into(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
            Code::InvalidArgument,
            "phone",
        ),
        (
            "get_person id",
            c.get_person(GetPersonRequest { id: "nope".into() }).await.unwrap_err(),
            Code::InvalidArgument,
            "id",
        ),
        (
            "get_person unknown",
            c.get_person(GetPersonRequest { id: uuid::Uuid::new_v4().to_string() }).await.unwrap_err(),
            Code::NotFound,
            "",
        ),
        (
            "assign person id",
            c.assign_grid_worker(AssignGridWorkerRequest {
                grid_code: "532901003001001".into(),
                person_id: "x".into(),
            })
            .await
            .unwrap_err(),
            Code::InvalidArgument,
            "person_id",
        ),
        (
            "assign grid code",
            c.assign_grid_worker(AssignGridWorkerRequest {
                grid_code: "5329".into(),
                person_id: uuid::Uuid::new_v4().to_string(),
            })
            .await
            .unwrap_err(),
            Code::InvalidArgument,
            "grid_code",
        ),
        (
            "department missing",
            c.put_department(PutDepartmentRequest::default()).await.unwrap_err(),
            Code::InvalidArgument,
            "department",
        ),
        (
            "department without center",
            c.put_department(PutDepartmentRequest {
                department: Some(Department {
                    code: "SFS".into(),
                    name: "司法所".into(),
                    center_code: "530000000000".into(),
                    stationing: "resident".into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap_err(),
            Code::InvalidArgument,
            "department.center_code",
        ),
    ];
    for (name, status, code, field) in cases {
        kit::testing::assert_refused(name, &status, code, field);
    }
    s.stop.stop();
}

/// A client rotated and then revoked within one second: the token its new secret got in between was dated one
/// second after the rotation (so the rotation did not end it), and the revocation must end it all the same.
#[tokio::test]
async fn a_revocation_ends_the_token_dated_after_the_one_before() {
    use identity::revocations;
    let infra = TestInfra::new().await;
    let s = common::start(&infra, false).await;
    let subject = revocations::client_subject("hotline");
    let revoke = |reason: &'static str| {
        let (pool, subject) = (s.pool.clone(), subject.clone());
        async move {
            let mut tx = pool.begin().await.unwrap();
            revocations::revoke(&mut tx, &subject, reason).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    revoke("rotated").await;
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    let issued_at = revocations::issue_time(&s.pool, &subject, now).await.unwrap();
    revoke("revoked").await;
    let list = revocations::since(&s.pool, 0).await.unwrap();
    let [rotated, revoked] = &list[..] else { panic!("{list:?}") };
    assert!(issued_at > u64::try_from(rotated.not_before).unwrap(), "the new secret's token outlives the rotation");
    assert!(issued_at <= u64::try_from(revoked.not_before).unwrap(), "{list:?}, issued at {issued_at}");
}
