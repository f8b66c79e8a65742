//! The load driver: clients registering cases through the gateway's gRPC face, each with its own idempotency
//! keys, retrying a call that failed for any passing reason with the same key until it is acknowledged — what
//! a well-behaved client does when a server dies under it. What counts is what clients were told.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use proto::gateway::v1::desk_client::DeskClient;
use proto::intake::v1::{PartyInput, RegisterCaseRequest};
use tokio::task::JoinSet;
use tonic::Code;

use crate::seed::Demo;

/// What the clients saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Idempotency key → the case id the gateway acknowledged for it.
    pub acked: HashMap<String, String>,
    /// Keys a client gave up on (a refusal that retrying cannot change, or no answer within the give-up time).
    pub gave_up: Vec<(String, String)>,
    /// Failed attempts by status code (retried with the same key).
    pub failures: BTreeMap<String, u64>,
}

impl Report {
    pub fn merge(&mut self, other: Report) {
        self.acked.extend(other.acked);
        self.gave_up.extend(other.gave_up);
        for (k, v) in other.failures {
            *self.failures.entry(k).or_default() += v;
        }
    }

    /// Distinct case ids acknowledged: two keys answered with one case would show here as one.
    pub fn distinct_cases(&self) -> usize {
        self.acked.values().collect::<std::collections::HashSet<_>>().len()
    }
}

pub type Desk = DeskClient<kit::grpc::Channel>;

pub fn desk(gateway: std::net::SocketAddr, token: &str) -> anyhow::Result<Desk> {
    Ok(DeskClient::new(kit::grpc::channel_with_token(&format!("http://{gateway}"), token)?))
}

/// A registration at the demo township, on its first grid.
pub fn registration(demo: &Demo, key: &str) -> RegisterCaseRequest {
    RegisterCaseRequest {
        idempotency_key: key.into(),
        center_code: demo.center_code.clone(),
        channel: proto::vocab::v1::Channel::GridApp.into(),
        kind: proto::vocab::v1::CaseKind::Dispute.into(),
        category_code: "0102".into(),
        urgency: proto::vocab::v1::Urgency::Normal.into(),
        title: "楼上漏水引发邻里纠纷".into(),
        description: format!("故障测试 {key}"),
        location_code: demo.grids[0].clone(),
        parties: vec![PartyInput {
            name: "张三".into(),
            phone: "13812345678".into(),
            id_number: String::new(),
            role: proto::vocab::v1::PartyRole::Applicant.into(),
        }],
        reporter_id: demo.grid_workers[0].clone(),
        operator_id: String::new(),
    }
}

/// Codes a retry with the same key cannot change: the request itself is refused.
fn final_refusal(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::NotFound
            | Code::FailedPrecondition
    )
}

/// Sends the registration until it is acknowledged; Err(reason) when the client gives up.
pub async fn register_until_acked(
    desk: &mut Desk,
    req: &RegisterCaseRequest,
    give_up: Duration,
    failures: &mut BTreeMap<String, u64>,
) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + give_up;
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut call = tonic::Request::new(req.clone());
        call.set_timeout(Duration::from_secs(10));
        match desk.register_case(call).await {
            Ok(r) => {
                return r.into_inner().case.map(|c| c.id).ok_or_else(|| "acknowledged without a case".to_owned());
            }
            Err(s) => {
                *failures.entry(format!("{:?}", s.code())).or_default() += 1;
                if final_refusal(s.code()) {
                    return Err(format!("{:?}: {}", s.code(), s.message()));
                }
                if tokio::time::Instant::now() + backoff > deadline {
                    return Err(format!("gave up after {give_up:?}: {:?} {}", s.code(), s.message()));
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Clients registering until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: JoinSet<Report>,
}

impl Load {
    /// `clients` clients, each registering one case after another with `pause` between them; keys start with
    /// `label`.
    pub fn start(desk: &Desk, demo: &Demo, label: &str, clients: usize, pause: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        for c in 0..clients {
            let (stop, mut desk, demo, label) = (stop.clone(), desk.clone(), demo.clone(), label.to_owned());
            tasks.spawn(async move {
                let mut report = Report::default();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = format!("{label}-{c}-{n}");
                    let req = registration(&demo, &key);
                    // Once started, a registration is seen through even after the stop: a client does not
                    // abandon a case it began to report.
                    match register_until_acked(&mut desk, &req, GIVE_UP, &mut report.failures).await {
                        Ok(id) => {
                            report.acked.insert(key, id);
                        }
                        Err(why) => report.gave_up.push((key, why)),
                    }
                    tokio::time::sleep(pause).await;
                }
                report
            });
        }
        Self { stop, tasks }
    }

    /// Stops the clients and waits for each to finish the registration in hand.
    pub async fn finish(mut self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let mut report = Report::default();
        while let Some(r) = self.tasks.join_next().await {
            if let Ok(r) = r {
                report.merge(r);
            }
        }
        report
    }
}

/// How long a client keeps retrying one registration: longer than any outage the suite makes (F4's 60 s).
pub const GIVE_UP: Duration = Duration::from_secs(180);
