//! The configuration being served right now: one [`Compiled`] behind an `Arc`, swapped whole when the cluster
//! changes. A request (or a TLS handshake) takes the current `Arc` once and keeps it to the end, so a reload
//! never changes what an in-flight request sees and never touches a connection: open connections carry on, and
//! their next request reads the new table.
//!
//! Readers on the request path go through a [`LiveView`]: it keeps the `Arc` it took last and a generation
//! number, and takes the lock only when a swap has moved the generation since. So a request costs one atomic
//! load of a value that changes only on a reload (no shared counter is written per request, no lock is taken),
//! as an arc-swap snapshot would.
//!
//! Must not: hold the lock across an await or while routing (take the `Arc`, drop the lock); let a view serve a
//! table older than the last swap it could see.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rustls::sign::CertifiedKey;

use crate::compile::Compiled;

/// What the proxy serves now and the default certificate; shared by the controller (which swaps) and every
/// worker (which reads through its [`LiveView`]).
pub struct Live {
    current: RwLock<Arc<Compiled>>,
    /// Moves on every swap, after the new table is in place.
    generation: AtomicU64,
    /// Served to TLS clients whose host has no certificate of its own (and to clients without SNI).
    pub default_cert: Arc<CertifiedKey>,
}

impl Live {
    /// Serving nothing yet (every request 404) until the first [`Live::swap`].
    pub fn new(default_cert: Arc<CertifiedKey>) -> Live {
        Live {
            current: RwLock::new(Arc::new(Compiled::default())),
            generation: AtomicU64::new(0),
            default_cert,
        }
    }

    /// What is served now.
    pub fn get(&self) -> Arc<Compiled> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Serves `next` from the next request on.
    pub fn swap(&self, next: Compiled) {
        let next = Arc::new(next);
        match self.current.write() {
            Ok(mut c) => *c = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// A view for one worker thread.
    pub fn view(self: &Arc<Self>) -> LiveView {
        let generation = self.generation.load(Ordering::Acquire);
        LiveView {
            last: Mutex::new((generation, self.get())),
            live: self.clone(),
        }
    }
}

/// One worker's cached reading of [`Live`]: the table it took last, re-taken when a swap happened since. Its
/// mutex is only ever taken by the one worker thread (never contended, never held across an await).
pub struct LiveView {
    live: Arc<Live>,
    last: Mutex<(u64, Arc<Compiled>)>,
}

impl LiveView {
    /// What is served now (the same table as [`Live::get`] once the last swap is visible to this thread).
    pub fn get(&self) -> Arc<Compiled> {
        let generation = self.live.generation.load(Ordering::Acquire);
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.0 != generation {
            // the generation is read before the table: a swap in between makes the next request look again
            *last = (generation, self.live.get());
        }
        last.1.clone()
    }

    /// The [`Live`] this view reads.
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_sees_every_swap_at_its_next_read() {
        let live = Arc::new(Live::new(
            crate::tls::default_certificate().expect("default certificate"),
        ));
        let view = live.view();
        let first = view.get();
        assert!(Arc::ptr_eq(&first, &view.get()), "no swap: the same table");
        live.swap(Compiled::default());
        let second = view.get();
        assert!(!Arc::ptr_eq(&first, &second), "after a swap: the new table");
        assert!(Arc::ptr_eq(&second, &live.get()));
        live.swap(Compiled::default());
        live.swap(Compiled::default());
        assert!(Arc::ptr_eq(&view.get(), &live.get()), "two swaps: the last one");
    }
}
