//! `rkube image ...`: the node's image store from the command line — ls, pull (with per-layer progress bars),
//! import, rm and prune. All the work is in `rkube_kubelet::image`; this module parses flags and prints.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rkube_kubelet::image::{
    gc, import, limits, listing, store::DEFAULT_ROOT, Credentials, DockerConfigJson, Limits, PullProgress, Puller,
    Reference, RegistryClient, RegistryConfig, Store,
};

#[derive(clap::Args)]
pub struct StoreArgs {
    /// Image store directory
    #[arg(long, env = "RKUBE_IMAGE_ROOT", default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
}

/// What one image may unpack to (kubelet and `rkube image pull/import` alike).
#[derive(clap::Args, Clone, Debug)]
pub struct LimitArgs {
    /// Largest uncompressed layer (bytes or a quantity: 512Mi, 10Gi)
    #[arg(long, value_name = "SIZE", default_value = "10Gi", value_parser = limits::parse_size)]
    pub image_max_layer_size: u64,
    /// Largest total of uncompressed layers one pull or import unpacks
    #[arg(long, value_name = "SIZE", default_value = "40Gi", value_parser = limits::parse_size)]
    pub image_max_size: u64,
    /// Most entries (files, directories, links) in one layer
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_LAYER_ENTRIES)]
    pub image_max_layer_entries: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits { layer_bytes: self.image_max_layer_size, image_bytes: self.image_max_size, layer_entries: self.image_max_layer_entries }
    }
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// List images in the store (like `crictl images`)
    Ls {
        #[command(flatten)]
        store: StoreArgs,
        /// Print only image IDs
        #[arg(short, long)]
        quiet: bool,
    },
    /// Pull an image from a registry into the store
    Pull {
        #[command(flatten)]
        store: StoreArgs,
        /// Image reference, e.g. busybox:1.36 or 127.0.0.1:5000/app@sha256:...
        image: String,
        /// Registry credentials as USER:PASSWORD
        #[arg(long, value_name = "USER:PASSWORD", conflicts_with = "pull_secret")]
        creds: Option<String>,
        /// A .dockerconfigjson file (the content of a kubernetes.io/dockerconfigjson secret)
        #[arg(long, value_name = "FILE")]
        pull_secret: Option<PathBuf>,
        /// Registry host:port to reach over plain HTTP (loopback registries always are)
        #[arg(long = "insecure-registry", value_name = "HOST")]
        insecure_registries: Vec<String>,
        /// No progress bars
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Import an OCI layout directory, an oci-archive or a docker-save tar
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// Directory or tar file
        path: PathBuf,
        /// Name the imported image REPO[:TAG] (default: the names the archive carries)
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Remove images by name or ID, with content no other image uses
    Rm {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove every image no container uses
    Prune {
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Ls { store, quiet } => {
            let store = open(&store)?;
            let images = store.list().map_err(plain)?;
            if quiet {
                for i in images {
                    println!("{}", i.id);
                }
            } else {
                print!("{}", listing::table(&images));
            }
            Ok(())
        }
        Command::Pull { store, image, creds, pull_secret, insecure_registries, quiet, limits } => {
            pull(open(&store)?.with_limits(limits.limits()), &image, creds, pull_secret, insecure_registries, quiet)
        }
        Command::Import { store, path, name, limits } => {
            let store = open(&store)?.with_limits(limits.limits());
            let records = import::import(&store, &path, name.as_deref()).map_err(plain)?;
            for r in records {
                let names = if r.repo_tags.is_empty() { "<none>".to_string() } else { r.repo_tags.join(", ") };
                println!("Imported {names} ({})", r.id);
            }
            Ok(())
        }
        Command::Rm { store, images } => {
            let store = open(&store)?;
            let mut failed = false;
            for image in images {
                match store.remove_image(&image) {
                    Ok(r) => println!("Deleted: {image} ({})", r.id),
                    Err(e) => {
                        eprintln!("rkube: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                anyhow::bail!("some images were not removed");
            }
            Ok(())
        }
        Command::Prune { store } => {
            let store = open(&store)?;
            let report = gc::collect_garbage(&store, &HashSet::new(), u64::MAX).map_err(plain)?;
            for id in &report.removed_images {
                println!("Deleted: {id}");
            }
            println!("Total reclaimed space: {}", listing::human_size(report.freed_bytes));
            Ok(())
        }
    }
}

fn open(args: &StoreArgs) -> anyhow::Result<Store> {
    Store::open(&args.root).map_err(plain)
}

/// The library's errors already say what failed on what, cause included: print that once, not as a chain.
fn plain(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn pull(
    store: Store,
    image: &str,
    creds: Option<String>,
    pull_secret: Option<PathBuf>,
    insecure_registries: Vec<String>,
    quiet: bool,
) -> anyhow::Result<()> {
    let reference = Reference::parse(image).map_err(plain)?;
    let creds = match (creds, pull_secret) {
        (Some(c), _) => {
            let (u, p) = c.split_once(':').context("--creds must be USER:PASSWORD")?;
            Some(Credentials { username: u.to_string(), password: p.to_string() })
        }
        (None, Some(file)) => {
            let bytes = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
            DockerConfigJson::parse(&bytes).map_err(plain)?.credentials_for(&reference.registry).cloned()
        }
        (None, None) => None,
    };
    let client = RegistryClient::new(RegistryConfig { insecure_registries }).map_err(plain)?;
    let puller = Puller::new(store, Arc::new(client));
    let progress = if quiet { rkube_kubelet::image::no_progress() } else { progress_bars() };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the tokio runtime")?;
    let outcome = runtime.block_on(puller.pull(image, creds.as_ref(), progress)).map_err(plain)?;
    println!(
        "Pulled {image} ({}): {} in {:.2}s, {} downloaded",
        outcome.image.id,
        listing::human_size(outcome.image.size),
        outcome.duration.as_secs_f64(),
        listing::human_size(outcome.downloaded_bytes)
    );
    Ok(())
}

/// One indicatif bar per layer, fed by the pull's progress callback.
fn progress_bars() -> rkube_kubelet::image::ProgressFn {
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:.bold} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bars: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
    let short = |d: &str| d.trim_start_matches("sha256:").chars().take(12).collect::<String>();
    Arc::new(move |p: PullProgress| {
        let Ok(mut bars) = bars.lock() else { return };
        match p {
            PullProgress::Resolved { manifest_digest, layers, total_bytes } => {
                let _ = multi.println(format!(
                    "manifest {} : {layers} layers, {}",
                    short(&manifest_digest),
                    listing::human_size(total_bytes)
                ));
            }
            PullProgress::LayerCached { digest, .. } => {
                let _ = multi.println(format!("{} already exists", short(&digest)));
            }
            PullProgress::LayerStarted { digest, size, offset } => {
                let bar = multi.add(ProgressBar::new(size));
                bar.set_style(style.clone());
                bar.set_prefix(short(&digest));
                bar.set_position(offset);
                if offset > 0 {
                    bar.set_message("resumed");
                }
                bars.insert(digest, bar);
            }
            PullProgress::LayerBytes { digest, downloaded, .. } => {
                if let Some(b) = bars.get(&digest) {
                    b.set_position(downloaded);
                }
            }
            PullProgress::LayerDone { digest } => {
                if let Some(b) = bars.get(&digest) {
                    b.finish_with_message("verified, unpacked");
                }
            }
        }
    })
}
