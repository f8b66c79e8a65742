//! Compiles every `.proto` under `zongzhi/` with the pure-Rust protox (no system protoc), generates tonic clients
//! and servers, and writes the encoded descriptor set for gRPC server reflection.

use std::path::{Path, PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut files = Vec::new();
    collect(Path::new("zongzhi"), &mut files)?;
    files.sort();
    println!("cargo:rerun-if-changed=zongzhi");

    let fds = protox::compile(&files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptor.bin"), fds.encode_to_vec())?;

    std::fs::write(out.join("targets.rs"), targets(&fds))?;

    tonic_prost_build::configure()
        // Every call decodes its request through this codec, which notes what the request names for the
        // audit record (see `targets` below and `src/codec.rs`).
        .codec_path("crate::codec::Codec")
        // Every message is plain data, so the gateway can serve the same types as JSON over HTTP.
        .message_attribute(".zongzhi", "#[derive(serde::Serialize, serde::Deserialize)]")
        .message_attribute(".zongzhi", "#[serde(default)]")
        .enum_attribute(".zongzhi", "#[derive(serde::Serialize, serde::Deserialize)]")
        .compile_fds(fds)?;
    Ok(())
}

/// `impl Targeted` for every top-level message: what a request names, for the audit record of the call that
/// carries it. The fields taken are the identifiers (`id`, `code`, `username`, and names ending `_id`, `_ref`,
/// `_code`), strings or repeated strings, never free text or a party's personal data (`phone`, `id_number`).
fn targets(fds: &prost_types::FileDescriptorSet) -> String {
    use prost_types::field_descriptor_proto::{Label, Type};
    let mut out = String::new();
    for file in &fds.file {
        let Some(module) = file.package().strip_prefix("zongzhi.") else { continue };
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
