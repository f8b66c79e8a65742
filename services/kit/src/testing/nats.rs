//! The bus the tests share: a nats-server started once per test process with the project's own configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The bus every test of this process uses: its URL and each user's password.
#[derive(Debug)]
pub struct TestNats {
    pub url: String,
    passwords: BTreeMap<String, String>,
}

impl TestNats {
    /// The password of `user` (`ops` or a service's name).
    pub fn password(&self, user: &str) -> &str {
        self.passwords.get(user).unwrap_or_else(|| panic!("no NATS user {user} in deploy/nats/users.conf"))
    }

    /// The services' users and `ops`, as users.conf has them.
    pub fn users() -> impl Iterator<Item = &'static str> {
        std::iter::once(crate::bus_access::OPS_USER).chain(crate::bus_access::PUBLISHERS.iter().map(|(s, _)| *s))
    }
}

/// The process's bus, started on first use. By default a nats-server child runs deploy/nats/nats.conf on a
/// free loopback port with a fresh store and random passwords (see [`start_nats`]). TEST_NATS_URL points the
/// tests at a server already running that configuration instead, with the passwords taken from this
/// process's NATS_PASSWORD_<USER> variables (the same ones that server reads).
pub fn test_nats() -> &'static TestNats {
    static NATS: OnceLock<TestNats> = OnceLock::new();
    NATS.get_or_init(|| {
        let url = crate::env::string_or("TEST_NATS_URL", "");
        if url.is_empty() {
            return start_nats();
        }
        let passwords = TestNats::users()
            .map(|u| (u.to_owned(), crate::env::string_or(&crate::bus_access::password_var(u), "")))
            .collect();
        TestNats { url, passwords }
    })
}

/// The running server's stdin, held (never written) for the life of the process: see [`start_nats`].
static NATS_LIFELINE: Mutex<Option<ChildStdin>> = Mutex::new(None);

/// Starts nats-server (NATS_SERVER, else `nats-server` on the PATH, else /usr/sbin/nats-server) with the
/// project's configuration, under a small shell that stops it when this process ends.
///
/// A static is never dropped, so no destructor could stop the server; and a test process also ends by
/// panic=abort, a signal or `kill -9`, where no Rust code runs at all. Instead the shell holds the read end
/// of a pipe whose only write end is this process's: when the process ends, however it ends, the kernel
/// closes the write end, the shell's `read` sees end of file, and it stops the server and removes its store.
///
/// The configuration directory links nats.conf and users.conf from deploy/nats, byte for byte. Its
/// durability.conf is the project's too on NATS 2.10 and later; on 2.9, which does not know `sync_interval`,
/// it is empty.
fn start_nats() -> TestNats {
    let binary = nats_binary();
    let version = nats_version(&binary);
    let dir = std::env::temp_dir().join(format!(
        "zongzhi-nats-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).expect("nats test directory");
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nats");
    let project = project.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", project.display()));
    for file in ["nats.conf", "users.conf"] {
        std::os::unix::fs::symlink(project.join(file), conf.join(file)).expect("link nats config");
    }
    if version >= (2, 10) {
        std::os::unix::fs::symlink(project.join("durability.conf"), conf.join("durability.conf"))
            .expect("link durability.conf");
    } else {
        std::fs::write(conf.join("durability.conf"), "# NATS 2.9 knows no sync_interval\n").expect("durability.conf");
    }
    // NATS parses a variable's value as a configuration value, so a password must read as a string:
    // starting with a letter (a leading digit makes it a number, or a parse error).
    let passwords: BTreeMap<String, String> =
        TestNats::users().map(|u| (u.to_owned(), format!("p{}", uuid::Uuid::new_v4().simple()))).collect();

    // The server gets /dev/null as stdin and not fd 3, so the shell's copy of the pipe is the only reader.
    const LIFELINE: &str = r#"exec 3<&0 </dev/null
"$@" 3<&- &
pid=$!
( read -r _ <&3; touch "$ZZ_NATS_DIR/stopping"; kill "$pid" 2>/dev/null ) &
wait "$pid"
# A server that stopped on its own keeps its directory (and log) for a look; one we stopped is removed.
if [ -e "$ZZ_NATS_DIR/stopping" ]; then rm -rf "$ZZ_NATS_DIR"; fi
"#;
    let log = std::fs::File::create(dir.join("nats.log")).expect("nats log");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(LIFELINE)
        .arg("sh")
        .arg(&binary)
        .args(["-c", &conf.join("nats.conf").to_string_lossy(), "-a", "127.0.0.1", "-p", "-1", "-n"])
        .arg(format!("zongzhi-test-{}", std::process::id()))
        .arg("--ports_file_dir")
        .arg(&dir)
        .env("ZZ_NATS_DIR", &dir)
        .env("NATS_STORE_DIR", dir.join("store"))
        .stdin(Stdio::piped())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    for (user, password) in &passwords {
        cmd.env(crate::bus_access::password_var(user), password);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    *NATS_LIFELINE.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = child.stdin.take();
    let url = wait_for_ports_file(&dir, &mut child);
    TestNats { url, passwords }
}

fn nats_binary() -> PathBuf {
    let configured = crate::env::string_or("NATS_SERVER", "");
    if !configured.is_empty() {
        return configured.into();
    }
    let on_path = Command::new("nats-server").arg("--version").output().is_ok_and(|o| o.status.success());
    if on_path { "nats-server".into() } else { "/usr/sbin/nats-server".into() }
}

/// (major, minor) from `nats-server --version`, e.g. "nats-server: v2.9.10".
fn nats_version(binary: &Path) -> (u32, u32) {
    let out = Command::new(binary).arg("--version").output().unwrap_or_else(|e| {
        panic!("nats-server must be installed (NATS_SERVER, PATH or /usr/sbin): {}: {e}", binary.display())
    });
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.trim().rsplit('v').next().unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The client URL from the server's ports file, written once it listens.
fn wait_for_ports_file(dir: &Path, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ports = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".ports"))
            .and_then(|e| std::fs::read_to_string(e.path()).ok())
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
        if let Some(url) = ports.as_ref().and_then(|p| p["nats"][0].as_str()) {
            return url.to_owned();
        }
        let log = || std::fs::read_to_string(dir.join("nats.log")).unwrap_or_default();
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the test nats-server exited ({status}):\n{}", log());
        }
        assert!(Instant::now() < deadline, "the test nats-server did not start within 15 s:\n{}", log());
        std::thread::sleep(Duration::from_millis(20));
    }
}
