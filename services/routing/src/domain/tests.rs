use super::*;

/// A unit kind as a request's number: a code this service does not know is an unknown number, none is 0.
fn kind(code: &str) -> i32 {
    if code.is_empty() { 0 } else { UnitKind::parse("kind", code).map_or(99, i32::from) }
}

fn rule(id: &str, priority: u32, category: &str, area: &str, urgency: &str, unit: &str) -> Rule {
    let urgency =
        if urgency.is_empty() { 0 } else { Urgency::parse("urgency", urgency).expect("valid urgency").into() };
    Rule::parse("rule.", id, priority, category, area, urgency, UnitKind::Department.into(), unit, unit)
        .expect("valid rule")
}

fn case(category: &str, urgency: &str) -> CaseFacts {
    CaseFacts {
        category_code: category.into(),
        urgency: Urgency::parse("urgency", urgency).expect("valid urgency"),
        village_code: "532901003001".into(),
        center_code: "532901000000".into(),
        holding_center: "532901000000".into(),
    }
}

#[test]
fn the_best_matching_rule_wins_by_priority_then_specificity_then_id() {
    let rules = vec![
        rule("a-any", 1, "", "", "", "any"),
        rule("b-cat", 1, "01", "", "", "cat"),
        rule("c-cat-long", 1, "0102", "", "", "cat-long"),
        rule("d-area", 1, "0102", "532901", "", "area"),
        rule("e-other-area", 9, "0102", "532902", "", "elsewhere"),
        rule("f-urgent", 9, "", "", "urgent", "urgent-desk"),
        rule("g-tie", 1, "0102", "532901", "", "tie"),
    ];
    let cases = [
        ("0102", "normal", "area", "longest category, then longest area, then id"),
        ("0102", "urgent", "urgent-desk", "priority beats specificity"),
        ("0105", "normal", "cat", "a shorter category prefix still matches"),
        ("0201", "normal", "any", "the catch-all rule"),
    ];
    for (category, urgency, unit, why) in cases {
        assert_eq!(route(&rules, &case(category, urgency), &[], &Roster::default()).unit_code, unit, "{why}");
    }
}

#[test]
fn excluded_units_fall_through_to_the_next_rule_then_the_center() {
    let rules = vec![rule("r1", 5, "0102", "", "", "court"), rule("r2", 1, "01", "", "", "mediation")];
    let facts = case("0102", "normal");
    let none = Roster::default();
    let next = route(&rules, &facts, &[(UnitKind::Department, "court".into())], &none);
    assert_eq!((next.unit_code.as_str(), next.rule_id.as_deref()), ("mediation", Some("r2")));
    let all = [(UnitKind::Department, "court".into()), (UnitKind::Department, "mediation".into())];
    let fallback = route(&rules, &facts, &all, &none);
    assert_eq!(fallback.unit_kind, UnitKind::Center);
    assert_eq!(fallback.unit_code, "532901000000");
    assert_eq!(fallback.unit_name, "属地综治中心 532901000000");
    assert_eq!(fallback.rule_id, None);
    assert_eq!(route(&[], &facts, &[], &none), fallback, "no rules at all");
}

#[test]
fn moves_follow_the_task_lifecycle() {
    use TaskState::*;
    assert_eq!(Move::Accept.from(Dispatched), Some(Accepted));
    assert_eq!(Move::Accept.from(Accepted), None);
    assert_eq!(Move::Return.from(Accepted), None);
    assert_eq!(Move::ApproveReturn.from(Returned), Some(Superseded));
    assert_eq!(Move::RejectReturn.from(Returned), Some(Dispatched));
    assert_eq!(Move::Resolve.from(Dispatched), None);
    assert_eq!(Move::Resolve.from(Accepted), Some(Resolved));
    for m in [Move::Accept, Move::Return, Move::ApproveReturn, Move::RejectReturn, Move::Resolve] {
        assert_eq!(m.from(Resolved), None, "{m:?} after resolution");
        assert_eq!(m.from(Superseded), None, "{m:?} after supersession");
    }
}

#[test]
fn bad_rule_fields_are_named() {
    let parse = |id, cat, area, urgency, k, code| Rule::parse("rule.", id, 1, cat, area, urgency, kind(k), code, "名");
    let cases = [
        (parse("", "", "", 0, "department", "x"), "rule.id"),
        (parse("a b", "", "", 0, "department", "x"), "rule.id"),
        (parse("r", "01a", "", 0, "department", "x"), "rule.category_prefix"),
        (parse("r", "", "5329010030011", 0, "department", "x"), "rule.area_prefix"),
        (parse("r", "", "", 7, "department", "x"), "rule.urgency"),
        (parse("r", "", "", 0, "bureau", "x"), "rule.unit_kind"),
        (parse("r", "", "", 0, "center", " "), "rule.unit_code"),
    ];
    for (result, field) in cases {
        assert_eq!(result.err().map(|e| e.field), Some(field.to_owned()), "{field}");
    }
}

#[test]
fn slip_numbers_are_padded() {
    assert_eq!(slip_no("532901", "20250807", 3), "JB-532901-20250807-0003");
}

fn with_fallback(r: Rule, k: &str, code: &str) -> Rule {
    r.with_fallback("rule.", kind(k), code, &format!("{code} 名称")).expect("valid fallback")
}

#[test]
fn an_unavailable_unit_gives_way_to_the_rules_fallback_then_the_center() {
    let rules = vec![with_fallback(rule("r1", 5, "0102", "", "", "police"), "department", "mediation")];
    let facts = case("0102", "normal");
    let roster = |pairs: &[(&str, Duty)]| Roster(pairs.iter().map(|(c, d)| ((*c).to_owned(), *d)).collect());
    for (why, r, unit, via) in [
        ("on duty", roster(&[("police", Duty::OnDuty)]), "police", Via::Rule),
        ("unknown to the roster counts as on duty", roster(&[]), "police", Via::Rule),
        ("off duty: fallback", roster(&[("police", Duty::OffDuty)]), "mediation", Via::Fallback),
        ("retired: fallback", roster(&[("police", Duty::Retired)]), "mediation", Via::Fallback),
        (
            "both away: the center",
            roster(&[("police", Duty::OffDuty), ("mediation", Duty::Retired)]),
            "532901000000",
            Via::Center,
        ),
    ] {
        let t = route(&rules, &facts, &[], &r);
        assert_eq!((t.unit_code.as_str(), t.via), (unit, via), "{why}");
        assert_eq!(t.rule_id.as_deref(), Some("r1"), "{why}: the rule that decided is named");
    }
    let excluded = [(UnitKind::Department, "mediation".to_owned())];
    let t = route(&rules, &facts, &excluded, &roster(&[("police", Duty::OffDuty)]));
    assert_eq!(t.via, Via::Center, "an excluded fallback is no fallback");
    assert_eq!(candidates(&rules, &facts), ["police", "mediation"]);
    assert!(candidates(&rules, &case("0201", "normal")).is_empty());
}

#[test]
fn after_a_hop_only_the_holding_centers_own_rules_apply() {
    let mut county = rule("county", 1, "01", "", "", "county-bureau");
    county.unit_center = "532901000000".into();
    let mut township = rule("township", 1, "0102", "", "", "township-office");
    township.unit_center = "532901003000".into();
    let legacy = rule("legacy", 9, "01", "", "", "anywhere");
    let rules = vec![county, township, legacy];
    let mut facts = case("0102", "normal");
    assert_eq!(route(&rules, &facts, &[], &Roster::default()).unit_code, "anywhere", "at registration: all");
    facts.center_code = "532901003000".into();
    facts.holding_center = "532901000000".into();
    assert_eq!(route(&rules, &facts, &[], &Roster::default()).unit_code, "township-office", "county and below");
    facts.holding_center = "532900000000".into();
    facts.category_code = "0105".into();
    assert_eq!(route(&rules, &facts, &[], &Roster::default()).unit_code, "county-bureau");
    facts.holding_center = "532901003001".into();
    let kept = route(&rules, &facts, &[], &Roster::default());
    assert_eq!((kept.unit_code.as_str(), kept.via), ("532901003001", Via::Center), "the village has no rules");
}

#[test]
fn a_fallback_is_another_unit() {
    let r = rule("r1", 1, "", "", "", "police");
    assert_eq!(r.clone().with_fallback("rule.", 0, "", "").unwrap().fallback, None);
    let err = |k: &str, c: &str, n: &str| r.clone().with_fallback("rule.", kind(k), c, n).unwrap_err().field;
    assert_eq!(err("department", "police", "x"), "rule.fallback_code");
    assert_eq!(err("desk", "a", "x"), "rule.fallback_kind");
    assert_eq!(err("center", "a b", "x"), "rule.fallback_code");
    assert_eq!(err("center", "532901000000", ""), "rule.fallback_name");
}

#[test]
fn a_recall_supersedes_any_live_task() {
    use TaskState::*;
    for s in [Dispatched, Accepted, Returned] {
        assert_eq!(Move::Recall.from(s), Some(Superseded), "{s}");
    }
    assert_eq!(Move::Recall.from(Resolved), None);
    assert_eq!(Move::Recall.from(Superseded), None);
}
