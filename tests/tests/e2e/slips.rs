//! Graded 督办 end to end: a case registered through the gateway, left unaccepted past its (shortened) accept
//! limit, gets its numbered 《督办提示单》, which the gateway lists, prints as a PDF over gRPC and HTTP (the same
//! bytes) and acknowledges once.

#![allow(clippy::unwrap_used)]

use proto::intake::v1::GetCaseRequest;
use proto::supervision::v1::{GetSlipPdfRequest, ListSlipsRequest};
use serde_json::json;
use tests::World;

/// The path segment of a slip number: its CJK character percent-encoded.
fn encoded(number: &str) -> String {
    number
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'-' { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// The text a reader's search finds in a PDF (poppler's pdftotext).
fn pdf_text(pdf: &[u8]) -> String {
    let path = std::env::temp_dir().join(format!("slip-{}.pdf", uuid::Uuid::new_v4()));
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext").arg(&path).arg("-").output().expect("pdftotext");
    let _ = std::fs::remove_file(&path);
    String::from_utf8(out.stdout).unwrap()
}

/// Chinese line breaking as a reader sees it: no printed line begins with a closing mark or a pause.
fn assert_no_line_starts_with_a_closing_mark(text: &str) {
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let first = line.chars().next().unwrap();
        assert!(!"，。、；：？！）》」』】".contains(first), "a line starts with {first:?}: {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn slips_are_listed_printed_and_acknowledged_through_the_gateway() {
    let world = World::start().await;
    let supervision = world.infra.pool("supervision").await;
    let accept = supervision::domain::Stage::Accept;
    supervision::service::clocks::with_stage_limit(&supervision, accept, "calendar_hours", "2s", "test").await.unwrap();
    let mut desk = world.desk.clone();
    let case = desk.register_case(world.dispute("slip-1")).await.unwrap().into_inner().case.unwrap();
    let slips = kit::testing::eventually("the yellow card", 30, || {
        let mut desk = desk.clone();
        let case_id = case.id.clone();
        async move {
            let slips = desk.list_slips(ListSlipsRequest { case_id }).await.ok()?.into_inner().slips;
            (slips.len() >= 3).then_some(slips)
        }
    })
    .await;
    // The dispatch's task slip first, then the grades.
    let kinds: Vec<(&str, &str)> = slips.iter().map(|s| (s.kind.as_str(), s.grade().code())).collect();
    assert_eq!(kinds, [("task", "unspecified"), ("supervision", "reminder"), ("supervision", "yellow")]);
    let task = &slips[0];
    assert!(task.number.starts_with("JB-") && !task.unit_name.is_empty(), "{task:?}");
    let yellow = &slips[2];
    assert!(yellow.number.contains("-督-"), "{}", yellow.number);

    let (status, listed) = world.http("GET", &format!("/v1/cases/{}/slips", case.id), None).await;
    assert_eq!(status, 200, "{listed}");
    assert!(listed["slips"].as_array().unwrap().iter().any(|s| s["number"] == yellow.number.as_str()), "{listed}");

    let path = format!("/v1/slips/{}/slip.pdf", encoded(&yellow.number));
    let (status, content_type, pdf) = world.http_bytes(&path).await;
    assert_eq!((status, content_type.as_str()), (200, "application/pdf"));
    let over_grpc = desk.get_slip_pdf(GetSlipPdfRequest { number: yellow.number.clone() }).await.unwrap().into_inner();
    assert_eq!(pdf, over_grpc.pdf, "one slip, the same bytes on both faces");
    let text = pdf_text(&pdf);
    for expected in [yellow.number.as_str(), yellow.unit_code.as_str(), "黄牌督办", case.case_no.as_str()] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    assert!(!text.contains("13812345678"), "no personal data on a slip");
    // Names, not bare codes: the category as the code table named it when the case was registered, and the
    // center the slip is copied to (a yellow card: the case's own center, 下关街道).
    assert!(text.contains("邻里纠纷") && !text.contains("类别 0102"), "the category by name:\n{text}");
    let copied = text.lines().skip_while(|l| !l.contains("抄送")).take(3).collect::<Vec<_>>().join(" ");
    assert!(copied.contains("下关街道综治中心"), "抄送 by name: {copied:?} in\n{text}");
    assert_no_line_starts_with_a_closing_mark(&text);

    let ack = format!("/v1/slips/{}/acknowledge", encoded(&yellow.number));
    let (status, body) = world.http("POST", &ack, Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = world.http("POST", &ack, Some(json!({}))).await;
    assert_eq!(status, 409, "acknowledged once: {body}");
    let (status, _, _) = world.http_bytes("/v1/slips/no-such-slip/slip.pdf").await;
    assert_eq!(status, 404);

    // The task slip prints through the same route, naming the unit.
    let (status, _, task_pdf) = world.http_bytes(&format!("/v1/slips/{}/slip.pdf", encoded(&task.number))).await;
    assert_eq!(status, 200);
    let text = pdf_text(&task_pdf);
    for expected in ["工作任务交办单", task.number.as_str(), task.unit_name.as_str(), "邻里纠纷"] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    assert_no_line_starts_with_a_closing_mark(&text);
    // The case file shows each slip as a step; the clock changes are listed (none here).
    let file = kit::testing::eventually("the slips in the case file", 20, || {
        let mut desk = desk.clone();
        let case_ref = case.id.clone();
        async move {
            let case = desk.get_case(GetCaseRequest { case_ref }).await.ok()?.into_inner().case?;
            let steps: Vec<String> =
                case.timeline.iter().filter(|t| t.action == "supervised").map(|t| t.detail.clone()).collect();
            (steps.len() >= 2).then_some(steps)
        }
    })
    .await;
    assert!(file[1].contains(&yellow.number) && file[1].contains("黄牌"), "{file:?}");
    let (status, changes) = world.http("GET", &format!("/v1/cases/{}/clock-changes", case.id), None).await;
    assert_eq!((status, changes["changes"].as_array().map(Vec::len)), (200, Some(0)), "{changes}");
    world.stop().await;
}
