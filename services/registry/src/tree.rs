//! The work behind the RPCs: the tree, grids, people and their assignments, departments.

use kit::FieldError;
use kit::pii::{Sealer, mask_id_number, mask_phone};
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::{self, DepartmentRow, GridRow, NewPerson, NodeRow, PersonRow};
use crate::domain::{GridKind, PersonRole, child_grid_code, is_grid_code};
use crate::error::{Error, Result};

#[derive(Clone)]
pub struct Registry {
    pub pool: PgPool,
    pub sealer: Sealer,
    /// Retiring a grid takes its boundary out of the location index.
    pub geo: crate::geo::Geo,
}

/// What retiring a grid did.
pub struct Retired {
    pub grid: GridRow,
    pub micro_grids: Vec<String>,
    pub ended_workers: Vec<Uuid>,
}

/// A grid or village resolved to its place: the grid (if any), the village, and the path up to the root.
pub struct Resolved {
    pub grid: Option<GridRow>,
    pub village_code: String,
    pub path: Vec<NodeRow>,
}

pub struct PersonInput<'a> {
    pub name: &'a str,
    pub role: PersonRole,
    pub phone: Option<&'a str>,
    pub id_number: Option<&'a str>,
    pub home_code: &'a str,
    pub subsidy_eligible: bool,
    pub eligibility_source: &'a str,
}

impl Registry {
    /// A division with its ancestors (root first).
    pub async fn node(&self, code: &str) -> Result<(NodeRow, Vec<NodeRow>)> {
        let mut conn = self.pool.acquire().await?;
        let mut path = db::path_up(&mut conn, code).await?;
        if path.is_empty() {
            return Err(Error::NotFound(format!("division {code}")));
        }
        let node = path.remove(0);
        path.reverse();
        Ok((node, path))
    }

    pub async fn children(&self, code: &str, after: &str, limit: i64) -> Result<(Vec<NodeRow>, Vec<GridRow>)> {
        let after = crate::domain::page_token(after, code)?;
        let mut conn = self.pool.acquire().await?;
        if is_grid_code(code) {
            db::grid(&mut conn, code).await?.ok_or_else(|| Error::NotFound(format!("grid {code}")))?;
            return Ok((vec![], db::grids_under(&mut conn, code, after, limit).await?));
        }
        let node = db::node(&mut conn, code).await?.ok_or_else(|| Error::NotFound(format!("division {code}")))?;
        if node.level == 5 {
            return Ok((vec![], db::grids_under(&mut conn, code, after, limit).await?));
        }
        Ok((db::children(&mut conn, code, after, limit).await?, vec![]))
    }

    pub async fn resolve(&self, location: &str) -> Result<Resolved> {
        let mut conn = self.pool.acquire().await?;
        let (grid, village_code) = if is_grid_code(location) {
            let grid = db::grid(&mut conn, location).await?.filter(|g| !g.retired);
            let grid = grid.ok_or_else(|| Error::NotFound(format!("grid {location}")))?;
            let village = grid.village_code.clone();
            (Some(grid), village)
        } else {
            (None, location.to_owned())
        };
        let path = db::path_up(&mut conn, &village_code).await?;
        match path.first() {
            Some(v) if v.level == 5 => Ok(Resolved { grid, village_code, path }),
            Some(_) => Err(FieldError::new("location_code", "is not a village, community or grid").into()),
            None => Err(Error::NotFound(format!("village {village_code}"))),
        }
    }

    pub async fn grid(&self, code: &str) -> Result<GridRow> {
        let mut conn = self.pool.acquire().await?;
        db::grid(&mut conn, code).await?.ok_or_else(|| Error::NotFound(format!("grid {code}")))
    }

    /// Creates a grid under a village, or a micro-grid under a grid, numbered with the next free sequence.
    pub async fn create_grid(&self, parent: &str, name: &str, kind: GridKind) -> Result<GridRow> {
        let mut tx = self.pool.begin().await?;
        let village = match kind {
            GridKind::Grid => match db::lock_division(&mut tx, parent).await? {
                Some(5) => parent.to_owned(),
                Some(_) => return Err(FieldError::new("village_code", "is not a village or community").into()),
                None => return Err(Error::NotFound(format!("village {parent}"))),
            },
            GridKind::MicroGrid => match db::lock_grid(&mut tx, parent).await? {
                Some((village, k, false)) if k == "grid" => village,
                Some(_) => return Err(FieldError::new("parent_grid_code", "is not an active grid").into()),
                None => return Err(Error::NotFound(format!("grid {parent}"))),
            },
        };
        let seq = db::next_grid_seq(&mut tx, parent).await?;
        let code = child_grid_code(parent, seq)
            .ok_or_else(|| Error::FailedPrecondition(format!("{parent} already has 999 grids")))?;
        let parent_grid = (kind == GridKind::MicroGrid).then_some(parent);
        db::insert_grid(&mut tx, &code, name, &village, kind.as_str(), parent_grid).await?;
        tx.commit().await?;
        tracing::info!(grid = %code, "grid created");
        self.grid(&code).await
    }

    pub async fn create_person(&self, p: PersonInput<'_>) -> Result<PersonRow> {
        let id = Uuid::new_v4();
        let row_id = id.to_string();
        let mut conn = self.pool.acquire().await?;
        if db::node(&mut conn, p.home_code).await?.is_none() && !is_grid_code(p.home_code) {
            return Err(FieldError::new("home_code", "is not a known division").into());
        }
        let row = NewPerson {
            id,
            name: p.name,
            role: p.role.as_str(),
            phone_sealed: p.phone.map(|v| self.sealer.seal(v, &sealed_at("phone", &row_id))),
            phone_masked: p.phone.map(mask_phone).unwrap_or_default(),
            id_number_sealed: p.id_number.map(|v| self.sealer.seal(v, &sealed_at("id_number", &row_id))),
            id_number_masked: p.id_number.map(mask_id_number).unwrap_or_default(),
            home_code: p.home_code,
            subsidy_eligible: p.subsidy_eligible,
            eligibility_source: p.eligibility_source,
        };
        db::insert_person(&mut conn, &row).await?;
        tracing::info!(person_id = %id, role = %p.role, "person registered");
        self.person(id).await
    }

    pub async fn person(&self, id: Uuid) -> Result<PersonRow> {
        let mut conn = self.pool.acquire().await?;
        db::person(&mut conn, id).await?.ok_or_else(|| Error::NotFound(format!("person {id}")))
    }

    /// 一格一员: ends the current assignment and starts the new one in one transaction, under a lock on the
    /// grid row; the partial unique index refuses a second active worker even if that lock were bypassed.
    pub async fn assign(&self, grid: &str, person: Uuid) -> Result<(GridRow, Option<Uuid>)> {
        let mut tx = self.pool.begin().await?;
        self.lock_active_grid(&mut tx, grid).await?;
        let who = db::person(&mut tx, person).await?.ok_or_else(|| Error::NotFound(format!("person {person}")))?;
        if who.role != PersonRole::GridWorker.as_str() {
            return Err(FieldError::new("person_id", "is not a grid worker").into());
        }
        let previous = db::end_assignment(&mut tx, grid).await?;
        db::start_assignment(&mut tx, grid, person).await?;
        tx.commit().await?;
        Ok((self.grid(grid).await?, previous))
    }

    pub async fn rename_grid(&self, code: &str, name: &str) -> Result<GridRow> {
        let mut tx = self.pool.begin().await?;
        self.lock_active_grid(&mut tx, code).await?;
        db::rename_grid(&mut tx, code, name).await?;
        tx.commit().await?;
        self.grid(code).await
    }

    /// Retires the grid and its micro-grids and ends their assignments in one transaction.
    pub async fn retire_grid(&self, code: &str) -> Result<Retired> {
        let mut tx = self.pool.begin().await?;
        self.lock_active_grid(&mut tx, code).await?;
        let micro_grids = db::retire_grid(&mut tx, code).await?;
        let all: Vec<String> = micro_grids.iter().cloned().chain([code.to_owned()]).collect();
        let ended_workers = db::end_assignments(&mut tx, &all).await?;
        tx.commit().await?;
        self.geo.refresh().await?;
        tracing::info!(grid = %code, micro_grids = micro_grids.len(), ended = ended_workers.len(), "grid retired");
        Ok(Retired { grid: self.grid(code).await?, micro_grids, ended_workers })
    }

    /// The worker left and nobody replaces them yet: the grid has no primary worker until the next assignment.
    pub async fn end_assignment(&self, code: &str) -> Result<(GridRow, Option<Uuid>)> {
        let mut tx = self.pool.begin().await?;
        self.lock_active_grid(&mut tx, code).await?;
        let previous = db::end_assignment(&mut tx, code).await?;
        tx.commit().await?;
        Ok((self.grid(code).await?, previous))
    }

    async fn lock_active_grid(&self, conn: &mut sqlx::PgConnection, code: &str) -> Result<()> {
        match db::lock_grid(conn, code).await? {
            Some((_, _, false)) => Ok(()),
            Some(_) => Err(Error::FailedPrecondition(format!("grid {code} is retired"))),
            None => Err(Error::NotFound(format!("grid {code}"))),
        }
    }

    pub async fn departments(&self, center: &str) -> Result<Vec<DepartmentRow>> {
        let mut conn = self.pool.acquire().await?;
        Ok(db::departments(&mut conn, center).await?)
    }

    pub async fn put_department(&self, d: DepartmentRow) -> Result<DepartmentRow> {
        check_category_prefixes(&d.category_prefixes)?;
        let mut conn = self.pool.acquire().await?;
        if !db::is_center(&mut conn, &d.center_code).await? {
            return Err(FieldError::new("department.center_code", "has no center").into());
        }
        db::put_department(&mut conn, &d).await?;
        Ok(d)
    }
}

/// The division or grid a person lives in, which decides whose scope the person is in. A person's home is set
/// once, at registration, so a check made before the write stays true during it.
pub async fn person_home(pool: &PgPool, id: Uuid) -> Result<String> {
    let mut conn = pool.acquire().await?;
    let person = db::person(&mut conn, id).await?.ok_or_else(|| Error::NotFound(format!("person {id}")))?;
    Ok(person.home_code)
}

/// The center a department is stationed at, if the department exists.
pub async fn department_center(pool: &PgPool, code: &str) -> Result<Option<String>> {
    let mut conn = pool.acquire().await?;
    Ok(db::department_center(&mut conn, code).await?)
}

/// The categories a department handles arrive unparsed inside the department message: at most 64 prefixes of
/// 1 to 6 digits, so nothing unbounded (or a NUL, which PostgreSQL refuses) reaches the table.
fn check_category_prefixes(prefixes: &[String]) -> std::result::Result<(), FieldError> {
    if prefixes.len() > 64 {
        return Err(FieldError::new("department.category_prefixes", "has more than 64 entries"));
    }
    for (i, p) in prefixes.iter().enumerate() {
        if p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new(
                format!("department.category_prefixes[{i}]"),
                "must be a category code prefix of 1 to 6 digits",
            ));
        }
    }
    Ok(())
}

/// Where a person's sealed value lives, bound into the seal.
fn sealed_at<'a>(column: &'a str, row: &'a str) -> kit::pii::Binding<'a> {
    kit::pii::Binding { table: "persons", column, row }
}
