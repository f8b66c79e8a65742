//! Password hashing, bounded. Each argon2id computation holds about 19 MiB and a core for tens of milliseconds,
//! and sign-in hashes even for an unknown username (the decoy, so timing tells nothing). Unbounded, a dozen
//! anonymous sign-ins at once would take the registry past its memory limit and with it sign-in, registration and
//! crediting. So at most one hash per core ([`MAX_AT_ONCE`] at most) runs at a time, in the process as a whole; a call waits
//! [`QUEUE_WAIT`] for its turn and is then answered RESOURCE_EXHAUSTED ("retry"), never queued without end. The
//! memory this needs is at most `4 × 19 MiB`, which deploy/ sizes the registry for.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use kit::error::{Error, Result};
use tokio::sync::Semaphore;

use crate::secrets;

/// Hashes at once however many cores there are: 4 × 19 MiB is what the registry's 256 MiB limit keeps free
/// for them (deploy/base/registry.yaml).
pub const MAX_AT_ONCE: usize = 4;

/// How long a call waits for a free hashing slot before it is refused.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);

struct Gate {
    permits: Arc<Semaphore>,
    max: usize,
    running: AtomicUsize,
    most: AtomicUsize,
}

static GATE: LazyLock<Gate> = LazyLock::new(|| {
    // Respects the container's CPU quota (cgroups), so a pod limited to one core hashes one at a time; capped,
    // so a pod without a CPU limit on a big node stays within its memory limit.
    let max = std::thread::available_parallelism().map_or(1, usize::from).min(MAX_AT_ONCE);
    Gate { permits: Arc::new(Semaphore::new(max)), max, running: AtomicUsize::new(0), most: AtomicUsize::new(0) }
});

/// Hashes that may run at once.
pub fn bound() -> usize {
    GATE.max
}

/// The most hashes that ever ran at once in this process (what the bound promises never exceeds [`bound`]).
pub fn high_water() -> usize {
    GATE.most.load(Ordering::Relaxed)
}

/// Whether `password` matches the PHC string `phc`.
pub async fn verify(password: &str, phc: &str) -> Result<bool> {
    let (password, phc) = (password.to_owned(), phc.to_owned());
    run(move || secrets::verify_password(&password, &phc)).await
}

/// Whether `password` matches any of `hashes` (a password history), in one turn.
pub async fn matches_any(password: &str, hashes: Vec<String>) -> Result<bool> {
    let password = password.to_owned();
    run(move || hashes.iter().any(|h| secrets::verify_password(&password, h))).await
}

/// A new argon2id hash of `password`.
pub async fn hash(password: &str) -> Result<String> {
    let password = password.to_owned();
    run(move || secrets::hash_password(&password)).await?.map_err(Error::Internal)
}

async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let gate = &*GATE;
    let permit = match tokio::time::timeout(QUEUE_WAIT, gate.permits.clone().acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        _ => {
            kit::metrics::counter("zongzhi_password_hashing_refused_total", &[]).inc();
            return Err(Error::RateLimited(format!(
                "sign-in is busy ({} password checks at once); retry in 1 s",
                gate.max
            )));
        }
    };
    let running = gate.running.fetch_add(1, Ordering::SeqCst) + 1;
    gate.most.fetch_max(running, Ordering::Relaxed);
    kit::metrics::gauge("zongzhi_password_hashing_in_flight", &[]).set(running as f64);
    // The permit goes with the work, not with the caller: a client that hangs up does not free a slot whose
    // memory is still in use.
    let done = tokio::task::spawn_blocking(move || {
        let out = work();
        let left = GATE.running.fetch_sub(1, Ordering::SeqCst) - 1;
        kit::metrics::gauge("zongzhi_password_hashing_in_flight", &[]).set(left as f64);
        drop(permit);
        out
    });
    done.await.map_err(|e| Error::Internal(e.into()))
}
