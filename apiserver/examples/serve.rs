//! Runs the apiserver alone (no scheduler/controllers) on the embedded store, or on etcd when an etcd URL is
//! given: `cargo run -p rkube-apiserver --example serve -- DATA_DIR [ADDR] [ETCD_URL]`. Writes
//! DATA_DIR/kubeconfig. Handy for trying kubectl by hand and for the benchmark; `rkube server` is the real entry
//! point.

use rkube_apiserver::server::{open_backend, Backend};
use rkube_apiserver::{ApiServer, ServerConfig};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/tmp/rkube-apiserver".into()));
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:6443".into());
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("create {}: {e}", dir.display());
        std::process::exit(1);
    }
    let backend = match args.next() {
        Some(etcd) => Backend::Etcd { endpoints: vec![etcd], prefix: "/rkube".into() },
        None => Backend::Embedded(dir.join("state.redb")),
    };
    let opened = match open_backend(&backend).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("open store: {e}");
            std::process::exit(1);
        }
    };
    let addr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bad address {addr}: {e}");
            std::process::exit(2);
        }
    };
    let mut config = ServerConfig::new(addr);
    // the benchmark opens 1,000 watches and its clients from 127.0.0.1 at once
    config.limits.max_connections_per_client = 4096;
    let server = match ApiServer::start(opened.store.clone(), config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("start: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = server.write_kubeconfig(&dir.join("kubeconfig")) {
        eprintln!("write kubeconfig: {e}");
        std::process::exit(1);
    }
    println!("serving {} (kubeconfig {})", server.url(), dir.join("kubeconfig").display());
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown().await;
}
