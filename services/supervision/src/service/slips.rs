//! The 《督办提示单》 behind the slip RPCs: listing a case's slips, the unit's acknowledgement, and printing one.

use std::path::PathBuf;
use std::sync::OnceLock;

use kit::auth::{Permission, Principal};
use kit::ids::CaseId;

use super::Supervision;
use crate::db;
use crate::domain::calendar::ClockKind;
use crate::domain::policy::Limit;
use crate::domain::{SlipRecord, Stage, TASK_SLIP_PREFIX, TaskSlip, no_case};
use crate::error::{Error, Result};
use crate::scope;
use crate::slip::{self, Slip, SlipFont, SlipKind};

/// Prints slips with the configured font, loaded on first use: a service without the font serves everything
/// but printing, and says what is missing when asked to print.
pub struct Printer {
    path: PathBuf,
    font: OnceLock<std::result::Result<SlipFont, String>>,
}

impl Printer {
    pub fn new(path: PathBuf) -> Self {
        Self { path, font: OnceLock::new() }
    }

    fn font(&self) -> Result<&SlipFont> {
        let font = self.font.get_or_init(|| SlipFont::load(&self.path).map_err(|e| e.to_string()));
        font.as_ref().map_err(|why| {
            tracing::error!(path = %self.path.display(), %why, "the slip font cannot be loaded");
            Error::Unavailable("slip printing (the CJK font SLIP_FONT names)")
        })
    }

    /// The slip as the unit receives it. What supervision knows of the case is its number and category: no
    /// personal data reaches a slip.
    pub fn print(&self, s: &SlipRecord) -> Result<Vec<u8>> {
        let stage = s.stage.words();
        let slip = Slip {
            kind: SlipKind::Supervision,
            number: s.number.clone(),
            issuer: center_words(&s.center_name, &s.center_code),
            unit: unit_words(&s.unit_name, &s.unit_code),
            copy_to: if s.copy_to.is_empty() { String::new() } else { center_words(&s.copy_to_name, &s.copy_to) },
            case_no: s.case_no.clone(),
            summary: format!(
                "案件 {}（{}）{}时限 {}",
                s.case_no,
                category_words(&s.category_name, &s.category_code),
                stage,
                slip::local_minute(s.due_at)
            ),
            requirements: format!("请于时限内完成{stage}并反馈；{}。", slip::grade_words(s.grade)),
            due_at: s.due_at,
            grade: Some(s.grade),
            issued_at: s.issued_at,
            verification_code: s.verification_code.clone(),
        };
        slip::render(&slip, self.font()?).map_err(|e| Error::Internal(e.into()))
    }

    /// The 《工作任务交办单》 as it went with the dispatch: the unit, the case, and both limits (签收 by the accept
    /// clock's due time, 办结 within the policy's limit once accepted).
    /// `co_units` are the units summoned to co-handle (吹哨报到), listed beside the lead.
    pub fn print_task(
        &self,
        s: &TaskSlip,
        resolve_limit: Option<Limit>,
        co_units: &[String],
        verification_code: String,
    ) -> Result<Vec<u8>> {
        let accept = match s.accept_due {
            Some(due) => format!("请于 {} 前签收", slip::local_minute(due)),
            None => "请即签收".to_owned(),
        };
        let resolve = resolve_limit.map_or_else(String::new, |l| format!("，签收后{}内办结", limit_words(l)));
        let lead = unit_words(&s.unit_name, &s.unit_code);
        let unit =
            if co_units.is_empty() { lead } else { format!("{lead}（主办）；协办：{}", co_units.join("、")) };
        let slip = Slip {
            kind: SlipKind::Task,
            number: s.number.clone(),
            issuer: center_words(&s.center_name, &s.center_code),
            unit,
            copy_to: String::new(),
            case_no: s.case_no.clone(),
            summary: format!("案件 {}（{}）", s.case_no, category_words(&s.category_name, &s.category_code)),
            requirements: format!("{accept}{resolve}；逾期未签收或未办结的，发《督办提示单》督办。"),
            due_at: s.due_at(),
            grade: None,
            issued_at: s.issued_at(),
            verification_code,
        };
        slip::render(&slip, self.font()?).map_err(|e| Error::Internal(e.into()))
    }
}

/// `平坡镇综治中心 (532901003000)`, or the code alone with the generic name.
fn center_words(name: &str, code: &str) -> String {
    format!("{name}综治中心 ({code})")
}

/// `类别 邻里纠纷 (0102)`: the name at the version the case was registered under, or the code alone for a case
/// registered before names were carried.
fn category_words(name: &str, code: &str) -> String {
    if name.is_empty() { format!("类别 {code}") } else { format!("类别 {name} ({code})") }
}

/// `漾濞县司法局 (532922-SFJ)`, or the code alone when the dispatch named no unit.
fn unit_words(name: &str, code: &str) -> String {
    if name.is_empty() { code.to_owned() } else { format!("{name} ({code})") }
}

/// How a limit reads on a slip: `5个工作日`, `8个工作小时`, `24小时`.
fn limit_words(l: Limit) -> String {
    let minutes = l.amount.num_minutes();
    let (n, unit) = match l.clock {
        ClockKind::WorkingDays => (l.amount.num_days(), "个工作日"),
        ClockKind::WorkingHours if minutes % 60 == 0 => (l.amount.num_hours(), "个工作小时"),
        ClockKind::CalendarHours if minutes % 60 == 0 => (l.amount.num_hours(), "小时"),
        ClockKind::WorkingHours => (minutes, "个工作分钟"),
        ClockKind::CalendarHours => (minutes, "分钟"),
    };
    format!("{n}{unit}")
}

impl Supervision {
    /// The case's slips the caller may see: all of them within the case's readable scope, else those addressed
    /// to the caller's units.
    /// The task slips come with them, each with its verification code.
    pub async fn slips(&self, p: &Principal, case_id: CaseId) -> Result<(Vec<(TaskSlip, String)>, Vec<SlipRecord>)> {
        let mut conn = self.pool.acquire().await?;
        let case = db::case(&mut conn, case_id).await?;
        let mut tasks = db::task_slips_of_case(&mut conn, case_id).await?;
        let mut all = db::slips_of_case(&mut conn, case_id).await?;
        if scope::readable(p, case_id, case.as_ref()).is_err() {
            let reach = p.scope(Permission::ReadCase);
            tasks.retain(|s| reach.covers_unit(&s.unit_code));
            all.retain(|s| reach.covers_unit(&s.unit_code));
            if tasks.is_empty() && all.is_empty() {
                return Err(no_case(case_id));
            }
        }
        let tasks = tasks.into_iter().map(|t| (self.task_code(&t), t)).map(|(c, t)| (t, c)).collect();
        Ok((tasks, all))
    }

    /// A task slip's verification code, as the 督办 slips' ([`slip::verification_code`]).
    fn task_code(&self, t: &TaskSlip) -> String {
        slip::verification_code(&self.sealer, &t.number, &t.unit_code, &t.case_no, t.due_at())
    }

    /// One task slip the caller may read, printed.
    pub async fn print_task_slip(&self, p: &Principal, number: &str) -> Result<Vec<u8>> {
        let mut conn = self.pool.acquire().await?;
        let missing = || Error::not_found(format!("slip {number}"));
        let s = db::task_slip(&mut conn, number).await?.ok_or_else(missing)?;
        let case = db::case(&mut conn, s.case_id).await?;
        let readable = scope::readable(p, s.case_id, case.as_ref()).is_ok();
        if !readable && !p.scope(Permission::ReadCase).covers_unit(&s.unit_code) {
            return Err(missing());
        }
        let limit = match (s.policy_version, case.as_ref()) {
            (Some(version), Some(case)) => {
                let policy = self.clocks.policy(&mut conn, version).await.map_err(Error::Internal)?;
                policy.rule(&case.category_code, case.urgency, Stage::Resolve).map(|r| r.limit)
            }
            _ => None,
        };
        let co_units = db::co_units_of(&mut conn, &s.task_id).await?;
        drop(conn);
        self.slips.print_task(&s, limit, &co_units, self.task_code(&s))
    }

    /// One slip the caller may read, by number.
    pub async fn slip(&self, p: &Principal, number: &str) -> Result<SlipRecord> {
        let mut conn = self.pool.acquire().await?;
        let missing = || Error::not_found(format!("slip {number}"));
        let s = db::slip(&mut conn, number, false).await?.ok_or_else(missing)?;
        let case = db::case(&mut conn, s.case_id).await?;
        let readable = scope::readable(p, s.case_id, case.as_ref()).is_ok();
        if readable || p.scope(Permission::ReadCase).covers_unit(&s.unit_code) { Ok(s) } else { Err(missing()) }
    }

    /// The unit's acknowledgement (签收确认) of a slip addressed to it; a slip is acknowledged once.
    pub async fn acknowledge_slip(&self, p: &Principal, number: &str) -> Result<SlipRecord> {
        let mut tx = kit::audit::begin(&self.pool).await?;
        if number.starts_with(TASK_SLIP_PREFIX) {
            return Err(Error::failed_precondition(format!(
                "{number} is a task slip (交办单): the unit acknowledges it by accepting the task (签收)"
            )));
        }
        let s = db::slip(&mut tx, number, true).await?.ok_or_else(|| Error::not_found(format!("slip {number}")))?;
        if !p.scope(Permission::HandleTask).covers_unit(&s.unit_code) {
            return Err(Error::denied(format!("acknowledging a slip addressed to unit {}", s.unit_code)));
        }
        if let Some(at) = s.acknowledged_at {
            return Err(Error::failed_precondition(format!(
                "slip {number} was already acknowledged at {}",
                kit::time::local(at)
            )));
        }
        let by = if p.person_id.is_empty() { p.subject.clone() } else { p.person_id.clone() };
        let at = db::acknowledge_slip(&mut tx, s.id, &by).await?;
        tx.commit().await?;
        Ok(SlipRecord { acknowledged_at: Some(at), acknowledged_by: by, ..s })
    }
}
