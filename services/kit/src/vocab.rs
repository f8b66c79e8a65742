//! The words every service shares, defined once: how a case came in, what kind of matter it is, how urgent, what
//! the citizen said at the follow-up visit, where a task stands, and a registry person's role. Proto-free; each
//! service parses request and event strings into these and binds them to SQL as text (see `code_enum!`).

use crate::code_enum;

code_enum! {
    proto = proto::vocab::v1::Channel;
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
    proto = proto::vocab::v1::CaseKind;
    /// What kind of matter a case is: 矛盾纠纷, 风险隐患, 诉求, 咨询.
    pub enum CaseKind {
        Dispute = "dispute",
        Risk = "risk",
        Demand = "demand",
        Inquiry = "inquiry",
    }
}

impl CaseKind {
    /// The kind of category this case kind takes: inquiries share the demand table (诉求: 咨询 …).
    pub fn category_kind(self) -> &'static str {
        match self {
            CaseKind::Dispute => "dispute",
            CaseKind::Risk => "risk",
            CaseKind::Demand | CaseKind::Inquiry => "demand",
        }
    }
}

code_enum! {
    proto = proto::vocab::v1::Urgency;
    /// How urgent a case is (一般, 紧急, 特急); it sets the time limits.
    pub enum Urgency {
        Normal = "normal",
        Urgent = "urgent",
        Emergency = "emergency",
    }
}

impl Urgency {
    /// The urgency an event names, or normal when it names none or one this service does not know: a case
    /// is never left without a deadline because of an unexpected value.
    pub fn or_normal(value: i32) -> Self {
        Self::from_proto("urgency", value).unwrap_or(Urgency::Normal)
    }
}

code_enum! {
    proto = proto::vocab::v1::Satisfaction;
    /// The citizen's answer at the follow-up visit (回访): 满意, 基本满意, 不满意.
    pub enum Satisfaction {
        Satisfied = "satisfied",
        BasicallySatisfied = "basically_satisfied",
        Unsatisfied = "unsatisfied",
    }
}

impl Satisfaction {
    /// Only a result the citizen confirmed closes the loop and earns the resolver a credit.
    pub fn confirms_result(self) -> bool {
        matches!(self, Satisfaction::Satisfied | Satisfaction::BasicallySatisfied)
    }
}

code_enum! {
    proto = proto::vocab::v1::PersonRole;
    /// A person's role in the registry (the people of the grids), which decides what a case may credit them
    /// for: grid workers and mediators are paid per resolved case (以案定补).
    pub enum PersonRole {
        GridWorker = "grid_worker",
        HouseholdHead = "household_head",
        Mediator = "mediator",
        Handler = "handler",
        /// Center staff and administrators: people who sign in but walk no grid.
        Staff = "staff",
    }
}

impl PersonRole {
    /// Whether a resolved case may credit a person of this role (以案定补).
    pub fn creditable(self) -> bool {
        matches!(self, PersonRole::GridWorker | PersonRole::Mediator)
    }
}

code_enum! {
    proto = proto::vocab::v1::UnitKind;
    /// The kind of unit a task goes to: a department stationed at the center, or a center itself (属地).
    pub enum UnitKind {
        Department = "department",
        Center = "center",
    }
}

code_enum! {
    proto = proto::vocab::v1::Outcome;
    /// How a task ended (办结).
    pub enum Outcome {
        DisputeResolved = "dispute_resolved",
        MediationFailed = "mediation_failed",
        Handled = "handled",
        NotAccepted = "not_accepted",
    }
}

code_enum! {
    proto = proto::vocab::v1::TaskState;
    /// Where a task stands, as routing moves it and every other service learns it from routing's events.
    /// `superseded` ends a task whose return was approved or whose round was closed by a reopening; the case
    /// lives on in a newer task. `resolved` and `superseded` are final.
    pub enum TaskState {
        Dispatched = "dispatched",
        Accepted = "accepted",
        Returned = "returned",
        Resolved = "resolved",
        Superseded = "superseded",
    }
}

impl TaskState {
    /// The states of a task still being handled: what a work queue shows and a reopening supersedes.
    pub const OPEN: &'static [TaskState] = &[TaskState::Dispatched, TaskState::Accepted, TaskState::Returned];
    /// The states a task never leaves.
    pub const FINAL: &'static [TaskState] = &[TaskState::Resolved, TaskState::Superseded];
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn inquiries_take_demand_categories_and_unknown_urgency_is_normal() {
        assert_eq!(CaseKind::Inquiry.category_kind(), "demand");
        assert_eq!(CaseKind::Risk.category_kind(), "risk");
        assert_eq!(Urgency::or_normal(proto::vocab::v1::Urgency::Emergency as i32), Urgency::Emergency);
        assert_eq!(Urgency::or_normal(0), Urgency::Normal);
        assert_eq!(Urgency::or_normal(99), Urgency::Normal);
        assert!(Satisfaction::BasicallySatisfied.confirms_result());
        assert!(!Satisfaction::Unsatisfied.confirms_result());
        assert_eq!(Channel::parse("channel", "hotline_12345").unwrap(), Channel::Hotline12345);
    }

    /// A value's code here is its proto code (its name without the prefix, in lower case), which the JSON face
    /// still reads from clients that send codes.
    #[test]
    fn codes_are_the_proto_codes() {
        assert!(Channel::codes_agree_with_proto() && CaseKind::codes_agree_with_proto());
        assert!(Urgency::codes_agree_with_proto() && Satisfaction::codes_agree_with_proto());
        assert!(PersonRole::codes_agree_with_proto() && TaskState::codes_agree_with_proto());
        assert!(UnitKind::codes_agree_with_proto() && Outcome::codes_agree_with_proto());
        let refused = Channel::from_proto("channel", 0).unwrap_err();
        assert_eq!((refused.field.as_str(), refused.reason.as_str()), ("channel", "is required"));
        let unknown = Channel::from_proto("channel", 42).unwrap_err().reason;
        assert!(
            unknown.starts_with("unknown value 42; expected one of: CHANNEL_WALK_IN, CHANNEL_HOTLINE,"),
            "{unknown}"
        );
        assert_eq!(CaseKind::from_filter("kind", 0).unwrap(), None);
    }
}
