//! The tree's RPCs (GetNode on the Registry service; ListDescendants, CountByLevel, SearchNames and
//! ImportDivisions on the Tree service): request → parsed values → one call → response.

use kit::error::Result;
use kit::field;
use proto::registry::v1 as pb;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Status, Streaming};

use super::domain::{ImportOptions, ImportReport, Node, Progress, descendants_page_token, level_required, upload_fits};
use super::service;
use crate::scope;
use crate::shared::{next_page_token, page_size};

impl From<Node> for pb::Node {
    fn from(n: Node) -> Self {
        pb::Node {
            code: n.code,
            name: n.name,
            level: u32::try_from(n.level).unwrap_or(0),
            parent_code: n.parent_code.unwrap_or_default(),
            has_center: n.has_center,
        }
    }
}

pub async fn get_node(pool: &PgPool, request: Request<pb::GetNodeRequest>) -> Result<pb::GetNodeResponse> {
    let code = field::division_code("code", &request.get_ref().code)?;
    let (node, ancestors) = service::node(pool, code).await?;
    Ok(pb::GetNodeResponse { node: Some(node.into()), ancestors: ancestors.into_iter().map(Into::into).collect() })
}

pub async fn list_descendants(
    pool: &PgPool,
    request: Request<pb::ListDescendantsRequest>,
) -> Result<pb::ListDescendantsResponse> {
    let req = request.into_inner();
    let code = field::division_code("code", &req.code)?;
    let level = level_required(req.level)?;
    let after = descendants_page_token(&req.page_token)?;
    let limit = page_size(req.page_size, 100, 1000);
    let nodes: Vec<pb::Node> =
        service::descendants(pool, code, level, after, limit).await?.into_iter().map(Into::into).collect();
    let next_page_token = next_page_token(&nodes, limit, |n| &n.code);
    Ok(pb::ListDescendantsResponse { nodes, next_page_token })
}

pub async fn count_by_level(
    pool: &PgPool,
    request: Request<pb::CountByLevelRequest>,
) -> Result<pb::CountByLevelResponse> {
    let code = field::division_code("code", &request.get_ref().code)?;
    let counts: Vec<pb::LevelCount> = service::count_by_level(pool, code)
        .await?
        .into_iter()
        .map(|(level, n)| pb::LevelCount {
            level: u32::try_from(level).unwrap_or(0),
            count: u64::try_from(n).unwrap_or(0),
        })
        .collect();
    let total = counts.iter().map(|c| c.count).sum();
    Ok(pb::CountByLevelResponse { counts, total })
}

pub async fn search_names(pool: &PgPool, request: Request<pb::SearchNamesRequest>) -> Result<pb::SearchNamesResponse> {
    let req = request.into_inner();
    let code = field::division_code("code", &req.code)?;
    let query = field::text("query", &req.query, 50)?;
    let limit = page_size(req.page_size, 50, 200);
    let nodes = service::search_names(pool, code, query, limit).await?.into_iter().map(Into::into).collect();
    Ok(pb::SearchNamesResponse { nodes })
}

pub type ImportStream = UnboundedReceiverStream<std::result::Result<pb::ImportDivisionsProgress, Status>>;

pub async fn import_divisions(
    pool: &PgPool,
    request: Request<Streaming<pb::ImportDivisionsChunk>>,
) -> Result<ImportStream> {
    scope::whole_tree(&scope::manage(&request)?)?;
    let (out, rx) = mpsc::unbounded_channel();
    let (pool, input) = (pool.clone(), request.into_inner());
    // The import runs to its end (commit or rollback) even if the caller goes away, so a half-sent answer
    // never leaves a half-made registry.
    tokio::spawn(async move {
        let result = receive_and_import(pool, input, out.clone()).await;
        let _ = out.send(result.map(report_message));
    });
    Ok(UnboundedReceiverStream::new(rx))
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

type Sink = mpsc::UnboundedSender<std::result::Result<pb::ImportDivisionsProgress, Status>>;

/// Reads the whole upload; options come from the first chunk.
async fn receive(
    input: &mut Streaming<pb::ImportDivisionsChunk>,
    out: &Sink,
) -> std::result::Result<(ImportOptions, Vec<u8>), Status> {
    let mut opts = None;
    let mut data = Vec::new();
    while let Some(chunk) = input.message().await? {
        if opts.is_none() {
            let parsed = ImportOptions::parse(&chunk.edition, chunk.retire_missing, chunk.establish_centers);
            opts = Some(parsed.map_err(kit::Error::from)?);
        }
        upload_fits(data.len(), chunk.data.len()).map_err(kit::Error::from)?;
        data.extend_from_slice(&chunk.data);
        let _ = out.send(Ok(progress_message(&Progress { phase: "received", done: data.len() as u64, total: 0 })));
    }
    match opts {
        Some(opts) if !data.is_empty() => Ok((opts, data)),
        _ => Err(kit::Error::invalid("data", "is empty").into()),
    }
}

async fn receive_and_import(
    pool: PgPool,
    mut input: Streaming<pb::ImportDivisionsChunk>,
    out: Sink,
) -> std::result::Result<ImportReport, Status> {
    let (opts, data) = receive(&mut input, &out).await?;
    let sink = out.clone();
    let progress = move |p: Progress| {
        let _ = sink.send(Ok(progress_message(&p)));
    };
    Ok(service::import_bytes(&pool, data, opts, progress).await.map_err(kit::Error::from)?)
}
