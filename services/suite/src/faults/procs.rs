//! Child processes the fault suite owns: each service binary and a private nats-server. Every child is killed
//! when its handle is dropped, so a failing or interrupted run leaves nothing behind.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

/// One service binary run as its own process, restartable with the same environment and ports.
pub struct Proc {
    pub name: &'static str,
    bin: PathBuf,
    env: BTreeMap<String, String>,
    log: PathBuf,
    /// Where it answers (TCP), to know it is up.
    pub addr: SocketAddr,
    child: Option<Child>,
    /// How many times it was started, to name its log files apart.
    starts: u32,
}

impl Proc {
    pub fn new(name: &'static str, bin: PathBuf, env: BTreeMap<String, String>, logs: &Path, addr: SocketAddr) -> Self {
        Self { name, bin, env, log: logs.join(name), addr, child: None, starts: 0 }
    }

    /// Starts it (with `extra` variables on top of its own) and waits until its port accepts connections.
    pub async fn start_with(&mut self, extra: &[(&str, &str)]) -> anyhow::Result<()> {
        self.spawn(extra)?;
        self.wait_ready(Duration::from_secs(60)).await
    }

    pub async fn start(&mut self) -> anyhow::Result<()> {
        self.start_with(&[]).await
    }

    /// Starts it without waiting (a process that is expected to die soon, or that waits for a peer).
    pub fn spawn(&mut self, extra: &[(&str, &str)]) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "{} is already running", self.name);
        self.starts += 1;
        let log = std::fs::File::create(format!("{}.{}.log", self.log.display(), self.starts))?;
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear()
            .envs(&self.env)
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.child = Some(cmd.spawn().with_context(|| format!("start {}", self.bin.display()))?);
        Ok(())
    }

    pub async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                anyhow::bail!("{} exited with {status} before it was ready (log: {})", self.name, self.last_log());
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "{} not ready within {within:?}", self.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// kill -9: no drain, no lease released, no last relay pass.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the process to finish draining (killing it if it takes longer than `grace`).
    pub async fn terminate(&mut self, grace: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let Some(mut child) = self.child.take() else { anyhow::bail!("{} is not running", self.name) };
        signal(child.id(), "TERM")?;
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("{} did not stop within {grace:?} of SIGTERM", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the process to exit on its own (a fault hook), returning its status.
    pub async fn wait_exit(&mut self, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let Some(child) = self.child.as_mut() else { anyhow::bail!("{} is not running", self.name) };
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "{} still running after {within:?}", self.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The exit status if the process has exited on its own (it is then no longer this handle's child).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn last_log(&self) -> String {
        format!("{}.{}.log", self.log.display(), self.starts)
    }

    /// Every log this service wrote in this run, each start's, concatenated.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .filter_map(|i| std::fs::read_to_string(format!("{}.{i}.log", self.log.display())).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Sends a signal by name with kill(1): the workspace forbids unsafe code, so no libc call.
pub fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status()?;
    anyhow::ensure!(status.success(), "kill -{sig} {pid} failed");
    Ok(())
}

/// A private nats-server with JetStream on its own port and store directory, so stopping or killing it
/// touches no one else's bus. NATS_SERVER names the binary (default: /usr/sbin/nats-server, else on PATH).
pub struct Nats {
    bin: PathBuf,
    pub port: u16,
    store: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Nats {
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let bin = match std::env::var("NATS_SERVER") {
            Ok(b) if !b.is_empty() => PathBuf::from(b),
            _ if Path::new("/usr/sbin/nats-server").exists() => PathBuf::from("/usr/sbin/nats-server"),
            _ => PathBuf::from("nats-server"),
        };
        let mut nats = Self {
            bin,
            port: free_port()?,
            store: dir.join("jetstream"),
            log: dir.join("nats"),
            child: None,
            starts: 0,
        };
        nats.up().await?;
        Ok(nats)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port and store, and waits until it accepts connections.
    pub async fn up(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "nats-server is already running");
        self.starts += 1;
        let log = std::fs::File::create(format!("{}.{}.log", self.log.display(), self.starts))?;
        let child = Command::new(&self.bin)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&self.store)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {} (set NATS_SERVER)", self.bin.display()))?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "nats-server did not start on {}", self.port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// A clean stop (SIGTERM: the server flushes and closes its store).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM")?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while child.try_wait()?.is_none() {
                if tokio::time::Instant::now() >= deadline {
                    let _ = child.kill();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A loopback port free right now (the OS picks it; the listener is closed again at once).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
