//! 三率 through the gateway: a case registered through it, left unaccepted past a shortened 签收 limit until
//! its yellow and red cards are out, then the rates of its center as JSON (`GET /v1/rates`) and as a CSV file
//! (`GET /v1/rates/export`), with the same figures, and a bad period refused naming its field.

#![allow(clippy::unwrap_used)]

use proto::supervision::v1::{GetRatesRequest, ListSlipsRequest};
use tests::World;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One GET with the all-roles token: the status, the response head and the raw body.
async fn get(world: &World, path: &str) -> (u16, String, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(world.suite.gateway_http).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        world.root_token
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

#[tokio::test]
async fn rates_as_json_and_as_csv_through_the_gateway() {
    let world = World::start().await;
    let supervision = world.infra.pool("supervision").await;
    let accept = supervision::domain::Stage::Accept;
    supervision::service::clocks::with_stage_limit(&supervision, accept, "calendar_hours", "2s", "test").await.unwrap();
    let mut desk = world.desk.clone();
    let case = desk.register_case(world.dispute("rates-1")).await.unwrap().into_inner().case.unwrap();
    // Reminder, yellow (at 2 s) and red (at 4 s): the 签收 missed and both cards out.
    kit::testing::eventually("the red card", 30, || {
        let mut desk = desk.clone();
        let case_id = case.id.clone();
        async move {
            let slips = desk.list_slips(ListSlipsRequest { case_id }).await.ok()?.into_inner().slips;
            // The dispatch's task slip is listed too; the 督办 slips are the three grades.
            (slips.iter().filter(|s| s.kind == "supervision").count() >= 3).then_some(())
        }
    })
    .await;

    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    let (from, to) = (today - chrono::Duration::days(1), today + chrono::Duration::days(2));
    let center = world.demo.center_code.clone();
    let query = format!("node={center}&by=unit&from={from}&to={to}");
    let (status, _, body) = get(&world, &format!("/v1/rates?{query}")).await;
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{json}");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "one unit handles the one case: {json}");
    let row = &rows[0];
    // One 签收 due and missed (0 %), nothing resolved or visited yet, one yellow and one red: 0 − 5 − 10.
    assert_eq!(
        (&row["rank"], &row["accept_due"], &row["accept_on_time"], &row["accept_on_time_bp"]),
        (&1.into(), &1.into(), &0.into(), &0.into()),
        "{json}"
    );
    assert_eq!((&row["resolve_due"], &row["resolve_on_time_bp"]), (&0.into(), &serde_json::Value::Null));
    assert_eq!((&row["yellow"], &row["red"], &row["score"]), (&1.into(), &1.into(), &(-15).into()), "{json}");
    assert_eq!(json["total"]["score"], -15);
    let over_grpc = desk
        .get_rates(GetRatesRequest {
            node_code: center.clone(),
            by: "unit".into(),
            from: from.to_string(),
            to: to.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(over_grpc.rows[0].key, row["key"].as_str().unwrap(), "both faces, one table");

    let (status, head, csv) = get(&world, &format!("/v1/rates/export?{query}&format=csv")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&csv));
    assert!(head.contains("content-type: text/csv; charset=utf-8"), "{head}");
    let file = format!("rates-{center}-unit-{from}-{to}.csv");
    assert!(head.contains(&format!("content-disposition: attachment; filename=\"{file}\"")), "{head}");
    let text = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = text.strip_prefix('\u{feff}').expect("a byte-order mark").split("\r\n").collect();
    assert_eq!(lines[0], supervision::export::HEADERS.join(","));
    let unit = row["key"].as_str().unwrap();
    assert_eq!(lines[1], format!("1,{unit},1,0,0.00%,0,0,—,0,0,0,—,1,1,-15"));
    assert_eq!(lines[2], format!(",{},1,0,0.00%,0,0,—,0,0,0,—,1,1,-15", supervision::export::TOTAL));

    let (status, head, xlsx) = get(&world, &format!("/v1/rates/export?{query}&format=xlsx")).await;
    assert_eq!(status, 200);
    assert!(head.contains("spreadsheetml.sheet"), "{head}");
    assert!(xlsx.starts_with(b"PK"), "a zip");

    let (status, body) = world.http("GET", &format!("/v1/rates?node={center}&by=unit&from={to}&to={from}"), None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["fields"], serde_json::json!(["to"]), "{body}");
    world.stop().await;
}
