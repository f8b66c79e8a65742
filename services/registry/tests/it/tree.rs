//! The Tree service against real PostgreSQL and gRPC over a socket: streamed imports, the per-level rollup,
//! subtree paging and search, centers, rotations, eligibility history. (The national import runs only in the
//! `import_bench` binary.)

#![allow(clippy::unwrap_used)]

use crate::common;

use kit::testing::AuthedChannel as Channel;
use kit::testing::TestInfra;
use proto::registry::v1::tree_client::TreeClient;
use proto::registry::v1::*;
use tonic::Code;
use tonic::codegen::tokio_stream;

const DALI: &str = "532900000000";
const DALI_CITY: &str = "532901000000";
const YANGBI: &str = "532922000000";
const XIAGUAN: &str = "532901003000";

/// Streams a file in 8 KiB chunks, options on the first; returns every progress message, or the status.
async fn import(
    tree: &mut TreeClient<Channel>,
    csv: &str,
    edition: &str,
    retire: bool,
) -> Result<Vec<ImportDivisionsProgress>, tonic::Status> {
    let chunks: Vec<ImportDivisionsChunk> = csv
        .as_bytes()
        .chunks(8 << 10)
        .enumerate()
        .map(|(i, data)| ImportDivisionsChunk {
            edition: if i == 0 { edition.into() } else { String::new() },
            retire_missing: i == 0 && retire,
            establish_centers: i == 0,
            data: data.to_vec(),
        })
        .collect();
    let mut answers = tree.import_divisions(tokio_stream::iter(chunks)).await?.into_inner();
    let mut out = Vec::new();
    while let Some(p) = answers.message().await? {
        out.push(p);
    }
    Ok(out)
}

async fn counts(tree: &mut TreeClient<Channel>, code: &str) -> Vec<(u32, u64)> {
    let r = tree.count_by_level(CountByLevelRequest { code: code.into() }).await.unwrap().into_inner();
    assert_eq!(r.total, r.counts.iter().map(|c| c.count).sum::<u64>());
    r.counts.into_iter().map(|c| (c.level, c.count)).collect()
}

async fn scalar(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn dali_streamed_import_reports_progress_and_exact_counts() {
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, false).await;
    let progress = import(&mut s.tree, registry::DALI_CSV, "2023", false).await.unwrap();
    let phases: Vec<&str> = progress.iter().map(|p| p.phase.as_str()).collect();
    for phase in ["received", "parsed", "loaded", "merged", "counted", "done"] {
        assert!(phases.contains(&phase), "phase {phase} reported: {phases:?}");
    }
    let last = progress.last().unwrap();
    assert_eq!(last.phase, "done");
    let report = last.report.unwrap();
    assert_eq!((report.rows, report.added, report.changed, report.retired), (1285, 1285, 0, 0));
    assert!(progress[..progress.len() - 1].iter().all(|p| p.report.is_none()), "only the last message reports");

    assert_eq!(counts(&mut s.tree, DALI).await, vec![(3, 12), (4, 112), (5, 1159)]);
    assert_eq!(counts(&mut s.tree, DALI_CITY).await, vec![(4, 13), (5, 144)]);
    assert_eq!(counts(&mut s.tree, "000000000000").await, vec![(1, 1), (2, 1), (3, 12), (4, 112), (5, 1159)]);
    assert_eq!(counts(&mut s.tree, "532901003001").await, vec![], "a village has no descendants");

    let again = import(&mut s.tree, registry::DALI_CSV, "2023", false).await.unwrap();
    let report = again.last().unwrap().report.unwrap();
    assert_eq!((report.added, report.changed, report.unchanged), (0, 0, 1285), "a re-import changes nothing");
    assert!(!again.iter().any(|p| p.phase == "counted"), "nothing changed, so the rollup is not rebuilt");
    s.stop.stop();
}

#[tokio::test]
async fn descendants_page_by_code_and_search_stays_in_its_subtree() {
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, false).await;
    registry::import_dali(&s.pool).await.unwrap();
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let req = ListDescendantsRequest { code: DALI.into(), level: 4, page_size: 50, page_token: token };
        let r = s.tree.list_descendants(req).await.unwrap().into_inner();
        pages += 1;
        assert!(r.nodes.iter().all(|n| n.level == 4 && n.code.starts_with("5329")));
        seen.extend(r.nodes.into_iter().map(|n| n.code));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    assert_eq!((pages, seen.len()), (3, 112), "112 townships over pages of 50");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in code order, no repeats");
    let villages = s.tree.list_descendants(ListDescendantsRequest {
        code: DALI_CITY.into(),
        level: 5,
        page_size: 1000,
        ..Default::default()
    });
    assert_eq!(villages.await.unwrap().into_inner().nodes.len(), 144);

    // A name from 大理市 is found there, and a search of 漾濞县 never returns anything outside 漾濞县.
    let (code, name): (String, String) = sqlx::query_as(
        "SELECT code, name FROM divisions WHERE code LIKE '532901%' AND level = 5 ORDER BY code LIMIT 1",
    )
    .fetch_one(&s.pool)
    .await
    .unwrap();
    let inside = s
        .tree
        .search_names(SearchNamesRequest { code: DALI_CITY.into(), query: name.clone(), page_size: 200 })
        .await
        .unwrap()
        .into_inner();
    assert!(inside.nodes.iter().any(|n| n.code == code), "{name} found in its county");
    let outside = s
        .tree
        .search_names(SearchNamesRequest { code: YANGBI.into(), query: name.clone(), page_size: 200 })
        .await
        .unwrap()
        .into_inner();
    assert!(
        outside.nodes.iter().all(|n| n.code.starts_with("532922") && n.name.contains(&name)),
        "{:?}",
        outside.nodes
    );
    let broad = s
        .tree
        .search_names(SearchNamesRequest { code: YANGBI.into(), query: "村".into(), page_size: 200 })
        .await
        .unwrap()
        .into_inner();
    assert!(!broad.nodes.is_empty() && broad.nodes.iter().all(|n| n.code.starts_with("532922") && n.code != YANGBI));
    let literal = s
        .tree
        .search_names(SearchNamesRequest { code: DALI.into(), query: "%".into(), page_size: 10 })
        .await
        .unwrap()
        .into_inner();
    assert!(literal.nodes.is_empty(), "a typed % is matched literally");
    s.stop.stop();
}

#[tokio::test]
async fn a_malformed_stream_names_the_line_and_writes_nothing() {
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, false).await;
    let mut lines: Vec<String> = registry::DALI_CSV.lines().map(str::to_owned).collect();
    let last = lines.len() - 1;
    lines[last] = lines[last].replacen(",5,", ",4,", 1);
    let damaged = lines.join("\n");
    let err = import(&mut s.tree, &damaged, "2023", false).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("line 1286"), "names the line: {}", err.message());
    assert_eq!(kit::grpc::violated_fields(&err), vec!["data".to_owned()]);
    assert_eq!(scalar(&s.pool, "SELECT count(*) FROM divisions").await, 0, "nothing written");

    import(&mut s.tree, registry::DALI_CSV, "2023", false).await.unwrap();
    let changes = scalar(&s.pool, "SELECT count(*) FROM division_changes").await;
    let orphan = "code,name,level,parent_code\n532999001001,无主村,5,532999001000\n";
    let err = import(&mut s.tree, orphan, "2024", false).await.unwrap_err();
    assert!(err.code() == Code::InvalidArgument && err.message().contains("line 2"), "{err:?}");
    assert_eq!(scalar(&s.pool, "SELECT count(*) FROM division_changes").await, changes, "registry unchanged");
    assert_eq!(counts(&mut s.tree, DALI).await, vec![(3, 12), (4, 112), (5, 1159)]);
    s.stop.stop();
}

#[tokio::test]
async fn the_rollup_follows_a_newer_edition_that_retires_a_village() {
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, false).await;
    registry::import_dali(&s.pool).await.unwrap();
    let township_before = counts(&mut s.tree, XIAGUAN).await;
    let newer: Vec<&str> = registry::DALI_CSV.lines().filter(|l| !l.starts_with("532901003002,")).collect();
    let progress = import(&mut s.tree, &newer.join("\n"), "2024", true).await.unwrap();
    let report = progress.last().unwrap().report.unwrap();
    assert_eq!((report.retired, report.added, report.changed), (1, 0, 0));
    assert_eq!(counts(&mut s.tree, DALI).await, vec![(3, 12), (4, 112), (5, 1158)]);
    assert_eq!(counts(&mut s.tree, "000000000000").await.last(), Some(&(5, 1158)));
    let after = counts(&mut s.tree, XIAGUAN).await;
    assert_eq!(after, vec![(5, township_before[0].1 - 1)], "the township lost one village");
    let gone = s.tree.list_descendants(ListDescendantsRequest {
        code: XIAGUAN.into(),
        level: 5,
        page_size: 100,
        ..Default::default()
    });
    assert!(
        gone.await.unwrap().into_inner().nodes.iter().all(|n| n.code != "532901003002"),
        "retired units are not listed"
    );

    // Brought back by the full table again: restored and counted again.
    let progress = import(&mut s.tree, registry::DALI_CSV, "2025", true).await.unwrap();
    assert_eq!(progress.last().unwrap().report.unwrap().changed, 1);
    assert_eq!(counts(&mut s.tree, DALI).await, vec![(3, 12), (4, 112), (5, 1159)]);
    s.stop.stop();
}

#[tokio::test]
async fn bad_inputs_name_their_field() {
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, false).await;
    registry::import_dali(&s.pool).await.unwrap();
    let t = &mut s.tree;
    let uuid = uuid::Uuid::new_v4().to_string();
    let entry = |weekday: u32, from: &str, to: &str| RotationEntry {
        weekday,
        from_date: from.into(),
        to_date: to.into(),
        stationed: true,
    };
    let rotation = |e: RotationEntry| SetRotationRequest { department_code: "RSJ".into(), entries: vec![e] };
    let eligibility = |person_id: &str, source: &str| ChangeEligibilityRequest {
        person_id: person_id.into(),
        eligibility_source: source.into(),
        ..Default::default()
    };
    // One refusal per RPC over the socket (the contract: INVALID_ARGUMENT naming the field) and the NOT_FOUND
    // cases; the field-by-field cases are unit tests in the rooms' domains (tree, centers, grids).
    let cases: Vec<(&str, tonic::Status, Code, &str)> = vec![
        (
            "descendants code",
            t.list_descendants(ListDescendantsRequest { code: "5329".into(), level: 4, ..Default::default() })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
            "code",
        ),
        (
            "descendants level above",
            t.list_descendants(ListDescendantsRequest { code: DALI.into(), level: 2, ..Default::default() })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
            "level",
        ),
        (
            "descendants unknown",
            t.list_descendants(ListDescendantsRequest { code: "532999000000".into(), level: 4, ..Default::default() })
                .await
                .unwrap_err(),
            Code::NotFound,
            "",
        ),
        (
            "count code",
            t.count_by_level(CountByLevelRequest { code: "".into() }).await.unwrap_err(),
            Code::InvalidArgument,
            "code",
        ),
        (
            "count unknown",
            t.count_by_level(CountByLevelRequest { code: "532999000000".into() }).await.unwrap_err(),
            Code::NotFound,
            "",
        ),
        (
            "search query",
            t.search_names(SearchNamesRequest { code: DALI.into(), query: " ".into(), page_size: 0 })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
            "query",
        ),
        (
            "search long query",
            t.search_names(SearchNamesRequest { code: DALI.into(), query: "村".repeat(51), page_size: 0 })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
            "query",
        ),
        (
            "search code",
            t.search_names(SearchNamesRequest { code: "abc".into(), query: "村".into(), page_size: 0 })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
            "code",
        ),
        ("import empty", import(t, "", "2023", false).await.unwrap_err(), Code::InvalidArgument, "data"),
        ("import header", import(t, "a,b\n1,2\n", "2023", false).await.unwrap_err(), Code::InvalidArgument, "data"),
        (
            "establish code",
            t.establish_center(EstablishCenterRequest { code: "53290".into() }).await.unwrap_err(),
            Code::InvalidArgument,
            "code",
        ),
        (
            "close code",
            t.close_center(CloseCenterRequest { code: "".into() }).await.unwrap_err(),
            Code::InvalidArgument,
            "code",
        ),
        (
            "rotation department",
            t.set_rotation(SetRotationRequest::default()).await.unwrap_err(),
            Code::InvalidArgument,
            "department_code",
        ),
        (
            "rotation weekday 8",
            t.set_rotation(rotation(entry(8, "", ""))).await.unwrap_err(),
            Code::InvalidArgument,
            "entries[0].weekday",
        ),
        (
            "rotation unknown department",
            t.set_rotation(rotation(entry(1, "", ""))).await.unwrap_err(),
            Code::NotFound,
            "",
        ),
        (
            "stationed center",
            t.list_stationed_departments(ListStationedDepartmentsRequest {
                center_code: "x".into(),
                date: String::new(),
            })
            .await
            .unwrap_err(),
            Code::InvalidArgument,
            "center_code",
        ),
        (
            "stationed no center",
            t.list_stationed_departments(ListStationedDepartmentsRequest {
                center_code: "530000000000".into(),
                date: String::new(),
            })
            .await
            .unwrap_err(),
            Code::NotFound,
            "",
        ),
        (
            "eligibility person",
            t.change_eligibility(eligibility("x", "名册")).await.unwrap_err(),
            Code::InvalidArgument,
            "person_id",
        ),
        (
            "eligibility unknown",
            t.change_eligibility(eligibility(&uuid, "名册")).await.unwrap_err(),
            Code::NotFound,
            "",
        ),
        (
            "history person",
            t.list_eligibility_changes(ListEligibilityChangesRequest { person_id: "".into() }).await.unwrap_err(),
            Code::InvalidArgument,
            "person_id",
        ),
        (
            "history unknown",
            t.list_eligibility_changes(ListEligibilityChangesRequest { person_id: uuid.clone() }).await.unwrap_err(),
            Code::NotFound,
            "",
        ),
    ];
    for (name, status, code, field) in cases {
        kit::testing::assert_refused(name, &status, code, field);
    }
    s.stop.stop();
}

/// A first load counts descendants in memory; later imports rebuild the counts in SQL. Both must agree.
#[tokio::test]
async fn the_first_load_rollup_matches_the_sql_rebuild() {
    let infra = TestInfra::new().await;
    let s = common::start(&infra, false).await;
    registry::import_dali(&s.pool).await.expect("first load");
    let snapshot = |pool: sqlx::PgPool| async move {
        sqlx::query_as::<_, (String, i16, i64)>("SELECT code, level, n FROM division_counts ORDER BY code, level")
            .fetch_all(&pool)
            .await
            .expect("counts")
    };
    let from_memory = snapshot(s.pool.clone()).await;
    assert!(from_memory.contains(&(DALI.to_owned(), 5, 1159)), "prefecture villages counted");
    let mut tx = s.pool.begin().await.expect("tx");
    registry::tree::db::refresh_counts(&mut tx).await.expect("rebuild");
    tx.commit().await.expect("commit");
    assert_eq!(snapshot(s.pool.clone()).await, from_memory);
    s.stop.stop();
}
