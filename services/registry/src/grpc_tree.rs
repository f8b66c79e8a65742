//! The `Tree` gRPC service, thin: request → parsed values → one call → response.

use chrono::NaiveDate;
use kit::{FieldError, field};
use proto::registry::v1 as pb;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::centers::{self, Rotation, When};
use crate::error::Error;
use crate::grpc::{to_department, to_node, to_person};
use crate::import::{ImportError, ImportOptions, ImportReport, Progress};
use crate::{scope, tree, tree_queries};

pub struct TreeService(pub PgPool);

/// The largest upload accepted: the national table is 32 MB as CSV and 5 MB gzipped.
const MAX_UPLOAD: usize = 256 << 20;
const MAX_ROTATION_LINES: usize = 64;

fn bad(e: FieldError) -> Status {
    kit::grpc::invalid(&e)
}

fn page_size(requested: u32, default: u32, max: u32) -> i64 {
    i64::from(if requested == 0 { default } else { requested.min(max) })
}

fn date(field_name: &str, value: &str) -> Result<NaiveDate, FieldError> {
    NaiveDate::parse_from_str(field::required(field_name, value)?, "%Y-%m-%d")
        .map_err(|_| FieldError::new(field_name, "must be a date as YYYY-MM-DD"))
}

fn rotation_line(i: usize, e: &pb::RotationEntry) -> Result<Rotation, FieldError> {
    let has_dates = !e.from_date.trim().is_empty() || !e.to_date.trim().is_empty();
    let when = match (e.weekday, has_dates) {
        (1..=7, false) => When::Weekday(u8::try_from(e.weekday).unwrap_or(0)),
        (0, true) => {
            let (from, to) = (
                date(&format!("entries[{i}].from_date"), &e.from_date)?,
                date(&format!("entries[{i}].to_date"), &e.to_date)?,
            );
            if from > to {
                return Err(FieldError::new(format!("entries[{i}].to_date"), "is before from_date"));
            }
            When::Dates(from, to)
        }
        (0, false) => {
            return Err(FieldError::new(format!("entries[{i}].weekday"), "is required unless a date range is given"));
        }
        (1..=7, true) => {
            return Err(FieldError::new(format!("entries[{i}].weekday"), "cannot be combined with a date range"));
        }
        _ => return Err(FieldError::new(format!("entries[{i}].weekday"), "must be 1 (Monday) to 7 (Sunday)")),
    };
    Ok(Rotation { when, stationed: e.stationed })
}

fn to_entry(r: &Rotation) -> pb::RotationEntry {
    match r.when {
        When::Weekday(w) => pb::RotationEntry { weekday: u32::from(w), stationed: r.stationed, ..Default::default() },
        When::Dates(f, t) => pb::RotationEntry {
            from_date: f.to_string(),
            to_date: t.to_string(),
            stationed: r.stationed,
            ..Default::default()
        },
    }
}

fn progress_message(p: &Progress) -> pb::ImportDivisionsProgress {
    pb::ImportDivisionsProgress { phase: p.phase.to_owned(), done: p.done, total: p.total, report: None }
}

fn report_message(r: ImportReport) -> pb::ImportDivisionsProgress {
    pb::ImportDivisionsProgress {
        phase: "done".into(),
        done: r.rows,
        total: r.rows,
        report: Some(pb::ImportDivisionsReport {
            rows: r.rows,
            added: r.added,
            changed: r.changed,
            retired: r.retired,
            unchanged: r.unchanged,
        }),
    }
}

type Sink = mpsc::UnboundedSender<Result<pb::ImportDivisionsProgress, Status>>;

/// Reads the whole upload; options come from the first chunk.
async fn receive(
    input: &mut Streaming<pb::ImportDivisionsChunk>,
    out: &Sink,
) -> Result<(ImportOptions, Vec<u8>), Status> {
    let mut opts = None;
    let mut data = Vec::new();
    while let Some(chunk) = input.message().await? {
        if opts.is_none() {
            let edition = field::text("edition", &chunk.edition, 16).map_err(bad)?.to_owned();
            opts = Some(ImportOptions {
                edition,
                retire_missing: chunk.retire_missing,
                establish_centers: chunk.establish_centers,
            });
        }
        if data.len() + chunk.data.len() > MAX_UPLOAD {
            return Err(bad(FieldError::new("data", format!("is larger than {} MiB", MAX_UPLOAD >> 20))));
        }
        data.extend_from_slice(&chunk.data);
        let _ = out.send(Ok(progress_message(&Progress { phase: "received", done: data.len() as u64, total: 0 })));
    }
    match opts {
        Some(opts) if !data.is_empty() => Ok((opts, data)),
        _ => Err(bad(FieldError::new("data", "is empty"))),
    }
}

async fn receive_and_import(
    pool: PgPool,
    mut input: Streaming<pb::ImportDivisionsChunk>,
    out: Sink,
) -> Result<ImportReport, Status> {
    let (opts, data) = receive(&mut input, &out).await?;
    let sink = out.clone();
    let progress = move |p: Progress| {
        let _ = sink.send(Ok(progress_message(&p)));
    };
    tree_queries::import_bytes(&pool, data, opts, progress).await.map_err(|e| match e {
        ImportError::Malformed { line, reason } => bad(FieldError::new("data", format!("line {line}: {reason}"))),
        ImportError::Db(cause) => kit::grpc::failure("division import failed", &cause.into()),
    })
}

#[tonic::async_trait]
impl pb::tree_server::Tree for TreeService {
    async fn list_descendants(
        &self,
        request: Request<pb::ListDescendantsRequest>,
    ) -> Result<Response<pb::ListDescendantsResponse>, Status> {
        let req = request.into_inner();
        let code = field::division_code("code", &req.code).map_err(bad)?;
        if req.level == 0 {
            return Err(bad(FieldError::new("level", "is required")));
        }
        let after = req.page_token.trim();
        if !after.is_empty() && !kit::division::is_code(after) {
            return Err(bad(FieldError::new("page_token", "is not a token this service issued")));
        }
        let limit = page_size(req.page_size, 100, 1000);
        let nodes: Vec<pb::Node> =
            tree_queries::descendants(&self.0, code, req.level, after, limit).await?.into_iter().map(to_node).collect();
        let next_page_token = match nodes.last() {
            Some(last) if nodes.len() as i64 == limit => last.code.clone(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListDescendantsResponse { nodes, next_page_token }))
    }

    async fn count_by_level(
        &self,
        request: Request<pb::CountByLevelRequest>,
    ) -> Result<Response<pb::CountByLevelResponse>, Status> {
        let code = field::division_code("code", &request.get_ref().code).map_err(bad)?;
        let counts: Vec<pb::LevelCount> = tree_queries::count_by_level(&self.0, code)
            .await?
            .into_iter()
            .map(|(level, n)| pb::LevelCount {
                level: u32::try_from(level).unwrap_or(0),
                count: u64::try_from(n).unwrap_or(0),
            })
            .collect();
        let total = counts.iter().map(|c| c.count).sum();
        Ok(Response::new(pb::CountByLevelResponse { counts, total }))
    }

    async fn search_names(
        &self,
        request: Request<pb::SearchNamesRequest>,
    ) -> Result<Response<pb::SearchNamesResponse>, Status> {
        let req = request.into_inner();
        let code = field::division_code("code", &req.code).map_err(bad)?;
        let query = field::text("query", &req.query, 50).map_err(bad)?;
        let limit = page_size(req.page_size, 50, 200);
        let nodes = tree_queries::search_names(&self.0, code, query, limit).await?.into_iter().map(to_node).collect();
        Ok(Response::new(pb::SearchNamesResponse { nodes }))
    }

    type ImportDivisionsStream = UnboundedReceiverStream<Result<pb::ImportDivisionsProgress, Status>>;

    async fn import_divisions(
        &self,
        request: Request<Streaming<pb::ImportDivisionsChunk>>,
    ) -> Result<Response<Self::ImportDivisionsStream>, Status> {
        scope::whole_tree(&scope::manage(&request)?)?;
        let (out, rx) = mpsc::unbounded_channel();
        let (pool, input) = (self.0.clone(), request.into_inner());
        // The import runs to its end (commit or rollback) even if the caller goes away, so a half-sent answer
        // never leaves a half-made registry.
        tokio::spawn(async move {
            let result = receive_and_import(pool, input, out.clone()).await;
            let _ = out.send(result.map(report_message));
        });
        Ok(Response::new(UnboundedReceiverStream::new(rx)))
    }

    async fn establish_center(
        &self,
        request: Request<pb::EstablishCenterRequest>,
    ) -> Result<Response<pb::EstablishCenterResponse>, Status> {
        let code = field::division_code("code", &request.get_ref().code).map_err(bad)?;
        scope::write(&scope::manage(&request)?, code, &format!("center {code}"))?;
        let (node, established) = centers::establish(&self.0, code).await?;
        Ok(Response::new(pb::EstablishCenterResponse { node: Some(to_node(node)), established }))
    }

    async fn close_center(
        &self,
        request: Request<pb::CloseCenterRequest>,
    ) -> Result<Response<pb::CloseCenterResponse>, Status> {
        let code = field::division_code("code", &request.get_ref().code).map_err(bad)?;
        scope::write(&scope::manage(&request)?, code, &format!("center {code}"))?;
        let node = centers::close(&self.0, code).await?;
        Ok(Response::new(pb::CloseCenterResponse { node: Some(to_node(node)) }))
    }

    async fn set_rotation(
        &self,
        request: Request<pb::SetRotationRequest>,
    ) -> Result<Response<pb::SetRotationResponse>, Status> {
        let scope = scope::manage(&request)?;
        let req = request.into_inner();
        let department = field::text("department_code", &req.department_code, 64).map_err(bad)?;
        if req.entries.len() > MAX_ROTATION_LINES {
            return Err(bad(FieldError::new("entries", format!("has more than {MAX_ROTATION_LINES} lines"))));
        }
        let lines = req
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| rotation_line(i, e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let center = tree::department_center(&self.0, department)
            .await?
            .ok_or_else(|| Error::NotFound(format!("department {department}")))?;
        scope::write(&scope, &center, &format!("department {department}"))?;
        let saved = centers::set_rotation(&self.0, department, &lines).await?;
        Ok(Response::new(pb::SetRotationResponse { entries: saved.iter().map(to_entry).collect() }))
    }

    async fn list_stationed_departments(
        &self,
        request: Request<pb::ListStationedDepartmentsRequest>,
    ) -> Result<Response<pb::ListStationedDepartmentsResponse>, Status> {
        let req = request.into_inner();
        let center = field::division_code("center_code", &req.center_code).map_err(bad)?;
        let day = if req.date.trim().is_empty() {
            chrono::Utc::now().with_timezone(&kit::time::shanghai()).date_naive()
        } else {
            date("date", &req.date).map_err(bad)?
        };
        let departments = centers::stationed(&self.0, center, day)
            .await?
            .into_iter()
            .map(|s| pb::StationedDepartment {
                rotation: s.rotation.iter().map(to_entry).collect(),
                on_duty: s.on_duty,
                department: Some(to_department(s.department)),
            })
            .collect();
        Ok(Response::new(pb::ListStationedDepartmentsResponse { date: day.to_string(), departments }))
    }

    async fn change_eligibility(
        &self,
        request: Request<pb::ChangeEligibilityRequest>,
    ) -> Result<Response<pb::ChangeEligibilityResponse>, Status> {
        let scope = scope::manage(&request)?;
        let req = request.into_inner();
        let person = field::uuid("person_id", &req.person_id).map_err(bad)?;
        let source = field::text("eligibility_source", &req.eligibility_source, 200).map_err(bad)?;
        let reason = field::bounded("reason", &req.reason, 200).map_err(bad)?;
        scope::write(&scope, &tree::person_home(&self.0, person).await?, &format!("person {person}"))?;
        let row = centers::change_eligibility(&self.0, person, req.subsidy_eligible, source, reason).await?;
        Ok(Response::new(pb::ChangeEligibilityResponse { person: Some(to_person(row)) }))
    }

    async fn list_eligibility_changes(
        &self,
        request: Request<pb::ListEligibilityChangesRequest>,
    ) -> Result<Response<pb::ListEligibilityChangesResponse>, Status> {
        let person = field::uuid("person_id", &request.get_ref().person_id).map_err(bad)?;
        // A read: a person outside scope is not found, as a missing one is.
        if !scope::manage(&request)?.covers_node(&tree::person_home(&self.0, person).await?) {
            return Err(Error::NotFound(format!("person {person}")).into());
        }
        let changes = centers::eligibility_changes(&self.0, person)
            .await?
            .into_iter()
            .map(|c| pb::EligibilityChange {
                from_eligible: c.from_eligible,
                to_eligible: c.to_eligible,
                from_source: c.from_source,
                to_source: c.to_source,
                reason: c.reason,
                changed_at: kit::time::local(c.changed_at),
            })
            .collect();
        Ok(Response::new(pb::ListEligibilityChangesResponse { changes }))
    }
}
