//! Enum fields in JSON by name. prost holds an enum field as its number (`i32`), so serde alone would write
//! `"channel": 1`; `build.rs` marks every enum field with these functions, so the JSON face writes the value's
//! name as proto3's JSON mapping does (`"CHANNEL_WALK_IN"`) and reads the name, the number, or the value's
//! lower-case code (`"walk_in"`: what clients sent before the vocabulary became enums, still read for one
//! release). An empty string reads as the zero value, which filters read as "any", as they read "" before.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};

/// A generated enum's values, for the JSON face (implemented for every Zongzhi enum by `build.rs`).
pub trait ProtoEnum {
    /// Each value's proto name, its code (the name without the enum's prefix, in lower case) and its number.
    const VALUES: &'static [(&'static str, &'static str, i32)];

    /// The proto name of a number this enum defines.
    fn name_of(number: i32) -> Option<&'static str> {
        Self::VALUES.iter().find(|(_, _, n)| *n == number).map(|(name, _, _)| *name)
    }

    /// The number a name, a code or a decimal number stands for; `""` is the zero value.
    fn number_of(text: &str) -> Option<i32> {
        if text.is_empty() {
            return Some(0);
        }
        Self::VALUES
            .iter()
            .find(|(name, code, _)| *name == text || *code == text)
            .map(|(_, _, n)| *n)
            .or_else(|| text.parse().ok())
    }
}

/// The code of a number `E` defines (`walk_in`), or `""` for one it does not.
pub fn code_of<E: ProtoEnum>(number: i32) -> &'static str {
    E::VALUES.iter().find(|(_, _, n)| *n == number).map_or("", |(_, code, _)| *code)
}

/// The number a client sends for `text` (a name, a code or a number; `""` is the zero value), and 99, which no
/// enum here defines, for text that names no value: what tests send, so that a refusal of an unknown value is
/// exercised by the same helper that sends the known ones.
pub fn wire<E: ProtoEnum>(text: &str) -> i32 {
    E::number_of(text).unwrap_or(99)
}

/// Writes one enum field: its name, or its number when this build does not know it (proto3's rule).
pub fn name<E: ProtoEnum, S: Serializer>(value: &i32, s: S) -> Result<S::Ok, S::Error> {
    match E::name_of(*value) {
        Some(name) => s.serialize_str(name),
        None => s.serialize_i32(*value),
    }
}

/// Writes a repeated enum field, each value as [`name`] writes it.
pub fn names<E: ProtoEnum, S: Serializer>(values: &[i32], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(values.len()))?;
    for v in values {
        match E::name_of(*v) {
            Some(name) => seq.serialize_element(name)?,
            None => seq.serialize_element(v)?,
        }
    }
    seq.end()
}

/// Enum values read by their old lower-case code since the process started: the codes are read for one release
/// only, and this tells whether any client still sends them (the gateway exports it as
/// `zongzhi_json_old_enum_codes`).
static OLD_CODES: AtomicU64 = AtomicU64::new(0);

/// How many enum values this process has read by their old code.
pub fn old_codes_read() -> u64 {
    OLD_CODES.load(Ordering::Relaxed)
}

/// Reads one enum field.
pub fn number<'de, E: ProtoEnum, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    d.deserialize_any(One::<E>(std::marker::PhantomData))
}

/// Reads a repeated enum field.
pub fn numbers<'de, E: ProtoEnum, D: Deserializer<'de>>(d: D) -> Result<Vec<i32>, D::Error> {
    struct Many<E>(std::marker::PhantomData<E>);
    impl<'de, E: ProtoEnum> Visitor<'de> for Many<E> {
        type Value = Vec<i32>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of enum values")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<i32>, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element_seed(OneSeed::<E>(std::marker::PhantomData))? {
                out.push(v);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Many::<E>(std::marker::PhantomData))
}

struct One<E>(std::marker::PhantomData<E>);

impl<E: ProtoEnum> One<E> {
    fn expected() -> String {
        let names: Vec<&str> = E::VALUES.iter().skip(1).map(|(name, _, _)| *name).collect();
        format!("one of {}", names.join(", "))
    }
}

impl<'de, E: ProtoEnum> Visitor<'de> for One<E> {
    type Value = i32;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&Self::expected())
    }

    // serde's own "invalid value" form, which the gateway words as "must be one of …" naming the field.
    fn visit_str<X: de::Error>(self, text: &str) -> Result<i32, X> {
        let text = text.trim();
        if !text.is_empty() && E::VALUES.iter().any(|(_, code, _)| *code == text) {
            OLD_CODES.fetch_add(1, Ordering::Relaxed);
        }
        E::number_of(text).ok_or_else(|| {
            // A value is quoted only when short: a megabyte of garbage is never echoed back.
            let shown: String = text.chars().take(32).collect();
            X::invalid_value(de::Unexpected::Str(&shown), &self)
        })
    }

    fn visit_i64<X: de::Error>(self, v: i64) -> Result<i32, X> {
        i32::try_from(v).map_err(|_| X::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_u64<X: de::Error>(self, v: u64) -> Result<i32, X> {
        i32::try_from(v).map_err(|_| X::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_unit<X: de::Error>(self) -> Result<i32, X> {
        Ok(0)
    }
}

struct OneSeed<E>(std::marker::PhantomData<E>);

impl<'de, E: ProtoEnum> de::DeserializeSeed<'de> for OneSeed<E> {
    type Value = i32;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<i32, D::Error> {
        d.deserialize_any(One::<E>(std::marker::PhantomData))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::vocab::v1::Channel;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Probe {
        #[serde(serialize_with = "super::name::<Channel, _>", deserialize_with = "super::number::<Channel, _>")]
        channel: i32,
        #[serde(serialize_with = "super::names::<Channel, _>", deserialize_with = "super::numbers::<Channel, _>")]
        channels: Vec<i32>,
    }

    #[test]
    fn an_enum_is_written_by_name_and_read_by_name_code_or_number() {
        let probe = Probe { channel: Channel::Hotline12345 as i32, channels: vec![1, 99] };
        let text = serde_json::to_string(&probe).unwrap();
        assert_eq!(text, r#"{"channel":"CHANNEL_HOTLINE_12345","channels":["CHANNEL_WALK_IN",99]}"#);
        assert_eq!(serde_json::from_str::<Probe>(&text).unwrap(), probe);
        let old: Probe = serde_json::from_str(r#"{"channel":"hotline_12345","channels":[1,"99","grid_app"]}"#).unwrap();
        assert_eq!(old, Probe { channel: 3, channels: vec![1, 99, Channel::GridApp as i32] });
        assert_eq!(serde_json::from_str::<Probe>(r#"{"channel":"","channels":[]}"#).unwrap().channel, 0);
        let err = serde_json::from_str::<Probe>(r#"{"channel":"walkin","channels":[]}"#).unwrap_err().to_string();
        assert!(err.starts_with("invalid value: string \"walkin\", expected one of CHANNEL_WALK_IN"), "{err}");
    }
}
