//! Keeps the proxy's nftables table in step with the cluster: a [`Consumer`] for the shared service watch that
//! re-renders the table and applies it when the service ports changed.

use crate::service_watch::{Consumer, ServiceState};

use super::model::{service_ports, ServicePort};
use super::nft::{apply, ProxyConfig};

/// The proxy's consumer: applies the table on the first state and on every change of the service ports.
pub fn consumer(cfg: ProxyConfig) -> Consumer {
    let mut applied: Option<Vec<ServicePort>> = None;
    Box::new(move |state: &ServiceState| {
        let ports = service_ports(&state.services, &state.slices);
        if applied.as_ref() == Some(&ports) {
            return;
        }
        match apply(&cfg, &ports) {
            Ok(()) => {
                tracing::info!(table = %cfg.table, service_ports = ports.len(), "service proxy rules applied");
                applied = Some(ports);
            }
            // Logged here, where it is handled: the next change retries with the full state.
            Err(err) => tracing::error!(table = %cfg.table, error = %err, "service proxy rules not applied"),
        }
    })
}
