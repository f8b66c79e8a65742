//! Typed identifiers, parsed once where a value enters (a request field, an event envelope) and carried as
//! their own types through the domain to sqlx, so a case id cannot be passed where a person id is meant and a
//! node code is checked against the one rule (`division::is_node_code`) exactly once.
//!
//! Each type is transparent to sqlx (the column's own type: `uuid` or `text`, arrays included) and to serde
//! (the bare value), so the tables, the event payloads and the JSON stay as they were. `from_stored` is for
//! values this system wrote itself (a row, an event it published): they were checked when they came in.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::FieldError;
use crate::field;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, random id (v4).
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }

            /// The id as sent in `field`: a UUID, required.
            pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
                field::uuid(field, value).map(Self)
            }

            /// An id this system stored or issued itself.
            pub const fn from_stored(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

macro_rules! code_id {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            /// The code as sent in `field`, trimmed and checked; required.
            pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
                let check: fn(&str, &str) -> Result<(), FieldError> = $check;
                let v = field::required(field, value)?;
                check(field, v)?;
                Ok(Self(v.to_owned()))
            }

            /// A code this system stored or issued itself.
            pub fn from_stored(code: impl Into<String>) -> Self {
                Self(code.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl From<$name> for String {
            fn from(code: $name) -> String {
                code.0
            }
        }
    };
}

uuid_id! {
    /// A case, across every service (intake issues it at registration).
    CaseId
}

uuid_id! {
    /// A person in the registry: a grid worker, a staff member, a mediator, a reporter.
    PersonId
}

code_id! {
    /// A node of the tree: a division (12 digits), a grid (15) or a micro-grid (18).
    NodeCode,
    |field, v| field::node_code(field, v).map(drop)
}

code_id! {
    /// A unit that receives tasks: a department's registry code or a center's division code.
    UnitCode,
    |field, v| {
        if v.chars().count() > 64 {
            return Err(FieldError::new(field, "is longer than 64 characters"));
        }
        if v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            Ok(())
        } else {
            Err(FieldError::new(field, "may hold only letters, digits, '-', '_' and '.'"))
        }
    }
}

code_id! {
    /// A case's number as people read and quote it: `532901-20250807-00042` (the registering center's
    /// significant code, its local date and the day's sequence).
    CaseNo,
    |field, v| if is_case_no(v) { Ok(()) } else { Err(FieldError::new(field, "is not a case number")) }
}

impl CaseNo {
    /// The number of the `seq`th case the center `center_prefix` (its significant code) registered on
    /// `local_day` (`YYYYMMDD`).
    pub fn issue(center_prefix: &str, local_day: &str, seq: i32) -> Self {
        Self(format!("{center_prefix}-{local_day}-{seq:05}"))
    }
}

fn is_case_no(v: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut parts = v.split('-');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(center), Some(day), Some(seq), None) => {
            digits(center) && center.len() <= 12 && digits(day) && day.len() == 8 && digits(seq) && seq.len() <= 10
        }
        _ => false,
    }
}

/// How a client names a case: by its id or by its number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaseRef {
    Id(CaseId),
    No(CaseNo),
}

impl CaseRef {
    /// A case id (UUID) or a case number, required; anything else is refused naming `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
        let v = field::required(field, value)?;
        if let Ok(id) = Uuid::parse_str(v) {
            return Ok(Self::Id(CaseId(id)));
        }
        if is_case_no(v) {
            return Ok(Self::No(CaseNo(v.to_owned())));
        }
        Err(FieldError::new(field, "is neither a case id nor a case number"))
    }
}

impl fmt::Display for CaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => id.fmt(f),
            Self::No(no) => no.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_id_parses_what_its_rule_allows_and_names_the_field_otherwise() {
        assert!(NodeCode::parse("node", " 532901003001 ").is_ok_and(|c| c == "532901003001"));
        assert!(NodeCode::parse("node", "532901003001007").is_ok());
        let bad = NodeCode::parse("node", "5329010030").unwrap_err();
        assert_eq!(bad.field, "node");
        assert!(NodeCode::parse("node", "").is_err());
        assert!(NodeCode::parse("node", "53290100300\0").is_err());
        assert!(UnitCode::parse("unit_code", "dept.water-1").is_ok());
        assert!(UnitCode::parse("unit_code", "水务局").is_err());
        assert!(UnitCode::parse("unit_code", &"a".repeat(65)).is_err());
        assert!(CaseId::parse("case_id", "not-a-uuid").is_err());
        assert!(PersonId::parse("person_id", &Uuid::nil().to_string()).is_ok());
    }

    #[test]
    fn a_case_is_named_by_its_id_or_its_number_and_nothing_else() {
        let no = CaseNo::issue("532901", "20250807", 42);
        assert_eq!(no.as_str(), "532901-20250807-00042");
        assert_eq!(CaseRef::parse("case_ref", no.as_str()), Ok(CaseRef::No(no.clone())));
        assert_eq!(CaseNo::parse("case_no", no.as_str()), Ok(no));
        assert!(CaseNo::parse("case_no", "532901-2025087-00042").is_err());
        let id = CaseId::random();
        assert_eq!(CaseRef::parse("case_ref", &id.to_string()), Ok(CaseRef::Id(id)));
        for bad in ["", "532901", "532901-20250807", "a-20250807-00001", "532901-20250807-00001-1", "🦀"] {
            let e = CaseRef::parse("case_ref", bad).unwrap_err();
            assert_eq!(e.field, "case_ref", "{bad:?}");
        }
    }

    #[test]
    fn ids_are_their_bare_value_in_json() {
        let id = CaseId::random();
        assert_eq!(serde_json::to_string(&id).ok(), Some(format!("\"{id}\"")));
        let code: Result<NodeCode, _> = serde_json::from_str("\"532901003001\"");
        assert_eq!(code.ok().as_deref(), Some("532901003001"));
    }
}
