//! A few cases driven all the way around the loop while the fault happens — 签收, 办结 by the grid worker,
//! 核查/销号, 回访 satisfied — so the subsidy ledger has credits to count (one per case, never two).
//!
//! Every step is retried through the fault. A step whose answer was lost (the call failed without a verdict)
//! may have taken effect: the refusal its retry then gets (FAILED_PRECONDITION, "already done") counts as done.

use std::time::Duration;

use proto::gateway::v1::desk_client::DeskClient;
use proto::intake::v1::GetCaseRequest;
use proto::registry::v1::SignInRequest;
use proto::routing::v1::{AcceptTaskRequest, ResolveTaskRequest};
use proto::supervision::v1::{FollowUpRequest, VerifyCaseRequest};
use tokio::task::JoinHandle;
use tonic::Code;

use super::env::Env;
use super::load::{self, Desk, Report};

/// How long one step may take through a fault before the driver gives up on that case.
const STEP: Duration = Duration::from_secs(200);

pub struct Around {
    task: JoinHandle<anyhow::Result<(Report, usize)>>,
}

impl Around {
    /// Starts driving `cases` cases one after another (keys `<label>-loop-<n>`).
    pub fn start(env: &Env, label: &str, cases: usize) -> Self {
        let (addr, gateway) = (env.gateway, format!("http://{}", env.gateway));
        let (demo, label) = (env.demo.clone(), label.to_owned());
        let clerk = env.clerk_token();
        let task = tokio::spawn(async move {
            let clerk = load::desk(addr, &clerk?)?;
            let handler = signed_in(addr, &gateway, "xg-sfs").await?;
            let supervisor = signed_in(addr, &gateway, "xg-supervisor").await?;
            let visitor = signed_in(addr, &gateway, "xg-followup").await?;
            let mut report = Report::default();
            let mut closed = 0;
            for n in 1..=cases {
                let key = format!("{label}-loop-{n}");
                let mut c = clerk.clone();
                let req = load::registration(&demo, &key);
                let id = match load::register_until_acked(&mut c, &req, load::GIVE_UP, &mut report.failures).await {
                    Ok(id) => id,
                    Err(why) => {
                        report.gave_up.push((key, why));
                        continue;
                    }
                };
                report.acked.insert(key, id.clone());
                around(&clerk, &handler, &supervisor, &visitor, &demo.grid_workers[0], &id).await?;
                closed += 1;
            }
            Ok((report, closed))
        });
        Self { task }
    }

    /// The registrations it made and how many cases it took all the way round.
    pub async fn finish(self) -> anyhow::Result<(Report, usize)> {
        self.task.await?
    }
}

async fn signed_in(addr: std::net::SocketAddr, gateway: &str, username: &str) -> anyhow::Result<Desk> {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let mut anon = DeskClient::new(kit::grpc::channel_with_token(gateway, "none")?);
        let req = SignInRequest {
            username: username.into(),
            password: crate::seed::DEMO_PASSWORD.into(),
            otp: String::new(),
        };
        match anon.sign_in(req).await {
            Ok(t) => return load::desk(addr, &t.into_inner().access_token),
            Err(s) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(code = ?s.code(), "sign-in failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(s) => anyhow::bail!("{username} cannot sign in: {s}"),
        }
    }
}

/// Runs `call` until it succeeds, or until it is refused as already done after an attempt whose verdict was
/// lost, or (for `wait_for_precondition`) keeps retrying a refusal that a later event will lift.
async fn step<F, Fut, T>(what: &str, wait_for_precondition: bool, mut call: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = tokio::time::Instant::now() + STEP;
    let mut verdict_lost = false;
    loop {
        match call().await {
            Ok(_) => return Ok(()),
            Err(s) if s.code() == Code::FailedPrecondition && verdict_lost => return Ok(()),
            Err(s) if s.code() == Code::FailedPrecondition && !wait_for_precondition => {
                anyhow::bail!("{what}: {}", s.message())
            }
            Err(s) => {
                verdict_lost |= !matches!(s.code(), Code::FailedPrecondition | Code::NotFound);
                anyhow::ensure!(tokio::time::Instant::now() < deadline, "{what}: still failing: {s}");
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The case's task, once routing has consumed the registration and dispatched it.
async fn dispatched(clerk: &Desk, case_id: &str) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let got = clerk.clone().get_case(GetCaseRequest { case_ref: case_id.into() }).await;
        if let Ok(Some(c)) = got.map(|r| r.into_inner().case)
            && !c.current_task_id.is_empty()
        {
            return Ok(c.current_task_id);
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "case {case_id} never dispatched");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn around(
    clerk: &Desk,
    handler: &Desk,
    supervisor: &Desk,
    visitor: &Desk,
    resolver: &str,
    case_id: &str,
) -> anyhow::Result<()> {
    let task_id = dispatched(clerk, case_id).await?;
    let accept = AcceptTaskRequest { task_id: task_id.clone(), handler_id: String::new() };
    // NOT_FOUND until the handler's unit sees the task is not a case for waiting: the task is routing's own.
    step("accept", false, || {
        let (mut d, r) = (handler.clone(), accept.clone());
        async move { d.accept_task(r).await }
    })
    .await?;
    let resolve = ResolveTaskRequest {
        task_id,
        resolver_id: resolver.into(),
        outcome: proto::vocab::v1::Outcome::DisputeResolved.into(),
        note: "故障测试: 已调解".into(),
    };
    step("resolve", false, || {
        let (mut d, r) = (handler.clone(), resolve.clone());
        async move { d.resolve_task(r).await }
    })
    .await?;
    // Supervision may verify only after it has consumed the resolution.
    let verify = VerifyCaseRequest {
        case_id: case_id.into(),
        verifier_id: String::new(),
        passed: true,
        closure_reason: "resolved".into(),
        note: String::new(),
    };
    step("verify", true, || {
        let (mut d, r) = (supervisor.clone(), verify.clone());
        async move { d.verify_case(r).await }
    })
    .await?;
    let follow = FollowUpRequest {
        case_id: case_id.into(),
        visitor_id: String::new(),
        satisfaction: proto::vocab::v1::Satisfaction::Satisfied.into(),
        note: String::new(),
    };
    step("follow up", false, || {
        let (mut d, r) = (visitor.clone(), follow.clone());
        async move { d.follow_up(r).await }
    })
    .await
}
