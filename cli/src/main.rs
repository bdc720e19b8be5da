//! `rkube`: the one user-facing command. Each subcommand lives in a module named for it and calls into the
//! component crates; this file only parses arguments and sets up logging.

mod cluster;
mod completion;
mod control_plane;
mod dashboard;
mod down;
mod image;
mod inspect;
mod join;
mod kubeconfig;
mod kubelet;
mod node;
mod server;
mod token;
mod trace;
mod up;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rkube", version, about = "A small Kubernetes node stack")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole node here (apiserver, scheduler, controllers, kubelet) in the foreground
    Up(up::Args),
    /// Stop `rkube up` (or `rkube kubelet`) and remove every pod, network attachment, mount, cgroup and nft table it made
    Down(down::Args),
    /// Run apiserver + scheduler + controllers on the embedded store (or etcd)
    Server(server::Args),
    /// Run the kubelet alone against the apiserver of a kubeconfig (a node joining `rkube server`)
    Kubelet(kubelet::Args),
    /// Join this machine to a cluster as a node, with a bootstrap token (`rkube token create`) and the CA's pin
    Join(join::Args),
    /// Create, list and delete bootstrap tokens for joining nodes
    #[command(subcommand)]
    Token(token::Command),
    /// Print a kubeconfig for another user of `rkube server` or `rkube up` (a client certificate from the cluster CA)
    Kubeconfig(kubeconfig::Args),
    /// Import, pull and list container images in the node's image store
    #[command(subcommand)]
    Image(image::Command),
    /// A local multi-node cluster on this machine: up, down, status, node drills
    #[command(subcommand)]
    Cluster(cluster::Command),
    /// Show the kernel objects of a pod, a node or a Service's proxy rules, from the node's kubelet
    #[command(subcommand)]
    Inspect(inspect::Command),
    /// Serve a web UI of the cluster on 127.0.0.1, behind a random token in the URL it prints
    Dashboard(dashboard::Args),
    /// A pod's steps across the control plane and its node (request, controller, scheduler, kubelet), with times
    #[command(subcommand)]
    Trace(trace::Command),
    /// Print the shell completion script for rkube (bash, zsh or fish)
    Completion(completion::Args),
}

fn main() {
    // the log on stderr (RKUBE_LOG), and beside it the span recorder `rkube trace` reads (docs/trace.md)
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    // netlink-packet-route warns on every link dump when the kernel sends an attribute newer than the crate knows
    // (IFLA_INET6_CONF grew on 6.x): nothing a user can act on, so only its errors are shown unless RKUBE_LOG says
    let log_filter = tracing_subscriber::EnvFilter::try_from_env("RKUBE_LOG")
        .unwrap_or_else(|_| "info,netlink_packet_route=error".into());
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(log_filter))
        .with(rkube_trace::layer())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up::run(args),
        Command::Down(args) => down::run(args),
        Command::Server(args) => server::run(args),
        Command::Kubelet(args) => kubelet::run(args),
        Command::Join(args) => join::run(args),
        Command::Token(cmd) => token::run(cmd),
        Command::Kubeconfig(args) => kubeconfig::run(args),
        Command::Image(cmd) => image::run(cmd),
        Command::Cluster(cmd) => cluster::run(cmd),
        Command::Inspect(cmd) => inspect::run(cmd),
        Command::Dashboard(args) => dashboard::run(args),
        Command::Trace(cmd) => trace::run(cmd),
        Command::Completion(args) => completion::run(args, Cli::command()),
    };
    if let Err(err) = result {
        eprintln!("rkube: {err:#}");
        std::process::exit(1);
    }
}
