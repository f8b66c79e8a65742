//! Subsidy's domain (以案定补): which follow-ups earn a credit, which tariff prices it, and what a ledger query
//! is. Free of protobuf.

use kit::{FieldError, code_enum, field};
use uuid::Uuid;

code_enum! {
    /// The citizen's answer at the follow-up visit (回访).
    pub enum Satisfaction {
        Satisfied = "satisfied",
        BasicallySatisfied = "basically_satisfied",
        Unsatisfied = "unsatisfied",
    }
}

impl Satisfaction {
    /// Only a result the citizen confirmed earns the resolver a credit.
    pub fn confirms_result(self) -> bool {
        matches!(self, Satisfaction::Satisfied | Satisfaction::BasicallySatisfied)
    }
}

code_enum! {
    /// What the ledger decided about a confirmed case, kept for audit.
    pub enum Decision {
        Credited = "credited",
        Ineligible = "ineligible",
        UnknownPerson = "unknown_person",
        AlreadyCredited = "already_credited",
        NoTariff = "no_tariff",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TariffRule {
    pub id: String,
    pub version: i32,
    pub category_prefix: String,
    pub amount_fen: i64,
    pub description: String,
}

/// The rule that prices a case of `category_code`: among active rules whose prefix the code starts with, the
/// longest prefix, then the latest version (then the id, so the choice never depends on row order).
pub fn pick_tariff<'a>(active: &'a [TariffRule], category_code: &str) -> Option<&'a TariffRule> {
    active
        .iter()
        .filter(|r| category_code.starts_with(r.category_prefix.as_str()))
        .max_by(|a, b| (a.category_prefix.len(), a.version, &b.id).cmp(&(b.category_prefix.len(), b.version, &a.id)))
}

/// A ledger query: by case, by person, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditQuery {
    pub case_id: Option<Uuid>,
    pub person_id: Option<String>,
}

impl CreditQuery {
    pub fn parse(case_id: &str, person_id: &str) -> Result<Self, FieldError> {
        let case_id = if case_id.trim().is_empty() { None } else { Some(field::uuid("case_id", case_id)?) };
        let person_id = field::bounded("person_id", person_id, 64)?;
        let person_id = (!person_id.is_empty()).then(|| person_id.to_owned());
        if case_id.is_none() && person_id.is_none() {
            return Err(FieldError::new("case_id", "case_id or person_id is required"));
        }
        Ok(Self { case_id, person_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, version: i32, prefix: &str, fen: i64) -> TariffRule {
        TariffRule {
            id: id.into(),
            version,
            category_prefix: prefix.into(),
            amount_fen: fen,
            description: String::new(),
        }
    }

    #[test]
    fn the_longest_prefix_then_the_latest_version_wins() {
        let rules = vec![
            rule("default", 1, "", 10000),
            rule("major-land", 1, "0104", 30000),
            rule("major-land", 2, "0104", 35000),
            rule("disputes", 1, "01", 12000),
        ];
        let cases = [("0104", "major-land", 2), ("0101", "disputes", 1), ("0301", "default", 1), ("", "default", 1)];
        for (code, id, version) in cases {
            let got = pick_tariff(&rules, code).expect("a rule");
            assert_eq!((got.id.as_str(), got.version), (id, version), "category {code:?}");
        }
        assert_eq!(pick_tariff(&rules[1..2], "0301"), None, "no default rule, no match");
    }

    #[test]
    fn a_credit_query_needs_a_case_or_a_person() {
        let id = Uuid::new_v4().to_string();
        let bad =
            [("", "", "case_id"), ("  ", " ", "case_id"), ("nope", "", "case_id"), ("", &"x".repeat(65), "person_id")];
        for (case_id, person_id, field) in bad {
            let err = CreditQuery::parse(case_id, person_id).expect_err(case_id);
            assert_eq!(err.field, field, "case_id {case_id:?} person_id {person_id:?}");
        }
        assert!(CreditQuery::parse(&id, "").is_ok());
        assert!(CreditQuery::parse("", "p-1").is_ok());
    }
}
