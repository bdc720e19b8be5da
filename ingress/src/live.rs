//! The configuration being served right now: one [`Compiled`] behind an `Arc`, swapped whole when the cluster
//! changes. A request (or a TLS handshake) takes the current `Arc` once and keeps it to the end, so a reload
//! never changes what an in-flight request sees and never touches a connection: open connections carry on, and
//! their next request reads the new table.
//!
//! Must not: hold the lock across an await or while routing (take the `Arc`, drop the lock).

use std::sync::{Arc, RwLock};

use rustls::sign::CertifiedKey;

use crate::compile::Compiled;

pub struct Live {
    current: RwLock<Arc<Compiled>>,
    /// Served to TLS clients whose host has no certificate of its own (and to clients without SNI).
    pub default_cert: Arc<CertifiedKey>,
}

impl Live {
    pub fn new(default_cert: Arc<CertifiedKey>) -> Live {
        Live {
            current: RwLock::new(Arc::new(Compiled::default())),
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
    }
}
