//! The ledger against real PostgreSQL, NATS and a real registry: follow-up events in, credits out.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use kit::app::StopHandle;
use kit::testing::AuthedChannel as Channel;
use kit::testing::{TestInfra, eventually};
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseFollowedUp, Envelope};
use proto::registry::v1::CreatePersonRequest;
use proto::registry::v1::registry_client::RegistryClient;
use proto::subsidy::v1::subsidy_client::SubsidyClient;
use proto::subsidy::v1::{ListCreditsRequest, ListTariffRulesRequest, PutTariffRuleRequest};
use tokio::task::JoinHandle;
use uuid::Uuid;

struct Suite {
    infra: TestInfra,
    subsidy_url: String,
    subsidy: SubsidyClient<Channel>,
    registry: RegistryClient<Channel>,
    running: Vec<(StopHandle, JoinHandle<anyhow::Result<()>>)>,
}

/// Asserts a clean shutdown. `Running::run_until` selects with `biased;` (the signal, then "shutdown began",
/// then "a task ended"), so a stop already fired always wins; a task that ends cleanly in the moment before
/// the stop is visible is still reported as "a task ended before shutdown", and only that race is tolerated
/// here.
fn clean(result: anyhow::Result<()>) {
    if let Err(e) = result {
        assert!(e.to_string().ends_with("a task ended before shutdown"), "unclean shutdown: {e:#}");
    }
}

fn start(app: kit::app::Running) -> (SocketAddr, (StopHandle, JoinHandle<anyhow::Result<()>>)) {
    let (addr, stop) = (app.addr(), app.stop_handle());
    (addr, (stop, tokio::spawn(app.run_until(std::future::pending()))))
}

async fn boot_registry(
    infra: &TestInfra,
    addr: SocketAddr,
) -> (SocketAddr, (StopHandle, JoinHandle<anyhow::Result<()>>)) {
    let mut config = infra.config(registry::NAME);
    config.grpc_addr = addr;
    start(registry::build(registry::Settings::new(config)).await.expect("registry starts"))
}

/// Subsidy asking the registry at `registry_addr`, which need not be up yet.
async fn boot_with(infra: TestInfra, registry_addr: SocketAddr) -> Suite {
    let settings = subsidy::Settings {
        registry_url: format!("http://{registry_addr}"),
        ..subsidy::Settings::new(infra.config(subsidy::NAME))
    };
    let (addr, run) = start(subsidy::build(settings).await.expect("subsidy starts"));
    Suite {
        subsidy_url: format!("http://{addr}"),
        subsidy: SubsidyClient::new(kit::testing::connect(&format!("http://{addr}")).await),
        registry: RegistryClient::new(kit::testing::connect_lazy(&format!("http://{registry_addr}"))),
        infra,
        running: vec![run],
    }
}

async fn boot() -> Suite {
    let infra = TestInfra::new().await;
    let (registry_addr, run) = boot_registry(&infra, SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let mut suite = boot_with(infra, registry_addr).await;
    suite.running.push(run);
    suite
}

impl Suite {
    async fn person(&mut self, eligible: bool) -> String {
        let request = CreatePersonRequest {
            name: "杨调解".into(),
            role: proto::vocab::v1::PersonRole::Mediator.into(),
            home_code: "532901001001001".into(),
            subsidy_eligible: eligible,
            eligibility_source: if eligible { "县综治中心备案".into() } else { String::new() },
            ..Default::default()
        };
        let person = self.registry.create_person(request).await.expect("create person").into_inner().person;
        person.expect("a person").id
    }

    /// Publishes a follow-up and returns its envelope (to deliver again).
    async fn followed_up(&self, case_id: Uuid, resolver_id: &str, satisfaction: &str, category: &str) -> Envelope {
        let envelope = Envelope {
            event_id: Uuid::new_v4().to_string(),
            case_id: case_id.to_string(),
            occurred_at_ms: chrono::Utc::now().timestamp_millis(),
            actor: "visitor-1".into(),
            body: Some(Body::CaseFollowedUp(CaseFollowedUp {
                round: 1,
                satisfaction: <proto::vocab::v1::Satisfaction as proto::json::ProtoEnum>::number_of(satisfaction)
                    .unwrap_or_default(),
                resolver_id: resolver_id.into(),
                category_code: category.into(),
                case_no: "532901-20250807-00042".into(),
            })),
        };
        self.infra.publish_envelope(&envelope).await;
        envelope
    }

    /// Waits until the consumer has handled the event (it handles in stream order, so everything before too).
    async fn handled(&self, event_id: &str) {
        self.infra.handled(subsidy::NAME, event_id).await;
    }

    /// Waits until subsidy has applied everything published so far.
    async fn drain(&self) {
        self.infra.drained(subsidy::NAME).await;
    }

    async fn credits(&mut self, case_id: Uuid) -> (Vec<proto::subsidy::v1::Credit>, i64) {
        let request = ListCreditsRequest { case_id: case_id.to_string(), person_id: String::new() };
        let r = self.subsidy.list_credits(request).await.expect("list credits").into_inner();
        (r.credits, r.total_fen)
    }

    async fn decisions(&self, case_id: Uuid) -> Vec<(String, String)> {
        let pool = self.infra.pool(subsidy::NAME).await;
        sqlx::query_as("SELECT decision, person_id FROM credit_decisions WHERE case_id = $1 ORDER BY id")
            .bind(case_id)
            .fetch_all(&pool)
            .await
            .expect("decisions")
    }

    async fn stop(self) {
        for (stop, join) in self.running {
            stop.stop();
            clean(join.await.expect("joined"));
        }
    }
}

#[tokio::test]
async fn an_eligible_resolver_is_credited_by_the_longest_matching_tariff() {
    let mut s = boot().await;
    let person = s.person(true).await;
    let case_id = Uuid::new_v4();
    let event = s.followed_up(case_id, &person, "basically_satisfied", "0104").await;
    s.handled(&event.event_id).await;
    let (credits, total) = s.credits(case_id).await;
    assert_eq!(credits.len(), 1, "one credit");
    let c = &credits[0];
    assert_eq!(
        (c.person_id.as_str(), c.amount_fen, c.tariff_rule_id.as_str(), c.tariff_version),
        (person.as_str(), 30000, "major-land", 1)
    );
    assert_eq!(total, 30000);
    let by_person =
        s.subsidy.list_credits(ListCreditsRequest { case_id: String::new(), person_id: person.clone() }).await;
    assert_eq!(by_person.expect("by person").into_inner().total_fen, 30000);
    let published = eventually("subsidy.credited on the stream", 20, || async {
        s.infra.events().await.into_iter().find_map(|e| match e.body {
            Some(Body::SubsidyCredited(c)) if e.case_id == case_id.to_string() => Some(c),
            _ => None,
        })
    })
    .await;
    assert_eq!((published.amount_fen, published.credit_id.as_str()), (30000, c.id.as_str()));
    let rules = s.subsidy.list_tariff_rules(ListTariffRulesRequest {}).await.expect("rules").into_inner().rules;
    let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["default", "major-land", "major-demolition", "stability"], "seeded rules, shortest prefix first");
    s.stop().await;
}

#[tokio::test]
async fn the_same_follow_up_delivered_twice_credits_once() {
    let mut s = boot().await;
    let person = s.person(true).await;
    let case_id = Uuid::new_v4();
    let event = s.followed_up(case_id, &person, "satisfied", "0301").await;
    s.infra.publish_envelope(&event).await;
    s.drain().await;
    let (credits, total) = s.credits(case_id).await;
    assert_eq!((credits.len(), total), (1, 10000), "one credit at the default tariff");
    s.stop().await;
}

#[tokio::test]
async fn a_second_follow_up_after_a_reopen_credits_nothing_more() {
    let mut s = boot().await;
    let person = s.person(true).await;
    let case_id = Uuid::new_v4();
    s.followed_up(case_id, &person, "satisfied", "0208").await;
    s.followed_up(case_id, &person, "satisfied", "0208").await;
    s.drain().await;
    let (credits, total) = s.credits(case_id).await;
    assert_eq!((credits.len(), total), (1, 50000), "one credit at the stability tariff");
    let decisions: Vec<String> = s.decisions(case_id).await.into_iter().map(|d| d.0).collect();
    assert_eq!(decisions, ["credited", "already_credited"]);
    s.stop().await;
}

/// The forged credit of issue 7: another service's user cannot publish a follow-up, so no credit; the same
/// event from supervision's user (its real publisher) is credited, so the refusal is what made the difference.
#[tokio::test]
async fn a_follow_up_forged_with_another_service_s_credentials_credits_nothing() {
    let mut s = boot().await;
    let person = s.person(true).await;
    let case_id = Uuid::new_v4();
    let forged = Envelope {
        event_id: Uuid::new_v4().to_string(),
        case_id: case_id.to_string(),
        occurred_at_ms: chrono::Utc::now().timestamp_millis(),
        actor: "visitor-1".into(),
        body: Some(Body::CaseFollowedUp(CaseFollowedUp {
            round: 1,
            satisfaction: proto::vocab::v1::Satisfaction::Satisfied.into(),
            resolver_id: person.clone(),
            category_code: "0104".into(),
            case_no: "532901-20250807-00043".into(),
        })),
    };
    for user in ["intake", "routing", "registry", "subsidy"] {
        let refused = s.infra.publish_envelope_as(user, &forged).await;
        assert!(refused.is_err(), "{user}'s user published a case.followed_up");
    }
    s.drain().await;
    assert_eq!(s.credits(case_id).await, (vec![], 0), "no credit from a forged follow-up");
    assert!(s.decisions(case_id).await.is_empty(), "the forged follow-up never reached subsidy");

    s.infra.publish_envelope_as("supervision", &forged).await.expect("supervision publishes follow-ups");
    s.handled(&forged.event_id).await;
    assert_eq!(s.credits(case_id).await.1, 30000, "the real publisher's follow-up is credited");
    s.stop().await;
}

#[tokio::test]
async fn an_unsatisfied_follow_up_credits_nothing() {
    let mut s = boot().await;
    let person = s.person(true).await;
    let case_id = Uuid::new_v4();
    s.followed_up(case_id, &person, "unsatisfied", "0104").await;
    s.drain().await;
    assert_eq!(s.credits(case_id).await, (vec![], 0));
    assert!(s.decisions(case_id).await.is_empty(), "nothing to decide for an unconfirmed result");
    s.stop().await;
}

#[tokio::test]
async fn ineligible_and_unknown_resolvers_are_not_credited_and_the_decision_is_recorded() {
    let mut s = boot().await;
    let ineligible = s.person(false).await;
    let unknown = Uuid::new_v4().to_string();
    let cases = [(ineligible.as_str(), "ineligible"), (unknown.as_str(), "unknown_person"), ("", "unknown_person")];
    for (resolver, decision) in cases {
        let case_id = Uuid::new_v4();
        s.followed_up(case_id, resolver, "satisfied", "0104").await;
        s.drain().await;
        assert_eq!(s.credits(case_id).await, (vec![], 0), "resolver {resolver:?}");
        assert_eq!(s.decisions(case_id).await, [(decision.to_owned(), resolver.to_owned())], "resolver {resolver:?}");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_registry_outage_redelivers_the_follow_up_until_it_answers() {
    let infra = TestInfra::new().await;
    // A free port nobody listens on yet: the registry comes up there later.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr");
    let mut s = boot_with(infra, port).await;
    let case_id = Uuid::new_v4();
    let person = Uuid::new_v4().to_string();
    let event = s.followed_up(case_id, &person, "satisfied", "0104").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(s.decisions(case_id).await.is_empty(), "nothing decided while the registry is down");
    let (_, run) = boot_registry(&s.infra, port).await;
    s.running.push(run);
    s.handled(&event.event_id).await;
    assert_eq!(s.decisions(case_id).await, [("unknown_person".to_owned(), person)], "decided once it answered");
    s.stop().await;
}

#[tokio::test]
async fn list_credits_rejects_bad_input() {
    let mut s = boot().await;
    let cases = [
        ("neither", "", "", "case_id"),
        ("blank", "  ", " ", "case_id"),
        ("not a uuid", "42", "", "case_id"),
        ("person too long", "", &*"p".repeat(65), "person_id"),
    ];
    for (name, case_id, person_id, field) in cases {
        let request = ListCreditsRequest { case_id: case_id.into(), person_id: person_id.into() };
        let status = s.subsidy.list_credits(request).await.expect_err(name);
        kit::testing::assert_refused(name, &status, tonic::Code::InvalidArgument, field);
    }
    s.stop().await;
}

/// Publishes the registration of a case at `area_path` (village first) in `grid`.
async fn register(infra: &TestInfra, case_id: Uuid, grid: &str, area_path: &[&str]) {
    let registered = proto::events::v1::CaseRegistered {
        case_no: "532901-20250807-00042".into(),
        grid_code: grid.into(),
        village_code: area_path[0].into(),
        area_path: area_path.iter().map(|a| (*a).to_owned()).collect(),
        ..Default::default()
    };
    infra.publish(case_id, "intake", Body::CaseRegistered(registered)).await;
}

#[tokio::test]
async fn credits_are_read_only_within_the_reader_s_reach() {
    let mut s = boot().await;
    let (here, elsewhere, unplaced) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (mine, theirs) = (s.person(true).await, s.person(true).await);
    let dali = ["532901003001", "532901003000", "532901000000", "532900000000", "530000000000"];
    register(&s.infra, here, "532901003001001", &dali).await;
    register(&s.infra, elsewhere, "532922001001001", &["532922001001", "532922001000", "532922000000"]).await;
    s.followed_up(here, &mine, "satisfied", "0301").await;
    s.followed_up(elsewhere, &theirs, "satisfied", "0301").await;
    s.followed_up(unplaced, &mine, "satisfied", "0301").await;
    s.drain().await;

    let by_person = |p: &str| ListCreditsRequest { case_id: String::new(), person_id: p.into() };
    let by_case = |c: Uuid| ListCreditsRequest { case_id: c.to_string(), person_id: String::new() };
    // (row, person, grants, query, the cases whose credits it sees)
    type Row<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, ListCreditsRequest, Vec<Uuid>);
    let rows: Vec<Row> = vec![
        (
            "grid worker, own credits",
            &mine,
            vec![("grid_worker", "532901003001001")],
            by_person(&mine),
            vec![here, unplaced],
        ),
        ("grid worker, someone else's", &mine, vec![("grid_worker", "532901003001001")], by_person(&theirs), vec![]),
        ("grid worker, another case", &mine, vec![("grid_worker", "532901003001001")], by_case(elsewhere), vec![]),
        ("supervisor, same village", "sup", vec![("supervisor", "532901003001")], by_person(&mine), vec![here]),
        (
            "center leader, parent township",
            "lead",
            vec![("center_leader", "532901003000")],
            by_person(&mine),
            vec![here],
        ),
        ("supervisor, sibling village", "sup", vec![("supervisor", "532901003002")], by_person(&mine), vec![]),
        ("supervisor, other county", "sup", vec![("supervisor", "532922000000")], by_person(&theirs), vec![elsewhere]),
        ("supervisor, other county, a case here", "sup", vec![("supervisor", "532922000000")], by_case(here), vec![]),
        ("whole deployment", "root", vec![("supervisor", "*")], by_person(&mine), vec![here, unplaced]),
    ];
    for (row, person, grants, request, want) in rows {
        let token = kit::testing::keys().token(person, &grants);
        let mut client = SubsidyClient::new(kit::testing::connect_as(&s.subsidy_url, &token).await);
        let r = client.list_credits(request).await.unwrap_or_else(|e| panic!("{row}: {e:?}")).into_inner();
        let mut got: Vec<Uuid> = r.credits.iter().map(|c| c.case_id.parse().unwrap()).collect();
        let mut want = want;
        got.sort();
        want.sort();
        assert_eq!(got, want, "{row}");
        assert_eq!(r.total_fen, 10000 * i64::try_from(want.len()).unwrap(), "{row}: the total counts only those");
    }
    let token = kit::testing::keys().token("h-1", &[("handler", "*")]);
    let mut handler = SubsidyClient::new(kit::testing::connect_as(&s.subsidy_url, &token).await);
    let status = handler.list_credits(by_person(&mine)).await.unwrap_err();
    kit::testing::assert_refused("a handler reading credits", &status, tonic::Code::PermissionDenied, "");
    s.stop().await;
}

fn tariff(id: &str, prefix: &str, fen: i64, active: Option<bool>) -> PutTariffRuleRequest {
    PutTariffRuleRequest {
        id: id.into(),
        category_prefix: prefix.into(),
        amount_fen: fen,
        description: "测试 tariff".into(),
        active,
    }
}

#[tokio::test]
async fn a_tariff_put_adds_a_version_and_earlier_credits_keep_theirs() {
    let mut s = boot().await;
    let person = s.person(true).await;
    let first = Uuid::new_v4();
    let event = s.followed_up(first, &person, "satisfied", "0104").await;
    s.handled(&event.event_id).await;

    let saved = s.subsidy.put_tariff_rule(tariff("major-land", "0104", 40000, None)).await.expect("put");
    let saved = saved.into_inner().rule.expect("rule");
    assert_eq!((saved.version, saved.amount_fen, saved.active), (2, 40000, true));
    assert_eq!(saved.created_by, "00000000-0000-4000-8000-000000000000", "the actor is the signed-in principal");
    let second = Uuid::new_v4();
    let event = s.followed_up(second, &person, "satisfied", "0104").await;
    s.handled(&event.event_id).await;
    let (c1, _) = s.credits(first).await;
    let (c2, _) = s.credits(second).await;
    assert_eq!((c1[0].amount_fen, c1[0].tariff_version), (30000, 1), "an earlier credit keeps its rule version");
    assert_eq!((c2[0].amount_fen, c2[0].tariff_version), (40000, 2), "a later one is priced by the new version");
    let pool = s.infra.pool(subsidy::NAME).await;
    let v1: i64 = sqlx::query_scalar("SELECT amount_fen FROM tariff_rules WHERE id = 'major-land' AND version = 1")
        .fetch_one(&pool)
        .await
        .expect("v1");
    assert_eq!(v1, 30000, "version 1 is never edited");
    let rules = s.subsidy.list_tariff_rules(ListTariffRulesRequest {}).await.expect("rules").into_inner().rules;
    let land: Vec<(u32, i64)> =
        rules.iter().filter(|r| r.id == "major-land").map(|r| (r.version, r.amount_fen)).collect();
    assert_eq!(land, [(2, 40000)], "only the version in force is listed");

    // Withdrawing the rule is a newer inactive version: the case falls back to the default tariff.
    s.subsidy.put_tariff_rule(tariff("major-land", "0104", 40000, Some(false))).await.expect("withdraw");
    let third = Uuid::new_v4();
    let event = s.followed_up(third, &person, "satisfied", "0104").await;
    s.handled(&event.event_id).await;
    let (c3, _) = s.credits(third).await;
    assert_eq!((c3[0].tariff_rule_id.as_str(), c3[0].amount_fen), ("default", 10000));
    s.stop().await;
}

#[tokio::test]
async fn bad_tariffs_name_their_field_and_narrow_admins_are_refused() {
    let mut s = boot().await;
    let cases = [
        ("no id", tariff("", "01", 1, None), "id"),
        ("upper case id", tariff("Land", "01", 1, None), "id"),
        ("letters in prefix", tariff("x", "01a", 1, None), "category_prefix"),
        ("negative", tariff("x", "01", -1, None), "amount_fen"),
        ("too much", tariff("x", "01", 10_000_001, None), "amount_fen"),
    ];
    for (case, r, field) in cases {
        let status = s.subsidy.put_tariff_rule(r).await.expect_err(case);
        kit::testing::assert_refused(case, &status, tonic::Code::InvalidArgument, field);
    }
    let mut nul = tariff("x", "01", 1, None);
    nul.description = "a\0b".into();
    let status = s.subsidy.put_tariff_rule(nul).await.expect_err("NUL");
    kit::testing::assert_refused("NUL", &status, tonic::Code::InvalidArgument, "description");

    let keys = kit::testing::keys();
    let county = keys.token("county-admin", &[("business_admin", "532901000000")]);
    let prefecture = keys.token("pref-admin", &[("business_admin", "532900000000")]);
    let mut as_county = SubsidyClient::new(kit::testing::connect_as(&s.subsidy_url, &county).await);
    let status = as_county.put_tariff_rule(tariff("county-rule", "01", 1, None)).await.expect_err("county");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "a county's admin may not set deployment-wide tariffs");
    let mut as_prefecture = SubsidyClient::new(kit::testing::connect_as(&s.subsidy_url, &prefecture).await);
    let saved = as_prefecture.put_tariff_rule(tariff("pref-rule", "01", 1, None)).await.expect("prefecture");
    let saved = saved.into_inner().rule.expect("rule");
    assert_eq!((saved.version, saved.created_by.as_str()), (1, "pref-admin"));
    s.stop().await;
}
