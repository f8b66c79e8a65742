//! Routing's view of the registry's units: which departments and centers exist, where a department is
//! stationed, and whether it receives cases today (retired, or a 轮驻 department off its schedule). Rules are
//! bound to what the registry knows when they are put, and dispatch by rule skips a department that does not
//! receive cases. Every registry call runs before a transaction opens (never while holding a connection), and
//! dispatch reads duty through a short cache, so a registration pays no registry round trip while it is fresh.
//!
//! [`Planner`] puts the pieces a dispatch by rule needs — the routing table (cached in memory, re-read when it
//! changes) and the duty of the departments the case could end at — into a [`Plan`] made before the
//! dispatching transaction opens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use proto::registry::v1::registry_client::RegistryClient;
use proto::registry::v1::{GetDepartmentRequest, GetNodeRequest};
use sqlx::{PgConnection, PgPool};
use tonic::Code;

use crate::db;
use crate::domain::{CaseFacts, Duty, Roster, Rule, candidates};
use crate::error::{Error, Result};

/// A department as the registry knows it today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    pub code: String,
    pub name: String,
    pub center_code: String,
    pub duty: Duty,
}

pub struct Units {
    registry: RegistryClient<kit::grpc::Channel>,
    ttl: Duration,
    duty: Mutex<HashMap<String, (Instant, Duty)>>,
}

impl Units {
    pub fn new(registry: RegistryClient<kit::grpc::Channel>, ttl: Duration) -> Self {
        Self { registry, ttl, duty: Mutex::new(HashMap::new()) }
    }

    /// The department as the registry says now (never from the cache: binding a rule or a manual dispatch
    /// decides on the current record); None when the registry does not know it.
    pub async fn department(&self, code: &str) -> Result<Option<Department>> {
        let request = GetDepartmentRequest { code: code.to_owned(), date: String::new() };
        match self.registry.clone().get_department(request).await {
            Ok(r) => {
                let r = r.into_inner();
                Ok(r.department.map(|d| Department {
                    duty: match (d.retired, r.on_duty) {
                        (true, _) => Duty::Retired,
                        (false, true) => Duty::OnDuty,
                        (false, false) => Duty::OffDuty,
                    },
                    code: d.code,
                    name: d.name,
                    center_code: d.center_code,
                }))
            }
            Err(s) if matches!(s.code(), Code::NotFound | Code::InvalidArgument) => Ok(None),
            Err(s) => {
                tracing::warn!(status = %s, department = code, "registry call failed");
                Err(Error::Unavailable("the grid registry"))
            }
        }
    }

    /// The name of the center at `code`, when the registry has a center there.
    pub async fn center(&self, code: &str) -> Result<Option<String>> {
        match self.registry.clone().get_node(GetNodeRequest { code: code.to_owned() }).await {
            Ok(r) => Ok(r.into_inner().node.filter(|n| n.has_center).map(|n| n.name)),
            Err(s) if matches!(s.code(), Code::NotFound | Code::InvalidArgument) => Ok(None),
            Err(s) => {
                tracing::warn!(status = %s, center = code, "registry call failed");
                Err(Error::Unavailable("the grid registry"))
            }
        }
    }

    /// The duty of these departments for dispatch by rule: fresh cache entries as they are, the rest asked of
    /// the registry. A department the registry does not know counts as retired; one it cannot be asked about
    /// now keeps its last known duty, or is left out (on duty) so cases keep flowing by the rules.
    pub async fn roster(&self, codes: &[&str]) -> Roster {
        let now = Instant::now();
        let mut roster = HashMap::new();
        let mut ask = Vec::new();
        {
            let cache = self.duty.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for code in codes {
                match cache.get(*code) {
                    Some((at, duty)) if now.duration_since(*at) < self.ttl => {
                        roster.insert((*code).to_owned(), *duty);
                    }
                    _ => ask.push(*code),
                }
            }
        }
        for code in ask {
            let duty = match self.department(code).await {
                Ok(Some(d)) => d.duty,
                Ok(None) => Duty::Retired,
                Err(_) => {
                    let cache = self.duty.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if let Some((_, stale)) = cache.get(code) {
                        roster.insert(code.to_owned(), *stale);
                    }
                    continue;
                }
            };
            self.duty
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(code.to_owned(), (Instant::now(), duty));
            roster.insert(code.to_owned(), duty);
        }
        Roster(roster)
    }
}

/// What a dispatch by rule decides on, made before its transaction opens.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub rules: Arc<Vec<Rule>>,
    pub roster: Roster,
    /// The 交办单 number taken for it beforehand, when the dispatch is the consumer's (see
    /// [`Planner::plan_reserving`]).
    pub slip: Option<SlipSeq>,
}

/// A slip number taken ahead of its dispatch: the center's significant prefix, its local day and the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlipSeq {
    pub center_prefix: String,
    pub day: String,
    pub seq: i32,
}

/// The routing table read whole, and the version it was read at.
type Table = ((i64, Option<DateTime<Utc>>), Arc<Vec<Rule>>);

pub struct Planner {
    pub pool: PgPool,
    pub units: Arc<Units>,
    table: Mutex<Option<Table>>,
}

impl Planner {
    pub fn new(pool: PgPool, units: Arc<Units>) -> Self {
        Self { pool, units, table: Mutex::new(None) }
    }

    /// The plan for a case with these facts: the current table and the duty of the departments its matching
    /// rules name (units and fallbacks). The connection is handed back before the registry is asked.
    pub async fn plan(&self, facts: &CaseFacts) -> Result<Plan> {
        self.plan_reserving(facts, None).await
    }

    /// [`Planner::plan`], with the next 交办单 number of `slip_center`'s day taken on the same connection as
    /// the table is checked on (a checkout, and its ping, fewer per dispatch).
    ///
    /// The number is taken in a statement of its own, before the consumer's batch transaction: a number taken
    /// inside it kept the center's counter row locked until the batch committed, so every partition's batch
    /// queued on that one row. A number whose dispatch then does not happen (a batch retried, a redelivery) is
    /// a gap; numbers stay unique and are never reused.
    pub async fn plan_reserving(&self, facts: &CaseFacts, slip_center: Option<&str>) -> Result<Plan> {
        let (rules, slip) = {
            let mut conn = self.pool.acquire().await?;
            let rules = self.rules(&mut conn).await?;
            let slip = match slip_center {
                Some(center) => {
                    let center_prefix = kit::division::significant(center).to_owned();
                    let day = kit::time::local_date(Utc::now());
                    let seq = db::next_slip_seq(&mut conn, &center_prefix, &day).await?;
                    Some(SlipSeq { center_prefix, day, seq })
                }
                None => None,
            };
            (rules, slip)
        };
        let roster = self.units.roster(&candidates(&rules, facts)).await;
        Ok(Plan { rules, roster, slip })
    }

    /// The routing table, read again only when a rule was put since (any replica's put changes the version).
    pub async fn rules(&self, conn: &mut PgConnection) -> Result<Arc<Vec<Rule>>> {
        let version = db::rules_version(conn).await?;
        if let Some((v, rules)) = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref()
            && *v == version
        {
            return Ok(rules.clone());
        }
        let rules = Arc::new(db::rules(conn).await.map_err(Error::Internal)?);
        *self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((version, rules.clone()));
        Ok(rules)
    }
}
