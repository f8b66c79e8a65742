//! 疑似重复件 across channels, through the gateway's JSON face, each step by the person whose job it is: the
//! hotline clerk and the grid worker report one dispute, the second registration shows the first as a likely
//! duplicate, the dispatcher merges it, the first case's file lists both reporters, the merged case's task is
//! superseded and it cannot be closed itself, and closing and visiting the target credits once.

#![allow(clippy::unwrap_used)]

use kit::testing::eventually;
use serde_json::{Value, json};
use tests::World;

const TEXT: &str = "楼上漏水引发邻里纠纷, 三楼住户反映楼上长期漏水, 协商未果";

fn report(world: &World, key: &str, channel: &str, name: &str, phone: &str, reporter: &str) -> Value {
    json!({
        "idempotency_key": key,
        "center_code": world.demo.center_code,
        "channel": channel,
        "kind": "dispute",
        "category_code": "0102",
        "urgency": "normal",
        "title": "楼上漏水引发邻里纠纷",
        "description": TEXT,
        "location_code": world.demo.grids[0],
        "parties": [{"name": name, "phone": phone, "role": "reporter"}],
        "reporter_id": reporter,
    })
}

async fn call(world: &World, token: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    world.http_as(Some(token), method, path, &body.to_string()).await
}

#[tokio::test]
async fn two_channels_one_matter_merged_and_credited_once() {
    let world = World::start().await;
    let worker = world.demo.grid_workers[0].clone();
    let (_, clerk) = world.sign_in("xg-clerk").await;
    let (_, grid_worker) = world.sign_in("gw-001").await;
    let (_, dispatcher) = world.sign_in("xg-dispatcher").await;
    let (_, handler) = world.sign_in("xg-sfs").await;
    let (_, supervisor) = world.sign_in("xg-supervisor").await;
    let (_, visitor) = world.sign_in("xg-followup").await;

    // The hotline call first, then the grid worker's report of the same dispute from the grid app.
    let (status, first) =
        call(&world, &clerk, "POST", "/v1/cases", report(&world, "hotline-1", "hotline", "王大妈", "13812340001", ""))
            .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["likely_duplicates"].as_array().map_or(0, Vec::len), 0);
    let first = first["case"].clone();
    let second_report = report(&world, "app-1", "grid_app", "网格员", "13812340002", &worker);
    let (status, second) = call(&world, &grid_worker, "POST", "/v1/cases", second_report).await;
    assert_eq!(status, 200, "{second}");
    let likely = &second["likely_duplicates"];
    assert_eq!(likely[0]["case_no"], first["case_no"], "{second}");
    assert_eq!(likely[0]["channel"], "CHANNEL_HOTLINE");
    assert!(likely[0]["text_similarity"].as_f64().unwrap() > 0.9, "{likely}");
    let second = second["case"].clone();
    let (first_id, second_id) = (first["id"].as_str().unwrap(), second["id"].as_str().unwrap());
    let (status, listed) =
        call(&world, &dispatcher, "GET", &format!("/v1/cases/{second_id}/duplicates"), json!(null)).await;
    assert_eq!((status, listed["candidates"][0]["case_id"].as_str()), (200, Some(first_id)), "{listed}");

    // Refusals through JSON: into itself (400 naming the field), by someone who may not dispatch (403).
    let merge = json!({"into_case_id": first_id, "reason": "同一漏水纠纷, 热线与网格员各报一次"});
    let (status, err) = call(&world, &dispatcher, "POST", &format!("/v1/cases/{first_id}/merge"), merge.clone()).await;
    assert_eq!((status, err["fields"].clone()), (400, json!(["into_case_id"])), "{err}");
    let (status, _) = call(&world, &clerk, "POST", &format!("/v1/cases/{second_id}/merge"), merge.clone()).await;
    assert_eq!(status, 403);

    let (status, merged) = call(&world, &dispatcher, "POST", &format!("/v1/cases/{second_id}/merge"), merge).await;
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["case"]["id"], first["id"]);
    let reporters: Vec<(&str, &str)> = merged["case"]["reporters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["channel"].as_str().unwrap(), r["parties"][0]["phone"].as_str().unwrap()))
        .collect();
    assert_eq!(reporters, [("CHANNEL_HOTLINE", "138****0001"), ("CHANNEL_GRID_APP", "138****0002")]);

    // Both numbers lead to the matter: the merged one answers with its file pointing at the first.
    let (_, by_number) =
        call(&world, &visitor, "GET", &format!("/v1/cases/{}", second["case_no"].as_str().unwrap()), json!(null)).await;
    assert_eq!(
        (by_number["case"]["state"].as_str(), by_number["case"]["merged_into_case_no"].clone()),
        (Some("CASE_STATE_MERGED"), first["case_no"].clone())
    );
    // The follow-up clerk sees every reporter on the first case's file, masked.
    let (_, file) = call(&world, &visitor, "GET", &format!("/v1/cases/{first_id}"), json!(null)).await;
    assert_eq!(file["case"]["reporters"].as_array().unwrap().len(), 2, "{file}");
    assert_eq!(file["case"]["reporters"][1]["reporter_id"], worker.as_str());

    // Routing supersedes whatever it dispatched for the merged case.
    eventually("the merged case's tasks superseded", 20, || async {
        let (_, tasks) = world.http("GET", &format!("/v1/cases/{second_id}/tasks"), None).await;
        let tasks = tasks["tasks"].as_array()?.clone();
        (!tasks.is_empty() && tasks.iter().all(|t| t["state"] == "TASK_STATE_SUPERSEDED")).then_some(())
    })
    .await;

    // The first case goes around the loop: 签收, 办结 crediting the grid worker, 销号, 回访.
    let task_id = eventually("the first case dispatched", 20, || async {
        let (_, c) = world.http("GET", &format!("/v1/cases/{first_id}"), None).await;
        (c["case"]["state"] == "CASE_STATE_DISPATCHED")
            .then(|| c["case"]["current_task_id"].as_str().unwrap().to_owned())
    })
    .await;
    let (status, _) = call(&world, &handler, "POST", &format!("/v1/tasks/{task_id}/accept"), json!({})).await;
    assert_eq!(status, 200);
    let resolve = json!({"resolver_id": worker, "outcome": "dispute_resolved", "note": "已维修, 双方签订协议"});
    let (status, r) = call(&world, &handler, "POST", &format!("/v1/tasks/{task_id}/resolve"), resolve).await;
    assert_eq!(status, 200, "{r}");
    world.resolution_seen(&task_id).await;
    let verify = json!({"passed": true, "closure_reason": "mediated"});
    let (status, err) =
        call(&world, &supervisor, "POST", &format!("/v1/cases/{second_id}/verify"), verify.clone()).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (409, Some("FAILED_PRECONDITION")),
        "the merged case is not closed: {err}"
    );
    let (status, v) = call(&world, &supervisor, "POST", &format!("/v1/cases/{first_id}/verify"), verify).await;
    assert_eq!(status, 200, "{v}");
    let visit = json!({"satisfaction": "satisfied", "note": "两位报告人均回访满意"});
    let (status, err) =
        call(&world, &visitor, "POST", &format!("/v1/cases/{second_id}/follow-up"), visit.clone()).await;
    assert_eq!(status, 409, "the merged case is not visited itself: {err}");
    let (status, f) = call(&world, &visitor, "POST", &format!("/v1/cases/{first_id}/follow-up"), visit).await;
    assert_eq!(status, 200, "{f}");

    // Credited once: for the first case, never for the merged one.
    eventually("the credit on the first case's file", 20, || async {
        let (_, c) = world.http("GET", &format!("/v1/cases/{first_id}"), None).await;
        c["case"]["timeline"].as_array()?.iter().any(|t| t["action"] == "credited").then_some(())
    })
    .await;
    let (_, credits) = world.http("GET", &format!("/v1/credits?case_id={first_id}"), None).await;
    assert_eq!(
        (credits["credits"].as_array().unwrap().len(), credits["total_fen"].as_i64()),
        (1, Some(10_000)),
        "{credits}"
    );
    let (_, none) = world.http("GET", &format!("/v1/credits?case_id={second_id}"), None).await;
    assert_eq!(none["credits"].as_array().map_or(0, Vec::len), 0, "{none}");
    let pool = world.infra.pool("subsidy").await;
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM credits").fetch_one(&pool).await.unwrap();
    assert_eq!(all, 1, "one matter, one credit");
    world.stop().await;
}
