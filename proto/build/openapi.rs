//! The OpenAPI 3.1 document of the gateway's JSON face, from the same descriptors and method options as the
//! routes themselves: a path per route, its parameters (the path's fields, and for a route without a body the
//! request's other scalar fields as query parameters), its body, its answer, and a schema per message as the
//! gateway's serde form writes it (field names as in the proto, a message that may be absent as `null`, 64-bit
//! numbers as JSON numbers, bytes as a list of byte values).

use prost_reflect::{Cardinality, DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use super::Rpc;

pub fn document(pool: &DescriptorPool, rpcs: &[Rpc]) -> Result<String, String> {
    let mut paths = Map::new();
    let mut wanted = Vec::new();
    for rpc in rpcs {
        let Some(http) = &rpc.http else { continue };
        wanted.push(rpc.input.clone());
        wanted.push(rpc.output.clone());
        let item = paths.entry(http.template.clone()).or_insert_with(|| json!({}));
        item[http.verb] = operation(pool, rpc, http)?;
    }
    let document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Zongzhi gateway, JSON face",
            "version": "v1",
            "description": "Generated from the protos' method options (zongzhi/api/v1/annotations.proto). Every \
                            operation is also a gRPC method of zongzhi.gateway.v1.Desk with the same name."
        },
        "paths": paths,
        "components": {
            "schemas": schemas(pool, wanted)?,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } }
        }
    });
    serde_json::to_string(&document).map_err(|e| e.to_string())
}

/// One route's operation: its parameters, body, answer (JSON, or a file) and the error answer.
fn operation(pool: &DescriptorPool, rpc: &Rpc, http: &super::Route) -> Result<Value, String> {
    let input = pool.get_message_by_name(&rpc.input).ok_or_else(|| format!("{} is unknown", rpc.input))?;
    let mut parameters: Vec<Value> = http
        .bound
        .iter()
        .map(|(name, _)| {
            let field = input.get_field_by_name(name).expect("checked with the route");
            json!({ "name": name, "in": "path", "required": true, "schema": scalar(&field) })
        })
        .collect();
    if !http.json_body {
        for field in input.fields().filter(|f| !http.bound.iter().any(|(b, _)| b == f.name())) {
            if field.cardinality() != Cardinality::Repeated && !matches!(field.kind(), Kind::Message(_)) {
                parameters.push(json!({ "name": field.name(), "in": "query", "schema": scalar(&field) }));
            }
        }
    }
    let answer = if http.file.is_empty() {
        json!({ "description": "OK", "content": { "application/json": { "schema": reference(&rpc.output) } } })
    } else {
        let binary = json!({ "schema": { "type": "string", "format": "binary" } });
        let content: Map<String, Value> = http.file.iter().map(|t| (t.clone(), binary.clone())).collect();
        json!({ "description": "the file, its type in Content-Type and its name in Content-Disposition",
                "content": content })
    };
    let mut operation = json!({
        "operationId": rpc.name,
        "summary": summary(&rpc.doc),
        "description": rpc.doc.lines().map(str::trim).collect::<Vec<_>>().join("\n").trim(),
        "x-zongzhi-needs": rpc.needs,
        "parameters": parameters,
        "responses": {
            "200": answer,
            "default": { "description": "an error: the gRPC code's canonical name, a message, the fields at fault",
                         "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
        },
        "security": if rpc.needs == "public" { json!([]) } else { json!([{ "bearer": [] }]) },
    });
    if http.json_body {
        operation["requestBody"] =
            json!({ "required": true, "content": { "application/json": { "schema": reference(&rpc.input) } } });
    }
    Ok(operation)
}

/// The error answer's schema, and one per message the routes name, with the messages those name in turn.
fn schemas(pool: &DescriptorPool, mut wanted: Vec<String>) -> Result<Map<String, Value>, String> {
    let mut schemas = Map::new();
    schemas.insert(
        "Error".into(),
        json!({ "type": "object", "additionalProperties": false, "required": ["code", "message", "fields"],
                "properties": { "code": { "type": "string" }, "message": { "type": "string" },
                                "fields": { "type": "array", "items": { "type": "string" } } } }),
    );
    while let Some(name) = wanted.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        let message = pool.get_message_by_name(&name).ok_or_else(|| format!("{name} is unknown"))?;
        let mut properties = Map::new();
        for field in message.fields() {
            properties.insert(field.name().to_owned(), property(&field, &mut wanted));
        }
        schemas.insert(name, json!({ "type": "object", "additionalProperties": false, "properties": properties }));
    }
    Ok(schemas)
}

fn reference(message: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{message}") })
}

/// The doc comment's first sentence.
fn summary(doc: &str) -> String {
    let flat = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.find(". ") {
        Some(end) => flat[..=end].to_owned(),
        None => flat,
    }
}

/// A field as serde writes it: a list for a repeated field, an object for a map, `null` allowed where prost
/// holds an `Option` (a message field, a proto3 `optional`).
fn property(field: &FieldDescriptor, wanted: &mut Vec<String>) -> Value {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else { return json!({}) };
        let value = entry.map_entry_value_field();
        return json!({ "type": "object", "additionalProperties": property(&value, wanted) });
    }
    let one = match field.kind() {
        Kind::Message(m) => message(&m, wanted),
        _ => scalar(field),
    };
    if field.cardinality() == Cardinality::Repeated {
        return json!({ "type": "array", "items": one });
    }
    let optional = field.containing_oneof().is_some() || matches!(field.kind(), Kind::Message(_));
    if optional {
        return json!({ "anyOf": [one, { "type": "null" }] });
    }
    one
}

fn message(m: &MessageDescriptor, wanted: &mut Vec<String>) -> Value {
    wanted.push(m.full_name().to_owned());
    reference(m.full_name())
}

fn scalar(field: &FieldDescriptor) -> Value {
    match field.kind() {
        Kind::String => json!({ "type": "string" }),
        Kind::Bool => json!({ "type": "boolean" }),
        // Written by name (see `src/json.rs`); requests may also give the number or the lower-case code.
        Kind::Enum(e) => {
            let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
            json!({ "type": "string", "enum": names })
        }
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({ "type": "integer", "format": "int32" }),
        Kind::Uint32 | Kind::Fixed32 => json!({ "type": "integer", "format": "int32", "minimum": 0 }),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({ "type": "integer", "format": "int64" }),
        Kind::Uint64 | Kind::Fixed64 => json!({ "type": "integer", "format": "int64", "minimum": 0 }),
        Kind::Double | Kind::Float => json!({ "type": "number" }),
        Kind::Bytes => json!({ "type": "array", "items": { "type": "integer", "minimum": 0, "maximum": 255 } }),
        Kind::Message(_) => json!({}),
    }
}
