//! Parsing request fields into domain values ("parse, don't validate"): each helper names the field it
//! rejects, so every INVALID_ARGUMENT says which field and why.

use uuid::Uuid;

use crate::FieldError;

/// The trimmed value, which must not be empty.
pub fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, FieldError> {
    let v = value.trim();
    if v.is_empty() { Err(FieldError::new(field, "is required")) } else { Ok(v) }
}

/// The trimmed value, at most `max` characters (it may be empty).
pub fn bounded<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, FieldError> {
    let v = value.trim();
    if v.chars().count() > max {
        return Err(FieldError::new(field, format!("is longer than {max} characters")));
    }
    Ok(v)
}

/// A required value of at most `max` characters.
pub fn text<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, FieldError> {
    bounded(field, required(field, value)?, max)
}

pub fn uuid(field: &str, value: &str) -> Result<Uuid, FieldError> {
    Uuid::parse_str(required(field, value)?).map_err(|_| FieldError::new(field, "is not a UUID"))
}

/// A 12-digit statistical division code.
pub fn division_code<'a>(field: &str, value: &'a str) -> Result<&'a str, FieldError> {
    let v = required(field, value)?;
    if crate::division::is_code(v) { Ok(v) } else { Err(FieldError::new(field, "must be a 12-digit division code")) }
}

/// Declares an enum of string codes as clients send them, with `as_str`, `parse` (naming the field on
/// error) and `ALL`.
#[macro_export]
macro_rules! code_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $var:ident = $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$vmeta])* $var),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $code),+ }
            }

            pub fn parse(field: &str, value: &str) -> ::std::result::Result<Self, $crate::FieldError> {
                match value.trim() {
                    $($code => ::std::result::Result::Ok($name::$var),)+
                    "" => ::std::result::Result::Err($crate::FieldError::new(field, "is required")),
                    other => ::std::result::Result::Err($crate::FieldError::new(
                        field,
                        format!("unknown value {other:?}; expected one of: {}", [$($code),+].join(", ")),
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
