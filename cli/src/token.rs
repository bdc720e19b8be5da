//! `rkube token create|list|delete`: bootstrap tokens for joining nodes, as `kubeadm token` makes them (a
//! Secret `bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token` in kube-system, for authentication and
//! signing, in kubeadm's node group), through the API with an admin kubeconfig. `create` also makes sure the
//! kube-public/cluster-info ConfigMap (the cluster's CA and address) exists and that `system:anonymous` may
//! read it (kubeadm's `kubeadm:bootstrap-signer-clusterinfo` Role and RoleBinding): what `rkube join` discovers
//! the cluster from. The bootstrap signer (controllers) signs it per token.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use rkube_apimachinery::bootstrap_token as bt;
use serde_json::json;

use crate::control_plane::client_from_kubeconfig;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a bootstrap token and print it (`<id>.<secret>`)
    Create(CreateArgs),
    /// List the bootstrap tokens
    List(Common),
    /// Delete a bootstrap token (its id or the whole token)
    Delete(DeleteArgs),
}

#[derive(clap::Args)]
pub struct Common {
    /// Admin kubeconfig of the cluster
    #[arg(long, default_value = "/var/lib/rkube/server/kubeconfig")]
    pub kubeconfig: PathBuf,
}

#[derive(clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub common: Common,
    /// How long the token is valid (e.g. 30m, 24h, 2h30m); 0 never expires
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    pub ttl: i64,
    /// A human-readable description
    #[arg(long)]
    pub description: Option<String>,
    /// Print the whole `rkube join` command, not only the token
    #[arg(long)]
    pub print_join_command: bool,
    /// The token to create (default: a random one)
    pub token: Option<String>,
}

#[derive(clap::Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub common: Common,
    /// Token ids or tokens
    #[arg(required = true)]
    pub tokens: Vec<String>,
}

/// Seconds of a Go-style duration (`90s`, `30m`, `24h`, `1h30m`; a bare `0` is no expiry).
fn parse_ttl(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Ok(0);
    }
    let (mut total, mut num) = (0i64, String::new());
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(format!("{s:?}: a duration like 30m, 24h or 1h30m")),
        };
        total += num.parse::<i64>().map_err(|_| format!("{s:?}: a number before each unit"))? * unit;
        num.clear();
    }
    if !num.is_empty() || total <= 0 {
        return Err(format!("{s:?}: a duration like 30m, 24h or 1h30m"));
    }
    Ok(total)
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("start the tokio runtime")?;
    runtime.block_on(async {
        match cmd {
            Command::Create(a) => create(a).await,
            Command::List(a) => list(a).await,
            Command::Delete(a) => delete(a).await,
        }
    })
}

/// `n` characters of `[a-z0-9]` from the kernel's random source (rejection sampling: no bias).
fn random_chars(n: usize) -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut f = std::fs::File::open("/dev/urandom").context("open /dev/urandom")?;
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        f.read_exact(&mut buf).context("read /dev/urandom")?;
        out.extend(buf.iter().filter(|b| **b < 252).map(|b| ALPHABET[usize::from(*b % 36)] as char).take(n - out.len()));
    }
    Ok(out)
}

/// The server and CA (PEM) of the admin kubeconfig.
fn server_and_ca(path: &Path) -> anyhow::Result<(String, String)> {
    let kc = kube::config::Kubeconfig::read_from(path).with_context(|| format!("read kubeconfig {}", path.display()))?;
    let server = kc.clusters.first().and_then(|c| c.cluster.as_ref()).and_then(|c| c.server.clone());
    let server = server.with_context(|| format!("{} names no server", path.display()))?;
    let ca = crate::kubelet::kubeconfig_ca(path)?
        .with_context(|| format!("{} names no CA: joining needs a cluster served over HTTPS with a cluster CA", path.display()))?;
    Ok((server, ca))
}

/// kube-public/cluster-info and kubeadm's Role and RoleBinding letting `system:anonymous` read it.
async fn ensure_cluster_info(client: &kube::Client, server: &str, ca: &str) -> anyhow::Result<()> {
    let kubeconfig = serde_yaml::to_string(&json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "", "cluster": {"server": server, "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca)}}],
        "contexts": null, "current-context": "", "preferences": {}, "users": null,
    }))?;
    let name = "kubeadm:bootstrap-signer-clusterinfo";
    let objects = [
        (json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": bt::CLUSTER_INFO, "namespace": bt::PUBLIC_NAMESPACE}, "data": {"kubeconfig": kubeconfig}}), "configmap"),
        (json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name, "namespace": bt::PUBLIC_NAMESPACE},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [bt::CLUSTER_INFO], "verbs": ["get"]}]}), "role"),
        (json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name, "namespace": bt::PUBLIC_NAMESPACE},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}]}), "rolebinding"),
    ];
    let pp = PostParams::default();
    for (obj, what) in objects {
        let r = match what {
            "configmap" => Api::<ConfigMap>::namespaced(client.clone(), bt::PUBLIC_NAMESPACE).create(&pp, &serde_json::from_value(obj)?).await.map(drop),
            "role" => Api::<Role>::namespaced(client.clone(), bt::PUBLIC_NAMESPACE).create(&pp, &serde_json::from_value(obj)?).await.map(drop),
            _ => Api::<RoleBinding>::namespaced(client.clone(), bt::PUBLIC_NAMESPACE).create(&pp, &serde_json::from_value(obj)?).await.map(drop),
        };
        match r {
            Ok(()) => tracing::info!(what, namespace = bt::PUBLIC_NAMESPACE, "created for node discovery"),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e).with_context(|| format!("create {what} in {} for node discovery", bt::PUBLIC_NAMESPACE)),
        }
    }
    Ok(())
}

async fn create(a: CreateArgs) -> anyhow::Result<()> {
    let token = match a.token {
        Some(t) => {
            bt::parse(&t).with_context(|| format!("token {t:?}"))?;
            t
        }
        None => format!("{}.{}", random_chars(6)?, random_chars(16)?),
    };
    let (id, secret) = bt::parse(&token).context("generated token")?;
    let (server, ca) = server_and_ca(&a.common.kubeconfig)?;
    let client = client_from_kubeconfig(&a.common.kubeconfig).await?;
    ensure_cluster_info(&client, &server, &ca).await?;
    let mut data = serde_json::Map::new();
    let mut put = |k: &str, v: &str| data.insert(k.to_string(), json!(base64::engine::general_purpose::STANDARD.encode(v)));
    put(bt::KEY_TOKEN_ID, id);
    put(bt::KEY_TOKEN_SECRET, secret);
    put(bt::KEY_USAGE_AUTHENTICATION, "true");
    put(bt::KEY_USAGE_SIGNING, "true");
    put(bt::KEY_EXTRA_GROUPS, bt::DEFAULT_NODE_GROUP);
    if a.ttl > 0 {
        let expires = chrono_like_rfc3339(a.ttl)?;
        put(bt::KEY_EXPIRATION, &expires);
    }
    if let Some(d) = &a.description {
        put(bt::KEY_DESCRIPTION, d);
    }
    let obj: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "type": bt::SECRET_TYPE,
        "metadata": {"name": bt::secret_name(id), "namespace": bt::NAMESPACE}, "data": data,
    }))?;
    let api: Api<Secret> = Api::namespaced(client, bt::NAMESPACE);
    match api.create(&PostParams::default(), &obj).await {
        Err(kube::Error::Api(e)) if e.code == 409 => bail!("a bootstrap token with id {id:?} already exists"),
        r => r.with_context(|| format!("create secret {}/{}", bt::NAMESPACE, bt::secret_name(id)))?,
    };
    if a.print_join_command {
        let hash = rkube_kubelet::bootstrap::ca_cert_hash(ca.as_bytes()).map_err(|e| anyhow::anyhow!("the kubeconfig's CA: {e}"))?;
        println!("rkube join --server {server} --token {token} --discovery-token-ca-cert-hash {hash}");
    } else {
        println!("{token}");
    }
    Ok(())
}

/// RFC3339 (UTC, seconds) of now + `secs`, from the system clock.
fn chrono_like_rfc3339(secs: i64) -> anyhow::Result<String> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).context("system clock")?;
    let t = k8s_openapi::jiff::Timestamp::from_second(i64::try_from(now.as_secs())? + secs).context("expiration time")?;
    Ok(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn decoded(s: &Secret, key: &str) -> String {
    s.data.as_ref().and_then(|d| d.get(key)).map(|v| String::from_utf8_lossy(&v.0).into_owned()).unwrap_or_default()
}

async fn list(a: Common) -> anyhow::Result<()> {
    let client = client_from_kubeconfig(&a.kubeconfig).await?;
    let secrets = Api::<Secret>::namespaced(client, bt::NAMESPACE).list(&ListParams::default()).await.context("list secrets in kube-system")?;
    println!("{:<24} {:<21} {:<26} {:<20} {}", "TOKEN", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS");
    for s in secrets.items.iter().filter(|s| s.type_.as_deref() == Some(bt::SECRET_TYPE)) {
        let token = format!("{}.{}", decoded(s, bt::KEY_TOKEN_ID), decoded(s, bt::KEY_TOKEN_SECRET));
        let expires = decoded(s, bt::KEY_EXPIRATION);
        let usages: Vec<&str> = [("authentication", bt::KEY_USAGE_AUTHENTICATION), ("signing", bt::KEY_USAGE_SIGNING)]
            .into_iter()
            .filter(|(_, k)| decoded(s, k) == "true")
            .map(|(n, _)| n)
            .collect();
        let or_none = |v: String| if v.is_empty() { "<none>".to_string() } else { v };
        println!(
            "{:<24} {:<21} {:<26} {:<20} {}",
            token,
            if expires.is_empty() { "<forever>".into() } else { expires },
            usages.join(","),
            or_none(decoded(s, bt::KEY_DESCRIPTION)),
            decoded(s, bt::KEY_EXTRA_GROUPS)
        );
    }
    Ok(())
}

async fn delete(a: DeleteArgs) -> anyhow::Result<()> {
    let client = client_from_kubeconfig(&a.common.kubeconfig).await?;
    let api: Api<Secret> = Api::namespaced(client, bt::NAMESPACE);
    for t in &a.tokens {
        let id = bt::parse(t).map(|(id, _)| id).unwrap_or(t);
        if !bt::is_token_id(id) {
            bail!("{t:?} is neither a token id ([a-z0-9]{{6}}) nor a token ([a-z0-9]{{6}}.[a-z0-9]{{16}})");
        }
        match api.delete(&bt::secret_name(id), &DeleteParams::default()).await {
            Ok(_) => println!("bootstrap token {id:?} deleted"),
            Err(kube::Error::Api(e)) if e.code == 404 => bail!("bootstrap token {id:?} not found"),
            Err(e) => return Err(e).with_context(|| format!("delete bootstrap token {id:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_read_like_kubeadms() {
        assert_eq!(parse_ttl("24h"), Ok(86400));
        assert_eq!(parse_ttl("1h30m"), Ok(5400));
        assert_eq!(parse_ttl("0"), Ok(0));
        assert!(parse_ttl("10").is_err() && parse_ttl("1d").is_err() && parse_ttl("").is_err());
        let t = random_chars(16).expect("random");
        assert!(t.len() == 16 && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    }
}
