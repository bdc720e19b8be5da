//! `rkube dashboard [--port P] [--kubeconfig F]`: the web UI of the cluster the kubeconfig reaches, on
//! 127.0.0.1 behind a random token. Thin: the server, the page and the token are `rkube_dashboard`'s.

use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1 (0: any free port; the URL printed says which)
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Kubeconfig of the cluster (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let kubeconfig = crate::inspect::kubeconfig_path(args.kubeconfig)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let client = crate::control_plane::client_from_kubeconfig(&kubeconfig).await?;
        let token = rkube_dashboard::Token::generate()?;
        let listener = rkube_dashboard::bind(args.port).await?;
        let url = rkube_dashboard::url(listener.local_addr()?, &token);
        // stdout carries the URL alone (a script can read it); the rest goes to stderr
        println!("{url}");
        std::io::stdout().flush()?;
        eprintln!("rkube dashboard: serving the cluster of {} at {url} (Ctrl-C stops it)", kubeconfig.display());
        rkube_dashboard::serve(listener, client, token, shutdown()).await?;
        anyhow::Ok(())
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "dashboard: cannot listen for SIGTERM; Ctrl-C still stops it");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
