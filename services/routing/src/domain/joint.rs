//! 吹哨报到 joint handling and the hops of a case between centers (上报 up, 下派 down). Pure: no SQL, no protobuf.
//!
//! For a matter no single unit can settle, the dispatcher "blows the whistle": names a lead unit (主办) and
//! co-handling units (协办). Each co-unit must report in (报到) within a time limit, then records what it
//! contributed; the dispatcher may release one it no longer needs. The lead resolves the case only when every
//! co-unit has contributed or been released, so no unit is left summoned to a case that has ended.

use kit::ids::UnitCode;
use kit::{FieldError, code_enum, field};

use crate::domain::UnitKind;

code_enum! {
    proto = proto::routing::v1::CoState;
    /// Where a co-handling unit stands.
    pub enum CoState {
        /// Summoned by the whistle; its 报到 clock runs.
        Summoned = "summoned",
        ReportedIn = "reported_in",
        Contributed = "contributed",
        Released = "released",
    }
}

/// A unit a task can go to: a department stationed at a center, or a center itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnitRef {
    pub kind: UnitKind,
    pub code: UnitCode,
}

/// The most co-handling units one whistle may summon ("1+3+N", "1+10+N": a handful to a dozen).
pub const MAX_CO_UNITS: usize = 20;

/// The lead and co-handlers a dispatcher names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summons {
    pub lead: UnitRef,
    pub co: Vec<UnitRef>,
}

impl Summons {
    /// Refuses an empty co-handler list (that is a plain dispatch), more than [`MAX_CO_UNITS`], a unit named
    /// twice, and the lead named again as a co-handler, each by the field that names it.
    pub fn parse(lead: (UnitKind, &str), co: &[(UnitKind, &str)]) -> Result<Self, FieldError> {
        let lead = unit("lead", lead)?;
        if co.is_empty() {
            return Err(FieldError::new("co_units", "names no co-handling unit; dispatch to one unit instead"));
        }
        if co.len() > MAX_CO_UNITS {
            return Err(FieldError::new("co_units", format!("names more than {MAX_CO_UNITS} units")));
        }
        let mut units: Vec<UnitRef> = Vec::with_capacity(co.len());
        for (i, c) in co.iter().enumerate() {
            let at = format!("co_units[{i}]");
            let u = unit(&at, *c)?;
            if u == lead {
                return Err(FieldError::new(format!("{at}.code"), "is the lead unit; a unit leads or co-handles"));
            }
            if let Some(first) = units.iter().position(|x| *x == u) {
                return Err(FieldError::new(
                    format!("{at}.code"),
                    format!("names the unit of co_units[{first}] again"),
                ));
            }
            units.push(u);
        }
        Ok(Self { lead, co: units })
    }
}

/// Who answers a whistle of the center holding the case (街乡吹哨、部门报到): a department stationed there (常驻,
/// 轮驻 or 随驻) or at a center above it, whose departments come down to report in; a center on the holding
/// center's line, above it or below it (a village committee called in by its township).
pub fn answers_at(kind: UnitKind, station: &str, holding_center: &str) -> bool {
    let above_or_here = kit::division::is_ancestor_or_self(station, holding_center);
    match kind {
        UnitKind::Department => above_or_here,
        UnitKind::Center => above_or_here || kit::division::is_ancestor_or_self(holding_center, station),
    }
}

fn unit(at: &str, (kind, code): (UnitKind, &str)) -> Result<UnitRef, FieldError> {
    Ok(UnitRef { kind, code: UnitCode::parse(&format!("{at}.code"), code)? })
}

/// A move a co-handling unit makes, or the dispatcher makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoMove {
    ReportIn,
    /// Records a contribution; a unit may add more than one.
    Contribute,
    /// The dispatcher lets a unit go before it contributed.
    Release,
}

impl CoMove {
    /// The state the move leads to, or None when the unit's state does not allow it.
    pub fn from(self, state: CoState) -> Option<CoState> {
        use CoState::*;
        match (self, state) {
            (CoMove::ReportIn, Summoned) => Some(ReportedIn),
            (CoMove::Contribute, ReportedIn | Contributed) => Some(Contributed),
            (CoMove::Release, Summoned | ReportedIn) => Some(Released),
            (CoMove::ReportIn, ReportedIn | Contributed | Released)
            | (CoMove::Contribute, Summoned | Released)
            | (CoMove::Release, Contributed | Released) => None,
        }
    }
}

/// The co-handling units the lead still waits for before it may resolve: any not contributed nor released.
pub fn still_owed<'a>(co: impl IntoIterator<Item = (&'a UnitRef, CoState)>) -> Vec<&'a UnitRef> {
    co.into_iter().filter(|(_, s)| !matches!(s, CoState::Contributed | CoState::Released)).map(|(u, _)| u).collect()
}

/// A co-handling unit on a lead task, as kept.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CoHandler {
    pub id: uuid::Uuid,
    pub case_id: kit::ids::CaseId,
    pub lead_task_id: uuid::Uuid,
    pub unit_kind: UnitKind,
    pub unit_code: UnitCode,
    pub unit_name: String,
    pub state: CoState,
    pub reason: String,
    pub summoned_by: String,
    pub summoned_at: chrono::DateTime<chrono::Utc>,
    pub reported_by: String,
    pub reported_at: Option<chrono::DateTime<chrono::Utc>>,
    pub contribution: String,
    pub contributed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub released_by: String,
    pub released_at: Option<chrono::DateTime<chrono::Utc>>,
    pub release_reason: String,
}

impl CoHandler {
    pub fn unit(&self) -> UnitRef {
        UnitRef { kind: self.unit_kind, code: self.unit_code.clone() }
    }
}

/// The longest reason, contribution or note, in characters.
pub const NOTE_CHARS: usize = 2000;

/// A hop of a case between centers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// 上报: to a center above. Level by level (逐级), or skipping levels (越级) where the category allows.
    Up,
    /// 下派: to a center in the subtree.
    Down,
}

/// Whether a case held at `from` (a center's division code) may hop to `to`: up to its parent's division (or
/// any ancestor when `skip_level`), down to any division below it. The field named on refusal is `to_center`.
pub fn check_hop(hop: Hop, from: &str, to: &str, skip_level: bool) -> Result<(), FieldError> {
    let to = field::division_code("to_center", to)?;
    let bad = |why: &str| Err(FieldError::new("to_center", why));
    if to == from {
        return bad("is the center that holds the case");
    }
    match hop {
        Hop::Up if !kit::division::is_ancestor_or_self(to, from) => bad("is not above the center that holds the case"),
        Hop::Up if !skip_level && kit::division::parent(from).as_deref() != Some(to) => {
            bad("skips a level; only urgent categories go up past the parent center (越级)")
        }
        Hop::Down if !kit::division::is_ancestor_or_self(from, to) => {
            bad("is not below the center that holds the case")
        }
        Hop::Up | Hop::Down => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_whistle_names_each_unit_once() {
        let s = Summons::parse(
            (UnitKind::Department, "dali-sfj"),
            &[(UnitKind::Department, "dali-xfj"), (UnitKind::Center, "532901003000")],
        )
        .unwrap();
        assert_eq!(s.co.len(), 2);
        let field = |lead: (UnitKind, &str), co: &[(UnitKind, &str)]| Summons::parse(lead, co).unwrap_err().field;
        assert_eq!(field((UnitKind::Department, "a"), &[]), "co_units");
        assert_eq!(
            field((UnitKind::Department, "a"), &[(UnitKind::Department, "b"), (UnitKind::Department, "b")]),
            "co_units[1].code"
        );
        assert_eq!(field((UnitKind::Department, "a"), &[(UnitKind::Department, "a")]), "co_units[0].code");
        assert_eq!(field((UnitKind::Department, "a\0"), &[(UnitKind::Department, "b")]), "lead.code");
        assert_eq!(field((UnitKind::Department, "a"), &[(UnitKind::Department, "🚨")]), "co_units[0].code");
        let many: Vec<(UnitKind, String)> =
            (0..=MAX_CO_UNITS).map(|i| (UnitKind::Department, format!("u{i}"))).collect();
        let many: Vec<(UnitKind, &str)> = many.iter().map(|(k, c)| (*k, c.as_str())).collect();
        assert_eq!(field((UnitKind::Department, "a"), &many), "co_units");
        // The same code as a department and as a center are two units.
        assert!(Summons::parse((UnitKind::Department, "x"), &[(UnitKind::Center, "x")]).is_ok());
    }

    #[test]
    fn co_states_take_their_proto_codes() {
        assert!(CoState::codes_agree_with_proto());
    }

    #[test]
    fn the_lead_waits_for_every_co_unit() {
        use CoState::*;
        assert_eq!(CoMove::ReportIn.from(Summoned), Some(ReportedIn));
        assert_eq!(CoMove::Contribute.from(Summoned), None, "report in first");
        assert_eq!(CoMove::Contribute.from(Contributed), Some(Contributed));
        assert_eq!(CoMove::Release.from(Contributed), None, "a unit that contributed has done its part");
        assert_eq!(CoMove::ReportIn.from(Released), None);
        let (a, b, c) = (
            UnitRef { kind: UnitKind::Department, code: UnitCode::from_stored("a") },
            UnitRef { kind: UnitKind::Department, code: UnitCode::from_stored("b") },
            UnitRef { kind: UnitKind::Center, code: UnitCode::from_stored("c") },
        );
        assert_eq!(still_owed([(&a, Contributed), (&b, ReportedIn), (&c, Released)]), vec![&b]);
        assert!(still_owed([(&a, Contributed), (&c, Released)]).is_empty());
    }

    #[test]
    fn hops_go_one_level_up_or_anywhere_down() {
        let village = "532901003001";
        let township = "532901003000";
        let county = "532901000000";
        assert_eq!(kit::division::parent(village).as_deref(), Some(township));
        assert_eq!(kit::division::parent(township).as_deref(), Some(county));
        assert!(check_hop(Hop::Up, village, township, false).is_ok());
        assert!(check_hop(Hop::Up, village, county, false).unwrap_err().reason.contains("越级"));
        assert!(check_hop(Hop::Up, village, county, true).is_ok());
        assert!(check_hop(Hop::Up, township, village, true).is_err(), "up must go up");
        assert!(check_hop(Hop::Down, county, village, false).is_ok());
        assert!(check_hop(Hop::Down, township, "532901004001", false).is_err(), "another township's village");
        assert!(check_hop(Hop::Down, county, county, false).unwrap_err().reason.contains("holds"));
        assert_eq!(check_hop(Hop::Down, county, "5329", false).unwrap_err().field, "to_center");
    }
}

#[cfg(test)]
mod whistle_tests {
    use super::{UnitKind, answers_at};

    #[test]
    fn departments_here_or_above_and_centers_on_the_line_answer_a_whistle() {
        let township = "532901003000";
        let dept = UnitKind::Department;
        let center = UnitKind::Center;
        assert!(answers_at(dept, township, township), "stationed at the holding center");
        assert!(answers_at(dept, "532901000000", township), "a county department comes down");
        assert!(answers_at(dept, "532900000000", township), "a prefecture department too");
        assert!(!answers_at(dept, "532901003001", township), "not a village's, below the whistle");
        assert!(!answers_at(dept, "532901004000", township), "not a neighbouring township's");
        assert!(!answers_at(dept, "532922000000", township), "not another county's");
        assert!(answers_at(center, "532901003001", township), "a village center of the township");
        assert!(answers_at(center, "532901000000", township), "the county center");
        assert!(!answers_at(center, "532901004000", township), "not a neighbouring township");
        assert!(!answers_at(dept, "", township) && !answers_at(center, "nonsense", township));
    }
}
