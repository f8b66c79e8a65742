//! Subsidy's queries: plain functions over a connection or transaction, taking and returning the domain's
//! aggregates (rows decode straight into [`Credit`] and [`TariffRule`]; a decision is bound as a value).

use kit::auth::ScopeSet;
use kit::ids::CaseId;
use sqlx::PgConnection;

use crate::domain::{Credit, CreditQuery, Decision, NewTariffRule, TariffRule};

const TARIFF_COLUMNS: &str = "id, version, category_prefix, amount_fen, description, active, created_by";

/// The tariffs in force: the latest version of each rule id, when that version is active (a newer inactive
/// version withdraws the rule; older versions stay only for the credits they priced).
pub async fn active_tariffs(conn: &mut PgConnection) -> sqlx::Result<Vec<TariffRule>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TARIFF_COLUMNS} FROM (SELECT DISTINCT ON (id) {TARIFF_COLUMNS} FROM tariff_rules \
         ORDER BY id, version DESC) t WHERE active ORDER BY category_prefix, id, version"
    )))
    .fetch_all(conn)
    .await
}

/// Inserts version max + 1 of the rule id (1 for a new id), never touching earlier versions. Concurrent puts of
/// one id queue on a transaction-scoped advisory lock, so neither fails on the primary key.
pub async fn insert_next_tariff(conn: &mut PgConnection, r: &NewTariffRule, actor: &str) -> sqlx::Result<TariffRule> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('subsidy.tariff_rules'), hashtext($1))")
        .bind(&r.id)
        .execute(&mut *conn)
        .await?;
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tariff_rules (id, version, category_prefix, amount_fen, description, active, created_by) \
         SELECT $1, COALESCE(max(version), 0) + 1, $2, $3, $4, $5, $6 FROM tariff_rules WHERE id = $1 \
         RETURNING {TARIFF_COLUMNS}"
    )))
    .bind(&r.id)
    .bind(&r.category_prefix)
    .bind(r.amount_fen)
    .bind(&r.description)
    .bind(r.active)
    .bind(actor)
    .fetch_one(conn)
    .await
}

/// Whether the case has its credit already.
pub async fn is_credited(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM credits WHERE case_id = $1)").bind(case_id).fetch_one(conn).await
}

/// Inserts the credit unless the case already has one; returns false when it did (nothing written).
pub async fn insert_credit(conn: &mut PgConnection, c: &Credit) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO credits (id, case_id, case_no, person_id, amount_fen, tariff_rule_id, tariff_version, \
         credited_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT ON CONSTRAINT credits_case_id_key DO NOTHING",
    )
    .bind(c.id)
    .bind(c.case_id)
    .bind(&c.case_no)
    .bind(&c.person_id)
    .bind(c.amount_fen)
    .bind(&c.tariff_rule_id)
    .bind(c.tariff_version)
    .bind(c.credited_at)
    .execute(conn)
    .await?
    .rows_affected()
        == 1;
    Ok(inserted)
}

/// Records why a confirmed case was or was not credited (全过程留痕).
pub async fn record_decision(
    conn: &mut PgConnection,
    case_id: CaseId,
    person_id: &str,
    decision: Decision,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO credit_decisions (case_id, person_id, decision, reason) VALUES ($1, $2, $3, $4)")
        .bind(case_id)
        .bind(person_id)
        .bind(decision)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records where a case is, from case.registered; a repeated registration changes nothing.
pub async fn insert_case(
    conn: &mut PgConnection,
    case_id: CaseId,
    area_path: &[String],
    grid: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO cases (case_id, area_path, grid_code) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(case_id)
        .bind(area_path)
        .bind(grid)
        .execute(conn)
        .await?;
    Ok(())
}

/// Credits matching every given criterion and within the caller's reach (its ReadCredits scope over
/// [`crate::scope::CREDITS`]), oldest first.
pub async fn credits(conn: &mut PgConnection, q: &CreditQuery, scope: &ScopeSet) -> sqlx::Result<Vec<Credit>> {
    let reach = scope.sql(&crate::scope::CREDITS, 3);
    let sql = format!(
        "SELECT cr.id, cr.case_id, cr.case_no, cr.person_id, cr.amount_fen, cr.tariff_rule_id, cr.tariff_version, \
         cr.credited_at FROM credits cr LEFT JOIN cases c ON c.case_id = cr.case_id \
         WHERE ($1::uuid IS NULL OR cr.case_id = $1) AND ($2::text IS NULL OR cr.person_id = $2) AND {reach} \
         ORDER BY cr.credited_at, cr.id"
    );
    reach
        .bind(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(q.case_id).bind(q.person_id.as_deref()))
        .fetch_all(conn)
        .await
}
