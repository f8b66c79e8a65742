//! The JSON face's own extractors: a body and query parameters decoded with the path of the value that did not
//! fit, so a fault names the field (`passed`, `page_size`, `parties[0].role`) in the project's own words, as the
//! gRPC face does, never in the framework's text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::bad_request;

/// A JSON body. A fault answers 400 INVALID_ARGUMENT naming the field whose value does not fit, or `body` when
/// the body as a whole is not JSON.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(CONTENT_TYPE)) {
            return Err(bad_request("body", "must be JSON, sent with content-type: application/json"));
        }
        // A body sent slowly, or never finished, is cut off: it holds a connection and a task, if no place in
        // flight (those are taken after decoding).
        let bytes = match tokio::time::timeout(super::serve::BODY_TIMEOUT, Bytes::from_request(req, state)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => return Err(bad_request("body", "could not be read in full; send it again")),
            Err(_) => return Err(body_too_slow()),
        };
        let mut json = serde_json::Deserializer::from_slice(&bytes);
        let value: T = serde_path_to_error::deserialize(&mut json).map_err(|e| json_fault(&e))?;
        // Trailing bytes after the value are a malformed body too (`{} x`), as serde_json::from_slice says.
        json.end().map_err(|e| bad_request("body", &syntax(&e)))?;
        Ok(Body(value))
    }
}

/// Query parameters, decoded the same way: a fault names the parameter.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        match serde_path_to_error::deserialize(pairs) {
            Ok(value) => Ok(Params(value)),
            Err(e) => {
                let field = field_of(e.path());
                Err(bad_request(&field, &value_fault(&e.inner().to_string())))
            }
        }
    }
}

/// 408: the body did not arrive within [`super::serve::BODY_TIMEOUT`].
fn body_too_slow() -> Response {
    let secs = super::serve::BODY_TIMEOUT.as_secs();
    let status = tonic::Status::deadline_exceeded(format!("the request body did not arrive within {secs} s"));
    let mut response = super::error_response(&status);
    *response.status_mut() = axum::http::StatusCode::REQUEST_TIMEOUT;
    response
}

fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A body that did not decode: the field and what is wrong with its value, or `body` for broken JSON.
fn json_fault(e: &serde_path_to_error::Error<serde_json::Error>) -> Response {
    let inner = e.inner();
    // serde reads a struct from a list too, field by field: a list where the object belongs is the body's fault,
    // not its first element's.
    if matches!(e.path().iter().next(), Some(serde_path_to_error::Segment::Seq { .. })) {
        return bad_request("body", "must be a JSON object, not a list");
    }
    match inner.classify() {
        serde_json::error::Category::Data => {
            let field = field_of(e.path());
            bad_request(&field, &value_fault(&without_position(inner)))
        }
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => bad_request("body", &syntax(inner)),
        serde_json::error::Category::Io => bad_request("body", "could not be read in full; send it again"),
    }
}

/// The field a path names, `body` for the value as a whole (a JSON array where an object belongs).
fn field_of(path: &serde_path_to_error::Path) -> String {
    let field = path.to_string();
    if field.is_empty() || field == "." { "body".to_owned() } else { field }
}

fn syntax(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Eof => "is not valid JSON: it ends before the value is complete".to_owned(),
        _ => format!("is not valid JSON (line {}, column {})", e.line(), e.column()),
    }
}

/// serde_json's message without its ` at line L column C`: the field is named instead.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// What is wrong with one value, in the house's words. serde's messages are stable in shape ("invalid type:
/// string \"x\", expected a boolean", "missing field `x`"); what is not recognised reads as a wrong value.
fn value_fault(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (got, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return format!("must be {}, not {}", expected_words(expected), got_words(got));
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        let (_, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return format!("must be {}", expected_words(expected));
    }
    if message.starts_with("unknown variant") {
        let known = message.split_once("expected ").map_or("", |(_, k)| k);
        return format!("is not one of the known values ({})", known.replace('`', ""));
    }
    if message.starts_with("missing field") {
        return "is required".to_owned();
    }
    // The parse errors of the standard library, as query parameters and map keys give them.
    match message {
        "invalid digit found in string" | "cannot parse integer from empty string" => {
            "must be a whole number".to_owned()
        }
        "number too large to fit in target type" | "number too small to fit in target type" => {
            "is out of range for this field".to_owned()
        }
        "provided string was not `true` or `false`" => "must be true or false".to_owned(),
        "invalid float literal" => "must be a number".to_owned(),
        _ => "has a value this field does not take".to_owned(),
    }
}

/// serde's "expected …" as a reader says it.
fn expected_words(expected: &str) -> String {
    let words = match expected {
        "a boolean" => "true or false",
        "a string" => "a string",
        "u32" | "u64" | "u16" | "u8" | "usize" => "a whole number, 0 or more",
        "i32" | "i64" | "i16" | "i8" => "a whole number",
        "f32" | "f64" => "a number",
        "a sequence" => "a list",
        "" => "a value of another type",
        other if other.starts_with("struct ") || other == "a map" => "an object",
        other if other.contains("integer") => "a whole number within range",
        other => other,
    };
    words.to_owned()
}

/// serde's "unexpected …" shortened: the type of what came, the value itself only as a short excerpt.
fn got_words(got: &str) -> String {
    let kind = got.split([' ', '`', '"']).next().unwrap_or_default();
    match kind {
        "string" => "a string".to_owned(),
        "integer" | "floating" => "a number".to_owned(),
        "boolean" => "true or false".to_owned(),
        "sequence" => "a list".to_owned(),
        "map" => "an object".to_owned(),
        "null" | "unit" => "null".to_owned(),
        _ => "a value of another type".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::value_fault;

    #[test]
    fn serde_messages_read_in_the_house_words() {
        let cases = [
            ("invalid type: string \"yes\", expected a boolean", "must be true or false, not a string"),
            ("invalid type: integer `5`, expected a string", "must be a string, not a number"),
            ("invalid type: string \"x\", expected u32", "must be a whole number, 0 or more, not a string"),
            ("invalid value: integer `-1`, expected u32", "must be a whole number, 0 or more"),
            ("invalid type: sequence, expected struct Party", "must be an object, not a list"),
            ("invalid digit found in string", "must be a whole number"),
            ("provided string was not `true` or `false`", "must be true or false"),
            ("something new", "has a value this field does not take"),
        ];
        for (serde, ours) in cases {
            assert_eq!(value_fault(serde), ours, "{serde}");
        }
        assert_eq!(value_fault("missing field `name`"), "is required");
    }
}
