//! 吹哨报到 end to end through the gateway's JSON face: the dispatcher summons a co-handling unit to a case's
//! task, the unit reports in and contributes, and the case file shows each step.

#![allow(clippy::unwrap_used)]

use proto::intake::v1::GetCaseRequest;
use proto::routing::v1::ListTasksRequest;
use serde_json::json;
use tests::World;

#[tokio::test]
async fn a_whistle_through_the_gateway_reaches_the_case_file() {
    let world = World::start().await;
    let mut desk = world.desk.clone();
    let case = desk.register_case(world.dispute("joint-1")).await.unwrap().into_inner().case.unwrap();
    let task = kit::testing::eventually("the case's task", 20, || {
        let mut desk = desk.clone();
        let case_id = case.id.clone();
        async move { desk.list_tasks(ListTasksRequest { case_id }).await.ok()?.into_inner().tasks.into_iter().next() }
    })
    .await;

    let path = format!("/v1/tasks/{}/co-handlers", task.id);
    let (status, body) = world.http("POST", &path, Some(json!({"co_units": [], "reason": "x"}))).await;
    assert_eq!(status, 400, "{body}");
    // A unit the registry does not know answers no whistle: refused by its field, and nobody is summoned.
    let unknown = json!({"co_units": [{"kind": "department", "code": "zjj", "name": "住建局"}], "reason": "房屋安全"});
    let (status, body) = world.http("POST", &path, Some(unknown)).await;
    assert_eq!((status, body["fields"].clone()), (400, json!(["co_units[0].code"])), "{body}");
    // 大理市自然资源局, stationed at the county center above 下关, comes down to report in; its name is the
    // registry's when the dispatcher gives none.
    let summons = json!({"co_units": [{"kind": "department", "code": "532901-ZRZYJ"}], "reason": "房屋安全"});
    let (status, body) = world.http("POST", &path, Some(summons)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["co_handlers"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["co_handlers"][0]["unit_name"], "大理市自然资源局", "{body}");
    let id = body["co_handlers"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = world.http("POST", &format!("/v1/co-handlers/{id}/report-in"), Some(json!({}))).await;
    assert_eq!((status, body["co_handler"]["state"].as_str()), (200, Some("CO_STATE_REPORTED_IN")), "{body}");
    let note = json!({"note": "出具鉴定意见"});
    let (status, body) = world.http("POST", &format!("/v1/co-handlers/{id}/contribution"), Some(note)).await;
    assert_eq!(status, 200, "{body}");
    let (status, listed) = world.http("GET", &path, None).await;
    assert_eq!((status, listed["co_handlers"][0]["state"].as_str()), (200, Some("CO_STATE_CONTRIBUTED")), "{listed}");

    let steps = kit::testing::eventually("the whistle in the case file", 20, || {
        let mut desk = desk.clone();
        let case_ref = case.id.clone();
        async move {
            let case = desk.get_case(GetCaseRequest { case_ref }).await.ok()?.into_inner().case?;
            let steps: Vec<String> =
                case.timeline.iter().filter(|t| t.action == "joint").map(|t| t.detail.clone()).collect();
            (steps.len() == 3).then_some(steps)
        }
    })
    .await;
    assert!(steps[0].contains("吹哨报到") && steps[0].contains("大理市自然资源局"), "{steps:?}");
    assert!(steps[1].contains("报到") && steps[2].contains("出具鉴定意见"), "{steps:?}");
    world.stop().await;
}
