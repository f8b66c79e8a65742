//! The faults themselves: each drives registrations through the gateway while it happens, then the run waits
//! for quiet and counts.

use std::time::Duration;

use tokio::time::sleep;

use super::around::Around;
use super::count::{self, Counts};
use super::env::{CONSUMERS, Env, READY};
use super::load::{self, Desk, Load, Report};
use super::{Fault, Options, Outcome};

/// How long the run waits for everything acknowledged to flow through every consumer after a fault. A
/// service killed with -9 holds its partitions' leases for their term (30 s) before its successor works them.
const SETTLE: Duration = Duration::from_secs(240);

/// What a fault learned besides the counts.
#[derive(Default)]
struct Check {
    notes: Vec<String>,
    failures: Vec<String>,
}

impl Check {
    fn note(&mut self, s: impl Into<String>) {
        self.notes.push(s.into());
    }
    fn fail(&mut self, s: impl Into<String>) {
        self.failures.push(s.into());
    }
    fn expect(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(what());
        }
    }
}

struct Plan {
    clients: usize,
    pause: Duration,
    short: bool,
}

pub async fn run(fault: Fault, opts: Options) -> anyhow::Result<Outcome> {
    let label = fault.id().to_lowercase();
    let armed = armed(fault, opts);
    let mut env = Env::start(&label, &[], &armed).await?;
    let desk = load::desk(env.gateway, &env.clerk_token()?)?;
    let plan = Plan {
        clients: if opts.short { 6 } else { 12 },
        pause: Duration::from_millis(if opts.short { 100 } else { 20 }),
        short: opts.short,
    };
    let mut check = Check::default();
    // F8 counts every deadline fired, so no case of its is accepted in time.
    let around = (fault != Fault::F8).then(|| Around::start(&env, &label, if opts.short { 2 } else { 5 }));
    let mut report = match fault {
        Fault::F1 => {
            kill_repeatedly(&mut env, &desk, &plan, &mut check, "intake", if opts.short { 3 } else { 6 }).await?
        }
        Fault::F2 => kill_repeatedly(&mut env, &desk, &plan, &mut check, "gateway", 4).await?,
        Fault::F3 => commit_then_kill(&mut env, &desk, &plan, &mut check).await?,
        Fault::F4 => nats_stopped(&mut env, &desk, &plan, &mut check).await?,
        Fault::F5 => nats_killed(&mut env, &desk, &plan, &mut check).await?,
        Fault::F6 => postgres_restarted(&mut env, &desk, &plan, &mut check).await?,
        Fault::F7 => dies_before_ack(&mut env, &desk, &plan, &mut check, &armed).await?,
        Fault::F8 => supervision_down_across_deadline(&mut env, &desk, &plan, &mut check).await?,
        Fault::F9 => cancellations(&mut env, &desk, &plan, &mut check).await?,
        Fault::F10 => sigterm_under_load(&mut env, &desk, &plan, &mut check).await?,
        Fault::F11 => poison(&mut env, &desk, &plan, &mut check).await?,
    };
    let mut closed = None;
    if let Some(around) = around {
        match around.finish().await {
            Ok((r, n)) => {
                report.merge(r);
                closed = Some(n);
            }
            Err(e) => check.fail(format!("driving cases around the loop: {e:#}")),
        }
    }
    let counts = count::quiet(&env, report.distinct_cases(), SETTLE).await?;
    general_checks(&env, &report, &counts, &mut check).await?;
    if let Some(n) = closed {
        check.expect(counts.credits == n as i64, || {
            format!("{} credits for {n} cases followed up satisfied", counts.credits)
        });
    }
    let expected_dead = if fault == Fault::F11 { CONSUMERS.len() as i64 } else { 0 };
    check.expect(counts.dead_letters == expected_dead, || {
        format!("{} dead letters, expected {expected_dead}", counts.dead_letters)
    });
    match fault {
        Fault::F8 => deadline_fired_once(&env, &counts, &mut check).await?,
        Fault::F11 => poison_listed(&env, &mut check).await?,
        _ => {}
    }
    env.passed = check.failures.is_empty();
    Ok(Outcome { fault, counts, notes: check.notes, failures: check.failures })
}

/// F7 arms the commit-then-exit hook in consumers for their first start only.
fn armed(fault: Fault, opts: Options) -> Vec<(&'static str, &'static str, &'static str)> {
    if fault != Fault::F7 {
        return vec![];
    }
    let victims: &[&'static str] = if opts.short {
        &["routing", "registry", "supervision"]
    } else {
        &["routing", "registry", "supervision", "intake", "subsidy"]
    };
    victims.iter().map(|v| (*v, "ZZ_FAULT_EXIT_AFTER_COMMIT", "3")).collect()
}

/// What must hold after every fault, besides the counts' own equalities.
async fn general_checks(env: &Env, report: &Report, c: &Counts, check: &mut Check) -> anyhow::Result<()> {
    check.expect(report.gave_up.is_empty(), || {
        format!("{} registrations never acknowledged, e.g. {:?}", report.gave_up.len(), report.gave_up.first())
    });
    check.expect(report.distinct_cases() == report.acked.len(), || {
        format!("{} keys acknowledged with only {} distinct cases", report.acked.len(), report.distinct_cases())
    });
    check.expect(i64::try_from(c.acked).is_ok_and(|a| a == c.cases), || {
        format!("acknowledged {} ≠ cases in the database {}", c.acked, c.cases)
    });
    check.expect(c.dispatched == c.cases, || format!("dispatched {} ≠ cases {}", c.dispatched, c.cases));
    check.expect(c.ledger == c.cases, || format!("tree ledger counts {} ≠ cases {}", c.ledger, c.cases));
    check.expect(c.backlog == 0, || {
        format!("{} events still pending, parked or unpublished: {}", c.backlog, c.stuck.join("; "))
    });
    for (what, n) in [
        ("duplicate tasks", c.dup_tasks),
        ("duplicate deadlines", c.dup_deadlines),
        ("duplicate overdue notices", c.dup_fired),
        ("duplicate ledger counts", c.dup_ledger),
        ("duplicate credits", c.dup_credits),
    ] {
        check.expect(n == 0, || format!("{n} {what}"));
    }
    // The same set, not just the same number: every acknowledged case id is a case in intake's database.
    let ids: Vec<uuid::Uuid> = report.acked.values().filter_map(|id| uuid::Uuid::parse_str(id).ok()).collect();
    let intake = env.pool("intake").await?;
    let found: i64 =
        sqlx::query_scalar("SELECT count(*) FROM cases WHERE id = ANY($1)").bind(&ids).fetch_one(&intake).await?;
    intake.close().await;
    check.expect(found == i64::try_from(ids.len()).unwrap_or(-1), || {
        format!("{} acknowledged case ids missing from the database", ids.len() as i64 - found)
    });
    // Errors that mean a connection was reused in a broken state, whatever the fault.
    let logs = env.logs();
    for bad in ["current transaction is aborted", "there is no transaction in progress", "panicked at"] {
        let n = logs.matches(bad).count();
        check.expect(n == 0, || format!("{n} log lines with {bad:?}"));
    }
    let retried: u64 = report.failures.values().sum();
    if retried > 0 {
        check.note(format!("{retried} client retries"));
    }
    Ok(())
}

fn start_load(env: &Env, desk: &Desk, plan: &Plan, label: &str) -> Load {
    Load::start(desk, &env.demo, label, plan.clients, plan.pause)
}

/// F1, F2: the service dies with -9 every few seconds under load and is started again at once.
async fn kill_repeatedly(
    env: &mut Env,
    desk: &Desk,
    plan: &Plan,
    check: &mut Check,
    victim: &str,
    kills: u32,
) -> anyhow::Result<Report> {
    let load = start_load(env, desk, plan, victim);
    for _ in 0..kills {
        sleep(Duration::from_secs(4)).await;
        env.proc(victim).kill9();
        sleep(Duration::from_millis(300)).await;
        env.proc(victim).start().await?;
    }
    sleep(Duration::from_secs(3)).await;
    check.note(format!("{kills} × kill -9 {victim}"));
    Ok(load.finish().await)
}

/// F3: producers (intake, then routing) killed while committed events wait in their outbox; the unpublished
/// rows each kill left show the kill landed between commit and publish.
async fn commit_then_kill(env: &mut Env, desk: &Desk, plan: &Plan, check: &mut Check) -> anyhow::Result<Report> {
    let load = start_load(env, desk, plan, "f3");
    let mut left = Vec::new();
    for victim in ["intake", "routing", "intake", "routing"] {
        sleep(Duration::from_secs(3)).await;
        env.proc(victim).kill9();
        let pool = env.pool(victim).await?;
        let unpublished: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetch_one(&pool).await?;
        pool.close().await;
        left.push(format!("{victim} {unpublished}"));
        env.proc(victim).start().await?;
    }
    sleep(Duration::from_secs(3)).await;
    let report = load.finish().await;
    let caught = left.iter().any(|l| !l.ends_with(" 0"));
    check.note(format!("unpublished outbox rows at each kill: {}", left.join(", ")));
    check.expect(caught, || "no kill landed between a commit and its publication".into());
    Ok(report)
}

/// F4: NATS shut down cleanly for a while (60 s; 10 s in the cargo-test subset) and started again.
async fn nats_stopped(env: &mut Env, desk: &Desk, plan: &Plan, check: &mut Check) -> anyhow::Result<Report> {
    let outage = Duration::from_secs(if plan.short { 10 } else { 60 });
    let load = start_load(env, desk, plan, "f4");
    sleep(Duration::from_secs(3)).await;
    env.nats.stop().await?;
    sleep(outage).await;
    env.nats.up().await?;
    sleep(Duration::from_secs(5)).await;
    check.note(format!("NATS down {} s", outage.as_secs()));
    Ok(load.finish().await)
}

/// F5: NATS killed with -9 twice, started again after two seconds.
async fn nats_killed(env: &mut Env, desk: &Desk, plan: &Plan, check: &mut Check) -> anyhow::Result<Report> {
    let load = start_load(env, desk, plan, "f5");
    for _ in 0..2 {
        sleep(Duration::from_secs(4)).await;
        env.nats.kill9();
        sleep(Duration::from_secs(2)).await;
        env.nats.up().await?;
    }
    sleep(Duration::from_secs(4)).await;
    check.note("2 × kill -9 nats-server");
    Ok(load.finish().await)
}

/// F6: the machine's PostgreSQL restarted in immediate mode (every connection of every service cut). It
/// restarts the shared server: run it when no one else's tests are running. ZZ_FAULT_PG_RESTART overrides the
/// command.
async fn postgres_restarted(env: &mut Env, desk: &Desk, plan: &Plan, check: &mut Check) -> anyhow::Result<Report> {
    let cmd = std::env::var("ZZ_FAULT_PG_RESTART")
        .unwrap_or_else(|_| "pg_ctlcluster --skip-systemctl-redirect 15 main restart -m immediate".into());
    let load = start_load(env, desk, plan, "f6");
    sleep(Duration::from_secs(4)).await;
    let sh = cmd.clone();
    let status =
        tokio::task::spawn_blocking(move || std::process::Command::new("sh").arg("-c").arg(sh).status()).await??;
    check.expect(status.success(), || format!("{cmd:?} failed: {status}"));
    sleep(Duration::from_secs(10)).await;
    check.note("PostgreSQL restarted -m immediate");
    Ok(load.finish().await)
}

/// F7: consumers armed with ZZ_FAULT_EXIT_AFTER_COMMIT die right after committing a batch's effects and
/// before acknowledging it; restarted, they get the batch again, and their inbox must make it change nothing.
async fn dies_before_ack(
    env: &mut Env,
    desk: &Desk,
    plan: &Plan,
    check: &mut Check,
    armed: &[(&'static str, &'static str, &'static str)],
) -> anyhow::Result<Report> {
    let load = start_load(env, desk, plan, "f7");
    let mut waiting: Vec<&str> = armed.iter().map(|(s, _, _)| *s).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !waiting.is_empty() && tokio::time::Instant::now() < deadline {
        sleep(Duration::from_millis(200)).await;
        let mut still = Vec::new();
        for victim in waiting {
            match env.proc(victim).exited() {
                Some(status) => {
                    check.expect(status.code() == Some(137), || format!("{victim} exited with {status}, not 137"));
                    env.proc(victim).start().await?;
                }
                None => still.push(victim),
            }
        }
        waiting = still;
    }
    check.expect(waiting.is_empty(), || format!("the hook never fired in {waiting:?}"));
    // Load goes on while the restarted consumers wait out the dead holders' leases and get the batches back.
    sleep(Duration::from_secs(if plan.short { 6 } else { 20 })).await;
    check.note(format!("died after commit, before ack: {}", armed.iter().map(|a| a.0).collect::<Vec<_>>().join(", ")));
    Ok(load.finish().await)
}

/// F8: the accept deadline shortened to 8 s; supervision killed with deadlines pending and kept down past
/// them; started again, it must fire each exactly once.
async fn supervision_down_across_deadline(
    env: &mut Env,
    desk: &Desk,
    plan: &Plan,
    check: &mut Check,
) -> anyhow::Result<Report> {
    let sup = env.pool("supervision").await?;
    let stage = supervision::domain::Stage::Accept;
    supervision::service::clocks::with_stage_limit(&sup, stage, "calendar_hours", "8s", "fault-suite").await?;
    let load = start_load(env, desk, plan, "f8");
    sleep(Duration::from_secs(3)).await;
    let report = load.finish().await;
    let want = i64::try_from(report.distinct_cases()).unwrap_or(i64::MAX);
    let started = tokio::time::Instant::now();
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deadlines WHERE stage = 'accept'").fetch_one(&sup).await?;
        if n >= want {
            break;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(120), "only {n} of {want} deadlines started");
        sleep(Duration::from_millis(200)).await;
    }
    let fired_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deadlines WHERE state = 'fired'").fetch_one(&sup).await?;
    env.proc("supervision").kill9();
    sleep(Duration::from_secs(12)).await;
    env.proc("supervision").start().await?;
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM deadlines WHERE state = 'fired'").fetch_one(&sup).await?;
        if n >= want {
            break;
        }
        anyhow::ensure!(started.elapsed() < READY * 3, "only {n} of {want} deadlines fired");
        sleep(Duration::from_millis(200)).await;
    }
    sup.close().await;
    check.note(format!("{want} deadlines, {fired_before} fired before the kill, the rest after the restart"));
    Ok(report)
}

async fn deadline_fired_once(env: &Env, c: &Counts, check: &mut Check) -> anyhow::Result<()> {
    check.expect(c.fired == c.cases, || format!("{} deadlines fired for {} cases", c.fired, c.cases));
    let intake = env.pool("intake").await?;
    let steps: i64 = sqlx::query_scalar("SELECT count(DISTINCT case_id) FROM timeline WHERE action = 'overdue'")
        .fetch_one(&intake)
        .await?;
    intake.close().await;
    check.expect(steps == c.cases, || format!("{steps} case files show the overdue step, of {}", c.cases));
    Ok(())
}

/// F9: 1,000 registrations abandoned by their clients a few milliseconds into the call, beside steady load;
/// each abandoned key is then sent again until acknowledged.
async fn cancellations(env: &mut Env, desk: &Desk, plan: &Plan, check: &mut Check) -> anyhow::Result<Report> {
    let load = start_load(env, desk, plan, "f9");
    sleep(Duration::from_secs(3)).await;
    let mut cancelled = 0;
    let keys: Vec<String> = (0..1000).map(|i| format!("f9-cancel-{i}")).collect();
    for (chunk_no, chunk) in keys.chunks(50).enumerate() {
        let mut calls = tokio::task::JoinSet::new();
        for (i, key) in chunk.iter().enumerate() {
            let (mut desk, req) = (desk.clone(), load::registration(&env.demo, key));
            // Spread over 1–40 ms: some calls are cut before the gateway forwards them, some inside intake's
            // transaction, some after commit.
            let after = Duration::from_millis(1 + ((chunk_no * 50 + i) % 40) as u64);
            calls.spawn(async move { tokio::time::timeout(after, desk.register_case(req)).await.is_err() });
        }
        while let Some(r) = calls.join_next().await {
            cancelled += usize::from(r.unwrap_or(false));
        }
    }
    let mut report = load.finish().await;
    // Twenty clients send the abandoned keys again; each must get the case its first call made, if it made one.
    let mut resend = tokio::task::JoinSet::new();
    for lane in keys.chunks(50) {
        let (mut desk, demo, lane) = (desk.clone(), env.demo.clone(), lane.to_vec());
        resend.spawn(async move {
            let mut r = Report::default();
            for key in lane {
                let req = load::registration(&demo, &key);
                match load::register_until_acked(&mut desk, &req, load::GIVE_UP, &mut r.failures).await {
                    Ok(id) => {
                        r.acked.insert(key, id);
                    }
                    Err(why) => r.gave_up.push((key, why)),
                }
            }
            r
        });
    }
    while let Some(r) = resend.join_next().await {
        report.merge(r?);
    }
    check.note(format!("{cancelled} of 1000 calls cancelled mid-call, then retried"));
    check.expect(cancelled >= 500, || format!("only {cancelled} calls were cut before their answer"));
    Ok(report)
}

/// F10: every service and the gateway in turn get SIGTERM under load; each must drain and exit 0 within its
/// grace period, and is started again.
async fn sigterm_under_load(env: &mut Env, desk: &Desk, plan: &Plan, check: &mut Check) -> anyhow::Result<Report> {
    let load = start_load(env, desk, plan, "f10");
    let mut slowest = Duration::ZERO;
    for victim in ["intake", "routing", "registry", "supervision", "subsidy", "gateway"] {
        sleep(Duration::from_secs(3)).await;
        let t = tokio::time::Instant::now();
        match env.proc(victim).terminate(Duration::from_secs(30)).await {
            Ok(status) => check.expect(status.success(), || format!("{victim} exited with {status} on SIGTERM")),
            Err(e) => check.fail(format!("{e}")),
        }
        slowest = slowest.max(t.elapsed());
        env.proc(victim).start().await?;
    }
    sleep(Duration::from_secs(3)).await;
    check.note(format!("6 × SIGTERM, slowest drain {:.1} s", slowest.as_secs_f64()));
    Ok(load.finish().await)
}

/// F11: undecodable bytes published mid-burst on a case partition every consumer reads.
async fn poison(env: &mut Env, desk: &Desk, plan: &Plan, check: &mut Check) -> anyhow::Result<Report> {
    let load = start_load(env, desk, plan, "f11");
    sleep(Duration::from_secs(3)).await;
    let client = async_nats::connect(env.nats.url()).await?;
    let js = async_nats::jetstream::new(client);
    let subject = format!("{}.case.registered.05", env.nats_cfg.prefix);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, "fault-f11-poison");
    let ack = js.publish_with_headers(subject, headers, b"\xff\xfe not an envelope".as_slice().into()).await?.await?;
    sleep(Duration::from_secs(5)).await;
    check.note(format!("poison at stream seq {}", ack.sequence));
    Ok(load.finish().await)
}

async fn poison_listed(env: &Env, check: &mut Check) -> anyhow::Result<()> {
    for consumer in CONSUMERS {
        let pool = env.pool(consumer).await?;
        let dead = kit::events::ops::dead_letters(&pool, consumer, 10).await?;
        pool.close().await;
        check.expect(dead.len() == 1 && dead[0].last_error.contains("undecodable"), || {
            format!(
                "{consumer} lists {} dead letters: {:?}",
                dead.len(),
                dead.iter().map(|d| &d.last_error).collect::<Vec<_>>()
            )
        });
    }
    Ok(())
}
