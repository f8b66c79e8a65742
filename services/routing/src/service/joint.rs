//! 吹哨报到 behind its RPCs: the dispatcher summons co-handling units to the live task (whose unit leads), each
//! reports in and records its contribution, the dispatcher may release one, and the lead's 办结 waits for all
//! ([`owed_before_resolving`]). Each step is one transaction with its `case.joint` event; supervision runs the
//! 报到 clock from those events.

use chrono::Utc;
use kit::auth::{Permission, Principal};
use proto::events::v1::CaseJoint;
use proto::events::v1::envelope::Body;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Tasks, not_found};
use crate::db;
use crate::db::joint::{self as store, CoChange, Summon};
use crate::domain::joint::{CoHandler, CoMove, CoState, Summons, UnitRef, answers_at, still_owed};
use crate::domain::{Duty, OPEN, Task, UnitKind};
use crate::error::{Error, Result};
use crate::scope;

/// Where a summoned unit is: the center a department is stationed at (or the center itself), and its name.
struct Station {
    center: String,
    name: String,
}

/// A co-handling unit as the dispatcher names it: kind, code and the name to print.
pub struct CoUnit {
    pub kind: UnitKind,
    pub code: String,
    pub name: String,
}

impl Tasks {
    /// Summons `co` to the live task `task_id` with `reason`. The caller dispatches at the case's place; the
    /// task must still be open; a unit already summoned to it (or the lead itself, or one named twice) is
    /// refused by field. Each unit must be one the registry knows and that can answer the whistle here (see
    /// [`answers_at`]): a whistle to a unit that does not exist would start a 报到 clock nobody can stop and hold
    /// the lead's 办结 until someone released it.
    pub async fn summon(&self, p: &Principal, task_id: Uuid, co: &[CoUnit], reason: &str) -> Result<Vec<CoHandler>> {
        let named: Vec<(UnitKind, &str)> = co.iter().map(|c| (c.kind, c.code.as_str())).collect();
        // The task as it stands, read without a lock: the request's own faults and the caller's right are
        // answered before the registry is asked, and the registry is asked before a transaction opens.
        let task = {
            let mut conn = self.pool.acquire().await?;
            db::task(&mut conn, task_id, false).await?.ok_or_else(|| not_found(task_id))?
        };
        scope::gate(p, &task, dispatcher_of(p, &task))?;
        let summons = Summons::parse((task.unit_kind, &task.unit_code), &named).map_err(Error::Invalid)?;
        let mut stations = Vec::with_capacity(summons.co.len());
        for (i, unit) in summons.co.iter().enumerate() {
            stations.push(self.station(unit, &format!("co_units[{i}].code")).await?);
        }

        let mut tx = kit::audit::begin(&self.pool).await?;
        // The case first, then the task, as every other move locks them.
        let case = db::lock_case(&mut tx, task.case_id).await?.ok_or_else(|| not_found(task_id))?;
        let task = db::task(&mut tx, task_id, true).await?.ok_or_else(|| not_found(task_id))?;
        scope::gate(p, &task, dispatcher_of(p, &task))?;
        if !OPEN.contains(&task.state) {
            return Err(Error::failed_precondition(format!(
                "task {task_id} is {}: summon to an open task",
                task.state
            )));
        }
        for (i, (unit, station)) in summons.co.iter().zip(&stations).enumerate() {
            if !answers_at(unit.kind, &station.center, &case.holding_center) {
                return Err(Error::invalid(
                    format!("co_units[{i}].code"),
                    format!(
                        "is at center {}, which does not answer a whistle of center {} (a department there or above, \
                         a center on its line)",
                        station.center, case.holding_center
                    ),
                ));
            }
        }
        let by = p.actor().to_owned();
        let at = Utc::now();
        let mut summoned = Vec::with_capacity(summons.co.len());
        for (i, (unit, station)) in summons.co.iter().zip(&stations).enumerate() {
            // The dispatcher's wording for the slip if given, else the registry's name.
            let name = co[i].name.trim();
            let name = if name.is_empty() { station.name.as_str() } else { name };
            let s = Summon { case_id: task.case_id, task_id, unit, name, reason, by: &by, at };
            let Some(c) = store::summon(&mut tx, &s).await? else {
                return Err(Error::invalid(format!("co_units[{i}].code"), "is already summoned to this task"));
            };
            self.joint_event(&mut tx, &c, "summoned", reason, &by).await?;
            summoned.push(c);
        }
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(%task_id, units = summoned.len(), "co-handlers summoned (吹哨报到)");
        Ok(summoned)
    }

    /// Where a summoned unit is, as the registry knows it now (never from a cache: a whistle decides on the
    /// current record), refused by `field` when unknown or retired. A 轮驻 department off its schedule may still
    /// be whistled, as a dispatch by hand may call it.
    async fn station(&self, unit: &UnitRef, field: &str) -> Result<Station> {
        let units = &self.planner.units;
        match unit.kind {
            UnitKind::Department => match units.department(&unit.code).await? {
                None => Err(Error::invalid(field, "is not a department the registry knows")),
                Some(d) if d.duty == Duty::Retired => {
                    Err(Error::invalid(field, "is a retired department; it cannot report in"))
                }
                Some(d) => Ok(Station { center: d.center_code, name: d.name }),
            },
            UnitKind::Center => match units.center(&unit.code).await? {
                None => Err(Error::invalid(field, "is not a center the registry knows")),
                Some(name) => Ok(Station { center: unit.code.to_string(), name: format!("{name}综治中心") }),
            },
        }
    }

    /// 报到, a contribution, or a release: one move of one co-handler, by its unit (报到, contribution) or by a
    /// dispatcher at the case's place (release). A move its state does not allow is FAILED_PRECONDITION.
    pub async fn move_co(&self, p: &Principal, id: Uuid, mv: CoMove, note: &str) -> Result<CoHandler> {
        let missing = || Error::not_found(format!("co-handler {id}"));
        let mut tx = kit::audit::begin(&self.pool).await?;
        let co = store::co_handler(&mut tx, id, false).await?.ok_or_else(missing)?;
        // The lead task's lock orders this move against the lead's 办结, which counts what is still owed.
        let task = db::task(&mut tx, co.lead_task_id, true).await?.ok_or_else(missing)?;
        let co = store::co_handler(&mut tx, id, true).await?.ok_or_else(missing)?;
        let own_unit = p.scope(Permission::HandleTask).covers_unit(&co.unit_code);
        let allowed = match mv {
            CoMove::ReportIn | CoMove::Contribute => {
                scope::allow(own_unit, "only the summoned unit reports in and contributes")
            }
            CoMove::Release => dispatcher_of(p, &task),
        };
        if allowed.is_err() && !own_unit && !scope::can_read(p, &task) {
            return Err(missing());
        }
        allowed?;
        let to = mv.from(co.state).ok_or_else(|| {
            Error::failed_precondition(format!("the co-handler is {}; cannot {}", co.state, verb(mv)))
        })?;
        let by = p.actor().to_owned();
        let (change, action) = match mv {
            CoMove::ReportIn => (CoChange::ReportedIn { by: &by }, "reported_in"),
            CoMove::Contribute => (CoChange::Contributed { note }, "contributed"),
            CoMove::Release => (CoChange::Released { by: &by, reason: note }, "released"),
        };
        let moved = store::apply(&mut tx, id, to, &change).await?;
        self.joint_event(&mut tx, &moved, action, note, &by).await?;
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(co_handler = %id, task_id = %task.id, state = %to, "co-handler moved");
        Ok(moved)
    }

    /// The task's co-handlers, for whoever may read the task, or the co-handlers' own units (their rows only).
    pub async fn co_handlers(&self, p: &Principal, task_id: Uuid) -> Result<Vec<CoHandler>> {
        let mut conn = self.pool.acquire().await?;
        let task = db::task(&mut conn, task_id, false).await?.ok_or_else(|| not_found(task_id))?;
        let all = store::of_task(&mut conn, task_id).await?;
        if scope::can_read(p, &task) || scope::can_handle(p, &task) {
            return Ok(all);
        }
        let (read, handle) = (p.scope(Permission::ReadCase), p.scope(Permission::HandleTask));
        let own: Vec<CoHandler> =
            all.into_iter().filter(|c| read.covers_unit(&c.unit_code) || handle.covers_unit(&c.unit_code)).collect();
        if own.is_empty() { Err(not_found(task_id)) } else { Ok(own) }
    }

    async fn joint_event(
        &self,
        tx: &mut PgConnection,
        c: &CoHandler,
        action: &str,
        note: &str,
        by: &str,
    ) -> Result<()> {
        let event = CaseJoint {
            task_id: c.lead_task_id.to_string(),
            co_id: c.id.to_string(),
            unit_kind: c.unit_kind.into(),
            unit_code: c.unit_code.to_string(),
            unit_name: c.unit_name.clone(),
            action: action.into(),
            note: note.into(),
        };
        self.outbox.add(tx, c.case_id, by, Body::CaseJoint(event)).await?;
        Ok(())
    }
}

/// Before the lead's 办结 (inside its transaction, with the lead task locked): the co-handlers it still waits
/// for, refused by code.
pub async fn owed_before_resolving(conn: &mut PgConnection, task_id: Uuid) -> Result<()> {
    let co = store::of_task(conn, task_id).await?;
    let units: Vec<(UnitRef, CoState)> = co.iter().map(|c| (c.unit(), c.state)).collect();
    let owed = still_owed(units.iter().map(|(u, s)| (u, *s)));
    if owed.is_empty() {
        return Ok(());
    }
    let codes: Vec<&str> = owed.iter().map(|u| u.code.as_str()).collect();
    Err(Error::failed_precondition(format!(
        "co-handling units have neither contributed nor been released (吹哨报到): {}",
        codes.join(", ")
    )))
}

/// Summoning and releasing are the dispatcher's: Dispatch over the case's place.
fn dispatcher_of(p: &Principal, task: &Task) -> Result<()> {
    scope::allow(
        p.scope(Permission::Dispatch).covers_place(&task.area_path, &task.grid_code),
        "only a dispatcher of the case's center summons or releases co-handlers",
    )
}

fn verb(mv: CoMove) -> &'static str {
    match mv {
        CoMove::ReportIn => "report in",
        CoMove::Contribute => "record a contribution",
        CoMove::Release => "release it",
    }
}
