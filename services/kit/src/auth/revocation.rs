//! Following the registry's ended tokens. Every verifier (each service, the gateway) checks tokens from its
//! own cache, so a disabled account's token would otherwise be honoured until it expires. The registry lists
//! each revocation (`ListRevocations`, the subject and the time before which its tokens end); a follower asks
//! for the new ones every couple of seconds and hands them to the [`Verifier`].
//!
//! When the registry cannot be reached the follower keeps what it has and says so: tokens it has not heard
//! about stay valid until they expire (at most five minutes for the embedded issuer's), rather than every
//! call of the deployment failing with the registry.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::Verifier;
use crate::shutdown::Shutdown;

/// How far back revocations matter: longer than any token the registry or a service issues (five minutes),
/// with room for clock skew. The registry serves none older, and the verifier forgets them after this.
pub const WINDOW_SECS: u64 = 3600;

/// The most revocations one ListRevocations answer carries; a full page is followed at once by the next.
pub const PAGE: usize = 500;

/// How often a follower asks, by default (AUTH_REVOCATION_POLL_MS).
pub const DEFAULT_POLL: Duration = Duration::from_secs(2);

/// One ended subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub seq: i64,
    pub subject: String,
    pub not_before: u64,
}

/// Asks `fetch` for the revocations after the last one seen, every `every`, until shutdown. A full page is
/// followed at once by the next.
pub async fn follow<F, Fut>(
    verifier: Arc<Verifier>,
    mut fetch: F,
    every: Duration,
    mut shutdown: Shutdown,
) -> anyhow::Result<()>
where
    F: FnMut(i64) -> Fut + Send,
    Fut: Future<Output = anyhow::Result<Vec<Revoked>>> + Send,
{
    let mut after = 0;
    let mut failing = false;
    loop {
        match fetch(after).await {
            Ok(page) => {
                if failing {
                    tracing::info!("revocation list reachable again");
                    failing = false;
                }
                let full = page.len() >= PAGE;
                for r in &page {
                    verifier.revoke(&r.subject, r.not_before);
                    after = after.max(r.seq);
                }
                verifier.forget_revocations_before(super::token::now_secs().saturating_sub(WINDOW_SECS));
                if full {
                    continue;
                }
            }
            Err(e) if !failing => {
                tracing::warn!(error = %e, "cannot read the revocation list; tokens already ended stay refused, new revocations wait");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            () = shutdown.wait() => return Ok(()),
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// One fetch of the list (`kit::app` makes one that asks the registry with the service's own identity).
pub type Fetched = std::pin::Pin<Box<dyn Future<Output = anyhow::Result<Vec<Revoked>>> + Send>>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::auth::{AuthError, KeySet, Role};

    #[test]
    fn a_revoked_subject_is_refused_even_from_the_cache() {
        let keys = KeySet::generate("k", "zongzhi", "zongzhi").unwrap();
        let verifier = Verifier::new(&keys.auth("intake").trust).unwrap();
        let token = keys.token("p1", &[(Role::Dispatcher, "532901000000")]).unwrap();
        let other = keys.token("p2", &[(Role::Dispatcher, "532901000000")]).unwrap();
        assert!(verifier.verify(&token).is_ok(), "verified once, and so cached");
        verifier.revoke("person:p1", super::super::token::now_secs());
        assert_eq!(verifier.verify(&token).unwrap_err(), AuthError::Revoked);
        assert!(verifier.verify(&other).is_ok(), "another subject is untouched");
        // An older revocation arriving later does not bring the token back.
        verifier.revoke("person:p1", 1);
        assert_eq!(verifier.verify(&token).unwrap_err(), AuthError::Revoked);
        // Once the revocation is older than the window, it is forgotten (the token would have expired).
        verifier.forget_revocations_before(u64::MAX);
        assert!(verifier.verify(&token).is_ok());
    }
}
