//! Who may verify, follow up and read which case: the per-object half of authorisation (the auth layer has
//! already refused callers whose roles lack the method's permission), and the separation of duties that keeps
//! handling and supervision in different hands.

use kit::auth::{Permission, Principal};
use kit::ids::CaseId;

use crate::domain::{Case, no_case};
use crate::error::{Error, Result};

/// The id the principal acts under for a field that names the actor: empty means the caller, the caller's own
/// id is accepted, and anyone else is refused, since nobody verifies or visits in another's name.
pub fn acting(field: &str, named: &str, p: &Principal) -> Result<String> {
    let actor = p.actor();
    if named.is_empty() || named == actor {
        Ok(actor.to_owned())
    } else {
        Err(Error::denied(format!("{field} must be you (or empty)")))
    }
}

/// Whether the case lies where the principal's `permission` reaches. A case whose registration supervision
/// has not seen has no place, and only a grant over the whole deployment reaches it.
pub fn covers(p: &Principal, permission: Permission, case: Option<&Case>) -> bool {
    let s = p.scope(permission);
    match case {
        Some(c) => s.covers_place(&c.area_path, &c.grid_code),
        None => s.all,
    }
}

/// A read: a case outside the caller's ReadCase scope answers exactly as an unknown one.
pub fn readable(p: &Principal, case_id: CaseId, case: Option<&Case>) -> Result<()> {
    if case.is_some() && covers(p, Permission::ReadCase, case) { Ok(()) } else { Err(no_case(case_id)) }
}

/// A write with `permission`: in scope goes on; a case the caller may read but not act on is refused; one
/// they cannot even read is the NOT_FOUND of an unknown case, so scope never leaks existence.
pub fn gate(p: &Principal, permission: Permission, case_id: CaseId, case: Option<&Case>) -> Result<()> {
    if covers(p, permission, case) {
        Ok(())
    } else if case.is_some() && covers(p, Permission::ReadCase, case) {
        Err(Error::denied("the case is outside your area"))
    } else {
        Err(no_case(case_id))
    }
}

/// Separation of duties (SECURITY.md): nobody verifies or follows up a case they reported, or one on which
/// they handled or were credited with a task; `hands` are those handlers and resolvers.
pub fn apart<'a>(actor: &str, reporter: &str, hands: impl IntoIterator<Item = &'a str>) -> Result<()> {
    if !reporter.is_empty() && reporter == actor {
        return Err(Error::denied("the reporter does not supervise their own case"));
    }
    if hands.into_iter().any(|h| !h.is_empty() && h == actor) {
        return Err(Error::denied("whoever handled or resolved the case does not supervise it"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separation_refuses_the_reporter_and_every_hand() {
        assert!(apart("v", "", ["h", "r", ""]).is_ok());
        assert!(apart("v", "v", []).is_err(), "reporter");
        assert!(apart("h", "", ["x", "h"]).is_err(), "a handler of an earlier task");
        assert!(apart("", "", [""]).is_ok(), "empty ids match nobody");
    }
}
