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

    tonic_prost_build::configure()
        // Every message is plain data, so the gateway can serve the same types as JSON over HTTP.
        .message_attribute(".zongzhi", "#[derive(serde::Serialize, serde::Deserialize)]")
        .message_attribute(".zongzhi", "#[serde(default)]")
        .enum_attribute(".zongzhi", "#[derive(serde::Serialize, serde::Deserialize)]")
        .compile_fds(fds)?;
    Ok(())
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
