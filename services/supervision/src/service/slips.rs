//! The 《督办提示单》 behind the slip RPCs: listing a case's slips, the unit's acknowledgement, and printing one.

use std::path::PathBuf;
use std::sync::OnceLock;

use kit::auth::{Permission, Principal};
use uuid::Uuid;

use super::Supervision;
use crate::db;
use crate::domain::{SlipRecord, no_case};
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
        let stage = match s.stage {
            crate::domain::Stage::Accept => "签收",
            crate::domain::Stage::Resolve => "办结",
        };
        let slip = Slip {
            kind: SlipKind::Supervision,
            number: s.number.clone(),
            issuer: format!("综治中心 ({})", s.center_code),
            unit: s.unit_code.clone(),
            copy_to: s.copy_to.clone(),
            case_no: s.case_no.clone(),
            summary: format!(
                "案件 {}（类别 {}）{}时限 {}",
                s.case_no,
                s.category_code,
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
}

impl Supervision {
    /// The case's slips the caller may see: all of them within the case's readable scope, else those addressed
    /// to the caller's units.
    pub async fn slips(&self, p: &Principal, case_id: Uuid) -> Result<Vec<SlipRecord>> {
        let mut conn = self.pool.acquire().await?;
        let case = db::case(&mut conn, case_id).await?;
        let all = db::slips_of_case(&mut conn, case_id).await?;
        if scope::readable(p, case_id, case.as_ref()).is_ok() {
            return Ok(all);
        }
        let reach = p.scope(Permission::ReadCase);
        let own: Vec<SlipRecord> = all.into_iter().filter(|s| reach.covers_unit(&s.unit_code)).collect();
        if own.is_empty() { Err(no_case(case_id)) } else { Ok(own) }
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
        let mut tx = self.pool.begin().await?;
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
