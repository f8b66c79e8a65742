//! A mutation fuzz of the JSON face: valid requests to every HTTP route, mutated deterministically (bytes of
//! the body flipped, cut, repeated or spiked with NUL, huge and odd values; paths and queries likewise), must
//! never make the gateway answer 5xx. A 4xx of any kind is fine: refusing is the point.

#![allow(clippy::unwrap_used)]

use kit::testing::eventually;
use serde_json::json;
use tests::{Rng, World};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Fragments that have broken services before or could: NUL, a long value, non-ASCII, JSON and URL syntax.
fn spikes() -> Vec<Vec<u8>> {
    let mut s: Vec<Vec<u8>> = [
        "\\u0000",
        "\0",
        "%00",
        "%FF",
        "%",
        "\"",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "null",
        "true",
        "-1",
        "1e999",
        "NaN",
        "18446744073709551616",
        "-9223372036854775809",
        "0.5",
        "🚰💧",
        "界",
        "\\ud800",
        "../",
        "?",
        "&",
        "=",
        "#",
        "//",
        " ",
        "\u{202e}",
        "0000000000000000000",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    s.push(b"x".repeat(10 * 1024));
    s.push("界".repeat(3000).into_bytes());
    s.push(b"9".repeat(40));
    s
}

fn mutate(rng: &mut Rng, input: &[u8], spikes: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            2 => {
                let end = (at + rng.below(32)).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
            3 => out.truncate(at),
            _ => {
                let spike = rng.pick(spikes).clone();
                out.splice(at..at, spike);
            }
        }
    }
    out
}

/// Replaces one JSON string or number value with an odd one, keeping the document valid: what a client that
/// speaks JSON well but sends wild values looks like.
fn wild_value(rng: &mut Rng, body: &serde_json::Value) -> serde_json::Value {
    let wild = [
        json!("\u{0}"),
        json!(format!("a\u{0}b")),
        json!("x".repeat(10 * 1024)),
        json!("🚰".repeat(100)),
        json!(""),
        json!(" "),
        json!(-1),
        json!(u64::MAX),
        json!(1e300),
        json!(null),
        json!([]),
        json!({}),
        json!(true),
        json!("9999-12-31T23:59:59+14:00"),
        json!("0000-01-01T00:00:00Z"),
    ];
    let mut out = body.clone();
    if let Some(map) = out.as_object_mut()
        && !map.is_empty()
    {
        let key = map.keys().nth(rng.below(map.len())).cloned().unwrap();
        map.insert(key, rng.pick(&wild).clone());
    }
    out
}

/// One raw HTTP/1.1 exchange; the status code, or None when the server closed without an answer.
/// It carries `token` as its bearer, so mutations reach the services and not only the gateway's sign-in check.
async fn send(addr: std::net::SocketAddr, token: &str, method: &str, path: &[u8], body: &[u8]) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} ").into_bytes();
    request.extend_from_slice(path);
    request.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(body);
    stream.write_all(&request).await.ok()?;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let line = raw.split(|&b| b == b'\r').next()?;
    std::str::from_utf8(line).ok()?.split(' ').nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutated_json_requests_never_get_a_server_error() {
    let world = World::start().await;
    let (center, grid) = (world.demo.center_code.clone(), world.demo.grids[0].clone());
    let register = json!({
        "idempotency_key": "fuzz-0", "center_code": center, "channel": "web", "kind": "dispute",
        "category_code": "0106", "urgency": "normal", "title": "工资", "description": "拖欠",
        "location_code": grid,
        "parties": [{"name": "王五", "phone": "13700001111", "role": "applicant"}]
    });
    let (status, created) = world.http("POST", "/v1/cases", Some(register.clone())).await;
    assert_eq!(status, 200, "{created}");
    let case_id = created["case"]["id"].as_str().unwrap().to_owned();
    // A real task, so mutations reach routing's state checks and not only its NOT_FOUND.
    let task_id = eventually("the case dispatched", 20, || async {
        let (_, c) = world.http("GET", &format!("/v1/cases/{case_id}"), None).await;
        c["case"]["current_task_id"].as_str().filter(|t| !t.is_empty()).map(str::to_owned)
    })
    .await;
    let person = world.demo.grid_workers[0].clone();
    let directive = json!({"issuer_center_code": "532900000000", "target_code": "532901003000", "title": "排查",
        "body": "请排查", "due_at": "2099-01-01T00:00:00+08:00"});
    let (status, issued) = world.http("POST", "/v1/directives", Some(directive.clone())).await;
    assert_eq!(status, 200, "{issued}");
    let directive_id = issued["directive"]["id"].as_str().unwrap().to_owned();
    type Route = (&'static str, String, Option<serde_json::Value>);
    let routes: Vec<Route> = vec![
        ("POST", "/v1/cases".into(), Some(register)),
        ("GET", format!("/v1/cases?center_code={center}&page_size=5&page_token="), None),
        ("GET", format!("/v1/cases/{case_id}"), None),
        ("GET", format!("/v1/cases/{case_id}/tasks"), None),
        ("GET", format!("/v1/cases/{case_id}/deadlines"), None),
        (
            "POST",
            format!("/v1/cases/{case_id}/verify"),
            Some(json!({"verifier_id": "v", "passed": true, "closure_reason": "resolved", "note": "ok"})),
        ),
        (
            "POST",
            format!("/v1/cases/{case_id}/follow-up"),
            Some(json!({"visitor_id": "v", "satisfaction": "satisfied", "note": "好"})),
        ),
        ("GET", format!("/v1/tasks/{task_id}"), None),
        ("POST", format!("/v1/tasks/{task_id}/accept"), Some(json!({"handler_id": "h"}))),
        (
            "POST",
            format!("/v1/tasks/{task_id}/return"),
            Some(json!({"handler_id": "h", "reason_code": "not_local", "reason": "不归我们"})),
        ),
        (
            "POST",
            format!("/v1/tasks/{task_id}/review"),
            Some(json!({"reviewer_id": "r", "approve": false, "note": "驳回"})),
        ),
        (
            "POST",
            format!("/v1/tasks/{task_id}/resolve"),
            Some(json!({"resolver_id": person, "outcome": "handled", "note": "办结"})),
        ),
        ("GET", format!("/v1/credits?case_id={case_id}&person_id={person}"), None),
        ("GET", "/v1/nodes/532900000000".into(), None),
        ("GET", "/v1/nodes/532901003001/children?page_size=2&page_token=532901003001001".into(), None),
        ("GET", format!("/v1/persons/{person}"), None),
        ("GET", "/v1/nodes/532900000000/descendants?level=4&page_size=3&page_token=532901003000".into(), None),
        ("GET", "/v1/nodes/532900000000/counts".into(), None),
        ("GET", "/v1/nodes/532900000000/search?query=%E4%B8%8B%E5%85%B3&page_size=3".into(), None),
        ("GET", "/v1/locate?lon=100.23&lat=25.59&datum=gcj02".into(), None),
        ("GET", "/v1/ledger/532900000000".into(), None),
        ("GET", "/v1/ledger/532900000000/children?page_size=3&page_token=532901000000".into(), None),
        (
            "POST",
            "/v1/directives".into(),
            Some(
                json!({"issuer_center_code": "532900000000", "target_code": "532901003000", "title": "排查", "body": "请排查", "due_at": "2099-01-01T00:00:00+08:00"}),
            ),
        ),
        ("GET", format!("/v1/directives/{directive_id}"), None),
        (
            "GET",
            format!("/v1/directives/{directive_id}/recipients?status=pending&page_size=2&page_token=532901003001"),
            None,
        ),
        ("POST", format!("/v1/directives/{directive_id}/acknowledge"), Some(json!({"center_code": "532901003001"}))),
        (
            "POST",
            format!("/v1/directives/{directive_id}/answer"),
            Some(json!({"center_code": "532901003001", "report": "已排查"})),
        ),
    ];
    let spikes = spikes();
    let addr = world.suite.gateway_http;
    let root = world.root_token.clone();
    const SEED: u64 = 0x5eed_2026_0001;
    const PER_WORKER: usize = 600;
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let (routes, spikes, token) = (routes.clone(), spikes.clone(), root.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = Rng(SEED + w);
            let (mut failures, mut statuses) = (Vec::new(), std::collections::BTreeMap::<u16, usize>::new());
            for i in 0..PER_WORKER {
                let (method, path, body) = rng.pick(&routes).clone();
                let body_text = body.as_ref().map(|b| b.to_string()).unwrap_or_default();
                let (path, body) = match (rng.below(8), &body) {
                    (0..=2, Some(b)) => (path.into_bytes(), wild_value(&mut rng, b).to_string().into_bytes()),
                    (3 | 4, Some(_)) => (path.into_bytes(), mutate(&mut rng, body_text.as_bytes(), &spikes)),
                    // Without a body, the query (or the last path segment) is what a client varies.
                    (0..=4, None) => {
                        let cut = path.rfind(['?', '/']).map_or(0, |i| i + 1);
                        let mut p = path.as_bytes()[..cut].to_vec();
                        p.extend(mutate(&mut rng, &path.as_bytes()[cut..], &spikes));
                        (p, Vec::new())
                    }
                    (5, _) => (mutate(&mut rng, path.as_bytes(), &spikes), body_text.into_bytes()),
                    (6, _) => {
                        // Paths keep their leading slash and lose whitespace, so the request line stays a request.
                        let mut p = mutate(&mut rng, path.as_bytes(), &spikes);
                        p.retain(|b| !b.is_ascii_whitespace());
                        p.insert(0, b'/');
                        (p, mutate(&mut rng, body_text.as_bytes(), &spikes))
                    }
                    _ => (path.into_bytes(), body_text.into_bytes()),
                };
                let answered = send(addr, &token, method, &path, &body).await;
                *statuses.entry(answered.unwrap_or(0)).or_default() += 1;
                if let Some(status) = answered
                    && status >= 500
                {
                    let shown = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned();
                    failures.push(format!(
                        "worker {w} iteration {i}: {status} for {method} {} body {}",
                        shown(&path),
                        shown(&body)
                    ));
                }
            }
            (failures, statuses)
        }));
    }
    let (mut failures, mut statuses) = (Vec::new(), std::collections::BTreeMap::<u16, usize>::new());
    for w in workers {
        let (f, s) = w.await.unwrap();
        failures.extend(f);
        for (status, n) in s {
            *statuses.entry(status).or_default() += n;
        }
    }
    eprintln!("fuzz statuses (0: no answer): {statuses:?}");
    assert!(failures.is_empty(), "{} server errors:\n{}", failures.len(), failures.join("\n"));
    // The mutations must reach the services, not only the JSON parser: some succeed, some are refused by a
    // service (404, 409), not only by the gateway's own 400.
    let (ok, refused) =
        (statuses.get(&200).copied().unwrap_or(0), statuses.range(401..500).map(|(_, n)| n).sum::<usize>());
    assert!(ok > 100 && refused > 100, "statuses (0: no answer): {statuses:?}");
    world.stop().await;
}
