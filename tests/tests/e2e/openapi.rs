//! The OpenAPI document the gateway serves (`GET /v1/openapi.json`, generated from the protos with the routes):
//! it names every routed RPC at its route, and real answers of a sample of routes, a refusal among them, are
//! valid against the schemas it gives for them. The validator is small and written here (the keywords the
//! document uses: `$ref`, `anyOf`, `type`, `properties`, `additionalProperties`, `items`, `required`, `minimum`,
//! `maximum`, `enum`); a test of its own shows it refuses what the schemas do not allow.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use tests::World;

/// What in `value` (at `at`) the schema does not allow; empty when valid.
fn violations(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        assert!(target.is_object(), "{at}: {reference} names no schema");
        return violations(doc, target, value, at);
    }
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        let each: Vec<Vec<String>> = options.iter().map(|s| violations(doc, s, value, at)).collect();
        return if each.iter().any(Vec::is_empty) { Vec::new() } else { each.concat() };
    }
    let mut out = Vec::new();
    if let Some(ty) = schema.get("type") {
        let types: Vec<&str> = match ty {
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            other => other.as_str().into_iter().collect(),
        };
        let fits = |t: &str| match t {
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            "null" => value.is_null(),
            _ => false,
        };
        if !types.iter().any(|t| fits(t)) {
            return vec![format!("{at}: {value} is not {types:?}")];
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            out.push(format!("{at}: {value} is not one of the enum's values"));
        }
    }
    if let Some(n) = value.as_f64() {
        if schema.get("minimum").and_then(Value::as_f64).is_some_and(|min| n < min) {
            out.push(format!("{at}: {n} is below the minimum"));
        }
        if schema.get("maximum").and_then(Value::as_f64).is_some_and(|max| n > max) {
            out.push(format!("{at}: {n} is above the maximum"));
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, item) in list.iter().enumerate() {
            out.extend(violations(doc, items, item, &format!("{at}[{i}]")));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            if !object.contains_key(required.as_str().unwrap()) {
                out.push(format!("{at}: {required} is missing"));
            }
        }
        for (key, field) in object {
            let at = format!("{at}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(property) => out.extend(violations(doc, property, field, &at)),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(format!("{at}: not in the schema")),
                    Some(extra @ Value::Object(_)) => out.extend(violations(doc, extra, field, &at)),
                    _ => {}
                },
            }
        }
    }
    out
}

/// The schema of the JSON answer of `verb template` for `status` (200, else the error answer).
fn answer_schema<'a>(doc: &'a Value, verb: &str, template: &str, status: u16) -> &'a Value {
    let responses = &doc["paths"][template][verb]["responses"];
    let response = if status == 200 { &responses["200"] } else { &responses["default"] };
    let schema = &response["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "the document gives no JSON answer for {verb} {template} ({status})");
    schema
}

#[tokio::test]
async fn the_document_names_every_route_and_real_answers_fit_it() {
    let world = World::start().await;
    let (status, doc) = world.http_as(None, "GET", "/v1/openapi.json", "").await;
    assert_eq!(status, 200, "served to anyone, without a token");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut routed = 0;
    for method in proto::api::METHODS {
        let Some(http) = method.http else { continue };
        routed += 1;
        let operation = &doc["paths"][http.template][http.verb];
        let name = method.path.rsplit('/').next().unwrap();
        assert_eq!(operation["operationId"], name, "{} {}", http.verb, http.template);
        assert_eq!(operation["x-zongzhi-needs"], method.needs, "{name}");
    }
    assert_eq!(routed, doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum::<usize>());

    let center = world.demo.center_code.clone();
    let grid = world.demo.grids[0].clone();
    let registered = serde_json::to_value(world.dispute("openapi-1")).unwrap();
    let (status, answer) = world.http("POST", "/v1/cases", Some(registered)).await;
    assert_eq!(status, 200, "{answer}");
    let schema = answer_schema(&doc, "post", "/v1/cases", 200);
    assert_eq!(violations(&doc, schema, &answer, "$"), Vec::<String>::new(), "POST /v1/cases: {answer}");
    let case_id = answer["case"]["id"].as_str().unwrap().to_owned();
    let case_no = answer["case"]["case_no"].as_str().unwrap().to_owned();

    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    let period = format!("by=unit&from={}&to={}", today - chrono::Duration::days(1), today + chrono::Duration::days(1));
    let sample: Vec<(&str, &str, String, Option<Value>)> = vec![
        ("get", "/v1/cases/{case_ref}", format!("/v1/cases/{case_no}"), None),
        ("get", "/v1/cases", format!("/v1/cases?center_code={center}&page_size=5"), None),
        ("get", "/v1/cases/{case_id}/tasks", format!("/v1/cases/{case_id}/tasks"), None),
        ("get", "/v1/cases/{case_id}/deadlines", format!("/v1/cases/{case_id}/deadlines"), None),
        ("get", "/v1/cases/{case_ref}/duplicates", format!("/v1/cases/{case_id}/duplicates"), None),
        ("get", "/v1/queues/board", format!("/v1/queues/board?center_code={center}"), None),
        ("get", "/v1/nodes/{code}", format!("/v1/nodes/{grid}"), None),
        ("get", "/v1/nodes/{code}/children", format!("/v1/nodes/{center}/children"), None),
        ("get", "/v1/ledger/{code}", format!("/v1/ledger/{center}"), None),
        ("get", "/v1/auth/me", "/v1/auth/me".to_owned(), None),
        ("get", "/v1/admin/categories", "/v1/admin/categories".to_owned(), None),
        ("get", "/v1/time-policies", "/v1/time-policies".to_owned(), None),
        // The rates under the proto's name for the node, and under the name they had before (still answered).
        ("get", "/v1/rates", format!("/v1/rates?node_code={center}&{period}"), None),
        ("get", "/v1/rates", format!("/v1/rates?node={center}&{period}"), None),
        // Refusals answer with the error schema.
        ("get", "/v1/cases/{case_ref}", "/v1/cases/00000000-0000-4000-8000-000000000000".to_owned(), None),
        ("post", "/v1/cases", "/v1/cases".to_owned(), Some(json!({ "title": 5 }))),
    ];
    for (verb, template, path, body) in sample {
        let (status, answer) = world.http(&verb.to_ascii_uppercase(), &path, body).await;
        assert!(status == 200 || status >= 400, "{path}: {status}");
        let schema = answer_schema(&doc, verb, template, status);
        assert_eq!(violations(&doc, schema, &answer, "$"), Vec::<String>::new(), "{verb} {path} ({status}): {answer}");
    }
    world.stop().await;
}

#[test]
fn the_validator_refuses_what_the_schemas_do_not_allow() {
    let doc: Value = serde_json::from_str(proto::api::OPENAPI).unwrap();
    let schema = json!({ "$ref": "#/components/schemas/zongzhi.intake.v1.GetCaseResponse" });
    let fine = json!({ "case": { "id": "x", "case_no": "y", "channel": "CHANNEL_WEB", "parties": [], "timeline": [], "overdue": false } });
    assert_eq!(violations(&doc, &schema, &fine, "$"), Vec::<String>::new());
    for (wrong, why) in [
        (json!({ "case": { "id": 5 } }), "a number for a string"),
        (json!({ "case": { "invented": "x" } }), "a field the proto does not have"),
        (json!({ "case": { "timeline": {} } }), "an object for a list"),
        (json!({ "case": { "overdue": "no" } }), "a string for true or false"),
        (json!({ "case": "x" }), "a string for a message"),
        (json!({ "case": { "channel": "web" } }), "an enum's old code in an answer"),
        (json!({ "case": { "channel": 5 } }), "an enum's number in an answer"),
    ] {
        assert!(!violations(&doc, &schema, &wrong, "$").is_empty(), "{why} passes: {wrong}");
    }
}
