//! Parsing request fields into domain values ("parse, don't validate"): each helper names the field it
//! rejects, so every INVALID_ARGUMENT says which field and why.
//!
//! Every helper refuses a NUL character (PostgreSQL cannot store one in text, so it would otherwise surface as
//! an internal error) and never echoes more than a short excerpt of what it refuses: a status message travels
//! in an HTTP/2 trailer, and an echoed value of a few kilobytes breaks the connection instead of answering.

use uuid::Uuid;

use crate::FieldError;

/// The longest value any helper looks at, in bytes, whatever its own limit: larger values are refused before
/// anything else is done with them.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;

/// How much of a refused value an error may quote, in characters.
pub const EXCERPT_CHARS: usize = 32;

/// A short, quoted, escaped prefix of `value` for an error message: at most [`EXCERPT_CHARS`] characters (cut on
/// a character boundary), with `…` when cut.
pub fn excerpt(value: &str) -> String {
    match value.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}

/// Refuses NUL characters and values beyond [`MAX_FIELD_BYTES`]; the checks every text field gets first.
pub fn clean<'a>(field: &str, value: &'a str) -> Result<&'a str, FieldError> {
    if value.len() > MAX_FIELD_BYTES {
        return Err(FieldError::new(field, format!("is longer than {MAX_FIELD_BYTES} bytes")));
    }
    if value.contains('\0') {
        return Err(FieldError::new(field, "must not contain a NUL character"));
    }
    Ok(value)
}

/// The trimmed value, which must not be empty.
pub fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, FieldError> {
    let v = clean(field, value)?.trim();
    if v.is_empty() { Err(FieldError::new(field, "is required")) } else { Ok(v) }
}

/// The trimmed value, at most `max` characters (it may be empty).
pub fn bounded<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, FieldError> {
    let v = clean(field, value)?.trim();
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

/// A node of the tree ([`crate::division::is_node_code`]), required.
pub fn node_code<'a>(field: &str, value: &'a str) -> Result<&'a str, FieldError> {
    let v = required(field, value)?;
    if crate::division::is_node_code(v) {
        Ok(v)
    } else {
        Err(FieldError::new(field, "must be a 12-digit division code or a 15/18-digit grid code"))
    }
}

/// A page token that is the code of the last item of the previous page, checked to be one this service could
/// have issued for the listing under `parent_prefix`: empty (the first page), or 12, 15 or 18 ASCII digits
/// starting with the prefix. Anything else is refused rather than paged from, so a client never silently gets
/// a page that starts somewhere arbitrary.
pub fn code_page_token<'a>(field: &str, token: &'a str, parent_prefix: &str) -> Result<&'a str, FieldError> {
    let bad = || FieldError::new(field, "is not a token this service issued");
    let t = clean(field, token).map_err(|_| bad())?.trim();
    if t.is_empty() {
        return Ok(t);
    }
    if crate::division::is_node_code(t) && t.starts_with(parent_prefix) && t != parent_prefix {
        Ok(t)
    } else {
        Err(bad())
    }
}

/// The code of a [`code_enum!`] value, as `parse` reads it: refused without looking further when it is longer
/// than any code could be, so a huge value costs nothing and is never echoed.
#[doc(hidden)]
pub fn code_candidate<'a>(field: &str, value: &'a str) -> Result<&'a str, FieldError> {
    if value.len() > 64 {
        return Err(FieldError::new(field, format!("unknown value {}", excerpt(value))));
    }
    Ok(clean(field, value)?.trim())
}

/// Declares an enum of string codes as clients send them, with `as_str`, `parse` (naming the field on
/// error) and `ALL`.
///
/// Led by `proto = path::To::Enum;`, it is also the domain side of that proto enum (`zongzhi/vocab/v1`): the
/// variants must be the proto enum's, name for name (prost's names: `CHANNEL_WALK_IN` is `WalkIn`), and both
/// conversions are exhaustive matches, so a value added on one side only is a compile error. It then has
/// `from_proto` (the zero value is "is required", an unknown number is refused naming the field),
/// `from_filter` (the zero value is `None`: "any") and `From` into the proto enum and its `i32`.
#[macro_export]
macro_rules! code_enum {
    (proto = $($seg:ident)::+; $(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$vmeta:meta])* $var:ident = $code:literal),+ $(,)?
    }) => {
        $crate::code_enum! { $(#[$meta])* $vis enum $name { $($(#[$vmeta])* $var = $code),+ } }

        impl $name {
            /// The value a request or event field holds, refused naming the field when it is unset or unknown.
            pub fn from_proto(field: &str, value: i32) -> ::std::result::Result<Self, $crate::FieldError> {
                // An alias, because a macro cannot repeat the path inside the variants' repetition.
                use $($seg)::+ as P;
                match P::try_from(value) {
                    ::std::result::Result::Ok(P::Unspecified) => {
                        ::std::result::Result::Err($crate::FieldError::new(field, "is required"))
                    }
                    $(::std::result::Result::Ok(P::$var) => ::std::result::Result::Ok($name::$var),)+
                    // A gRPC client knows the values by their proto names, so those are what it is told.
                    ::std::result::Result::Err(_) => ::std::result::Result::Err($crate::FieldError::new(
                        field,
                        format!("unknown value {value}; expected one of: {}", {
                            use $crate::__proto::json::ProtoEnum;
                            let names: Vec<&str> = P::VALUES.iter().skip(1).map(|(name, _, _)| *name).collect();
                            names.join(", ")
                        }),
                    )),
                }
            }

            /// Whether each value's code is its proto code (the name without the prefix, in lower case), by which
            /// the JSON face still reads the codes clients sent before enums.
            pub fn codes_agree_with_proto() -> bool {
                use $crate::__proto::json::ProtoEnum;
                let values = <$($seg)::+ as ProtoEnum>::VALUES;
                values.len() == Self::ALL.len() + 1
                    && Self::ALL.iter().all(|&v| {
                        let n = i32::from(v);
                        values.iter().any(|(_, code, number)| *number == n && *code == v.as_str())
                    })
            }

            /// A filter's value: unset is `None` (any), an unknown number is refused naming the field.
            pub fn from_filter(field: &str, value: i32) -> ::std::result::Result<Option<Self>, $crate::FieldError> {
                if value == 0 { ::std::result::Result::Ok(None) } else { Self::from_proto(field, value).map(Some) }
            }
        }

        impl ::std::convert::From<$name> for $($seg)::+ {
            fn from(value: $name) -> Self {
                use $($seg)::+ as P;
                match value { $($name::$var => P::$var),+ }
            }
        }

        impl ::std::convert::From<$name> for i32 {
            fn from(value: $name) -> Self {
                $($seg)::+::from(value) as i32
            }
        }
    };
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
                match $crate::field::code_candidate(field, value)? {
                    $($code => ::std::result::Result::Ok($name::$var),)+
                    "" => ::std::result::Result::Err($crate::FieldError::new(field, "is required")),
                    other => ::std::result::Result::Err($crate::FieldError::new(
                        field,
                        format!(
                            "unknown value {}; expected one of: {}",
                            $crate::field::excerpt(other),
                            [$($code),+].join(", ")
                        ),
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        // Stored as its code in a TEXT column: queries bind the value (`.bind(TaskState::Accepted)`, or a slice
        // for `= ANY($1)`) instead of repeating literals, and a row decodes straight into the enum.
        impl $crate::__sqlx::Type<$crate::__sqlx::Postgres> for $name {
            fn type_info() -> $crate::__sqlx::postgres::PgTypeInfo {
                <&str as $crate::__sqlx::Type<$crate::__sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &$crate::__sqlx::postgres::PgTypeInfo) -> bool {
                <&str as $crate::__sqlx::Type<$crate::__sqlx::Postgres>>::compatible(ty)
            }
        }

        impl $crate::__sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> $crate::__sqlx::postgres::PgTypeInfo {
                <&str as $crate::__sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }

        impl<'q> $crate::__sqlx::Encode<'q, $crate::__sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut $crate::__sqlx::postgres::PgArgumentBuffer,
            ) -> ::std::result::Result<$crate::__sqlx::encode::IsNull, $crate::__sqlx::error::BoxDynError> {
                <&str as $crate::__sqlx::Encode<'q, $crate::__sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> $crate::__sqlx::Decode<'r, $crate::__sqlx::Postgres> for $name {
            fn decode(
                value: $crate::__sqlx::postgres::PgValueRef<'r>,
            ) -> ::std::result::Result<Self, $crate::__sqlx::error::BoxDynError> {
                let code = <&str as $crate::__sqlx::Decode<'r, $crate::__sqlx::Postgres>>::decode(value)?;
                $name::parse(stringify!($name), code).map_err(::std::convert::Into::into)
            }
        }
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    crate::code_enum! {
        pub enum Colour { Red = "red", Blue = "blue" }
    }

    #[test]
    fn a_refusal_quotes_only_a_short_prefix_cut_on_a_char_boundary() {
        let huge = "界".repeat(10_000);
        let err = Colour::parse("colour", &huge).unwrap_err();
        assert_eq!(err.field, "colour");
        assert!(err.reason.len() < 200, "{}", err.reason);
        let err = Colour::parse("colour", &format!("{}x", "é".repeat(40))).unwrap_err();
        assert!(err.reason.contains(&format!("\"{}\"…", "é".repeat(EXCERPT_CHARS))), "{}", err.reason);
        assert_eq!(Colour::parse("colour", " blue ").unwrap(), Colour::Blue);
        assert_eq!(Colour::ALL, &[Colour::Red, Colour::Blue]);
        assert_eq!(excerpt("short"), "\"short\"");
    }

    #[test]
    fn nul_is_refused_everywhere_and_emoji_are_text() {
        let nul = "a\0b";
        for err in [required("t", nul), bounded("t", nul, 100), text("t", nul, 100)] {
            assert_eq!(err.unwrap_err().reason, "must not contain a NUL character");
        }
        assert!(Colour::parse("colour", "red\0").is_err());
        assert!(uuid("id", "\0").is_err());
        assert_eq!(text("title", "漏水 🚰💧", 100).unwrap(), "漏水 🚰💧");
        assert!(bounded("d", &"x".repeat(MAX_FIELD_BYTES + 1), usize::MAX).is_err());
    }

    #[test]
    fn code_page_tokens_are_children_of_the_parent_or_refused() {
        assert_eq!(code_page_token("page_token", "", "5329").unwrap(), "");
        assert_eq!(code_page_token("page_token", "532901000000", "5329").unwrap(), "532901000000");
        assert_eq!(code_page_token("page_token", "532901003001002", "532901003001").unwrap(), "532901003001002");
        for bad in ["!!garbage!!", "530100000000", "5329010", "532900000000\0", "53290100000x"] {
            assert!(code_page_token("page_token", bad, "5329").is_err(), "{bad:?}");
        }
        assert!(code_page_token("page_token", "532901003001", "532901003001").is_err(), "the parent itself");
    }
}
