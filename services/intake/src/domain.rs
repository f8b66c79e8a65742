//! Intake's domain: what a registration is, how a case is numbered, and how each event moves the case file.

use kit::{FieldError, code_enum, field};
use proto::events::v1::envelope::Body;

code_enum! {
    /// Where the case came in (受理渠道).
    pub enum Channel {
        WalkIn = "walk_in",
        Hotline = "hotline",
        Hotline12345 = "hotline_12345",
        GridApp = "grid_app",
        Web = "web",
        HigherLevel = "higher_level",
        LeaderMailbox = "leader_mailbox",
        Media = "media",
    }
}

code_enum! {
    pub enum Kind {
        Dispute = "dispute",
        Risk = "risk",
        Demand = "demand",
        Inquiry = "inquiry",
    }
}

impl Kind {
    /// The kind of category this case kind takes: inquiries share the demand table (诉求: 咨询 …).
    pub fn category_kind(self) -> &'static str {
        match self {
            Kind::Dispute => "dispute",
            Kind::Risk => "risk",
            Kind::Demand | Kind::Inquiry => "demand",
        }
    }
}

code_enum! {
    pub enum Urgency {
        Normal = "normal",
        Urgent = "urgent",
        Emergency = "emergency",
    }
}

code_enum! {
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
    pub fn parse(index: usize, name: &str, role: &str, phone: &str, id_number: &str) -> Result<Self, FieldError> {
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
            role: PartyRole::parse(&at("role"), role)?,
            phone: (!phone.is_empty()).then(|| phone.to_owned()),
            id_number: (!id_number.is_empty()).then(|| id_number.to_ascii_uppercase()),
        })
    }
}

/// A registration that parsed; what remains to check needs the database (category) or the registry (place).
pub struct NewCase {
    pub idempotency_key: String,
    pub center_code: String,
    pub channel: Channel,
    pub kind: Kind,
    pub category_code: String,
    pub urgency: Urgency,
    pub title: String,
    pub description: String,
    pub location_code: String,
    pub parties: Vec<NewParty>,
    pub reporter_id: String,
    pub operator_id: String,
}

/// The place a case happened, as the registry resolved it.
pub struct Place {
    pub grid_code: String,
    pub village_code: String,
    /// Village first, up to the province.
    pub area_path: Vec<String>,
    /// Codes on the path that have a center.
    pub centers: Vec<String>,
}

/// `532901-20250807-00042`: the center's significant code, the local date and the day's sequence.
pub fn case_no(center_prefix: &str, local_day: &str, seq: i32) -> String {
    format!("{center_prefix}-{local_day}-{seq:05}")
}

code_enum! {
    /// The case as the case file shows it, projected from every service's events.
    pub enum CaseState {
        Registered = "registered",
        Dispatched = "dispatched",
        Accepted = "accepted",
        Returned = "returned",
        Resolved = "resolved",
        Closed = "closed",
        Reopened = "reopened",
    }
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

/// How an event reads in the case file. None for events intake itself wrote.
pub fn step_for(body: &Body) -> Option<Step> {
    let step = |action, to_state, detail: String, source| Step { action, to_state, detail, task: None, source };
    Some(match body {
        Body::CaseRegistered(_) => return None,
        Body::CaseDispatched(e) => Step {
            action: "dispatched",
            to_state: Some(CaseState::Dispatched),
            detail: format!("交办单 {} → {} ({}), attempt {}", e.slip_no, e.unit_name, e.unit_code, e.attempt),
            task: Some((e.task_id.clone(), e.unit_code.clone())),
            source: "routing",
        },
        Body::CaseAccepted(e) => {
            step("accepted", Some(CaseState::Accepted), format!("签收 by {}", e.handler_id), "routing")
        }
        Body::CaseReturned(e) => {
            step("returned", Some(CaseState::Returned), format!("退单 {}: {}", e.reason_code, e.reason), "routing")
        }
        Body::ReturnRejected(e) => {
            step("return_rejected", Some(CaseState::Dispatched), format!("退单驳回: {}", e.note), "routing")
        }
        Body::CaseResolved(e) => {
            step("resolved", Some(CaseState::Resolved), format!("办结 {} by {}", e.outcome, e.resolver_id), "routing")
        }
        Body::CaseClosed(e) => step(
            "closed",
            Some(CaseState::Closed),
            format!("核查通过, 销号 ({}), round {}", e.closure_reason, e.round),
            "supervision",
        ),
        Body::CaseFollowedUp(e) => step("followed_up", None, format!("回访: {}", e.satisfaction), "supervision"),
        Body::CaseReopened(e) => {
            step("reopened", Some(CaseState::Reopened), format!("重办 round {}: {}", e.round, e.reason), "supervision")
        }
        Body::DeadlineMissed(e) => step("overdue", None, format!("{} deadline missed", e.stage), "supervision"),
        Body::SubsidyCredited(e) => step(
            "credited",
            None,
            format!(
                "以案定补 {} fen to {} (rule {} v{})",
                e.amount_fen, e.person_id, e.tariff_rule_id, e.tariff_version
            ),
            "subsidy",
        ),
    })
}

/// How an event moves the board's two flags; None leaves a flag as it is. A missed deadline makes the case
/// overdue (the store keeps a closed case never overdue); closing or reopening ends the open period, and with
/// it the overdue flag, as the tree ledger counts it. Closing makes a case await its 回访; the visit, or a
/// reopening, ends the wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub overdue: Option<bool>,
    pub awaiting_follow_up: Option<bool>,
}

pub fn flags_for(body: &Body) -> Flags {
    match body {
        Body::DeadlineMissed(_) => Flags { overdue: Some(true), awaiting_follow_up: None },
        Body::CaseClosed(_) => Flags { overdue: Some(false), awaiting_follow_up: Some(true) },
        Body::CaseFollowedUp(_) => Flags { overdue: None, awaiting_follow_up: Some(false) },
        Body::CaseReopened(_) => Flags { overdue: Some(false), awaiting_follow_up: Some(false) },
        // The handling steps and a credit neither miss a deadline nor close the case.
        Body::CaseRegistered(_)
        | Body::CaseDispatched(_)
        | Body::CaseAccepted(_)
        | Body::CaseReturned(_)
        | Body::ReturnRejected(_)
        | Body::CaseResolved(_)
        | Body::SubsidyCredited(_) => Flags::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_move_the_board_flags() {
        use proto::events::v1::{CaseClosed, CaseFollowedUp, CaseReopened, CaseResolved, DeadlineMissed};
        let f = |o, a| Flags { overdue: o, awaiting_follow_up: a };
        for (name, body, want) in [
            ("overdue", Body::DeadlineMissed(DeadlineMissed::default()), f(Some(true), None)),
            ("closed", Body::CaseClosed(CaseClosed::default()), f(Some(false), Some(true))),
            ("followed up", Body::CaseFollowedUp(CaseFollowedUp::default()), f(None, Some(false))),
            ("reopened", Body::CaseReopened(CaseReopened::default()), f(Some(false), Some(false))),
            ("resolved keeps both", Body::CaseResolved(CaseResolved::default()), f(None, None)),
        ] {
            assert_eq!(flags_for(&body), want, "{name}");
        }
    }

    #[test]
    fn case_numbers_are_padded() {
        assert_eq!(case_no("532901", "20250807", 42), "532901-20250807-00042");
    }

    #[test]
    fn bad_party_fields_are_named() {
        let err = NewParty::parse(1, "张三", "applicant", "12345", "").err().unwrap();
        assert_eq!(err.field, "parties[1].phone");
        let err = NewParty::parse(0, "张三", "applicant", "", "110105194912310021").err().unwrap();
        assert_eq!(err.field, "parties[0].id_number");
        let err = NewParty::parse(0, "张三", "judge", "", "").err().unwrap();
        assert_eq!(err.field, "parties[0].role");
    }
}
