//! Leases: one replica works each partition (and the relay) at a time.
//!
//! Why the numbers: JetStream gives a message that was delivered and not acknowledged to the next puller only
//! after `ACK_WAIT`. A replica that takes a partition over must not pull new messages before the dead holder's
//! unacknowledged ones come back, or one case's events would apply out of order. A lease runs `TERM` after its
//! last renewal and a holder renews at least every `RENEW`, so a successor starts at least `TERM - RENEW` after
//! the last message the old holder could have pulled, which is longer than `ACK_WAIT`: by then the old
//! holder's messages are due for redelivery, and JetStream redelivers before it delivers anything new.
//!
//! A holder renews with every batch it applies, and on its own only when `RENEW` passed without one: an idle
//! service renews each partition it holds (and the relay) once in `RENEW`, a checkout and a statement each, so
//! `RENEW` is as long as `TERM - RENEW > ACK_WAIT` (with a margin) allows. A standby replica asks for a lease
//! it does not hold as often.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub const TERM: Duration = Duration::from_secs(30);
pub const RENEW: Duration = Duration::from_secs(10);
pub const ACK_WAIT: Duration = Duration::from_secs(10);

/// Takes the lease if it is free, expired or already ours; true when this holder has it now.
pub async fn acquire(pool: &PgPool, name: &str, part: i32, holder: Uuid) -> sqlx::Result<bool> {
    let taken = sqlx::query(
        "INSERT INTO event_lease (name, part, holder, until) VALUES ($1, $2, $3, now() + make_interval(secs => $4)) \
         ON CONFLICT (name, part) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until \
         WHERE event_lease.holder = EXCLUDED.holder OR event_lease.until < now()",
    )
    .bind(name)
    .bind(part)
    .bind(holder)
    .bind(TERM.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(taken == 1)
}

/// The renewal, bound as `$1` name, `$2` part, `$3` holder, `$4` term in seconds; also the first step of a
/// consumer's batch statement (`consume::open_batch`).
macro_rules! renewal {
    () => {
        "UPDATE event_lease SET until = now() + make_interval(secs => $4) \
         WHERE name = $1 AND part = $2 AND holder = $3 AND until >= now()"
    };
}
pub(super) use renewal;

/// Renews the lease inside the caller's transaction; false when another replica holds it now. Run first in a
/// transaction that commits effects, it also fences them: the row stays locked until commit, so no successor
/// can take over halfway.
pub async fn renew(conn: &mut PgConnection, name: &str, part: i32, holder: Uuid) -> sqlx::Result<bool> {
    let renewed = sqlx::query(renewal!())
        .bind(name)
        .bind(part)
        .bind(holder)
        .bind(TERM.as_secs_f64())
        .execute(conn)
        .await?
        .rows_affected();
    Ok(renewed == 1)
}

/// Gives the lease up at once, when everything this holder pulled is acknowledged.
pub async fn release(pool: &PgPool, name: &str, part: i32, holder: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM event_lease WHERE name = $1 AND part = $2 AND holder = $3")
        .bind(name)
        .bind(part)
        .bind(holder)
        .execute(pool)
        .await?;
    Ok(())
}
