//! Centers opened and closed, rotating departments on duty by their schedule, and subsidy eligibility with
//! its history, against real PostgreSQL and gRPC.

#![allow(clippy::unwrap_used)]

use crate::common;

use kit::testing::TestInfra;
use proto::registry::v1::*;
use tonic::Code;

const XIAGUAN: &str = "532901003000";

fn department(code: &str, stationing: &str) -> PutDepartmentRequest {
    PutDepartmentRequest {
        department: Some(Department {
            code: code.into(),
            name: format!("{code} 部门"),
            center_code: XIAGUAN.into(),
            stationing: stationing.into(),
            category_prefixes: vec!["01".into()],
            retired: false,
        }),
    }
}

#[tokio::test]
async fn a_retired_department_is_never_on_duty_until_put_again() {
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, false).await;
    registry::import_dali(&s.pool).await.unwrap();
    s.registry.put_department(department("SFS", "resident")).await.unwrap();
    let get = |code: &str| GetDepartmentRequest { code: code.into(), date: String::new() };
    let r = s.registry.get_department(get("SFS")).await.unwrap().into_inner();
    assert_eq!((r.on_duty, r.department.unwrap().center_code.as_str()), (true, XIAGUAN));

    let mut retired = department("SFS", "resident");
    retired.department.as_mut().unwrap().retired = true;
    s.registry.put_department(retired).await.unwrap();
    let r = s.registry.get_department(get("SFS")).await.unwrap().into_inner();
    assert_eq!((r.on_duty, r.department.unwrap().retired), (false, true), "retired: receives no cases");
    let listed = s.tree.list_stationed_departments(ListStationedDepartmentsRequest {
        center_code: XIAGUAN.into(),
        date: String::new(),
    });
    let listed = listed.await.unwrap().into_inner().departments;
    assert_eq!(listed.iter().map(|d| d.on_duty).collect::<Vec<_>>(), [false], "the listing agrees");

    s.registry.put_department(department("SFS", "resident")).await.unwrap();
    assert!(s.registry.get_department(get("SFS")).await.unwrap().into_inner().on_duty, "put again: reopened");
    let unknown = s.registry.get_department(get("ghost")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad = s.registry.get_department(GetDepartmentRequest { code: "SFS".into(), date: "today".into() }).await;
    assert_eq!(bad.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_rotating_department_is_on_duty_by_its_schedule() {
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, false).await;
    registry::import_dali(&s.pool).await.unwrap();
    for (code, stationing) in [("SFS", "resident"), ("RSJ", "rotating"), ("LS", "on_call")] {
        s.registry.put_department(department(code, stationing)).await.unwrap();
    }
    let weekday = |d: u32| RotationEntry { weekday: d, stationed: true, ..Default::default() };
    let holiday = RotationEntry {
        from_date: "2025-10-01".into(),
        to_date: "2025-10-07".into(),
        stationed: false,
        ..Default::default()
    };
    let entries = vec![weekday(1), weekday(3), holiday];
    let saved = s
        .tree
        .set_rotation(SetRotationRequest { department_code: "RSJ".into(), entries: entries.clone() })
        .await
        .unwrap();
    assert_eq!(saved.into_inner().entries, entries);

    // 2025-09-29 Monday, 09-30 Tuesday, 10-01 Wednesday in the holiday, 10-08 Wednesday after it.
    for (date, rotating_on) in
        [("2025-09-29", true), ("2025-09-30", false), ("2025-10-01", false), ("2025-10-08", true)]
    {
        let r = s.tree.list_stationed_departments(ListStationedDepartmentsRequest {
            center_code: XIAGUAN.into(),
            date: date.into(),
        });
        let r = r.await.unwrap().into_inner();
        assert_eq!(r.date, date);
        let duty: Vec<(String, bool)> =
            r.departments.iter().map(|d| (d.department.clone().unwrap().code, d.on_duty)).collect();
        assert_eq!(duty, vec![("LS".into(), false), ("RSJ".into(), rotating_on), ("SFS".into(), true)], "{date}");
    }
    let today = chrono::Utc::now().with_timezone(&kit::time::shanghai()).date_naive().to_string();
    let r = s.tree.list_stationed_departments(ListStationedDepartmentsRequest {
        center_code: XIAGUAN.into(),
        date: String::new(),
    });
    assert_eq!(r.await.unwrap().into_inner().date, today, "today in Asia/Shanghai by default");

    let refused = s
        .tree
        .set_rotation(SetRotationRequest { department_code: "SFS".into(), entries: vec![weekday(2)] })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "a resident department has no rotation");
    s.stop.stop();
}

#[tokio::test]
async fn centers_open_and_close_at_levels_two_to_five_only() {
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, false).await;
    registry::import_dali(&s.pool).await.unwrap();
    let village = "532901003001";
    let closed = s.tree.close_center(CloseCenterRequest { code: village.into() }).await.unwrap().into_inner();
    assert!(!closed.node.unwrap().has_center);
    let again = s.tree.close_center(CloseCenterRequest { code: village.into() }).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    let opened = s.tree.establish_center(EstablishCenterRequest { code: village.into() }).await.unwrap().into_inner();
    assert!(opened.established && opened.node.unwrap().has_center);
    let twice = s.tree.establish_center(EstablishCenterRequest { code: village.into() }).await.unwrap().into_inner();
    assert!(!twice.established, "establishing is idempotent");
    let history: Vec<String> = sqlx::query_scalar("SELECT change FROM center_changes WHERE code = $1 ORDER BY id")
        .bind(village)
        .fetch_all(&s.pool)
        .await
        .unwrap();
    assert_eq!(history, vec!["closed", "established"]);

    let province = s.tree.establish_center(EstablishCenterRequest { code: "530000000000".into() }).await.unwrap_err();
    assert_eq!(province.code(), Code::FailedPrecondition, "no center at a province");
    let province = s.tree.close_center(CloseCenterRequest { code: "530000000000".into() }).await.unwrap_err();
    assert_eq!(province.code(), Code::FailedPrecondition);
    s.registry.put_department(department("SFS", "resident")).await.unwrap();
    let busy = s.tree.close_center(CloseCenterRequest { code: XIAGUAN.into() }).await.unwrap_err();
    assert_eq!(busy.code(), Code::FailedPrecondition, "departments still stationed");
    let unknown = s.tree.establish_center(EstablishCenterRequest { code: "532999000000".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    s.stop.stop();
}

#[tokio::test]
async fn eligibility_changes_keep_their_history() {
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, false).await;
    registry::import_dali(&s.pool).await.unwrap();
    let person = CreatePersonRequest {
        name: "李调解".into(),
        role: proto::vocab::v1::PersonRole::Mediator.into(),
        home_code: "532901003001".into(),
        subsidy_eligible: true,
        eligibility_source: "州综治办 2025-01 名册".into(),
        ..Default::default()
    };
    let id = s.registry.create_person(person).await.unwrap().into_inner().person.unwrap().id;
    let change = |eligible: bool, source: &str| ChangeEligibilityRequest {
        person_id: id.clone(),
        subsidy_eligible: eligible,
        eligibility_source: source.into(),
        reason: "年度复核".into(),
    };
    let p =
        s.tree.change_eligibility(change(false, "州综治办 2025-07 复核")).await.unwrap().into_inner().person.unwrap();
    assert!(!p.subsidy_eligible && p.eligibility_source == "州综治办 2025-07 复核");
    s.tree.change_eligibility(change(false, "州综治办 2025-07 复核")).await.unwrap();
    s.tree.change_eligibility(change(true, "州综治办 2025-09 名册")).await.unwrap();
    let history = s
        .tree
        .list_eligibility_changes(ListEligibilityChangesRequest { person_id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .changes;
    let flips: Vec<(bool, bool, &str)> =
        history.iter().map(|c| (c.from_eligible, c.to_eligible, c.to_source.as_str())).collect();
    assert_eq!(
        flips,
        vec![(true, false, "州综治办 2025-07 复核"), (false, true, "州综治办 2025-09 名册")],
        "a repeat records nothing"
    );
    assert_eq!(history[0].from_source, "州综治办 2025-01 名册");
    assert!(history[0].changed_at.ends_with("+08:00"));
    s.stop.stop();
}
