//! Dispatch by hand through the gateway's JSON face: the 下关 dispatcher sends a case up (上报) to 大理市, who
//! dispatches it by hand; the township can no longer act on it; the case file shows both hops and who holds
//! the case now.

#![allow(clippy::unwrap_used)]

use kit::testing::eventually;
use serde_json::{Value, json};
use suite::seed::{DEMO_COUNTY, DEMO_TOWNSHIP};
use tests::World;

async fn case(world: &World, id: String) -> Value {
    world.http("GET", &format!("/v1/cases/{id}"), None).await.1
}

#[tokio::test]
async fn a_case_goes_up_to_the_county_and_is_dispatched_there_by_hand() {
    let world = World::start().await;
    let created = world.desk.clone().register_case(world.dispute("hop-1")).await.unwrap().into_inner();
    let id = created.case.unwrap().id;
    let first = eventually("dispatched by rule", 20, || async {
        let c = case(&world, id.clone()).await;
        (c["case"]["state"] == "CASE_STATE_DISPATCHED")
            .then(|| c["case"]["current_task_id"].as_str().unwrap().to_owned())
    })
    .await;
    let (_, township) = world.sign_in("xg-dispatcher").await;
    let (_, county) = world.sign_in("dl-dispatcher").await;

    // 上报: the township sends it to 大理市; the county's rules dispatch it on arrival.
    let up = json!({"direction": "up", "to_center_code": DEMO_COUNTY, "reason": "涉及多部门, 超出街道权限",
                    "expected_task_id": first});
    let (status, hopped) =
        world.http_as(Some(&township), "POST", &format!("/v1/cases/{id}/escalate"), &up.to_string()).await;
    assert_eq!(status, 200, "{hopped}");
    assert_eq!(hopped["task"]["holding_center"], DEMO_COUNTY);
    assert_eq!(hopped["superseded"]["state"], "TASK_STATE_SUPERSEDED");
    let at_county = hopped["task"]["id"].as_str().unwrap().to_owned();

    // The township no longer holds it; a stale view is refused; the county dispatches by hand.
    let by_hand = |expected: &str| {
        json!({"unit_kind": "department", "unit_code": "532901-RSJ", "reason": "劳资因素, 转人社局",
               "expected_task_id": expected})
        .to_string()
    };
    let path = format!("/v1/cases/{id}/dispatch");
    let (status, err) = world.http_as(Some(&township), "POST", &path, &by_hand(&at_county)).await;
    assert_eq!((status, err["code"].as_str()), (403, Some("PERMISSION_DENIED")), "{err}");
    let (status, err) = world.http_as(Some(&county), "POST", &path, &by_hand(&first)).await;
    assert_eq!((status, err["code"].as_str()), (409, Some("FAILED_PRECONDITION")), "{err}");
    let (status, err) = world.http_as(Some(&county), "POST", &path, &by_hand(&at_county).replace("RSJ", "XXX")).await;
    assert_eq!((status, err["fields"].clone()), (400, json!(["unit_code"])), "{err}");
    let (status, dispatched) = world.http_as(Some(&county), "POST", &path, &by_hand(&at_county)).await;
    assert_eq!(status, 200, "{dispatched}");
    let task = &dispatched["task"];
    assert_eq!((task["unit_code"].as_str(), task["via"].as_str()), (Some("532901-RSJ"), Some("manual")));
    assert!(task["slip_no"].as_str().unwrap().starts_with("JB-532901-"), "the county issues it: {task}");

    // The case file: both hops, in order, and the current unit.
    let file: Value = eventually("the file shows both hops", 20, || async {
        let c = case(&world, id.clone()).await;
        (c["case"]["current_unit_code"] == "532901-RSJ").then_some(c)
    })
    .await;
    let details: Vec<String> =
        file["case"]["timeline"].as_array().unwrap().iter().map(|s| s["detail"].as_str().unwrap().to_owned()).collect();
    let hop = details.iter().position(|d| d.contains(&format!("上报 {DEMO_TOWNSHIP} → {DEMO_COUNTY}")));
    let manual = details.iter().position(|d| d.contains("人工交办: 劳资因素, 转人社局"));
    assert!(hop.is_some() && manual.is_some() && hop < manual, "{details:#?}");
    assert_eq!(file["case"]["state"], "CASE_STATE_DISPATCHED");
    let (_, tasks) = world.http("GET", &format!("/v1/cases/{id}/tasks"), None).await;
    let tasks = tasks["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    assert!(tasks.iter().all(|t| t["holding_center"] == DEMO_COUNTY), "who holds the case now");
    // Supervision stopped the superseded tasks' clocks: their accept deadlines are cancelled.
    eventually("the superseded tasks' clocks cancelled", 20, || async {
        let (_, d) = world.http("GET", &format!("/v1/cases/{id}/deadlines"), None).await;
        let state = |task: &str| {
            d["deadlines"].as_array()?.iter().find(|x| x["task_id"] == task && x["stage"] == "accept")?["state"]
                .as_str()
                .map(str::to_owned)
        };
        let cancelled = Some("DEADLINE_STATE_CANCELLED");
        (state(&first).as_deref() == cancelled && state(&at_county).as_deref() == cancelled).then_some(())
    })
    .await;
    world.stop().await;
}
