//! One worker's idle keep-alive connections to endpoints, of one kind (the proxy keeps two: its own connections
//! for requests without a body, [`crate::upstream::Conn`], and hyper's for requests with one).
//!
//! A request takes an idle connection to its endpoint (the newest first) or opens one; the connection comes back
//! when its answer has been read to its end and the endpoint did not ask to close (`Connection: close`, or
//! HTTP/1.0 without keep-alive). Only one worker's tasks use a pool, so its lock is never contended; it is never
//! held across an await.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Idle keep-alive connections kept per endpoint and worker (nginx's `keepalive 32` in the bench's peer).
const IDLE_PER_ENDPOINT: usize = 32;
/// How long an idle connection to an endpoint is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection that can wait in a pool.
pub(crate) trait Idle {
    /// Whether it can still carry a request: the endpoint has not closed it, nor sent anything unasked.
    fn usable(&self) -> bool;
}

impl<B: Send + 'static> Idle for hyper::client::conn::http1::SendRequest<B> {
    fn usable(&self) -> bool {
        !self.is_closed()
    }
}

/// Idle connections by endpoint.
pub(crate) struct Pool<C> {
    idle: Mutex<HashMap<SocketAddr, Vec<(C, tokio::time::Instant)>>>,
}

impl<C> Default for Pool<C> {
    fn default() -> Self {
        Pool {
            idle: Mutex::new(HashMap::new()),
        }
    }
}

impl<C: Idle> Pool<C> {
    fn idle(&self) -> MutexGuard<'_, HashMap<SocketAddr, Vec<(C, tokio::time::Instant)>>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The newest idle connection to `endpoint` that is still usable.
    pub(crate) fn take(&self, endpoint: SocketAddr) -> Option<C> {
        let mut idle = self.idle();
        let conns = idle.get_mut(&endpoint)?;
        while let Some((c, since)) = conns.pop() {
            if since.elapsed() < IDLE_TIMEOUT && c.usable() {
                return Some(c);
            }
        }
        None
    }

    /// Keeps `conn` for the next request to `endpoint` (the oldest idle one goes when there are too many).
    pub(crate) fn put_back(&self, endpoint: SocketAddr, conn: C) {
        let mut idle = self.idle();
        let conns = idle.entry(endpoint).or_default();
        if conns.len() >= IDLE_PER_ENDPOINT {
            conns.remove(0);
        }
        conns.push((conn, tokio::time::Instant::now()));
    }

    /// Any idle connection (tests count them this way).
    #[cfg(test)]
    pub(crate) fn take_any(&self) -> Option<C> {
        let mut idle = self.idle();
        idle.values_mut()
            .find_map(|conns| conns.pop().map(|(c, _)| c))
    }

    /// Closes the idle connections that are older than the timeout or no longer usable.
    pub(crate) fn reap(&self) {
        self.idle().retain(|_, conns| {
            conns.retain(|(c, since)| since.elapsed() < IDLE_TIMEOUT && c.usable());
            !conns.is_empty()
        });
    }
}
