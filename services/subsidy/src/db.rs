//! Subsidy's queries: plain functions over a connection or transaction.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{CreditQuery, Decision, TariffRule};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CreditRow {
    pub id: Uuid,
    pub case_id: Uuid,
    pub case_no: String,
    pub person_id: String,
    pub amount_fen: i64,
    pub tariff_rule_id: String,
    pub tariff_version: i32,
    pub credited_at: DateTime<Utc>,
}

pub async fn active_tariffs(conn: &mut PgConnection) -> sqlx::Result<Vec<TariffRule>> {
    sqlx::query_as(
        "SELECT id, version, category_prefix, amount_fen, description FROM tariff_rules WHERE active \
         ORDER BY category_prefix, id, version",
    )
    .fetch_all(conn)
    .await
}

pub async fn is_credited(conn: &mut PgConnection, case_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM credits WHERE case_id = $1)").bind(case_id).fetch_one(conn).await
}

/// Inserts the credit unless the case already has one; returns false when it did (nothing written).
pub async fn insert_credit(conn: &mut PgConnection, c: &CreditRow) -> sqlx::Result<bool> {
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

pub async fn record_decision(
    conn: &mut PgConnection,
    case_id: Uuid,
    person_id: &str,
    decision: Decision,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO credit_decisions (case_id, person_id, decision, reason) VALUES ($1, $2, $3, $4)")
        .bind(case_id)
        .bind(person_id)
        .bind(decision.as_str())
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

/// Credits matching every given criterion, oldest first.
pub async fn credits(conn: &mut PgConnection, q: &CreditQuery) -> sqlx::Result<Vec<CreditRow>> {
    sqlx::query_as(
        "SELECT id, case_id, case_no, person_id, amount_fen, tariff_rule_id, tariff_version, credited_at \
         FROM credits WHERE ($1::uuid IS NULL OR case_id = $1) AND ($2::text IS NULL OR person_id = $2) \
         ORDER BY credited_at, id",
    )
    .bind(q.case_id)
    .bind(q.person_id.as_deref())
    .fetch_all(conn)
    .await
}
