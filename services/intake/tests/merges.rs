//! 疑似重复件 and merging against a real registry, PostgreSQL and NATS: candidates at registration (same
//! village, similar text, or a phone matched through its blind index), and never a closed case, one outside the
//! window or one of another village; merging and each refusal; unmerging with the history kept; the merged
//! number answering with the case it points at.

#![allow(clippy::unwrap_used)]

use kit::testing::{TestInfra, assert_refused, eventually};
use proto::events::v1::CaseClosed;
use proto::events::v1::envelope::Body;
use proto::intake::v1::intake_client::IntakeClient;
use proto::intake::v1::*;
use tonic::Code;
use uuid::Uuid;

const VILLAGE: &str = "532901003001";
const OTHER_VILLAGE: &str = "532901003002";
const TOWNSHIP: &str = "532901003000";
const TEXT: &str = "张某与邻居李某因院墙搭建雨棚影响采光发生纠纷";

type Client = IntakeClient<kit::testing::AuthedChannel>;

struct Started {
    client: Client,
    addr: String,
    stops: Vec<kit::app::StopHandle>,
}

impl Drop for Started {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            stop.stop();
        }
    }
}

async fn start(infra: &TestInfra) -> Started {
    let reg_cfg = infra.config(registry::NAME);
    registry::import_dali(&registry::connect(&reg_cfg).await.unwrap()).await.unwrap();
    let reg = registry::build(registry::Settings::new(reg_cfg)).await.unwrap();
    let registry_url = format!("http://{}", reg.addr());
    let settings = intake::Settings { registry_url, ..intake::Settings::new(infra.config(intake::NAME)) };
    let app = intake::build(settings).await.unwrap();
    let url = format!("http://{}", app.addr());
    let stops = vec![reg.stop_handle(), app.stop_handle()];
    tokio::spawn(reg.run_until(std::future::pending()));
    tokio::spawn(app.run_until(std::future::pending()));
    Started { client: IntakeClient::new(kit::testing::connect(&url).await), addr: url, stops }
}

fn report(key: &str, channel: &str, category: &str, title: &str, phone: &str) -> RegisterCaseRequest {
    RegisterCaseRequest {
        idempotency_key: key.into(),
        center_code: TOWNSHIP.into(),
        channel: <proto::vocab::v1::Channel as proto::json::ProtoEnum>::number_of(channel).unwrap_or_default(),
        kind: proto::vocab::v1::CaseKind::Dispute.into(),
        category_code: category.into(),
        urgency: proto::vocab::v1::Urgency::Normal.into(),
        title: title.into(),
        description: String::new(),
        location_code: VILLAGE.into(),
        parties: vec![PartyInput {
            name: "张某".into(),
            phone: phone.into(),
            id_number: String::new(),
            role: proto::vocab::v1::PartyRole::Reporter.into(),
        }],
        reporter_id: String::new(),
        operator_id: String::new(),
    }
}

async fn register(c: &mut Client, r: RegisterCaseRequest) -> RegisterCaseResponse {
    c.register_case(r).await.unwrap().into_inner()
}

fn numbers(found: &[DuplicateCandidate]) -> Vec<&str> {
    let mut n: Vec<&str> = found.iter().map(|d| d.case_no.as_str()).collect();
    n.sort_unstable();
    n
}

async fn close(infra: &TestInfra, s: &Started, case: &Case) {
    let id = Uuid::parse_str(&case.id).unwrap();
    infra.publish(id, "supervision", Body::CaseClosed(CaseClosed { round: 1, ..Default::default() })).await;
    eventually("the case closed in its file", 10, || {
        let mut c = s.client.clone();
        let id = case.id.clone();
        async move {
            (c.get_case(GetCaseRequest { case_ref: id }).await.ok()?.into_inner().case?.state().code() == "closed")
                .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn registrations_show_likely_duplicates_and_only_those() {
    let infra = TestInfra::new().await;
    let mut s = start(&infra).await;
    let a = register(&mut s.client, report("d-a", "hotline", "0102", TEXT, "13800001111")).await;
    assert!(a.likely_duplicates.is_empty(), "the first report has nothing to duplicate");
    let a = a.case.unwrap();

    // The grid worker's report of the same dispute: similar text, a neighbouring category, another phone.
    let similar = format!("{TEXT}，请求调解");
    let b = register(&mut s.client, report("d-b", "grid_app", "0103", &similar, "13900002222")).await;
    assert_eq!(numbers(&b.likely_duplicates), [a.case_no.as_str()]);
    let hit = &b.likely_duplicates[0];
    assert!(!hit.same_phone && hit.text_similarity > 0.7 && hit.score > 0.0, "{hit:?}");
    assert_eq!((hit.state().code(), hit.channel), ("registered", proto::vocab::v1::Channel::Hotline as i32));
    let b = b.case.unwrap();

    // Other words, the same caller: found through the phone's blind index alone.
    let c = register(&mut s.client, report("d-c", "walk_in", "0199", "邻居家雨棚的事又来反映", "13800001111")).await;
    let phone_hits: Vec<&DuplicateCandidate> = c.likely_duplicates.iter().filter(|d| d.same_phone).collect();
    assert_eq!(phone_hits.len(), 1, "{:?}", c.likely_duplicates);
    assert_eq!(phone_hits[0].case_no, a.case_no);
    assert!(phone_hits[0].text_similarity < 0.5);

    // Stored: a keyed digest, not the number; equal for both parties while their sealed phones differ, so the
    // match is by equality of digests and nothing is decrypted.
    let pool = infra.pool("intake").await;
    let rows: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "SELECT p.phone_index, p.phone_sealed FROM case_parties p JOIN cases c ON c.id = p.case_id \
         WHERE c.case_no = ANY($1) ORDER BY c.case_no",
    )
    .bind(vec![a.case_no.clone(), c.case.as_ref().unwrap().case_no.clone()])
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, rows[1].0, "one phone, one index");
    assert_ne!(rows[0].1, rows[1].1, "sealed values differ (nonces): they cannot be what matched");
    assert!(!rows[0].0.windows(4).any(|w| w == b"1380" || w == b"0000"), "the index does not carry the digits");
    let sealer = kit::pii::Sealer::new(infra.config(intake::NAME).pii_key);
    assert_eq!(Some(rows[0].0.clone()), intake::domain::duplicates::phone_index(&sealer, "13800001111"));
    let other = kit::pii::Sealer::new(*b"not-the-pii-key!");
    assert_ne!(Some(rows[0].0.clone()), intake::domain::duplicates::phone_index(&other, "13800001111"));

    // Never a closed case, one outside the window, or one of another village.
    let closed = register(&mut s.client, report("d-closed", "web", "0102", TEXT, "")).await.case.unwrap();
    close(&infra, &s, &closed).await;
    let old = register(&mut s.client, report("d-old", "web", "0102", TEXT, "")).await.case.unwrap();
    sqlx::query("UPDATE cases SET registered_at = now() - interval '40 days' WHERE id = $1")
        .bind(Uuid::parse_str(&old.id).unwrap())
        .execute(&pool)
        .await
        .unwrap();
    let elsewhere =
        RegisterCaseRequest { location_code: OTHER_VILLAGE.into(), ..report("d-far", "web", "0102", TEXT, "") };
    let elsewhere = register(&mut s.client, elsewhere).await.case.unwrap();
    let risk = RegisterCaseRequest {
        kind: proto::vocab::v1::CaseKind::Risk.into(),
        ..report("d-risk", "web", "0201", TEXT, "")
    };
    register(&mut s.client, risk).await;

    let g = register(&mut s.client, report("d-g", "hotline_12345", "0102", TEXT, "")).await;
    let found = numbers(&g.likely_duplicates);
    assert_eq!(
        found,
        [a.case_no.as_str(), b.case_no.as_str()],
        "not {} {} {}",
        closed.case_no,
        old.case_no,
        elsewhere.case_no
    );
    assert!(g.likely_duplicates[0].score >= g.likely_duplicates[1].score, "likeliest first");
    // The dispatcher's list says the same, by number or id; the earlier case sees the later reports too.
    let g = g.case.unwrap();
    let listed = s
        .client
        .list_duplicate_candidates(ListDuplicateCandidatesRequest { case_ref: g.case_no.clone() })
        .await
        .unwrap();
    assert_eq!(numbers(&listed.into_inner().candidates), found);
    let of_a =
        s.client.list_duplicate_candidates(ListDuplicateCandidatesRequest { case_ref: a.id.clone() }).await.unwrap();
    assert!(numbers(&of_a.into_inner().candidates).contains(&g.case_no.as_str()));

    // A registration replayed by its key shows its candidates again; emoji and odd text change nothing.
    let replay = register(&mut s.client, report("d-g", "hotline_12345", "0102", TEXT, "")).await;
    assert!(replay.replayed);
    assert_eq!(numbers(&replay.likely_duplicates), found);
    let odd = register(&mut s.client, report("d-odd", "web", "0102", "🚰🚰🚰 !!!", "")).await;
    assert!(odd.likely_duplicates.is_empty(), "no letters, no likeness: {:?}", odd.likely_duplicates);

    // Only what the caller may read: a grid worker of the other village sees none of this village's cases.
    let keys = kit::testing::keys();
    let far = keys.token("far-clerk", &[("intake_clerk", OTHER_VILLAGE)]);
    let mut as_far = IntakeClient::new(kit::testing::connect_as(&s.addr, &far).await);
    let hidden = as_far.list_duplicate_candidates(ListDuplicateCandidatesRequest { case_ref: a.case_no.clone() }).await;
    assert_eq!(hidden.unwrap_err().code(), Code::NotFound);
    let theirs =
        as_far.list_duplicate_candidates(ListDuplicateCandidatesRequest { case_ref: elsewhere.id.clone() }).await;
    assert!(theirs.unwrap().into_inner().candidates.is_empty());
    let bad = s.client.list_duplicate_candidates(ListDuplicateCandidatesRequest { case_ref: "a\0b".into() }).await;
    assert_refused("NUL case_ref", &bad.unwrap_err(), Code::InvalidArgument, "case_ref");
}

#[tokio::test]
async fn merging_refuses_self_closed_targets_and_cycles_and_unmerges_with_history() {
    let infra = TestInfra::new().await;
    let mut s = start(&infra).await;
    let a = register(&mut s.client, report("m-a", "hotline", "0102", TEXT, "13800001111")).await.case.unwrap();
    let b = register(&mut s.client, report("m-b", "grid_app", "0102", TEXT, "13900002222")).await.case.unwrap();
    let merge = |case: &Case, into: &Case| MergeCaseRequest {
        case_id: case.id.clone(),
        into_case_id: into.id.clone(),
        reason: "同一纠纷, 热线与网格员各报一次".into(),
    };

    let itself = s.client.merge_case(merge(&a, &a)).await.unwrap_err();
    assert_refused("into itself", &itself, Code::InvalidArgument, "into_case_id");
    let no_reason = MergeCaseRequest { reason: " \0".into(), ..merge(&b, &a) };
    assert_refused("NUL reason", &s.client.merge_case(no_reason).await.unwrap_err(), Code::InvalidArgument, "reason");
    let not_uuid = MergeCaseRequest { into_case_id: a.case_no.clone(), ..merge(&b, &a) };
    assert_refused(
        "number as id",
        &s.client.merge_case(not_uuid).await.unwrap_err(),
        Code::InvalidArgument,
        "into_case_id",
    );

    // Who may: a clerk reads but does not dispatch; another township's dispatcher does not even see it.
    let keys = kit::testing::keys();
    let clerk = keys.token("clerk", &[("intake_clerk", TOWNSHIP)]);
    let mut as_clerk = IntakeClient::new(kit::testing::connect_as(&s.addr, &clerk).await);
    assert_eq!(as_clerk.merge_case(merge(&b, &a)).await.unwrap_err().code(), Code::PermissionDenied);
    let stranger = keys.token("stranger", &[("dispatcher", "532901004000")]);
    let mut as_stranger = IntakeClient::new(kit::testing::connect_as(&s.addr, &stranger).await);
    assert_eq!(as_stranger.merge_case(merge(&b, &a)).await.unwrap_err().code(), Code::NotFound);
    let dispatcher = keys.token("dispatcher-1", &[("dispatcher", TOWNSHIP)]);
    let mut as_dispatcher = IntakeClient::new(kit::testing::connect_as(&s.addr, &dispatcher).await);

    let target = as_dispatcher.merge_case(merge(&b, &a)).await.unwrap().into_inner().case.unwrap();
    assert_eq!(target.id, a.id, "the answer is the target's file");
    assert_eq!(target.merged_cases.iter().map(|m| m.case_no.as_str()).collect::<Vec<_>>(), [b.case_no.as_str()]);
    assert_eq!(target.merged_cases[0].merged_by, "dispatcher-1");
    let reporters: Vec<(&str, &str)> =
        target.reporters.iter().map(|r| (r.case_no.as_str(), r.parties[0].phone.as_str())).collect();
    assert_eq!(reporters, [(a.case_no.as_str(), "138****1111"), (b.case_no.as_str(), "139****2222")]);
    assert_eq!(target.timeline.last().unwrap().action, "merged_in");

    // The merged number answers with its own file, pointing at the case that handles it.
    let merged =
        s.client.get_case(GetCaseRequest { case_ref: b.case_no.clone() }).await.unwrap().into_inner().case.unwrap();
    assert_eq!((merged.state().code(), merged.merged_into_case_no.as_str()), ("merged", a.case_no.as_str()));
    assert_eq!(merged.merged_into_case_id, a.id);
    let last = merged.timeline.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.from_state.as_str(), last.to_state.as_str()),
        ("merged", "registered", "merged")
    );

    // Refusals that depend on the cases' state name the field in the message.
    let again = as_dispatcher.merge_case(merge(&b, &a)).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(again.message().starts_with("case_id"), "{}", again.message());
    let cycle = as_dispatcher.merge_case(merge(&a, &b)).await.unwrap_err();
    assert_eq!(cycle.code(), Code::FailedPrecondition);
    assert!(cycle.message().starts_with("into_case_id") && cycle.message().contains("cycle"), "{}", cycle.message());
    let c = register(&mut s.client, report("m-c", "web", "0102", TEXT, "")).await.case.unwrap();
    close(&infra, &s, &c).await;
    let into_closed = as_dispatcher.merge_case(merge(&a, &c)).await.unwrap_err();
    assert_eq!(into_closed.code(), Code::FailedPrecondition);
    assert!(into_closed.message().starts_with("into_case_id") && into_closed.message().contains("closed"));
    let into_merged = as_dispatcher.merge_case(merge(&c, &b)).await.unwrap_err();
    assert_eq!(into_merged.code(), Code::FailedPrecondition, "a closed case is not merged away either");

    // The board shows the matter once: the merged case is counted under its own state, not listed as open.
    let board = s.client.list_case_board(ListCaseBoardRequest { center_code: TOWNSHIP.into(), ..Default::default() });
    let board = board.await.unwrap().into_inner();
    assert!(board.cases.iter().all(|x| x.id != b.id));
    assert_eq!(board.counts.iter().find(|x| x.state().code() == "merged").map(|x| x.count), Some(1));

    let pool = infra.pool("intake").await;
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT subject FROM outbox ORDER BY seq").fetch_all(&pool).await.unwrap();
    assert_eq!(kinds.iter().filter(|k| k.starts_with("case.merged.")).count(), 1, "{kinds:?}");

    // Unmerge: registered again, the history kept on both files and in the merges table.
    let unmerge = UnmergeCaseRequest { case_id: b.id.clone(), reason: "并非同一事项".into() };
    assert_eq!(as_clerk.unmerge_case(unmerge.clone()).await.unwrap_err().code(), Code::PermissionDenied);
    let back = as_dispatcher.unmerge_case(unmerge.clone()).await.unwrap().into_inner().case.unwrap();
    assert_eq!((back.state().code(), back.merged_into_case_id.as_str()), ("registered", ""));
    let actions: Vec<&str> = back.timeline.iter().map(|t| t.action.as_str()).collect();
    assert_eq!(actions, ["registered", "merged", "unmerged"]);
    let twice = as_dispatcher.unmerge_case(unmerge).await.unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
    assert!(twice.message().starts_with("case_id"));
    let a_now = s.client.get_case(GetCaseRequest { case_ref: a.id.clone() }).await.unwrap().into_inner().case.unwrap();
    assert!(a_now.merged_cases.is_empty() && a_now.reporters.len() == 1);
    assert_eq!(
        a_now.timeline.iter().map(|t| t.action.as_str()).collect::<Vec<_>>(),
        ["registered", "merged_in", "unmerged_out"]
    );
    let history: Vec<(bool, bool)> =
        sqlx::query_as("SELECT merged_at IS NOT NULL, unmerged_at IS NOT NULL FROM case_merges WHERE case_id = $1")
            .bind(Uuid::parse_str(&b.id).unwrap())
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(history, [(true, true)]);
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT subject FROM outbox ORDER BY seq").fetch_all(&pool).await.unwrap();
    assert_eq!(kinds.iter().filter(|k| k.starts_with("case.unmerged.")).count(), 1);
}

#[tokio::test]
async fn crossing_merges_at_once_never_make_a_cycle() {
    let infra = TestInfra::new().await;
    let mut s = start(&infra).await;
    let a = register(&mut s.client, report("x-a", "hotline", "0102", TEXT, "")).await.case.unwrap();
    let b = register(&mut s.client, report("x-b", "grid_app", "0102", TEXT, "")).await.case.unwrap();
    let c = register(&mut s.client, report("x-c", "web", "0102", TEXT, "")).await.case.unwrap();
    // 48 merges at once: a→b, b→c, c→a, b→a, … Any order of winners must leave a forest, never a cycle.
    let pairs = [(&a, &b), (&b, &c), (&c, &a), (&b, &a), (&c, &b), (&a, &c)];
    let mut handles = Vec::new();
    for i in 0..48 {
        let (from, into) = pairs[i % pairs.len()];
        let r =
            MergeCaseRequest { case_id: from.id.clone(), into_case_id: into.id.clone(), reason: format!("并发 {i}") };
        let mut c = s.client.clone();
        handles.push(tokio::spawn(async move { c.merge_case(r).await.map(|_| ()).map_err(|e| e.code()) }));
    }
    let mut ok = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(()) => ok += 1,
            Err(code) => assert_eq!(code, Code::FailedPrecondition),
        }
    }
    // Three cases hold at most two merges without a cycle (a→b then b→c is a chain; c→a would close it).
    assert!((1..=2).contains(&ok), "{ok} merges succeeded");
    let pool = infra.pool("intake").await;
    let links: Vec<(Uuid, Uuid)> = sqlx::query_as("SELECT id, merged_into FROM cases WHERE merged_into IS NOT NULL")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(links.len(), ok);
    for (start, _) in &links {
        let mut at = *start;
        for _ in 0..=links.len() {
            match links.iter().find(|(f, _)| *f == at) {
                Some((_, into)) => at = *into,
                None => break,
            }
            assert_ne!(at, *start, "the merges from {start} lead back to it: {links:?}");
        }
    }
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM case_merges WHERE unmerged_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(live, i64::try_from(ok).unwrap());
}
