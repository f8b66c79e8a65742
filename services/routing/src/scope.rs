//! Who may see and move which task: the per-object half of authorisation. The auth layer has already refused a
//! caller whose roles lack the method's permission; what only routing can decide is whether this task, of this
//! case, at this place, lies within the caller's grants. A task the caller cannot even read answers exactly as
//! a task that does not exist, so scope never leaks existence; one they can read but not move is refused.
//! Reading a task and filling the task queue are each one rule in two forms ([`kit::auth::reach`]): over
//! [`TASKS`] and [`QUEUE`], in Rust for one task and as SQL for a case's tasks and the queue.

use kit::auth::{Columns, Permission, Principal, Row, ScopeSet, UnitColumn};

use crate::domain::Task;
use crate::error::{Error, Result};

/// The id the principal acts under for a field that names the actor. A request may leave the field empty (it
/// then means the caller) or repeat the caller's own id; naming anyone else would let one person act in
/// another's name, so it is refused.
pub fn acting(field: &str, named: &str, p: &Principal) -> Result<String> {
    let actor = p.actor();
    if named.is_empty() || named == actor {
        Ok(actor.to_owned())
    } else {
        Err(Error::denied(format!("{field} must be you (or empty)")))
    }
}

/// Whether the principal may read the task: its case lies at a place in their ReadCase scope (a center's
/// subtree, a grid worker's grid), or the task was dispatched to their unit. A unit sees only its own tasks
/// of a case, not the other units' ones.
pub fn can_read(p: &Principal, task: &Task) -> bool {
    let unit = [task.unit_code.to_string()];
    let row = Row { area_path: &task.area_path, grid_code: &task.grid_code, units: &unit, ..Row::default() };
    p.scope(Permission::ReadCase).covers(&TASKS, &row)
}

/// Where a case's tasks keep what reading them is matched on (`tasks t JOIN cases c`): the case's place and the
/// task's unit.
pub const TASKS: Columns = Columns {
    area_path: Some("c.area_path"),
    grid_code: Some("c.grid_code"),
    units: Some(UnitColumn::One("t.unit_code")),
    own: &[],
    client: &[],
};

/// Where the task queue matches its reach: the task's unit, and its handler (own work).
pub const QUEUE: Columns = Columns {
    area_path: None,
    grid_code: None,
    units: Some(UnitColumn::One("t.unit_code")),
    own: &["t.handler_id"],
    client: &[],
};

/// 签收 and 退单: the task's unit is the caller's (a unit grant of `*` covers every unit), or the task is the
/// caller's own work (a grid worker's OwnWork reaches tasks whose handler is themselves).
pub fn can_handle(p: &Principal, task: &Task) -> bool {
    let s = p.scope(Permission::HandleTask);
    s.covers_unit(&task.unit_code) || s.covers_actor(&task.handler_id)
}

/// 办结: only the handler who accepted the task or a member of its unit; anyone else in the caller's roles
/// would otherwise close work they never did.
pub fn can_resolve(p: &Principal, task: &Task) -> bool {
    let s = p.scope(Permission::HandleTask);
    s.covers_unit(&task.unit_code) || (!task.handler_id.is_empty() && task.handler_id == p.actor())
}

/// Reviewing a return is the center's call over its own area (ReviewReturn at C scope), and never the
/// returner's own: a unit cannot approve its own way out of a task.
pub fn can_review(p: &Principal, task: &Task) -> Result<()> {
    let s = p.scope(Permission::ReviewReturn);
    if !s.covers_place(&task.area_path, &task.grid_code) {
        return Err(Error::denied("the case is outside your area"));
    }
    if !task.handler_id.is_empty() && task.handler_id == p.actor() {
        return Err(Error::denied("a returner does not review their own return"));
    }
    Ok(())
}

/// Whose tasks a caller's queue holds, matched over [`QUEUE`]: the units of their HandleTask and ReadCase grants
/// (unit scope), and the tasks they handle themselves (a grid worker's own work). A center's tree scope is not a
/// unit: a dispatcher's view of cases is the case board, not this queue.
pub fn queue_reach(p: &Principal) -> ScopeSet {
    let handle = p.scope(Permission::HandleTask);
    let read = p.scope(Permission::ReadCase);
    let mut units = handle.units;
    units.extend(read.units);
    units.sort();
    units.dedup();
    ScopeSet { all: handle.all, nodes: Vec::new(), units, own: handle.own, client: None }
}

/// Turns a decision on a task into the answer: allowed goes on; a task the caller may read (or could move,
/// which implies seeing it) but not move is PERMISSION_DENIED; anything else is the very NOT_FOUND an unknown
/// task gets.
pub fn gate(p: &Principal, task: &Task, allowed: Result<()>) -> Result<()> {
    match allowed {
        Ok(()) => Ok(()),
        Err(e) if can_read(p, task) || can_handle(p, task) || can_resolve(p, task) => Err(e),
        Err(_) => Err(crate::service::not_found(task.id)),
    }
}

/// A boolean decision as the `allowed` of [`gate`].
pub fn allow(ok: bool, what: &str) -> Result<()> {
    if ok { Ok(()) } else { Err(Error::denied(what)) }
}

/// Where a rule-managing grant reaches: significant prefixes of its scope nodes, or everything. A rule's area
/// prefix must start with one of them, so a county's administrator routes only the county's cases.
pub fn rule_prefixes(p: &Principal) -> (bool, Vec<String>) {
    let s = p.scope(Permission::ManageRules);
    (s.all, s.nodes.iter().map(|n| kit::division::significant(n).to_owned()).collect())
}

/// Whether a rule with this area prefix lies within the rule-managing scope. The empty prefix (every area)
/// is the whole deployment's, so only an unbounded grant may write it.
pub fn rule_in_scope(p: &Principal, area_prefix: &str) -> bool {
    let (all, prefixes) = rule_prefixes(p);
    all || prefixes.iter().any(|n| area_prefix.starts_with(n.as_str()))
}

/// The person a resolution credits, when it names someone other than the resolving caller: only a grid worker
/// or mediator living at the case's place may be credited (以案定补 pays them), so a handler cannot pay a
/// friend. `role` and `home_code` are the registry's record of the person.
pub fn creditable(role: i32, home_code: &str, task: &Task) -> bool {
    let role = kit::vocab::PersonRole::from_proto("role", role);
    role.is_ok_and(kit::vocab::PersonRole::creditable) && home_in_place(home_code, &task.area_path, &task.grid_code)
}

/// A home code lies at the case's place when it is one of the divisions on its area path, or the case's grid
/// or a grid containing it or contained in it (grid codes extend their parent's code).
fn home_in_place(home: &str, area_path: &[String], grid_code: &str) -> bool {
    !home.is_empty()
        && (area_path.iter().any(|a| a == home)
            || (!grid_code.is_empty() && (grid_code.starts_with(home) || home.starts_with(grid_code))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_home_is_in_place_on_the_path_or_around_the_grid() {
        let path = ["532901003001".to_owned(), "532901003000".to_owned(), "532901000000".to_owned()];
        let grid = "532901003001001";
        for (home, want) in [
            ("532901003001", true),
            ("532901000000", true),
            ("532901003001001", true),
            ("532901003001001002", true),
            ("532901003001002", false),
            ("532901003002", false),
            ("532922000000", false),
            ("", false),
        ] {
            assert_eq!(home_in_place(home, &path, grid), want, "{home}");
        }
        assert!(!home_in_place("532901003001001", &path, ""), "no grid: only the path places a home");
    }
}
