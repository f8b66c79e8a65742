//! Compiles every `.proto` under `zongzhi/` with the pure-Rust protox (no system protoc), generates tonic clients
//! and servers, and writes the encoded descriptor set for gRPC server reflection.
//!
//! Each RPC is declared once, in its service's proto, with its access and (for client apps) its JSON route as
//! method options (`zongzhi/api/v1/annotations.proto`). From those this script also generates, in `api.rs`:
//! the table of every method's access and route (`crate::api::METHODS`, which kit's permission table is built
//! from), the gateway's `Desk` service (added to the descriptors before code generation, so tonic and
//! reflection see it like any other), and the macros the gateway expands into its forwarding and JSON routes;
//! and the OpenAPI document of those routes (`openapi.json`, see `build/openapi.rs`).

#[path = "build/openapi.rs"]
mod openapi;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use prost::Message;
use prost_reflect::{DescriptorPool, Kind, MethodDescriptor, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut files = Vec::new();
    collect(Path::new("zongzhi"), &mut files)?;
    files.sort();
    println!("cargo:rerun-if-changed=zongzhi");

    let mut compiler = protox::Compiler::new(["."])?;
    compiler.include_source_info(true).include_imports(true).open_files(&files)?;
    let pool = compiler.descriptor_pool();
    let methods = exposed(&pool)?;
    let mut fds = compiler.file_descriptor_set();
    add_desk(&mut fds, &methods)?;

    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptor.bin"), fds.encode_to_vec())?;
    std::fs::write(out.join("targets.rs"), targets(&fds))?;
    std::fs::write(out.join("api.rs"), api(&methods))?;
    std::fs::write(out.join("openapi.json"), openapi::document(&pool, &methods)?)?;
    std::fs::write(out.join("enums.rs"), enums(&pool))?;

    let mut builder = tonic_prost_build::configure();
    // An enum field is an i32 in Rust; in JSON it is the value's name (see `src/json.rs`).
    for (field, attribute) in enum_fields(&pool) {
        builder = builder.field_attribute(field, attribute);
    }
    builder
        // Every call decodes its request through this codec, which notes what the request names for the
        // audit record (see `targets` below and `src/codec.rs`).
        .codec_path("crate::codec::Codec")
        // Every message is plain data, so the gateway can serve the same types as JSON over HTTP.
        .message_attribute(".zongzhi", "#[derive(serde::Serialize, serde::Deserialize)]")
        .message_attribute(".zongzhi", "#[serde(default)]")
        .enum_attribute(".zongzhi", "#[derive(serde::Serialize, serde::Deserialize)]")
        // The rates' query parameter was `node` before the routes were generated from the protos; the old name
        // still answers for one release (README, "The loop, through the gateway").
        .field_attribute(".zongzhi.supervision.v1.GetRatesRequest.node_code", "#[serde(alias = \"node\")]")
        .field_attribute(".zongzhi.supervision.v1.ExportRatesRequest.node_code", "#[serde(alias = \"node\")]")
        .compile_fds(fds)?;
    Ok(())
}

/// One RPC as its options declare it.
struct Rpc {
    /// `/zongzhi.intake.v1.Intake/RegisterCase`.
    path: String,
    name: String,
    /// The service's Rust module (`intake::v1`), its name (`Intake`) and the backend that serves it (`intake`).
    module: String,
    service: String,
    backend: String,
    input: String,
    output: String,
    needs: String,
    or_services: Vec<String>,
    http: Option<Route>,
    /// The comment above the RPC, which the Desk's method carries too.
    doc: String,
}

struct Route {
    verb: &'static str,
    template: String,
    json_body: bool,
    custom: bool,
    /// The media types of a file answer; empty for JSON.
    file: Vec<String>,
    /// The fields the path binds, in order, and whether each is a whole number (else a string).
    bound: Vec<(String, bool)>,
}

/// Every RPC of every Zongzhi service with its options; an RPC that declares no access is an error, so no
/// method is ever added without deciding who may call it.
fn exposed(pool: &DescriptorPool) -> Result<Vec<Rpc>, String> {
    let access_ext = pool.get_extension_by_name("zongzhi.api.v1.access").ok_or("zongzhi.api.v1.access is missing")?;
    let http_ext = pool.get_extension_by_name("zongzhi.api.v1.http").ok_or("zongzhi.api.v1.http is missing")?;
    let mut rpcs = Vec::new();
    let mut names = std::collections::HashSet::new();
    for service in pool.services().filter(|s| s.full_name().starts_with("zongzhi.")) {
        let package = service.package_name();
        for method in service.methods() {
            let path = format!("/{}/{}", service.full_name(), method.name());
            let options = method.options();
            if !options.has_extension(&access_ext) {
                return Err(format!("{path} declares no (zongzhi.api.v1.access): say who may call it"));
            }
            let access = options.get_extension(&access_ext);
            let access = access.as_message().ok_or("access is a message")?;
            let route = if options.has_extension(&http_ext) {
                let value = options.get_extension(&http_ext);
                Some(route(&path, &method, value.as_message().ok_or("http is a message")?)?)
            } else {
                None
            };
            // The Desk maps a bare method name to its owner, so a routed name must be unique.
            if route.is_some() && !names.insert(method.name().to_owned()) {
                return Err(format!("{path}: another routed RPC is named {} too", method.name()));
            }
            let segment = package.trim_start_matches("zongzhi.").split('.').next().unwrap_or_default().to_owned();
            rpcs.push(Rpc {
                path,
                name: method.name().to_owned(),
                module: package.trim_start_matches("zongzhi.").replace('.', "::"),
                service: service.name().to_owned(),
                backend: segment,
                input: method.input().full_name().to_owned(),
                output: method.output().full_name().to_owned(),
                needs: string_field(access, "needs"),
                or_services: match access.get_field_by_name("or_services").as_deref() {
                    Some(Value::List(list)) => list.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
                    _ => Vec::new(),
                },
                http: route,
                doc: leading_comment(&method),
            });
        }
    }
    Ok(rpcs)
}

fn leading_comment(method: &MethodDescriptor) -> String {
    let file = method.parent_file();
    let info = file.file_descriptor_proto().source_code_info.as_ref();
    info.and_then(|i| i.location.iter().find(|l| l.path == method.path()))
        .and_then(|l| l.leading_comments.clone())
        .unwrap_or_default()
}

fn string_field(message: &prost_reflect::DynamicMessage, name: &str) -> String {
    message.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// A route's verb, template and bound fields, checked against the request it fills.
fn route(path: &str, method: &MethodDescriptor, http: &prost_reflect::DynamicMessage) -> Result<Route, String> {
    let (verb, template) = ["get", "post", "put", "patch", "delete"]
        .into_iter()
        .map(|verb| (verb, string_field(http, verb)))
        .find(|(_, template)| !template.is_empty())
        .ok_or_else(|| format!("{path}: the http option names no verb and path"))?;
    let body = string_field(http, "body");
    if !matches!(body.as_str(), "" | "*") {
        return Err(format!("{path}: body must be \"*\" or \"\""));
    }
    let input = method.input();
    let mut bound = Vec::new();
    for segment in template.split('/').filter(|s| s.starts_with('{')) {
        let name = segment.trim_start_matches('{').trim_end_matches('}');
        let field =
            input.get_field_by_name(name).ok_or_else(|| format!("{path}: {{{name}}} is not a request field"))?;
        let number = match field.kind() {
            Kind::String => false,
            Kind::Uint32 | Kind::Uint64 | Kind::Int32 | Kind::Int64 => true,
            _ => return Err(format!("{path}: {{{name}}} must be a string or a whole number")),
        };
        bound.push((name.to_owned(), number));
    }
    let custom = http.get_field_by_name("custom").and_then(|v| v.as_bool()).unwrap_or(false);
    let file: Vec<String> = string_field(http, "file").split_whitespace().map(str::to_owned).collect();
    if !file.is_empty() && !custom {
        return Err(format!("{path}: a file answer is answered by hand, so the route must say custom: true"));
    }
    Ok(Route { verb, template, json_body: body == "*", custom, file, bound })
}

/// Adds the gateway's `Desk` to `zongzhi/gateway/v1/gateway.proto`: every routed RPC under its own name, request
/// and response, with the files that define those as the file's imports.
fn add_desk(fds: &mut prost_types::FileDescriptorSet, rpcs: &[Rpc]) -> Result<(), String> {
    let owners: std::collections::HashMap<String, String> = fds
        .file
        .iter()
        .flat_map(|f| {
            f.message_type.iter().map(move |m| (format!("{}.{}", f.package(), m.name()), f.name().to_owned()))
        })
        .collect();
    let file = fds
        .file
        .iter_mut()
        .find(|f| f.name() == "zongzhi/gateway/v1/gateway.proto")
        .ok_or("zongzhi/gateway/v1/gateway.proto is missing")?;
    let mut desk = prost_types::ServiceDescriptorProto { name: Some("Desk".into()), ..Default::default() };
    // Code generation reads each element's comment from the source info, so the Desk and each of its methods
    // get a location (path 6 = service, 2 = method), the methods their RPC's own comment.
    let index = i32::try_from(file.service.len()).map_err(|e| e.to_string())?;
    let mut locations = vec![prost_types::source_code_info::Location {
        path: vec![6, index],
        span: vec![0, 0, 0],
        leading_comments: Some(" Every RPC that client apps call, under its own name; see gateway.proto.\n".into()),
        ..Default::default()
    }];
    for rpc in rpcs.iter().filter(|r| r.http.is_some()) {
        let at = i32::try_from(desk.method.len()).map_err(|e| e.to_string())?;
        locations.push(prost_types::source_code_info::Location {
            path: vec![6, index, 2, at],
            span: vec![0, 0, 0],
            leading_comments: Some(rpc.doc.clone()),
            ..Default::default()
        });
        for ty in [&rpc.input, &rpc.output] {
            let owner = owners.get(ty).ok_or_else(|| format!("{ty} has no file"))?;
            if !file.dependency.contains(owner) {
                file.dependency.push(owner.clone());
            }
        }
        desk.method.push(prost_types::MethodDescriptorProto {
            name: Some(rpc.name.clone()),
            input_type: Some(format!(".{}", rpc.input)),
            output_type: Some(format!(".{}", rpc.output)),
            ..Default::default()
        });
    }
    file.service.push(desk);
    file.source_code_info.get_or_insert_with(Default::default).location.extend(locations);
    Ok(())
}

/// The generated table and the gateway's macros.
fn api(rpcs: &[Rpc]) -> String {
    let mut out = String::from(
        "/// Every RPC of every service: its access and, for client apps, its route (from the method options).\n",
    );
    out.push_str("pub const METHODS: &[Method] = &[\n");
    for r in rpcs {
        let services: Vec<String> = r.or_services.iter().map(|s| format!("{s:?}")).collect();
        let http = match &r.http {
            Some(h) => format!(
                "Some(Http {{ verb: {:?}, template: {:?}, json_body: {}, custom: {} }})",
                h.verb, h.template, h.json_body, h.custom
            ),
            None => "None".to_owned(),
        };
        let _ = writeln!(
            out,
            "    Method {{ path: {:?}, needs: {:?}, or_services: &[{}], http: {http} }},",
            r.path,
            r.needs,
            services.join(", ")
        );
    }
    out.push_str("];\n\n");
    desk_backends(rpcs, &mut out);
    desk_methods(rpcs, &mut out);
    json_routes(rpcs, &mut out);
    out
}

/// `desk_backends!`: one client per service that has a routed RPC, named after the service.
fn desk_backends(rpcs: &[Rpc], out: &mut String) {
    let mut backends: Vec<(String, String, String)> = Vec::new();
    for r in rpcs.iter().filter(|r| r.http.is_some()) {
        let field = snake(&r.service);
        if !backends.iter().any(|(f, _, _)| *f == field) {
            let client = format!("$crate::{}::{}_client::{}Client", r.module, snake(&r.service), r.service);
            backends.push((field, client, r.backend.clone()));
        }
    }
    out.push_str("/// The Desk's backends, for `$callback! { field Client<Channel>, backend; … }`: one client per service with a route.\n");
    out.push_str(
        "#[macro_export]\nmacro_rules! desk_backends {\n    ($callback:ident, $channel:ty) => { $callback! {\n",
    );
    for (field, client, backend) in &backends {
        let _ = writeln!(out, "        {field} {client}<$channel>, {backend};");
    }
    out.push_str("    } };\n}\n\n");
}

/// `desk_methods!`: the Desk's methods, each with its backend, request and response.
fn desk_methods(rpcs: &[Rpc], out: &mut String) {
    out.push_str("/// The Desk's methods, for `$callback! { backend method \"Name\" (Request) -> (Response); … }`.\n");
    out.push_str("#[macro_export]\nmacro_rules! desk_methods {\n    ($callback:ident) => { $callback! {\n");
    for r in rpcs.iter().filter(|r| r.http.is_some()) {
        let _ = writeln!(
            out,
            "        {} {} {:?} ({}) -> ({});",
            snake(&r.service),
            snake(&r.name),
            r.name,
            macro_type(&r.input),
            macro_type(&r.output)
        );
    }
    out.push_str("    } };\n}\n\n");
}

/// `json_routes!`: the JSON routes the gateway serves generically.
fn json_routes(rpcs: &[Rpc], out: &mut String) {
    out.push_str(
        "/// The JSON routes the gateway serves generically, for `$callback! { method (Request) verb \"/path/{field}\" \
         json|query [field string|number, …]; … }` (the fields the path binds, in order).\n",
    );
    out.push_str("#[macro_export]\nmacro_rules! json_routes {\n    ($callback:ident) => { $callback! {\n");
    for r in rpcs {
        let Some(h) = r.http.as_ref().filter(|h| !h.custom) else { continue };
        let bound: Vec<String> =
            h.bound.iter().map(|(f, n)| format!("{f} {}", if *n { "number" } else { "string" })).collect();
        let _ = writeln!(
            out,
            "        {} ({}) {} {:?} {} [{}];",
            snake(&r.name),
            macro_type(&r.input),
            h.verb,
            h.template,
            if h.json_body { "json" } else { "query" },
            bound.join(", ")
        );
    }
    out.push_str("    } };\n}\n");
}

/// A message's Rust path in a macro from its full name: `zongzhi.intake.v1.GetCaseRequest` is
/// `$crate::intake::v1::GetCaseRequest`.
fn macro_type(full: &str) -> String {
    format!("$crate::{}", full.trim_start_matches("zongzhi.").replace('.', "::"))
}

fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `impl Targeted` for every top-level message: what a request names, for the audit record of the call that
/// carries it. The fields taken are the identifiers (`id`, `code`, `username`, and names ending `_id`, `_ref`,
/// `_code`), strings or repeated strings, never free text or a party's personal data (`phone`, `id_number`).
fn targets(fds: &prost_types::FileDescriptorSet) -> String {
    use prost_types::field_descriptor_proto::{Label, Type};
    let mut out = String::new();
    for file in &fds.file {
        let Some(module) = file.package().strip_prefix("zongzhi.") else { continue };
        // The options' own messages are read here, at build time, and never sent.
        if module.starts_with("api.") {
            continue;
        }
        let module = module.replace('.', "::");
        for m in &file.message_type {
            let fields: Vec<(String, bool)> = m
                .field
                .iter()
                .filter(|f| f.r#type() == Type::String && !f.proto3_optional())
                .filter(|f| {
                    let n = f.name();
                    matches!(n, "id" | "code" | "username") || ["_id", "_ref", "_code"].iter().any(|s| n.ends_with(s))
                })
                .map(|f| (f.name().to_owned(), f.label() == Label::Repeated))
                .collect();
            let ty = format!("crate::{module}::{}", m.name());
            if fields.is_empty() {
                out.push_str(&format!("impl crate::Targeted for {ty} {{}}\n"));
                continue;
            }
            let parts: Vec<String> = fields
                .iter()
                .map(|(name, repeated)| {
                    let value =
                        if *repeated { format!("self.{name}.join(\",\")") } else { format!("self.{name}.clone()") };
                    format!("(\"{name}\", {value})")
                })
                .collect();
            out.push_str(&format!(
                "impl crate::Targeted for {ty} {{ fn audit_target(&self) -> String {{ crate::codec::target_of(&[{}]) }} }}\n",
                parts.join(", ")
            ));
        }
    }
    out
}

/// `impl ProtoEnum` for every Zongzhi enum: each value's name, code and number, for the JSON face.
fn enums(pool: &DescriptorPool) -> String {
    let mut out = String::new();
    for e in pool.all_enums().filter(|e| e.full_name().starts_with("zongzhi.")) {
        let prefix = format!("{}_", screaming(e.name()));
        let has_prefix = e.values().all(|v| v.name().starts_with(&prefix));
        let values: Vec<String> = e
            .values()
            .map(|v| {
                let code = if has_prefix { &v.name()[prefix.len()..] } else { v.name() };
                format!("({:?}, {:?}, {})", v.name(), code.to_ascii_lowercase(), v.number())
            })
            .collect();
        let ty = rust_path(e.full_name(), e.parent_message().is_some());
        let _ = writeln!(
            out,
            "impl crate::json::ProtoEnum for {ty} {{ const VALUES: &'static [(&'static str, &'static str, i32)] = &[{}]; }}",
            values.join(", ")
        );
        // The value's code, as the services store it and clients sent it before enums (`walk_in`).
        let _ = writeln!(
            out,
            "impl {ty} {{ pub fn code(self) -> &'static str {{ crate::json::code_of::<Self>(self as i32) }} }}"
        );
    }
    out
}

/// Every enum field of every Zongzhi message, with the serde attribute that writes and reads it by name.
fn enum_fields(pool: &DescriptorPool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in pool.all_messages().filter(|m| m.full_name().starts_with("zongzhi.") && !m.is_map_entry()) {
        for f in m.fields() {
            let Kind::Enum(e) = f.kind() else { continue };
            if f.is_map() || f.containing_oneof().is_some() {
                continue;
            }
            let ty = rust_path(e.full_name(), e.parent_message().is_some());
            let (ser, de) = if f.is_list() { ("names", "numbers") } else { ("name", "number") };
            out.push((
                format!(".{}", f.full_name()),
                format!(
                    "#[serde(serialize_with = \"crate::json::{ser}::<{ty}, _>\", deserialize_with = \"crate::json::{de}::<{ty}, _>\")]"
                ),
            ));
        }
    }
    out
}

/// `zongzhi.vocab.v1.Channel` is `crate::vocab::v1::Channel`; an enum nested in a message sits in the
/// message's snake-case module.
fn rust_path(full: &str, nested: bool) -> String {
    let mut parts: Vec<String> = full.trim_start_matches("zongzhi.").split('.').map(str::to_owned).collect();
    if nested && parts.len() >= 2 {
        let at = parts.len() - 2;
        parts[at] = snake(&parts[at]);
    }
    format!("crate::{}", parts.join("::"))
}

fn screaming(name: &str) -> String {
    snake(name).to_ascii_uppercase()
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            files.push(path);
        }
    }
    Ok(())
}
