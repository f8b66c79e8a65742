//! The case-file consumer: every other service's case events become timeline steps and move the projected
//! state, exactly once per event (the inbox and the timeline's unique event id both guard it). How each event
//! reads in the file ([`Step`]) and moves the board's flags ([`Flags`]) is decided here, where the protobuf
//! events are known, so the domain stays proto-free.

use kit::events::{Event, Handler};
use proto::events::v1::envelope::Body;
use proto::vocab::v1::Stage;
use sqlx::PgConnection;

use crate::db::{self, NewStep};
use crate::domain::{CaseState, Flags, Step};

pub struct CaseFileHandler;

/// What an event does to the case file (see [`filing`]).
pub struct Filing {
    step: Step,
    /// The task a handling step is about; None for a step about the whole case.
    about_task: Option<String>,
    flags: Flags,
}

impl Handler for CaseFileHandler {
    type Work = Filing;
    type Prepared = ();

    fn select(&self, event: &Event<'_>) -> Option<Filing> {
        filing(event.body)
    }

    async fn prepare(&self, _event: &Event<'_>, _filing: &Filing) -> anyhow::Result<()> {
        Ok(())
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Event<'_>, filing: Filing, (): ()) -> anyhow::Result<()> {
        let Filing { step, about_task, flags } = filing;
        let case_id = event.case_id;
        let Some((from, current_task)) = db::lock_state(tx, case_id).await? else {
            tracing::warn!(%case_id, "event for a case intake does not know; ignored");
            return Ok(());
        };
        // A step of a task the case has moved on from (superseded by a reopening or a new dispatch) is history,
        // not the case's state: it is recorded and moves nothing.
        let stale = matches!(&about_task, Some(t) if !current_task.is_empty() && *t != current_task);
        // A merged case is handled as the case it was merged into: a step of its own handling that was under
        // way when it was merged (a dispatch or acceptance routing had made, which its consumption of
        // case.merged then superseded) is history too. Only an unmerge, written by intake, moves it on.
        let stale = stale || from == CaseState::Merged;
        let to = if stale { from } else { step.to_state.unwrap_or(from) };
        let at = event.occurred_at();
        let new = NewStep {
            case_id,
            at,
            actor: event.actor(),
            action: step.action,
            from_state: Some(from),
            to_state: to,
            detail: &step.detail,
            source: step.source,
            event_id: Some(event.id()),
        };
        // The step goes first: when the file shows the event already (a replay from the stream after the inbox
        // let go of it), it is not written again and applying it again would move the state back.
        if !db::append_event_step(tx, &new).await? {
            return Ok(());
        }
        let task = step.task.as_ref().filter(|_| from != CaseState::Merged).map(|(t, u)| (t.as_str(), u.as_str()));
        db::set_state(tx, case_id, to, task, at).await?;
        if flags != Flags::default() {
            db::set_flags(tx, case_id, flags).await?;
        }
        Ok(())
    }
}

/// What an event means to the case file, the one match over the event catalogue: how it reads as a step, the
/// task it is about, and how it moves the board's two flags (see [`Flags`]; None leaves one as it is). None for
/// the events intake itself wrote.
fn filing(body: &Body) -> Option<Filing> {
    let flags = |overdue, awaiting_follow_up| Flags { overdue, awaiting_follow_up };
    let filing = match body {
        // Intake wrote these steps itself, in the transaction that made the change (a merge clears both flags
        // itself; an unmerged case starts again with neither).
        Body::CaseRegistered(_) | Body::CaseMerged(_) | Body::CaseUnmerged(_) => return None,
        // Dispatch names the task it creates, so it is never stale.
        Body::CaseDispatched(e) => Filing {
            step: Step {
                action: "dispatched",
                to_state: Some(CaseState::Dispatched),
                detail: dispatched_detail(e),
                task: Some((e.task_id.clone(), e.unit_code.clone())),
                source: "routing",
            },
            about_task: None,
            flags: Flags::default(),
        },
        Body::CaseEscalated(e) => hop("escalated", escalated_detail(e)),
        Body::CaseRecalled(e) => hop("recalled", format!("召回 task {} to {}: {}", e.task_id, e.center_code, e.reason)),
        Body::CaseAccepted(e) => {
            handling("accepted", CaseState::Accepted, format!("签收 by {}", e.handler_id), &e.task_id)
        }
        Body::CaseReturned(e) => {
            handling("returned", CaseState::Returned, format!("退单 {}: {}", e.reason_code, e.reason), &e.task_id)
        }
        Body::ReturnRejected(e) => {
            handling("return_rejected", CaseState::Dispatched, format!("退单驳回: {}", e.note), &e.task_id)
        }
        Body::CaseResolved(e) => {
            let detail = format!("办结 {} by {}", e.outcome().code(), e.resolver_id);
            handling("resolved", CaseState::Resolved, detail, &e.task_id)
        }
        Body::CaseClosed(e) => {
            let detail = format!("核查通过, 销号 ({}), round {}", e.closure_reason, e.round);
            supervised("closed", Some(CaseState::Closed), detail, flags(Some(false), Some(true)))
        }
        Body::CaseFollowedUp(e) => {
            let detail = format!("回访: {}", e.satisfaction().code());
            supervised("followed_up", None, detail, flags(None, Some(false)))
        }
        Body::CaseReopened(e) => {
            let detail = format!("重办 round {}: {}", e.round, e.reason);
            supervised("reopened", Some(CaseState::Reopened), detail, flags(Some(false), Some(false)))
        }
        Body::DeadlineMissed(e) => supervised(
            "overdue",
            None,
            format!("{} deadline missed", proto::json::code_of::<Stage>(e.stage)),
            flags(Some(true), None),
        ),
        Body::CaseSupervised(e) => supervised("supervised", None, supervised_detail(e), Flags::default()),
        Body::CaseJoint(e) => noted("joint", joint_detail(e), "routing"),
        Body::SubsidyCredited(e) => noted("credited", credited_detail(e), "subsidy"),
    };
    Some(filing)
}

/// A credit (以案定补) as the file shows it.
fn credited_detail(e: &proto::events::v1::SubsidyCredited) -> String {
    format!("以案定补 {} fen to {} (rule {} v{})", e.amount_fen, e.person_id, e.tariff_rule_id, e.tariff_version)
}

/// A step of handling a task (签收, 退单, 办结): about that task, so a stale one is not applied; it neither misses a
/// deadline nor closes the case.
fn handling(action: &'static str, to: CaseState, detail: String, task_id: &str) -> Filing {
    let step = Step { action, to_state: Some(to), detail, task: None, source: "routing" };
    Filing { step, about_task: Some(task_id.to_owned()), flags: Flags::default() }
}

/// A hop or a recall leaves the case without a live task, waiting at its holding center: it reads as awaiting
/// dispatch (registered) until the next case.dispatched, which for a hop follows at once. The missed deadline
/// was the superseded task's; the case starts afresh at its (new) center.
fn hop(action: &'static str, detail: String) -> Filing {
    let task = Some((String::new(), String::new()));
    let step = Step { action, to_state: Some(CaseState::Registered), detail, task, source: "routing" };
    Filing { step, about_task: None, flags: Flags { overdue: Some(false), awaiting_follow_up: None } }
}

/// A step of supervision's (销号, 回访, 重办, a missed deadline, a 督办 card), about the whole case.
fn supervised(action: &'static str, to_state: Option<CaseState>, detail: String, flags: Flags) -> Filing {
    Filing { step: Step { action, to_state, detail, task: None, source: "supervision" }, about_task: None, flags }
}

/// A step that records what happened without moving the case (吹哨报到, a credit).
fn noted(action: &'static str, detail: String, source: &'static str) -> Filing {
    let step = Step { action, to_state: None, detail, task: None, source };
    Filing { step, about_task: None, flags: Flags::default() }
}

/// How a step of 吹哨报到 reads in the case file.
fn joint_detail(e: &proto::events::v1::CaseJoint) -> String {
    let unit = if e.unit_name.is_empty() { e.unit_code.clone() } else { format!("{} ({})", e.unit_name, e.unit_code) };
    let note = if e.note.is_empty() { String::new() } else { format!(": {}", e.note) };
    match e.action.as_str() {
        "summoned" => format!("吹哨报到: 协办 {unit}{note}"),
        "reported_in" => format!("{unit} 报到"),
        "contributed" => format!("{unit} 协办意见{note}"),
        "released" => format!("{unit} 退出协办{note}"),
        other => format!("协办 {unit} {other}{note}"),
    }
}

/// A dispatch as the file shows it: the slip, the unit, and how it was chosen (by hand with its reason, the
/// rule's fallback, or the center keeping it).
fn dispatched_detail(e: &proto::events::v1::CaseDispatched) -> String {
    let slip = format!("交办单 {} → {} ({}), attempt {}", e.slip_no, e.unit_name, e.unit_code, e.attempt);
    let by = if e.center_code.is_empty() { String::new() } else { format!(" by center {}", e.center_code) };
    match e.via.as_str() {
        "manual" => format!("{slip}{by}, 人工交办: {}", e.reason),
        "fallback" => format!("{slip}{by}, rule {} unit off duty or retired: fallback", e.rule_id),
        "center" if !e.rule_id.is_empty() => {
            format!("{slip}{by}, rule {} unit off duty or retired: 兜底 to the center", e.rule_id)
        }
        // Chosen by a rule, kept by the center with no rule, or from a producer that does not say.
        "rule" | "center" | "" => format!("{slip}{by}"),
        // A way of choosing this build does not know is shown as it came.
        other => format!("{slip}{by} ({other})"),
    }
}

/// A hop between centers: 上报 (越级 when it skipped a level) or 下派, with the reason.
fn escalated_detail(e: &proto::events::v1::CaseEscalated) -> String {
    let hop = match (e.direction.as_str(), e.skip_level) {
        ("up", true) => "越级上报",
        ("up", false) => "上报",
        ("down", _) => "下派",
        (other, _) => other,
    };
    format!("{hop} {} → {}: {}", e.from_center, e.to_center, e.reason)
}

/// How a step of graded supervision reads in the case file: the slip and whom it went to, or the clock change
/// with the words given for it. An action this build does not know is shown as it came.
fn supervised_detail(e: &proto::events::v1::CaseSupervised) -> String {
    let stage = match Stage::try_from(e.stage) {
        Ok(Stage::Accept) => "签收",
        Ok(Stage::Resolve) => "办结",
        Ok(Stage::Report) => "报到",
        Ok(Stage::Unspecified) | Err(_) => "",
    };
    let due = if e.due_ms > 0 { kit::time::local(kit::time::from_ms(e.due_ms)) } else { String::new() };
    let note = if e.note.is_empty() { String::new() } else { format!(": {}", e.note) };
    let slip = |grade: &str| format!("《督办提示单》{} {grade} → {} ({stage} 时限 {due})", e.slip_no, e.unit_code);
    match e.action.as_str() {
        "reminder" => slip("临期提醒"),
        "yellow" => slip("黄牌"),
        "red" => format!("{}, 抄送 {}", slip("红牌"), e.copy_to),
        "extension_requested" => format!("{} 申请延期{stage}至 {due}{note}", e.unit_code),
        "extended" => format!("延期批准, {stage}时限 {due}{note}"),
        "extension_rejected" => format!("延期驳回{note}"),
        "pause_requested" => format!("{} 申请挂账 ({stage}){note}", e.unit_code),
        "paused" => format!("挂账批准, {stage}计时中止{note}"),
        "pause_rejected" => format!("挂账驳回{note}"),
        "resumed" => format!("恢复计时, {stage}时限 {due}{note}"),
        other => format!("督办 {other} ({stage}){note}"),
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
            assert_eq!(filing(&body).map(|f| f.flags), Some(want), "{name}");
        }
    }

    /// An enum of the event reads as its code in the file, not as its number.
    #[test]
    fn outcomes_and_satisfaction_read_as_words() {
        use proto::events::v1::{CaseFollowedUp, CaseResolved};
        use proto::vocab::v1::{Outcome, Satisfaction};
        let resolved =
            CaseResolved { outcome: Outcome::DisputeResolved.into(), resolver_id: "p-1".into(), ..Default::default() };
        let visited = CaseFollowedUp { satisfaction: Satisfaction::BasicallySatisfied.into(), ..Default::default() };
        let detail = |body| filing(&body).map(|f| f.step.detail).unwrap_or_default();
        assert_eq!(detail(Body::CaseResolved(resolved)), "办结 dispute_resolved by p-1");
        assert_eq!(detail(Body::CaseFollowedUp(visited)), "回访: basically_satisfied");
    }

    #[test]
    fn supervision_and_joint_steps_read_in_chinese_with_their_slip_and_unit() {
        use proto::events::v1::{CaseJoint, CaseSupervised};
        let card = |action: &str| CaseSupervised {
            task_id: "t".into(),
            stage: Stage::Accept.into(),
            action: action.into(),
            slip_no: "532901-督-2026-00003".into(),
            unit_code: "dali-sfs".into(),
            copy_to: "532900000000".into(),
            due_ms: 1_764_300_000_000,
            note: "等鉴定".into(),
        };
        let red = supervised_detail(&card("red"));
        assert!(
            red.contains("红牌") && red.contains("532901-督-2026-00003") && red.contains("抄送 532900000000"),
            "{red}"
        );
        assert!(supervised_detail(&card("reminder")).contains("临期提醒 → dali-sfs (签收"));
        assert!(supervised_detail(&card("extended")).starts_with("延期批准, 签收时限 2025-11-28T"));
        assert!(supervised_detail(&card("pause_requested")).ends_with(": 等鉴定"));
        assert!(
            supervised_detail(&card("recalibrated")).contains("recalibrated"),
            "an unknown action shows as it came"
        );
        let joint = |action: &str| CaseJoint {
            unit_code: "zjj".into(),
            unit_name: "住建局".into(),
            action: action.into(),
            note: "房屋安全".into(),
            ..Default::default()
        };
        assert_eq!(joint_detail(&joint("summoned")), "吹哨报到: 协办 住建局 (zjj): 房屋安全");
        assert_eq!(joint_detail(&joint("reported_in")), "住建局 (zjj) 报到");
        assert!(matches!(
            filing(&Body::CaseJoint(joint("released"))),
            Some(Filing { step: Step { to_state: None, .. }, .. })
        ));
    }
}
