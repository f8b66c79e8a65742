//! The grids room's use cases: the tree below the village (listing children, resolving a location), grids
//! created, renamed and retired, people registered, 一格一员 assignments, and subsidy eligibility changes.

use kit::error::{Error, Result};
use kit::ids::PersonId;
use kit::pii::{Sealer, mask_id_number, mask_phone};
use sqlx::{PgConnection, PgPool};

use super::db::{self, PersonRow};
use super::domain::{
    EligibilityChange, EligibilityUpdate, Grid, GridKind, GridPlace, NewPerson, Person, Resolved, Retired,
    child_grid_code, may_walk_grids,
};
use crate::shared::{is_grid_code, page_token};
use crate::tree::db as tree_db;
use crate::tree::domain::{Node, VILLAGE_LEVEL};

#[derive(Clone)]
pub struct Grids {
    pub pool: PgPool,
    pub sealer: Sealer,
    /// Retiring a grid takes its boundary out of the location index.
    pub geo: crate::geo::Geo,
}

impl Grids {
    /// A page of a node's children: divisions above the village, a village's grids, a grid's micro-grids.
    pub async fn children(&self, code: &str, after: &str, limit: i64) -> Result<(Vec<Node>, Vec<Grid>)> {
        let after = page_token(after, code)?;
        let mut conn = self.pool.acquire().await?;
        if is_grid_code(code) {
            db::grid(&mut conn, code).await?.ok_or_else(|| Error::not_found(format!("grid {code}")))?;
            return Ok((vec![], db::grids_under(&mut conn, code, after, limit).await?));
        }
        let node = tree_db::node(&mut conn, code).await?.ok_or_else(|| Error::not_found(format!("division {code}")))?;
        if node.level == VILLAGE_LEVEL {
            return Ok((vec![], db::grids_under(&mut conn, code, after, limit).await?));
        }
        Ok((tree_db::children(&mut conn, code, after, limit).await?, vec![]))
    }

    /// A grid or village: the active grid (if a grid), its village and the path up to the root.
    pub async fn resolve(&self, location: &str) -> Result<Resolved> {
        let mut conn = self.pool.acquire().await?;
        let (grid, village_code) = if is_grid_code(location) {
            let grid = db::grid(&mut conn, location).await?.filter(|g| !g.retired);
            let grid = grid.ok_or_else(|| Error::not_found(format!("grid {location}")))?;
            let village = grid.village_code.clone();
            (Some(grid), village)
        } else {
            (None, location.to_owned())
        };
        let path = tree_db::path_up(&mut conn, &village_code).await?;
        match path.first() {
            Some(v) if v.level == VILLAGE_LEVEL => Ok(Resolved { grid, village_code, path }),
            Some(_) => Err(Error::invalid("location_code", "is not a village, community or grid")),
            None => Err(Error::not_found(format!("village {village_code}"))),
        }
    }

    pub async fn grid(&self, code: &str) -> Result<Grid> {
        let mut conn = self.pool.acquire().await?;
        db::grid(&mut conn, code).await?.ok_or_else(|| Error::not_found(format!("grid {code}")))
    }

    /// Creates a grid under a village, or a micro-grid under a grid, numbered with the next free sequence.
    pub async fn create_grid(&self, place: GridPlace<'_>, name: &str) -> Result<Grid> {
        let GridPlace { kind, parent } = place;
        let mut tx = kit::audit::begin(&self.pool).await?;
        let village = match kind {
            GridKind::Grid => match tree_db::lock_division(&mut tx, parent).await? {
                Some(VILLAGE_LEVEL) => parent.to_owned(),
                Some(_) => return Err(Error::invalid("village_code", "is not a village or community")),
                None => return Err(Error::not_found(format!("village {parent}"))),
            },
            GridKind::MicroGrid => match db::lock_grid(&mut tx, parent).await? {
                Some(g) if g.kind == GridKind::Grid && !g.retired => g.village_code,
                Some(_) => return Err(Error::invalid("parent_grid_code", "is not an active grid")),
                None => return Err(Error::not_found(format!("grid {parent}"))),
            },
        };
        let seq = db::next_grid_seq(&mut tx, parent).await?;
        let code = child_grid_code(parent, seq)
            .ok_or_else(|| Error::failed_precondition(format!("{parent} already has 999 grids")))?;
        let parent_grid = (kind == GridKind::MicroGrid).then_some(parent);
        db::insert_grid(&mut tx, &code, name, &village, kind, parent_grid).await?;
        tx.commit().await?;
        tracing::info!(grid = %code, "grid created");
        self.grid(&code).await
    }

    pub async fn create_person(&self, p: NewPerson<'_>) -> Result<Person> {
        let id = PersonId::random();
        let row_id = id.to_string();
        let mut conn = kit::audit::begin(&self.pool).await?;
        if tree_db::node(&mut conn, p.home_code).await?.is_none() && !is_grid_code(p.home_code) {
            return Err(Error::invalid("home_code", "is not a known division"));
        }
        let row = PersonRow {
            id,
            name: p.name,
            role: p.role,
            phone_sealed: p.phone.map(|v| self.sealer.seal(v, &sealed_at("phone", &row_id))),
            phone_masked: p.phone.map(mask_phone).unwrap_or_default(),
            id_number_sealed: p.id_number.map(|v| self.sealer.seal(v, &sealed_at("id_number", &row_id))),
            id_number_masked: p.id_number.map(mask_id_number).unwrap_or_default(),
            home_code: p.home_code,
            subsidy_eligible: p.subsidy_eligible,
            eligibility_source: p.eligibility_source,
        };
        db::insert_person(&mut conn, &row).await?;
        conn.commit().await?;
        tracing::info!(person_id = %id, role = %p.role, "person registered");
        self.person(id).await
    }

    pub async fn person(&self, id: PersonId) -> Result<Person> {
        person(&self.pool, id).await
    }

    /// 一格一员: ends the current assignment and starts the new one in one transaction, under a lock on the
    /// grid row; the partial unique index refuses a second active worker even if that lock were bypassed.
    pub async fn assign(&self, grid: &str, person: PersonId) -> Result<(Grid, Option<PersonId>)> {
        let mut tx = kit::audit::begin(&self.pool).await?;
        lock_active_grid(&mut tx, grid).await?;
        let who = db::person(&mut tx, person).await?.ok_or_else(|| Error::not_found(format!("person {person}")))?;
        may_walk_grids(&who)?;
        let previous = db::end_assignment(&mut tx, grid).await?;
        db::start_assignment(&mut tx, grid, person).await.map_err(second_worker)?;
        tx.commit().await.map_err(second_worker)?;
        Ok((self.grid(grid).await?, previous))
    }

    pub async fn rename_grid(&self, code: &str, name: &str) -> Result<Grid> {
        let mut tx = kit::audit::begin(&self.pool).await?;
        lock_active_grid(&mut tx, code).await?;
        db::rename_grid(&mut tx, code, name).await?;
        tx.commit().await?;
        self.grid(code).await
    }

    /// Retires the grid and its micro-grids and ends their assignments in one transaction.
    pub async fn retire_grid(&self, code: &str) -> Result<Retired> {
        let mut tx = kit::audit::begin(&self.pool).await?;
        lock_active_grid(&mut tx, code).await?;
        let micro_grids = db::retire_grid(&mut tx, code).await?;
        let all: Vec<String> = micro_grids.iter().cloned().chain([code.to_owned()]).collect();
        let ended_workers = db::end_assignments(&mut tx, &all).await?;
        tx.commit().await?;
        self.geo.refresh().await?;
        tracing::info!(grid = %code, micro_grids = micro_grids.len(), ended = ended_workers.len(), "grid retired");
        Ok(Retired { grid: self.grid(code).await?, micro_grids, ended_workers })
    }

    /// The worker left and nobody replaces them yet: the grid has no primary worker until the next assignment.
    pub async fn end_assignment(&self, code: &str) -> Result<(Grid, Option<PersonId>)> {
        let mut tx = kit::audit::begin(&self.pool).await?;
        lock_active_grid(&mut tx, code).await?;
        let previous = db::end_assignment(&mut tx, code).await?;
        tx.commit().await?;
        Ok((self.grid(code).await?, previous))
    }
}

/// The database refused a second active grid worker that slipped past the row lock.
fn second_worker(e: sqlx::Error) -> Error {
    match kit::db::violated_constraint(&e) {
        Some("one_active_worker_per_grid") => {
            Error::failed_precondition("the grid already has an active primary grid worker")
        }
        _ => e.into(),
    }
}

async fn lock_active_grid(conn: &mut PgConnection, code: &str) -> Result<()> {
    match db::lock_grid(conn, code).await? {
        Some(g) if !g.retired => Ok(()),
        Some(_) => Err(Error::failed_precondition(format!("grid {code} is retired"))),
        None => Err(Error::not_found(format!("grid {code}"))),
    }
}

pub async fn person(pool: &PgPool, id: PersonId) -> Result<Person> {
    let mut conn = pool.acquire().await?;
    db::person(&mut conn, id).await?.ok_or_else(|| Error::not_found(format!("person {id}")))
}

/// The division or grid a person lives in, which decides whose scope the person is in. A person's home is set
/// once, at registration, so a check made before the write stays true during it.
pub async fn person_home(pool: &PgPool, id: PersonId) -> Result<String> {
    Ok(person(pool, id).await?.home_code)
}

/// Sets eligibility and its source, recording the change; setting what is already there records nothing.
pub async fn change_eligibility(pool: &PgPool, person: PersonId, u: &EligibilityUpdate<'_>) -> Result<Person> {
    let mut tx = kit::audit::begin(pool).await?;
    let current = db::lock_eligibility(&mut tx, person).await?;
    let (was, was_source) = current.ok_or_else(|| Error::not_found(format!("person {person}")))?;
    if (was, was_source.as_str()) != (u.eligible, u.source) {
        db::change_eligibility(&mut tx, person, (was, &was_source), (u.eligible, u.source), u.reason).await?;
        tracing::info!(person_id = %person, eligible = u.eligible, "subsidy eligibility changed");
    }
    let row = db::person(&mut tx, person).await?.ok_or_else(|| Error::not_found(format!("person {person}")))?;
    tx.commit().await?;
    Ok(row)
}

pub async fn eligibility_changes(pool: &PgPool, person: PersonId) -> Result<Vec<EligibilityChange>> {
    let mut conn = pool.acquire().await?;
    db::person(&mut conn, person).await?.ok_or_else(|| Error::not_found(format!("person {person}")))?;
    Ok(db::eligibility_changes(&mut conn, person).await?)
}

/// Where a person's sealed value lives, bound into the seal.
fn sealed_at<'a>(column: &'a str, row: &'a str) -> kit::pii::Binding<'a> {
    kit::pii::Binding { table: "persons", column, row }
}
