//! Intake's domain: the case file (the [`Case`] aggregate with its parties and timeline), what a registration
//! is (a case's number is `kit::ids::CaseNo`), and what a timeline step and the board's flags are. Proto-free and holding no
//! SQL: `events.rs` maps other services' events onto [`Step`] and [`Flags`]; the aggregates derive
//! `sqlx::FromRow`, so `db.rs` (every query) decodes rows straight into them.

use chrono::{DateTime, Utc};
use kit::ids::{CaseId, CaseNo, NodeCode};
use kit::vocab::{CaseKind, Channel, Urgency};
use kit::{FieldError, code_enum, field};

pub mod board;
pub mod categories;
pub mod duplicates;

code_enum! {
    proto = proto::vocab::v1::PartyRole;
    /// Who a party is to the case.
    pub enum PartyRole {
        Applicant = "applicant",
        Respondent = "respondent",
        Reporter = "reporter",
    }
}

pub struct NewParty {
    pub name: String,
    pub role: PartyRole,
    pub phone: Option<String>,
    pub id_number: Option<String>,
}

impl NewParty {
    pub fn parse(index: usize, name: &str, role: i32, phone: &str, id_number: &str) -> Result<Self, FieldError> {
        let at = |f: &str| format!("parties[{index}].{f}");
        let phone = phone.trim();
        if !phone.is_empty() && !kit::pii::valid_phone(phone) {
            return Err(FieldError::new(at("phone"), "must be an 11-digit mobile number"));
        }
        let id_number = id_number.trim();
        if !id_number.is_empty() && !kit::pii::valid_id_number(id_number) {
            return Err(FieldError::new(at("id_number"), "must be an 18-character ID number with a valid check digit"));
        }
        Ok(Self {
            name: field::text(&at("name"), name, 64)?.to_owned(),
            role: PartyRole::from_proto(&at("role"), role)?,
            phone: (!phone.is_empty()).then(|| phone.to_owned()),
            id_number: (!id_number.is_empty()).then(|| id_number.to_ascii_uppercase()),
        })
    }
}

/// A registration that parsed; what remains to check needs the database (category) or the registry (place).
pub struct NewCase {
    pub idempotency_key: String,
    pub center_code: NodeCode,
    pub channel: Channel,
    pub kind: CaseKind,
    pub category_code: String,
    pub urgency: Urgency,
    pub title: String,
    pub description: String,
    pub location_code: NodeCode,
    pub parties: Vec<NewParty>,
    pub reporter_id: String,
    pub operator_id: String,
}

/// A registration's fields as the request gave them, in the message's order (an enum as its number).
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistrationInput<'a> {
    pub idempotency_key: &'a str,
    pub center_code: &'a str,
    pub channel: i32,
    pub kind: i32,
    pub category_code: &'a str,
    pub urgency: i32,
    pub title: &'a str,
    pub description: &'a str,
    pub location_code: &'a str,
    /// Each party's name, role, phone and ID number.
    pub parties: &'a [PartyInput<'a>],
    pub reporter_id: &'a str,
    pub operator_id: &'a str,
}

/// A party's fields as the request gave them.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartyInput<'a> {
    pub name: &'a str,
    pub role: i32,
    pub phone: &'a str,
    pub id_number: &'a str,
}

/// The most parties one registration may name.
pub const MAX_PARTIES: usize = 50;

impl NewCase {
    /// Parses the fields in the message's own order, so the first bad one reported is the first in the request.
    pub fn parse(r: &RegistrationInput<'_>) -> Result<Self, FieldError> {
        let idempotency_key = field::text("idempotency_key", r.idempotency_key, 128)?.to_owned();
        let center_code = NodeCode::parse("center_code", field::division_code("center_code", r.center_code)?)?;
        let channel = Channel::from_proto("channel", r.channel)?;
        let kind = CaseKind::from_proto("kind", r.kind)?;
        let category_code = field::required("category_code", r.category_code)?;
        if category_code.len() != 4 || !category_code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new("category_code", "must be a 4-digit category code"));
        }
        let urgency = Urgency::from_proto("urgency", r.urgency)?;
        let title = field::text("title", r.title, 200)?.to_owned();
        let description = field::bounded("description", r.description, 10_000)?.to_owned();
        let location_code = NodeCode::parse("location_code", r.location_code)?;
        if r.parties.len() > MAX_PARTIES {
            return Err(FieldError::new("parties", "more than 50 parties"));
        }
        let parties = r
            .parties
            .iter()
            .enumerate()
            .map(|(i, p)| NewParty::parse(i, p.name, p.role, p.phone, p.id_number))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NewCase {
            idempotency_key,
            center_code,
            channel,
            kind,
            category_code: category_code.to_owned(),
            urgency,
            title,
            description,
            location_code,
            parties,
            reporter_id: field::bounded("reporter_id", r.reporter_id, 64)?.to_owned(),
            operator_id: field::bounded("operator_id", r.operator_id, 64)?.to_owned(),
        })
    }
}

/// A request to see one party's phone or ID number in full, with its purpose (audited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmask {
    pub case_id: CaseId,
    /// The party's position in the case, counting from 1.
    pub party: u32,
    /// The ID number rather than the phone.
    pub id_number: bool,
    pub reason: String,
}

impl Unmask {
    pub fn parse(case_id: &str, party: u32, which: &str, reason: &str) -> Result<Self, FieldError> {
        let case_id = CaseId::parse("case_id", case_id)?;
        if party == 0 {
            return Err(FieldError::new("party", "counts from 1"));
        }
        let id_number = match which {
            "phone" => false,
            "id_number" => true,
            _ => return Err(FieldError::new("field", "must be phone or id_number")),
        };
        Ok(Self { case_id, party, id_number, reason: field::text("reason", reason, 200)?.to_owned() })
    }
}

/// The place a case happened, as the registry resolved it.
pub struct Place {
    /// '' when the case happened in a village outside any grid.
    pub grid_code: String,
    pub village_code: NodeCode,
    /// Village first, up to the province.
    pub area_path: Vec<String>,
    /// Codes on the path that have a center.
    pub centers: Vec<String>,
    /// The names of the path's divisions, in its order.
    pub names: Vec<String>,
}

impl Place {
    /// The name of the division `code` on the path ('' when it is not on it).
    pub fn name_of(&self, code: &str) -> &str {
        self.area_path.iter().position(|c| c == code).and_then(|i| self.names.get(i)).map_or("", String::as_str)
    }
}

code_enum! {
    proto = proto::vocab::v1::CaseState;
    /// The case as the case file shows it, projected from every service's events.
    pub enum CaseState {
        Registered = "registered",
        Dispatched = "dispatched",
        Accepted = "accepted",
        Returned = "returned",
        Resolved = "resolved",
        Closed = "closed",
        Reopened = "reopened",
        // Merged into another case as one matter: handled there, never closed or followed up itself.
        Merged = "merged",
    }
}

impl CaseState {
    /// Whether the case is still a matter in hand: neither closed nor merged into another.
    pub fn is_open(self) -> bool {
        !matches!(self, CaseState::Closed | CaseState::Merged)
    }
}

/// A case as its file shows it: the registration, where it happened, and the state projected from every
/// service's events.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Case {
    pub id: CaseId,
    pub case_no: CaseNo,
    pub idempotency_key: String,
    pub center_code: NodeCode,
    pub channel: Channel,
    pub kind: CaseKind,
    pub category_code: String,
    pub urgency: Urgency,
    pub title: String,
    pub description: String,
    /// '' when the case happened in a village outside any grid.
    pub grid_code: String,
    pub village_code: NodeCode,
    /// Village first, up to the province.
    pub area_path: Vec<String>,
    pub reporter_id: String,
    pub state: CaseState,
    pub current_task_id: String,
    pub current_unit_code: String,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub operator_id: String,
    /// Every unit the case was dispatched to.
    pub units: Vec<String>,
    pub overdue: bool,
    pub awaiting_follow_up: bool,
    /// The case this one is merged into, while it is.
    pub merged_into: Option<CaseId>,
}

/// A party as the case file shows it: phone and ID number masked.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Party {
    pub name: String,
    pub role: PartyRole,
    pub phone_masked: String,
    pub id_number_masked: String,
}

/// One step of the case's timeline.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    /// None for the registration, the first step.
    pub from_state: Option<CaseState>,
    pub to_state: CaseState,
    pub detail: String,
    pub source: String,
}

/// The whole case file: the case, its parties in order, its timeline oldest first, and what merging tied to it.
#[derive(Debug, Clone)]
pub struct CaseFile {
    pub case: Case,
    pub parties: Vec<Party>,
    pub timeline: Vec<TimelineEntry>,
    /// The number of the case this one is merged into ('' when it is not).
    pub merged_into_no: String,
    /// The cases merged into this one, directly or through another, still merged.
    pub merged_cases: Vec<MergedCase>,
    /// Everyone who reported the matter: this case first, then each merged case the reader may read.
    pub reporters: Vec<Reporter>,
}

impl CaseFile {
    /// The case alone, as lists show it.
    pub fn summary(case: Case) -> Self {
        Self {
            case,
            parties: vec![],
            timeline: vec![],
            merged_into_no: String::new(),
            merged_cases: vec![],
            reporters: vec![],
        }
    }
}

/// A case merged into another, as the target's file lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MergedCase {
    pub case_id: CaseId,
    pub case_no: CaseNo,
    pub merged_at: DateTime<Utc>,
    pub merged_by: String,
    pub reason: String,
}

/// Who reported the matter on one case: the grid worker and the reporting parties (masked), so the 回访 reaches
/// each of them.
#[derive(Debug, Clone)]
pub struct Reporter {
    pub case_id: CaseId,
    pub case_no: CaseNo,
    pub channel: Channel,
    pub reporter_id: String,
    pub parties: Vec<Party>,
}

/// One timeline step derived from an event another service published.
pub struct Step {
    pub action: &'static str,
    /// None keeps the current state (an overdue notice, a follow-up that keeps the case closed, a credit).
    pub to_state: Option<CaseState>,
    pub detail: String,
    /// Set when the event moves the case to another task or unit.
    pub task: Option<(String, String)>,
    pub source: &'static str,
}

/// How an event moves the board's two flags; None leaves a flag as it is (`events.rs` says which event moves
/// which). A missed deadline makes the case
/// overdue (the store keeps a closed case never overdue); closing or reopening ends the open period, and with
/// it the overdue flag, as the tree ledger counts it. Closing makes a case await its 回访; the visit, or a
/// reopening, ends the wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub overdue: Option<bool>,
    pub awaiting_follow_up: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration() -> RegistrationInput<'static> {
        RegistrationInput {
            idempotency_key: "k-1",
            center_code: "532901003000",
            channel: Channel::WalkIn.into(),
            kind: CaseKind::Inquiry.into(),
            category_code: "0106",
            urgency: Urgency::Normal.into(),
            title: "工地拖欠工资",
            location_code: "532901003001",
            ..RegistrationInput::default()
        }
    }

    #[test]
    fn intakes_enums_take_their_proto_codes() {
        assert!(CaseState::codes_agree_with_proto() && PartyRole::codes_agree_with_proto());
    }

    #[test]
    fn registrations_parse_or_name_the_first_bad_field() {
        let ok = NewCase::parse(&registration()).unwrap();
        assert_eq!((ok.kind, ok.kind.category_kind(), ok.channel), (CaseKind::Inquiry, "demand", Channel::WalkIn));
        let many = vec![
            PartyInput { name: "张三", role: PartyRole::Applicant.into(), ..PartyInput::default() };
            MAX_PARTIES + 1
        ];
        let bad_party = [PartyInput { name: "张三", role: 99, ..PartyInput::default() }];
        for (name, r, field) in [
            ("no key", RegistrationInput { idempotency_key: " ", ..registration() }, "idempotency_key"),
            ("short center", RegistrationInput { center_code: "5329", ..registration() }, "center_code"),
            ("unknown channel", RegistrationInput { channel: 99, ..registration() }, "channel"),
            ("no kind", RegistrationInput { kind: 0, ..registration() }, "kind"),
            ("letters in category", RegistrationInput { category_code: "01a6", ..registration() }, "category_code"),
            ("unknown urgency", RegistrationInput { urgency: -1, ..registration() }, "urgency"),
            ("no title", RegistrationInput { title: "", ..registration() }, "title"),
            ("county as place", RegistrationInput { location_code: "5329010", ..registration() }, "location_code"),
            ("too many parties", RegistrationInput { parties: &many, ..registration() }, "parties"),
            ("bad party role", RegistrationInput { parties: &bad_party, ..registration() }, "parties[0].role"),
            ("first bad field first", RegistrationInput { channel: 99, title: "", ..registration() }, "channel"),
        ] {
            assert_eq!(NewCase::parse(&r).err().map(|e| e.field), Some(field.to_owned()), "{name}");
        }
    }

    #[test]
    fn unmask_requests_parse_or_name_the_field() {
        let id = "5f0e7a4c-0000-4000-8000-000000000001";
        let ok = Unmask::parse(id, 1, "id_number", " 调解需要 ").unwrap();
        assert_eq!((ok.party, ok.id_number, ok.reason.as_str()), (1, true, "调解需要"));
        for (name, r, field) in [
            ("bad case id", Unmask::parse("case-1", 1, "phone", "x"), "case_id"),
            ("party zero", Unmask::parse(id, 0, "phone", "x"), "party"),
            ("unknown field", Unmask::parse(id, 1, "address", "x"), "field"),
            ("no purpose", Unmask::parse(id, 1, "phone", " "), "reason"),
        ] {
            assert_eq!(r.err().map(|e| e.field), Some(field.to_owned()), "{name}");
        }
    }

    #[test]
    fn bad_party_fields_are_named() {
        let err = NewParty::parse(1, "张三", PartyRole::Applicant.into(), "12345", "").err().unwrap();
        assert_eq!(err.field, "parties[1].phone");
        let err = NewParty::parse(0, "张三", PartyRole::Applicant.into(), "", "110105194912310021").err().unwrap();
        assert_eq!(err.field, "parties[0].id_number");
        let err = NewParty::parse(0, "张三", 99, "", "").err().unwrap();
        assert_eq!(err.field, "parties[0].role");
    }
}
