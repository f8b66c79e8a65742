//! The scope rule's two forms agree: random scopes over random rows, on a real database, select exactly the
//! rows the Rust form says they reach, for each shape of table the services have (a case with its units and
//! its reporter, a task with its one unit, a queue reached by unit and handler alone, a credit reached by place
//! and person). Scopes and rows come from small alphabets, so nodes, grids, units and actors often collide,
//! empty values included.

#![allow(clippy::unwrap_used)]

use kit::auth::{Columns, Row, ScopeSet, UnitColumn};
use kit::testing::{Rng, TestInfra};

/// Up to `most` picks from `items`.
fn some(rng: &mut Rng, items: &[&str], most: usize) -> Vec<String> {
    (0..rng.below(most + 1)).map(|_| (*rng.pick(items)).to_owned()).collect()
}

const DIVISIONS: &[&str] = &["532900000000", "532901000000", "532901003000", "532901003001", "532922000000", ""];
const GRIDS: &[&str] = &["532901003001001", "532901003001001002", "532901003001002", "532922100200003", ""];
const UNITS: &[&str] = &["zjj", "sfs", "gaj", ""];
const ACTORS: &[&str] = &["p-1", "p-2", "client-a", ""];

struct Stored {
    id: i32,
    area_path: Vec<String>,
    grid_code: String,
    unit_code: String,
    units: Vec<String>,
    reporter_id: String,
    operator_id: String,
}

const SHAPES: &[(&str, Columns)] = &[
    (
        "a case (intake)",
        Columns {
            area_path: Some("area_path"),
            grid_code: Some("grid_code"),
            units: Some(UnitColumn::Many("units")),
            own: &["reporter_id", "operator_id"],
            client: &["operator_id"],
        },
    ),
    (
        "a task (routing)",
        Columns {
            area_path: Some("area_path"),
            grid_code: Some("grid_code"),
            units: Some(UnitColumn::One("unit_code")),
            own: &[],
            client: &[],
        },
    ),
    (
        "a queue (routing)",
        Columns {
            area_path: None,
            grid_code: None,
            units: Some(UnitColumn::One("unit_code")),
            own: &["reporter_id"],
            client: &[],
        },
    ),
    (
        "a credit (subsidy)",
        Columns {
            area_path: Some("area_path"),
            grid_code: Some("grid_code"),
            units: None,
            own: &["reporter_id"],
            client: &[],
        },
    ),
];

/// The row as a shape's Rust form reads it (the same fields, in the same order, as the shape's columns).
fn row<'a>(cols: &Columns, s: &'a Stored, actors: &'a [&'a str; 2], unit: &'a [String]) -> Row<'a> {
    // Own work is matched on the reporter (then the operator), a client on the operator, as the columns say.
    Row {
        area_path: &s.area_path,
        grid_code: &s.grid_code,
        units: if matches!(cols.units, Some(UnitColumn::One(_))) { unit } else { &s.units },
        own: &actors[..],
        client: &actors[1..],
    }
}

#[tokio::test]
async fn the_rust_and_sql_forms_of_a_scope_agree_row_by_row() {
    let infra = TestInfra::new().await;
    let pool = kit::db::connect_and_migrate(&infra.db("reach"), &sqlx::migrate::Migrator::DEFAULT).await.unwrap();
    sqlx::query(
        "CREATE TABLE t (id INT PRIMARY KEY, area_path TEXT[], grid_code TEXT NOT NULL, unit_code TEXT NOT NULL, \
         units TEXT[] NOT NULL, reporter_id TEXT NOT NULL, operator_id TEXT NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let seed = 0x5eed_2026_1207;
    let mut rng = Rng(seed);
    let mut rows = Vec::new();
    for id in 0..150 {
        let stored = Stored {
            id,
            area_path: some(&mut rng, DIVISIONS, 4),
            grid_code: (*rng.pick(GRIDS)).to_owned(),
            unit_code: (*rng.pick(UNITS)).to_owned(),
            units: some(&mut rng, UNITS, 3),
            reporter_id: (*rng.pick(ACTORS)).to_owned(),
            operator_id: (*rng.pick(ACTORS)).to_owned(),
        };
        sqlx::query("INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(stored.id)
            .bind(&stored.area_path)
            .bind(&stored.grid_code)
            .bind(&stored.unit_code)
            .bind(&stored.units)
            .bind(&stored.reporter_id)
            .bind(&stored.operator_id)
            .execute(&pool)
            .await
            .unwrap();
        rows.push(stored);
    }
    let mut nodes: Vec<&str> = DIVISIONS.to_vec();
    nodes.extend(GRIDS);
    let mut checked = 0;
    for round in 0..200 {
        let optional = |rng: &mut Rng| (rng.below(3) == 0).then(|| (*rng.pick(ACTORS)).to_owned());
        let scope = ScopeSet {
            all: rng.below(25) == 0,
            nodes: some(&mut rng, &nodes, 3),
            units: some(&mut rng, UNITS, 2),
            own: optional(&mut rng),
            client: optional(&mut rng),
        };
        for (shape, cols) in SHAPES {
            let predicate = scope.sql(cols, 1);
            let sql = format!("SELECT id FROM t WHERE {predicate} ORDER BY id");
            let by_sql: Vec<i32> = predicate
                .bind(sqlx::query_as::<_, (i32,)>(sqlx::AssertSqlSafe(sql)))
                .fetch_all(&pool)
                .await
                .unwrap()
                .into_iter()
                .map(|(id,)| id)
                .collect();
            let by_rust: Vec<i32> = rows
                .iter()
                .filter(|s| {
                    let actors = [s.reporter_id.as_str(), s.operator_id.as_str()];
                    let unit = [s.unit_code.clone()];
                    scope.covers(cols, &row(cols, s, &actors, &unit))
                })
                .map(|s| s.id)
                .collect();
            assert_eq!(by_sql, by_rust, "seed {seed:#x}, round {round}, {shape}, scope {scope:?}: {predicate}");
            checked += by_rust.len();
        }
    }
    assert!(checked > 1000, "the scopes reached rows often enough to mean something ({checked})");
}
