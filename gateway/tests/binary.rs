//! The gateway binary as operators run it. Also what makes `cargo test --workspace` build it, with the same
//! features as everything else: the fault tests start it as a process, and would otherwise build it
//! themselves with a feature set of its own (recompiling kit, tonic and rustls, over a minute of a CI run).

#![allow(clippy::unwrap_used)]

#[test]
fn help_names_the_configuration() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway")).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.starts_with("usage: gateway"), "{text}");
}
