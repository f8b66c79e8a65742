//! 工作指令 directives against real PostgreSQL and gRPC over a socket: issued set-wise to every village center of
//! a subtree, acknowledged and answered in order, tracked per branch and in totals.

// A test's unwrap is its assertion.
#![allow(clippy::unwrap_used)]

use crate::common;

use kit::testing::TestInfra;
use proto::registry::v1::ledger_client::LedgerClient;
use proto::registry::v1::*;
use tonic::{Code, Status};

const TOWNSHIP: &str = "532901003000"; // 下关街道, 22 villages and communities
const COUNTY: &str = "532901000000"; // 大理市
const PREFECTURE: &str = "532900000000";
const A: &str = "532901003001";
const B: &str = "532901003002";
const ELSEWHERE: &str = "532901004001"; // a village of another township

type Client = LedgerClient<kit::testing::AuthedChannel>;

async fn start(infra: &TestInfra) -> (Client, sqlx::PgPool, kit::app::StopHandle) {
    let r = common::start(infra, true).await;
    (LedgerClient::new(r.channel), r.pool, r.stop)
}

fn ack(id: &str, center: &str) -> AcknowledgeDirectiveRequest {
    AcknowledgeDirectiveRequest { directive_id: id.into(), center_code: center.into() }
}

fn answer(id: &str, center: &str, report: &str) -> AnswerDirectiveRequest {
    AnswerDirectiveRequest { directive_id: id.into(), center_code: center.into(), report: report.into() }
}

fn recipients(id: &str, status: &str, page_size: u32, page_token: &str) -> ListDirectiveRecipientsRequest {
    ListDirectiveRecipientsRequest {
        directive_id: id.into(),
        status: status.into(),
        page_size,
        page_token: page_token.into(),
    }
}

fn totals(t: Option<&DirectiveTotals>) -> (u64, u64, u64, u64, u64) {
    let t = t.expect("totals");
    (t.recipients, t.pending, t.acknowledged, t.answered, t.late)
}

#[tokio::test]
async fn a_township_directive_reaches_every_village_center_and_tracks_each_reply() {
    let infra = TestInfra::new().await;
    let (mut client, pool, stop) = start(&infra).await;
    let villages: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM divisions d JOIN centers c USING (code) WHERE d.parent_code = $1 AND d.level = 5",
    )
    .bind(TOWNSHIP)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(villages, 22);

    let issued = client.issue_directive(common::issue(COUNTY, TOWNSHIP)).await.expect("issue").into_inner();
    assert_eq!(issued.recipients, 22, "one recipient per village center of the township");
    let d = issued.directive.expect("directive");
    assert!(d.due_at.ends_with("+08:00"), "times are shown in Asia/Shanghai: {}", d.due_at);

    let got = client.acknowledge_directive(ack(&d.id, A)).await.expect("ack A").into_inner().recipient.unwrap();
    assert_eq!((got.status.as_str(), got.acknowledged_at.is_empty()), ("acknowledged", false));
    client.acknowledge_directive(ack(&d.id, B)).await.expect("ack B");
    let got = client.answer_directive(answer(&d.id, A, "已排查 3 处，无险情")).await.expect("answer A").into_inner();
    let got = got.recipient.unwrap();
    assert_eq!((got.status.as_str(), got.report.as_str()), ("answered", "已排查 3 处，无险情"));
    assert!(!got.answered_at.is_empty());

    let view = client.get_directive(GetDirectiveRequest { id: d.id.clone() }).await.expect("get").into_inner();
    assert_eq!(totals(view.totals.as_ref()), (22, 20, 1, 1, 0));
    assert_eq!(view.branches.len(), 22, "under a township each village is its own branch");
    let branch = |code: &str| totals(view.branches.iter().find(|b| b.code == code).and_then(|b| b.totals.as_ref()));
    assert_eq!(branch(A), (1, 0, 0, 1, 0));
    assert_eq!(branch(B), (1, 0, 1, 0, 0));
    assert_eq!(branch("532901003003"), (1, 1, 0, 0, 0));

    let answered = client.list_directive_recipients(recipients(&d.id, "answered", 0, "")).await.unwrap().into_inner();
    assert_eq!(answered.recipients.iter().map(|r| r.center_code.as_str()).collect::<Vec<_>>(), vec![A]);
    let mut pending = Vec::new();
    let mut token = String::new();
    loop {
        let page =
            client.list_directive_recipients(recipients(&d.id, "pending", 8, &token)).await.unwrap().into_inner();
        pending.extend(page.recipients.into_iter().map(|r| r.center_code));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(pending.len(), 20, "pages of 8 cover every pending recipient once");
    assert!(pending.windows(2).all(|w| w[0] < w[1]) && !pending.contains(&A.to_owned()));

    // A directive to the whole prefecture: 1,159 villages in one INSERT … SELECT, rolled up per county.
    let all = client.issue_directive(common::issue(PREFECTURE, PREFECTURE)).await.expect("issue to Dali").into_inner();
    assert_eq!(all.recipients, 1159);
    let view = client.get_directive(GetDirectiveRequest { id: all.directive.unwrap().id }).await.unwrap().into_inner();
    assert_eq!(view.branches.len(), 12, "one branch per county");
    assert_eq!(view.branches.iter().map(|b| b.totals.as_ref().unwrap().recipients).sum::<u64>(), 1159);
    stop.stop();
}

#[tokio::test]
async fn out_of_order_unknown_and_bad_input_are_refused_naming_the_field() {
    let infra = TestInfra::new().await;
    let (mut c, _pool, stop) = start(&infra).await;
    let id =
        c.issue_directive(common::issue(TOWNSHIP, TOWNSHIP)).await.expect("issue").into_inner().directive.unwrap().id;
    c.acknowledge_directive(ack(&id, A)).await.expect("ack A");
    c.answer_directive(answer(&id, A, "已完成")).await.expect("answer A");
    let unknown = uuid::Uuid::new_v4().to_string();
    let err = |r: Result<(), Status>| r.err();

    // The field-by-field cases are unit tests in the rooms' domains; over the socket, one refusal per RPC
    // (INVALID_ARGUMENT naming the field) and the refusals that need the database.
    let cases: Vec<(&str, Option<Status>, Code, &str)> = vec![
        ("acknowledge twice", err(c.acknowledge_directive(ack(&id, A)).await.map(drop)), Code::FailedPrecondition, ""),
        ("answer twice", err(c.answer_directive(answer(&id, A, "再报")).await.map(drop)), Code::FailedPrecondition, ""),
        (
            "answer before acknowledging",
            err(c.answer_directive(answer(&id, B, "抢报")).await.map(drop)),
            Code::FailedPrecondition,
            "",
        ),
        ("unknown directive", err(c.acknowledge_directive(ack(&unknown, A)).await.map(drop)), Code::NotFound, ""),
        ("not a recipient", err(c.acknowledge_directive(ack(&id, ELSEWHERE)).await.map(drop)), Code::NotFound, ""),
        (
            "get unknown",
            err(c.get_directive(GetDirectiveRequest { id: unknown.clone() }).await.map(drop)),
            Code::NotFound,
            "",
        ),
        (
            "list unknown",
            err(c.list_directive_recipients(recipients(&unknown, "", 0, "")).await.map(drop)),
            Code::NotFound,
            "",
        ),
        (
            "unknown target",
            err(c.issue_directive(common::issue(PREFECTURE, "532999999999")).await.map(drop)),
            Code::NotFound,
            "",
        ),
        (
            "issuer malformed",
            err(c.issue_directive(common::issue("5329", TOWNSHIP)).await.map(drop)),
            Code::InvalidArgument,
            "issuer_center_code",
        ),
        (
            "issuer without a center",
            err(c.issue_directive(common::issue("530000000000", TOWNSHIP)).await.map(drop)),
            Code::InvalidArgument,
            "issuer_center_code",
        ),
        (
            "target above the issuer",
            err(c.issue_directive(common::issue(A, TOWNSHIP)).await.map(drop)),
            Code::InvalidArgument,
            "target_code",
        ),
        (
            "target beside the issuer",
            err(c.issue_directive(common::issue(TOWNSHIP, ELSEWHERE)).await.map(drop)),
            Code::InvalidArgument,
            "target_code",
        ),
        (
            "target empty",
            err(c.issue_directive(common::issue(COUNTY, "")).await.map(drop)),
            Code::InvalidArgument,
            "target_code",
        ),
        (
            "directive_id not a UUID",
            err(c.acknowledge_directive(ack("42", A)).await.map(drop)),
            Code::InvalidArgument,
            "directive_id",
        ),
        (
            "center_code malformed",
            err(c.acknowledge_directive(ack(&id, "A")).await.map(drop)),
            Code::InvalidArgument,
            "center_code",
        ),
        ("report empty", err(c.answer_directive(answer(&id, B, "")).await.map(drop)), Code::InvalidArgument, "report"),
        (
            "status unknown",
            err(c.list_directive_recipients(recipients(&id, "done", 0, "")).await.map(drop)),
            Code::InvalidArgument,
            "status",
        ),
        (
            "get id malformed",
            err(c.get_directive(GetDirectiveRequest { id: "x".into() }).await.map(drop)),
            Code::InvalidArgument,
            "id",
        ),
    ];
    for (name, status, code, field) in cases {
        let status = status.unwrap_or_else(|| panic!("{name}: accepted"));
        kit::testing::assert_refused(name, &status, code, field);
    }

    // Refusals changed nothing: A answered once, B still pending, the rest untouched.
    let view = c.get_directive(GetDirectiveRequest { id }).await.unwrap().into_inner();
    assert_eq!(totals(view.totals.as_ref()), (22, 21, 0, 1, 0));
    stop.stop();
}
