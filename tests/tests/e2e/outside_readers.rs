//! What readers outside the center see: another system's client reads its own cases as a status view (state,
//! the public steps, masked names), never the working file; the tree ledger's risk counts show only where the
//! reader's case scope reaches.

#![allow(clippy::unwrap_used)]

use proto::gateway::v1::desk_client::DeskClient;
use proto::intake::v1::GetCaseRequest;
use proto::registry::v1::{ActivateClientRequest, ClientTokenRequest, CreateClientRequest, GetLedgerRequest};
use tests::World;

#[tokio::test]
async fn a_client_reads_its_case_as_a_status_view_and_staff_read_the_file() {
    let world = World::start().await;
    let (mut sysadmin, _) = world.sign_in("sysadmin").await;
    let create = CreateClientRequest {
        client_id: "yun-zongzhi".into(),
        name: "云综治".into(),
        scope: suite::seed::DEMO_COUNTY.into(),
    };
    let code = sysadmin.create_client(create).await.unwrap().into_inner().activation_code;
    let url = format!("http://{}", world.suite.gateway_grpc);
    let mut anonymous = DeskClient::connect(url.clone()).await.unwrap();
    let activate = ActivateClientRequest { client_id: "yun-zongzhi".into(), activation_code: code };
    let secret = anonymous.activate_client(activate).await.unwrap().into_inner().client_secret;
    let token = anonymous
        .client_token(ClientTokenRequest { client_id: "yun-zongzhi".into(), client_secret: secret })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let mut client = DeskClient::new(kit::testing::connect_as(&url, &token).await);
    let mut submitted = world.dispute("outside-1");
    submitted.reporter_id = String::new();
    let case = client.register_case(submitted).await.unwrap().into_inner().case.unwrap();

    let (mut dispatcher, _) = world.sign_in("xg-dispatcher").await;
    // Routing dispatches the case by the rules moments after registration; both reads must see one state.
    kit::testing::eventually("the case dispatched", 20, || {
        let mut dispatcher = dispatcher.clone();
        let id = case.id.clone();
        async move {
            let file = dispatcher.get_case(GetCaseRequest { case_ref: id }).await.ok()?.into_inner().case?;
            (file.state().code() == "dispatched").then_some(())
        }
    })
    .await;
    let file = dispatcher.get_case(GetCaseRequest { case_ref: case.id.clone() }).await.unwrap().into_inner();
    let file = file.case.unwrap();
    let seen = client.get_case(GetCaseRequest { case_ref: case.id.clone() }).await.unwrap().into_inner();
    let seen = seen.case.unwrap();
    // Staff read the file: names in full, who did each step.
    assert_eq!(file.parties[0].name, "张三");
    assert!(file.timeline.iter().any(|t| !t.actor.is_empty()), "{:?}", file.timeline);
    // The client reads the status: the same case, state and steps, names masked, no staff or notes.
    assert_eq!(
        (seen.id.as_str(), seen.case_no.as_str(), seen.state().code()),
        (file.id.as_str(), file.case_no.as_str(), file.state().code())
    );
    assert_eq!(seen.parties.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["张*", "李*"]);
    assert_eq!(seen.parties[0].phone, "138****5678");
    assert_eq!(seen.timeline.len(), file.timeline.len());
    assert!(seen.timeline.iter().all(|t| t.actor.is_empty() && t.detail.is_empty() && !t.action.is_empty()));
    assert!(seen.reporter_id.is_empty() && seen.grid_code.is_empty() && seen.current_task_id.is_empty());
    assert!(seen.reporters.is_empty());
    world.stop().await;
}

#[tokio::test]
async fn risk_counts_show_only_where_the_readers_case_scope_reaches() {
    let world = World::start().await;
    let county = suite::seed::DEMO_COUNTY.to_owned();
    let township = world.demo.center_code.clone();
    let row = |desk: &DeskClient<kit::testing::AuthedChannel>, code: &str| {
        let (mut desk, code) = (desk.clone(), code.to_owned());
        async move { desk.get_ledger(GetLedgerRequest { code }).await.unwrap().into_inner().row.unwrap() }
    };
    let (county_dispatcher, _) = world.sign_in("dl-dispatcher").await;
    let (township_dispatcher, _) = world.sign_in("xg-dispatcher").await;
    let (sysadmin, _) = world.sign_in("sysadmin").await;
    assert!(row(&county_dispatcher, &county).await.risks.is_some(), "a county dispatcher at the county");
    assert!(row(&township_dispatcher, &township).await.risks.is_some(), "a township dispatcher at the township");
    let above = row(&township_dispatcher, &county).await;
    assert!(above.risks.is_none() && above.cases.is_some(), "above the township: the case counts, not the risks");
    assert!(row(&sysadmin, &county).await.risks.is_none(), "an administrator reads no cases, nor their risks");
    world.stop().await;
}
