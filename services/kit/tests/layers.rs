//! kit in layers: each module uses only modules of lower layers, so kit has no circle and a module can be read
//! (and changed) knowing only what is below it. The table is the design; the test reads every module's source
//! (its `crate::…` paths, outside its test module) and refuses a path to the same layer or one above.

use std::collections::BTreeMap;
use std::path::Path;

/// The layers, lowest first (README, "Inside a service").
const LAYERS: &[&[&str]] = &[
    &["env", "ed25519", "division", "vocab", "pii", "time", "shutdown", "telemetry", "throttle", "cli"],
    &["db", "nats", "tls", "proxies", "field"],
    &["page", "bus_access", "status", "ids"],
    &["metrics", "audit"],
    &["auth", "events"],
    &["config", "error", "grpc"],
    &["app"],
    &["testing"],
];

/// What the crate root re-exports, by the module that defines it.
const ROOT: &[(&str, &str)] = &[("Config", "config"), ("Error", "error")];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// A module's own source: `name.rs` and everything under `name/`, each without its `#[cfg(test)]` module.
fn source(src: &Path, module: &str) -> String {
    let mut files = Vec::new();
    let file = src.join(format!("{module}.rs"));
    if file.exists() {
        files.push(file);
    }
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            match text.find("#[cfg(test)]") {
                Some(at) => text[..at].to_owned(),
                None => text,
            }
        })
        .collect()
}

/// The kit modules a source names through `crate::name` or `crate::{a, b::c}`.
fn named(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        let group =
            if let Some(inner) = rest.strip_prefix('{') { &inner[..inner.find('}').unwrap_or(0)] } else { rest };
        for part in group.split(',') {
            let name: String = part.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let name = ROOT.iter().find(|(item, _)| *item == name).map_or(name, |(_, module)| (*module).to_owned());
            out.push(name);
            if !rest.starts_with('{') {
                break;
            }
        }
    }
    out
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules: Vec<String> = std::fs::read_dir(&src)
        .expect("kit's src")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let module = name.strip_suffix(".rs").unwrap_or(&name).to_owned();
            (module != "lib").then_some(module)
        })
        .collect();
    modules.sort();
    modules.dedup();
    let mut wrong = BTreeMap::new();
    for module in &modules {
        let Some(own) = layer_of(module) else {
            wrong.insert(module.clone(), "is in no layer: add it to LAYERS".to_owned());
            continue;
        };
        for used in named(&source(&src, module)) {
            match layer_of(&used) {
                Some(layer) if layer >= own && used != *module => {
                    wrong.insert(format!("{module} -> {used}"), format!("layer {own} uses layer {layer}"));
                }
                _ => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_reader_of_paths_sees_groups_and_root_items() {
    assert_eq!(named("use crate::{env::parse_or, db};"), ["env", "db"]);
    assert_eq!(named("crate::status::invalid(&e); crate::Error::x"), ["status", "error"]);
}
