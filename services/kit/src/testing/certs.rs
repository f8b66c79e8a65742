//! Certificates for the TLS tests (the JWKS fetch, gRPC, PostgreSQL), made with the openssl command line.

/// A CA (`ca.pem`), another CA (`other.pem`) and a server certificate for 127.0.0.1 and localhost signed by
/// the first (`leaf.pem`, `leaf.key`), made with the openssl command line in a directory removed on drop.
pub struct TestCerts {
    dir: std::path::PathBuf,
}

impl TestCerts {
    pub fn make() -> Self {
        let dir = std::env::temp_dir().join(format!("zz-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("leaf.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        for (what, args) in [
            ("a CA", vec!["req", "-x509", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca"]),
            (
                "another CA",
                vec!["req", "-x509", "-keyout", "other.key", "-out", "other.pem", "-days", "2", "-subj", "/CN=other"],
            ),
            ("a request", vec!["req", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost"]),
        ] {
            let args: Vec<&str> = args.iter().copied().chain(ec).collect();
            openssl(&dir, what, &args);
        }
        openssl(
            &dir,
            "the server certificate",
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "leaf.pem",
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
            ],
        );
        Self { dir }
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(name)
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &std::path::Path, what: &str, args: &[&str]) {
    let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl making {what}: {}", String::from_utf8_lossy(&out.stderr));
}
