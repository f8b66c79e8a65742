//! Grids and the people who walk them: grid kinds and person roles, the grid and person aggregates, how grid
//! codes are formed, and the parsing of what a caller sends to create them. Proto-free and SQL-free.

use chrono::{DateTime, Utc};
use kit::ids::PersonId;
pub use kit::vocab::PersonRole;
use kit::{FieldError, code_enum, field};

use crate::shared::node_code;

code_enum! {
    proto = proto::registry::v1::GridKind;
    pub enum GridKind {
        Grid = "grid",
        MicroGrid = "micro_grid",
    }
}

/// Levels below the village, for presenting grids as tree nodes.
pub const GRID_LEVEL: u32 = 6;
pub const MICRO_GRID_LEVEL: u32 = 7;

/// Grid codes extend the village code by a 3-digit sequence; micro-grids extend their grid's code likewise.
pub fn child_grid_code(parent: &str, seq: i32) -> Option<String> {
    (1..=999).contains(&seq).then(|| format!("{parent}{seq:03}"))
}

/// A grid or micro-grid with its primary (一格一员) worker, if one is assigned.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Grid {
    pub code: String,
    pub name: String,
    pub village_code: String,
    pub kind: GridKind,
    pub parent_grid_code: Option<String>,
    pub primary_worker_id: Option<PersonId>,
    pub retired: bool,
}

impl Grid {
    /// Its level when shown as a node of the tree.
    pub fn level(&self) -> u32 {
        match self.kind {
            GridKind::Grid => GRID_LEVEL,
            GridKind::MicroGrid => MICRO_GRID_LEVEL,
        }
    }

    /// The node it hangs under: its grid for a micro-grid, else its village.
    pub fn parent_node(&self) -> &str {
        self.parent_grid_code.as_deref().unwrap_or(&self.village_code)
    }
}

/// A grid's row as a lock reads it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LockedGrid {
    pub village_code: String,
    pub kind: GridKind,
    pub retired: bool,
}

/// What retiring a grid did.
pub struct Retired {
    pub grid: Grid,
    pub micro_grids: Vec<String>,
    pub ended_workers: Vec<PersonId>,
}

/// A grid or village resolved to its place: the grid (if any), the village, and the path up to the root.
pub struct Resolved {
    pub grid: Option<Grid>,
    pub village_code: String,
    pub path: Vec<crate::tree::domain::Node>,
}

/// Where a new grid goes: a grid under a village, a micro-grid under a (15-digit) grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridPlace<'a> {
    pub kind: GridKind,
    pub parent: &'a str,
}

impl<'a> GridPlace<'a> {
    pub fn parse(kind: i32, village_code: &'a str, parent_grid_code: &'a str) -> Result<Self, FieldError> {
        let kind = GridKind::from_proto("kind", kind)?;
        let parent = match kind {
            GridKind::Grid => field::division_code("village_code", village_code)?,
            GridKind::MicroGrid => {
                let p = field::required("parent_grid_code", parent_grid_code)?;
                if p.len() != 15 || !crate::shared::is_grid_code(p) {
                    return Err(FieldError::new("parent_grid_code", "must be a 15-digit grid code"));
                }
                p
            }
        };
        Ok(GridPlace { kind, parent })
    }

    /// The parent as the scope refusal names it.
    pub fn describe(&self) -> String {
        let what = if self.kind == GridKind::Grid { "village" } else { "grid" };
        format!("{what} {}", self.parent)
    }
}

/// A grid's name: required, at most 64 characters.
pub fn grid_name(value: &str) -> Result<&str, FieldError> {
    field::text("name", value, 64)
}

/// A person as the registry shows them: phone and ID number masked, never in the clear.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Person {
    pub id: PersonId,
    pub name: String,
    pub role: PersonRole,
    pub phone_masked: String,
    pub id_number_masked: String,
    pub home_code: String,
    pub subsidy_eligible: bool,
    pub eligibility_source: String,
}

/// A person to register, checked field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPerson<'a> {
    pub name: &'a str,
    pub role: PersonRole,
    pub phone: Option<&'a str>,
    pub id_number: Option<&'a str>,
    pub home_code: &'a str,
    pub subsidy_eligible: bool,
    pub eligibility_source: &'a str,
}

impl<'a> NewPerson<'a> {
    /// A registration as sent, checked field by field: phone and ID number when given, the eligibility source
    /// when eligible, then name, role and home.
    pub fn parse(
        name: &'a str,
        role: i32,
        phone: &'a str,
        id_number: &'a str,
        home_code: &'a str,
        subsidy_eligible: bool,
        eligibility_source: &'a str,
    ) -> Result<Self, FieldError> {
        let phone = phone.trim();
        if !phone.is_empty() && !kit::pii::valid_phone(phone) {
            return Err(FieldError::new("phone", "must be an 11-digit mobile number"));
        }
        let id_number = id_number.trim();
        if !id_number.is_empty() && !kit::pii::valid_id_number(id_number) {
            return Err(FieldError::new("id_number", "must be an 18-character ID number with a valid check digit"));
        }
        let eligibility_source = field::bounded("eligibility_source", eligibility_source, 200)?;
        if subsidy_eligible && eligibility_source.is_empty() {
            return Err(FieldError::new("eligibility_source", "is required when subsidy_eligible is set"));
        }
        Ok(NewPerson {
            name: field::text("name", name, 64)?,
            role: PersonRole::from_proto("role", role)?,
            phone: (!phone.is_empty()).then_some(phone),
            id_number: (!id_number.is_empty()).then_some(id_number),
            home_code: node_code("home_code", home_code)?,
            subsidy_eligible,
            eligibility_source,
        })
    }
}

/// Only a grid worker walks a grid.
pub fn may_walk_grids(person: &Person) -> Result<(), FieldError> {
    if person.role == PersonRole::GridWorker {
        Ok(())
    } else {
        Err(FieldError::new("person_id", "is not a grid worker"))
    }
}

/// A change of subsidy eligibility as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EligibilityUpdate<'a> {
    pub eligible: bool,
    pub source: &'a str,
    pub reason: &'a str,
}

impl<'a> EligibilityUpdate<'a> {
    pub fn parse(eligible: bool, source: &'a str, reason: &'a str) -> Result<Self, FieldError> {
        Ok(EligibilityUpdate {
            eligible,
            source: field::text("eligibility_source", source, 200)?,
            reason: field::bounded("reason", reason, 200)?,
        })
    }
}

/// One recorded change of a person's subsidy eligibility.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EligibilityChange {
    pub from_eligible: bool,
    pub to_eligible: bool,
    pub from_source: String,
    pub to_source: String,
    pub reason: String,
    pub changed_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// name, role, phone, id_number, home_code, eligibility_source; and whether eligible.
    const OK: [&str; 6] = ["张三", "grid_worker", "", "", "532901003001", ""];

    fn person(i: usize, value: &str, eligible: bool) -> Result<NewPerson<'_>, FieldError> {
        let mut f = OK;
        f[i] = value;
        // The role as the request's number: a code this service does not know is an unknown number.
        let role = PersonRole::parse("role", f[1]).map(i32::from).unwrap_or(99);
        NewPerson::parse(f[0], role, f[2], f[3], f[4], eligible, f[5])
    }

    #[test]
    fn a_registration_names_the_field_it_refuses() {
        assert!(person(0, OK[0], false).is_ok());
        let long = "名".repeat(65);
        for (field, i, value, eligible) in [
            ("name", 0, "", false),
            ("name", 0, long.as_str(), false),
            ("name", 0, "张\0三", false),
            ("role", 1, "mayor", false),
            ("role", 1, "😀", false),
            ("phone", 2, "12345", false),
            ("id_number", 3, "53290119900101001X", false),
            ("home_code", 4, "5329", false),
            ("eligibility_source", 5, "", true),
            ("eligibility_source", 5, "a\0b", false),
        ] {
            assert_eq!(person(i, value, eligible).unwrap_err().field, field, "{value:?}");
        }
        assert_eq!(person(4, "532901003001002", false).unwrap().home_code, "532901003001002", "a grid is a home");
    }

    #[test]
    fn grids_go_under_villages_and_micro_grids_under_grids() {
        assert_eq!(
            GridPlace::parse(GridKind::Grid.into(), "532901003001", "").unwrap().describe(),
            "village 532901003001"
        );
        let micro = GridPlace::parse(GridKind::MicroGrid.into(), "", "532901003001002").unwrap();
        assert_eq!((micro.kind, micro.describe().as_str()), (GridKind::MicroGrid, "grid 532901003001002"));
        for (kind, village, parent, field) in [
            ("", "532901003001", "", "kind"),
            ("block", "532901003001", "", "kind"),
            ("grid", "5329", "", "village_code"),
            ("grid", "532901003001002", "", "village_code"),
            ("micro_grid", "", "", "parent_grid_code"),
            ("micro_grid", "", "532901003001002001", "parent_grid_code"),
            ("micro_grid", "", "532901003001", "parent_grid_code"),
        ] {
            // The kind as the request's number: a code this service does not know is an unknown number.
            let number = if kind.is_empty() { 0 } else { GridKind::parse("kind", kind).map_or(99, i32::from) };
            assert_eq!(
                GridPlace::parse(number, village, parent).unwrap_err().field,
                field,
                "{kind} {village} {parent}"
            );
        }
        assert!(GridKind::codes_agree_with_proto());
        assert!(grid_name("").is_err() && grid_name(&"x".repeat(65)).is_err() && grid_name("一网格").is_ok());
    }

    #[test]
    fn grid_codes_extend_their_parent_and_stop_at_999() {
        assert_eq!(child_grid_code("532901003001", 1).as_deref(), Some("532901003001001"));
        assert_eq!(child_grid_code("532901003001", 1000), None);
        assert_eq!(child_grid_code("532901003001", 0), None);
    }

    #[test]
    fn only_grid_workers_walk_grids_and_eligibility_needs_a_source() {
        let mut p = Person {
            id: PersonId::from_stored(uuid::Uuid::nil()),
            name: String::new(),
            role: PersonRole::Mediator,
            phone_masked: String::new(),
            id_number_masked: String::new(),
            home_code: String::new(),
            subsidy_eligible: false,
            eligibility_source: String::new(),
        };
        assert_eq!(may_walk_grids(&p).unwrap_err().field, "person_id");
        p.role = PersonRole::GridWorker;
        assert!(may_walk_grids(&p).is_ok());
        assert_eq!(EligibilityUpdate::parse(true, "", "").unwrap_err().field, "eligibility_source");
        assert_eq!(EligibilityUpdate::parse(true, "民政", &"x".repeat(201)).unwrap_err().field, "reason");
        assert!(EligibilityUpdate::parse(false, "民政", "").is_ok());
    }
}
