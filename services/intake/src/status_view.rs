//! What another government system sees of the cases it submitted (SECURITY.md: an external client reads
//! "status, masked"): where the case stands and the public steps it went through, not the center's working
//! file. A client's credential reads only its own cases; this trims what it reads of them.

use kit::auth::ScopeSet;
use proto::intake::v1 as pb;

/// Whether `scope` reaches cases only as their submitting client (an `external_client` grant and nothing
/// that reads cases by place, unit or own work).
pub fn client_only(scope: &ScopeSet) -> bool {
    scope.client.is_some() && !scope.all && scope.nodes.is_empty() && scope.units.is_empty() && scope.own.is_none()
}

/// The status view of a case: its number, what it is, its state and the unit handling it now, and each step
/// of its timeline as what happened and when, from which state to which. Left out: who on the staff did what
/// and their notes, the grid and reporter, the task, the merge bookkeeping; parties' names are masked past
/// the first character (phones and ID numbers are masked for every reader already).
pub fn of(c: pb::Case) -> pb::Case {
    pb::Case {
        id: c.id,
        case_no: c.case_no,
        channel: c.channel,
        kind: c.kind,
        category_code: c.category_code,
        urgency: c.urgency,
        title: c.title,
        description: c.description,
        center_code: c.center_code,
        parties: c.parties.into_iter().map(|p| pb::Party { name: kit::pii::mask_name(&p.name), ..p }).collect(),
        state: c.state,
        current_unit_code: c.current_unit_code,
        registered_at: c.registered_at,
        updated_at: c.updated_at,
        timeline: c
            .timeline
            .into_iter()
            .map(|t| pb::TimelineEntry {
                seq: t.seq,
                at: t.at,
                action: t.action,
                from_state: t.from_state,
                to_state: t.to_state,
                source: t.source,
                ..Default::default()
            })
            .collect(),
        overdue: c.overdue,
        awaiting_follow_up: c.awaiting_follow_up,
        merged_into_case_no: c.merged_into_case_no,
        ..Default::default()
    }
}
