//! Subsidy's domain (以案定补): the ledger's aggregates (a credit, a tariff rule version), what the ledger
//! decides about a confirmed case, which tariff prices it, and what a ledger query is. Which follow-ups earn a
//! credit is the shared vocabulary's [`kit::vocab::Satisfaction::confirms_result`]. Proto-free and free of SQL:
//! `db` loads and stores these types (rows decode straight into them), `grpc` maps them to protobuf.

use chrono::{DateTime, Utc};
use kit::ids::CaseId;
use kit::{FieldError, code_enum, field};
use uuid::Uuid;

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

/// One credit (以案定补): what a case paid whom, under which version of which tariff rule. At most one per case.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Credit {
    pub id: Uuid,
    pub case_id: CaseId,
    pub case_no: String,
    pub person_id: String,
    pub amount_fen: i64,
    pub tariff_rule_id: String,
    pub tariff_version: i32,
    pub credited_at: DateTime<Utc>,
}

impl Credit {
    /// A new credit of the case to its resolver, priced by `rule`.
    pub fn priced(case_id: CaseId, case_no: &str, resolver_id: &str, rule: &TariffRule, at: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::new_v4(),
            case_id,
            case_no: case_no.to_owned(),
            person_id: resolver_id.to_owned(),
            amount_fen: rule.amount_fen,
            tariff_rule_id: rule.id.clone(),
            tariff_version: rule.version,
            credited_at: at,
        }
    }
}

/// A version of a tariff rule; a new version is a new row, so every credit stays traceable to its price.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TariffRule {
    pub id: String,
    pub version: i32,
    pub category_prefix: String,
    pub amount_fen: i64,
    pub description: String,
    pub active: bool,
    /// Who wrote this version; empty for the seeded tariffs.
    pub created_by: String,
}

impl TariffRule {
    /// Why a credit was priced as it was, for the audit record of the decision.
    pub fn pricing(&self) -> String {
        format!("tariff {} v{}: {} fen", self.id, self.version, self.amount_fen)
    }
}

/// The largest tariff, in fen (100,000 元): a guard against a slip of the keyboard, not a policy.
pub const MAX_AMOUNT_FEN: i64 = 10_000_000;

/// A tariff rule version to add, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTariffRule {
    pub id: String,
    pub category_prefix: String,
    pub amount_fen: i64,
    pub description: String,
    pub active: bool,
}

impl NewTariffRule {
    /// Parses the fields in the message's order; `active` defaults to true.
    pub fn parse(
        id: &str,
        category_prefix: &str,
        amount_fen: i64,
        description: &str,
        active: Option<bool>,
    ) -> Result<Self, FieldError> {
        let id = field::text("id", id, 64)?;
        if !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(FieldError::new("id", "may hold only lower-case letters, digits and '-'"));
        }
        let category_prefix = field::bounded("category_prefix", category_prefix, 4)?;
        if !category_prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new("category_prefix", "must be up to 4 digits of a category code"));
        }
        if !(0..=MAX_AMOUNT_FEN).contains(&amount_fen) {
            return Err(FieldError::new("amount_fen", format!("must be 0 ..= {MAX_AMOUNT_FEN} fen")));
        }
        let description = field::text("description", description, 200)?;
        Ok(Self {
            id: id.to_owned(),
            category_prefix: category_prefix.to_owned(),
            amount_fen,
            description: description.to_owned(),
            active: active.unwrap_or(true),
        })
    }
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
    pub case_id: Option<CaseId>,
    pub person_id: Option<String>,
}

impl CreditQuery {
    pub fn parse(case_id: &str, person_id: &str) -> Result<Self, FieldError> {
        let case_id = if case_id.trim().is_empty() { None } else { Some(CaseId::parse("case_id", case_id)?) };
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
            active: true,
            created_by: String::new(),
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
    fn a_credit_carries_its_rule_and_version() {
        let case_id = CaseId::random();
        let major = rule("major-land", 2, "0104", 35000);
        let c = Credit::priced(case_id, "n-1", "p-1", &major, chrono::Utc::now());
        assert_eq!((c.case_id, c.person_id.as_str(), c.amount_fen), (case_id, "p-1", 35000));
        assert_eq!((c.tariff_rule_id.as_str(), c.tariff_version), ("major-land", 2));
        assert_eq!(major.pricing(), "tariff major-land v2: 35000 fen");
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

    #[test]
    fn bad_tariff_rules_name_their_field() {
        let cases = [
            ("", "01", 1, "d", "id"),
            ("Major Land", "01", 1, "d", "id"),
            ("x\0", "01", 1, "d", "id"),
            ("ok", "01a", 1, "d", "category_prefix"),
            ("ok", "01021", 1, "d", "category_prefix"),
            ("ok", "01", -1, "d", "amount_fen"),
            ("ok", "01", MAX_AMOUNT_FEN + 1, "d", "amount_fen"),
            ("ok", "01", 1, "", "description"),
            ("ok", "01", 1, "a\0b", "description"),
        ];
        for (id, prefix, fen, description, field) in cases {
            let e = NewTariffRule::parse(id, prefix, fen, description, None).unwrap_err();
            assert_eq!(e.field, field, "{id:?} {prefix:?} {fen} {description:?}");
        }
        let long = "元".repeat(201);
        assert_eq!(NewTariffRule::parse("ok", "", 0, &long, None).unwrap_err().field, "description");
        let ok = NewTariffRule::parse(" major-land ", "", MAX_AMOUNT_FEN, " 重大 ", None).unwrap();
        assert_eq!((ok.id.as_str(), ok.category_prefix.as_str(), ok.description.as_str()), ("major-land", "", "重大"));
        assert!(ok.active);
        assert!(!NewTariffRule::parse("ok", "01", 0, "d", Some(false)).unwrap().active);
    }
}
