use super::*;

fn rule(id: &str, priority: u32, category: &str, area: &str, urgency: &str, unit: &str) -> Rule {
    Rule::parse("rule.", id, priority, category, area, urgency, "department", unit, unit).expect("valid rule")
}

fn case(category: &str, urgency: &str) -> CaseFacts {
    CaseFacts {
        category_code: category.into(),
        urgency: Urgency::parse("urgency", urgency).expect("valid urgency"),
        village_code: "532901003001".into(),
        center_code: "532901000000".into(),
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
        assert_eq!(route(&rules, &case(category, urgency), &[]).unit_code, unit, "{why}");
    }
}

#[test]
fn excluded_units_fall_through_to_the_next_rule_then_the_center() {
    let rules = vec![rule("r1", 5, "0102", "", "", "court"), rule("r2", 1, "01", "", "", "mediation")];
    let facts = case("0102", "normal");
    let next = route(&rules, &facts, &[(UnitKind::Department, "court".into())]);
    assert_eq!((next.unit_code.as_str(), next.rule_id.as_deref()), ("mediation", Some("r2")));
    let all = [(UnitKind::Department, "court".into()), (UnitKind::Department, "mediation".into())];
    let fallback = route(&rules, &facts, &all);
    assert_eq!(fallback.unit_kind, UnitKind::Center);
    assert_eq!(fallback.unit_code, "532901000000");
    assert_eq!(fallback.unit_name, "属地综治中心 532901000000");
    assert_eq!(fallback.rule_id, None);
    assert_eq!(route(&[], &facts, &[]), fallback, "no rules at all");
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
    let parse = |id, cat, area, urgency, kind, code| Rule::parse("rule.", id, 1, cat, area, urgency, kind, code, "名");
    let cases = [
        (parse("", "", "", "", "department", "x"), "rule.id"),
        (parse("a b", "", "", "", "department", "x"), "rule.id"),
        (parse("r", "01a", "", "", "department", "x"), "rule.category_prefix"),
        (parse("r", "", "5329010030011", "", "department", "x"), "rule.area_prefix"),
        (parse("r", "", "", "soon", "department", "x"), "rule.urgency"),
        (parse("r", "", "", "", "bureau", "x"), "rule.unit_kind"),
        (parse("r", "", "", "", "center", " "), "rule.unit_code"),
    ];
    for (result, field) in cases {
        assert_eq!(result.err().map(|e| e.field), Some(field.to_owned()), "{field}");
    }
}

#[test]
fn slip_numbers_are_padded() {
    assert_eq!(slip_no("532901", "20250807", 3), "JB-532901-20250807-0003");
}
