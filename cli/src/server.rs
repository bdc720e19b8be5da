//! `rkube server`: apiserver (+ scheduler and controllers, once wired) in one process, on the embedded store
//! under `--data-dir` or on etcd. Writes an admin kubeconfig to `<data-dir>/kubeconfig` that kubectl uses as is.
//!
//! Without `--tls` the server speaks plain HTTP and has no authentication: keep `--listen` on 127.0.0.1. With
//! `--tls` it serves HTTPS and requires a client certificate signed by the cluster CA (`<data-dir>/pki`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use rkube_apiserver::server::{open_backend, Backend};
use rkube_apiserver::{ApiServer, ServerConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Directory for the embedded store and the admin kubeconfig
    #[arg(long, default_value = "/var/lib/rkube/server")]
    pub data_dir: PathBuf,
    /// Address to serve the Kubernetes API on (plain HTTP)
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// etcd endpoints (http://host:port); when given, objects live in etcd instead of the embedded store
    #[arg(long = "etcd", value_name = "URL")]
    pub etcd: Vec<String>,
    /// Key prefix in etcd
    #[arg(long, default_value = "/rkube")]
    pub etcd_prefix: String,
    /// Serve HTTPS with a cluster CA and client certificates kept in <data-dir>/pki (the kubeconfig carries the
    /// admin certificate); without it the API is plain HTTP with no authentication
    #[arg(long)]
    pub tls: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the tokio runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("create data dir {}", args.data_dir.display()))?;
    let backend = if args.etcd.is_empty() {
        Backend::Embedded(args.data_dir.join("state.redb"))
    } else {
        Backend::Etcd { endpoints: args.etcd.clone(), prefix: args.etcd_prefix.clone() }
    };
    let opened = open_backend(&backend).await.with_context(|| format!("open storage {backend:?}"))?;
    let mut config = ServerConfig::new(args.listen);
    if args.tls {
        config.tls_dir = Some(args.data_dir.join("pki"));
    }
    let server = ApiServer::start(opened.store.clone(), config)
        .await
        .context("start the apiserver")?;
    let kubeconfig = args.data_dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).with_context(|| format!("write {}", kubeconfig.display()))?;
    tracing::info!(url = %server.url(), kubeconfig = %kubeconfig.display(), "rkube server ready");
    // Hook for the scheduler and controllers (crate rkube-controllers): start them here against
    // `kubeconfig` (or `server.url()`), after the apiserver is serving, and stop them before shutdown.
    wait_for_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    drop(opened);
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
