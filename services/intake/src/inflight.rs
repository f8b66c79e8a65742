//! Registrations in flight in this process, by idempotency key. When a client's retries (or a network's
//! duplicates) arrive together, only the first runs a registering transaction; the others wait for it without
//! holding a pooled connection and then replay its case. Otherwise each would open a transaction, queue on
//! the case-number row lock with its connection held, and find the key taken only when its insert conflicts:
//! a storm of one key would starve the pool of 5. Across replicas the unique key in the database still decides.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Clone, Default)]
pub struct InFlight(Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>);

/// What a registration is, for its key.
pub enum Turn {
    /// The first with this key: it registers, and the others wait until this is dropped.
    Leader(Leader),
    /// Another registration with the key is running; awaiting this returns when it has finished.
    Follower(Arc<AsyncMutex<()>>),
}

pub struct Leader {
    key: String,
    flights: InFlight,
    _guard: OwnedMutexGuard<()>,
}

impl InFlight {
    pub fn enter(&self, key: &str) -> Turn {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(running) = map.get(key) {
            return Turn::Follower(running.clone());
        }
        let lock = Arc::new(AsyncMutex::new(()));
        match lock.clone().try_lock_owned() {
            Ok(guard) => {
                map.insert(key.to_owned(), lock);
                Turn::Leader(Leader { key: key.to_owned(), flights: self.clone(), _guard: guard })
            }
            // Nobody else has seen this mutex, so it is unlocked; were it not, following is still correct.
            Err(_) => Turn::Follower(lock),
        }
    }
}

impl Turn {
    /// For a follower, waits until the leader is done (whether it registered or failed).
    pub async fn wait(&self) {
        if let Turn::Follower(running) = self {
            drop(running.lock().await);
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        // Removed before the guard is released (fields drop after this), so a registration arriving now
        // finds the case in the database rather than a finished flight.
        self.flights.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.key);
    }
}
