//! The kubelet's CNI client (the runtime side of CNI, as libcni is upstream's): load a network from a config
//! directory (`/etc/cni/net.d`), run its plugin chain for ADD (each plugin gets the previous one's result as
//! `prevResult`), and DEL (reverse order) and CHECK with the cached result of ADD. Plugins are executed from
//! `plugin_dirs` (`/opt/cni/bin`) per the exec protocol.
//!
//! The spec's types and the exec protocol come from `rkube-cni-types`, which rkube's plugins share; the kubelet
//! links no plugin code. Must not: configure links itself (that is the plugins' job, in the pod's namespace).

use std::fs;
use std::path::{Path, PathBuf};

use rkube_cni_types::exec::{Command, Env};
use rkube_cni_types::{code, version, CniError, CniResult, ConfList};

/// Where rkube keeps the result of each ADD for DEL and CHECK.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni/rkube-results";

/// One pod sandbox's attachment to a network.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// CNI_CONTAINERID: the sandbox's id; with the network name and ifname it keys the cached result.
    pub container_id: String,
    /// CNI_NETNS: the sandbox's network namespace.
    pub netns: PathBuf,
    /// CNI_IFNAME: the interface inside it (`eth0`).
    pub ifname: String,
    /// CNI_ARGS, e.g. "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1".
    pub args: String,
}

/// Runs plugin chains.
#[derive(Debug, Clone)]
pub struct CniRuntime {
    /// Where plugins are looked up, in order (CNI_PATH).
    pub plugin_dirs: Vec<PathBuf>,
    /// Where each ADD's result is kept for DEL and CHECK (the kubelet's `<data dir>/cni-results`).
    pub cache_dir: PathBuf,
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> CniError {
    move |e| CniError::new(code::IO_FAILURE, format!("{what}: {e}"))
}

/// The network a node uses: the first `*.conflist`, `*.conf` or `*.json` in `conf_dir` by file name.
pub fn load_network(conf_dir: &Path) -> Result<ConfList, CniError> {
    let mut files: Vec<PathBuf> = fs::read_dir(conf_dir)
        .map_err(io_err(format!("read CNI config directory {}", conf_dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("conflist" | "conf" | "json")))
        .collect();
    files.sort();
    let first = files.first().ok_or_else(|| {
        CniError::new(code::INVALID_CONFIG, format!("no network config (*.conflist, *.conf, *.json) in {}", conf_dir.display()))
    })?;
    let bytes = fs::read(first).map_err(io_err(format!("read {}", first.display())))?;
    ConfList::parse(&bytes).map_err(|mut e| {
        e.msg = format!("{}: {}", first.display(), e.msg);
        e
    })
}

impl CniRuntime {
    /// A client running plugins from `plugin_dirs`, caching results in `cache_dir`.
    pub fn new(plugin_dirs: Vec<PathBuf>, cache_dir: PathBuf) -> CniRuntime {
        CniRuntime { plugin_dirs, cache_dir }
    }

    fn env(&self, command: Command, att: &Attachment) -> Env {
        Env {
            command,
            container_id: att.container_id.clone(),
            netns: att.netns.display().to_string(),
            ifname: att.ifname.clone(),
            args: att.args.clone(),
            path: self.plugin_dirs.clone(),
        }
    }

    fn cache_path(&self, net: &ConfList, att: &Attachment) -> PathBuf {
        self.cache_dir.join(format!("{}-{}-{}.json", net.name, att.container_id, att.ifname))
    }

    fn run(&self, net: &ConfList, i: usize, command: Command, att: &Attachment, prev: Option<&CniResult>) -> Result<Option<CniResult>, CniError> {
        let conf = net
            .plugin_config(i, prev)
            .ok_or_else(|| CniError::new(code::INVALID_CONFIG, format!("network {:?}: plugin {i} is not a JSON object", net.name)))?;
        let kind = conf.get("type").and_then(|t| t.as_str()).unwrap_or("").to_string();
        self.env(command, att).delegate(&kind, command, conf.to_string().as_bytes())
    }

    /// ADD through the chain; caches and returns the last plugin's result.
    pub fn add(&self, net: &ConfList, att: &Attachment) -> Result<CniResult, CniError> {
        let mut prev: Option<CniResult> = None;
        for i in 0..net.plugins.len() {
            if let Some(r) = self.run(net, i, Command::Add, att, prev.as_ref())? {
                prev = Some(r);
            }
        }
        let result = prev.ok_or_else(|| CniError::new(code::DECODE_FAILURE, format!("network {:?}: no plugin returned a result", net.name)))?;
        fs::create_dir_all(&self.cache_dir).map_err(io_err(format!("create {}", self.cache_dir.display())))?;
        let path = self.cache_path(net, att);
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, result.to_json(&net.cni_version)).map_err(io_err(format!("write {}", tmp.display())))?;
        fs::rename(&tmp, &path).map_err(io_err(format!("rename to {}", path.display())))?;
        Ok(result)
    }

    /// The result ADD cached for this attachment, if any.
    pub fn cached(&self, net: &ConfList, att: &Attachment) -> Option<CniResult> {
        let bytes = fs::read(self.cache_path(net, att)).ok()?;
        CniResult::parse(&serde_json::from_slice(&bytes).ok()?).ok()
    }

    /// DEL through the chain in reverse, with the cached result as prevResult; drops the cache.
    pub fn del(&self, net: &ConfList, att: &Attachment) -> Result<(), CniError> {
        let prev = self.cached(net, att);
        for i in (0..net.plugins.len()).rev() {
            self.run(net, i, Command::Del, att, prev.as_ref())?;
        }
        match fs::remove_file(self.cache_path(net, att)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove cached result".into())(e)),
        }
    }

    /// CHECK through the chain with the cached result (spec 0.4.0 and later, unless the list disables it).
    pub fn check(&self, net: &ConfList, att: &Attachment) -> Result<(), CniError> {
        if net.disable_check || !version::has_check(&net.cni_version) {
            return Ok(());
        }
        let prev = self.cached(net, att).ok_or_else(|| {
            CniError::new(code::UNKNOWN_CONTAINER, format!("no cached ADD result for {} on network {:?}", att.container_id, net.name))
        })?;
        for i in 0..net.plugins.len() {
            self.run(net, i, Command::Check, att, Some(&prev))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn first_config_by_name_wins_and_other_files_are_ignored() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("00-readme.txt"), "not a config").unwrap();
        fs::write(d.path().join("20-b.conflist"), r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"x"}]}"#).unwrap();
        fs::write(d.path().join("10-a.conf"), r#"{"cniVersion":"0.4.0","name":"a","type":"rkube-bridge"}"#).unwrap();
        let net = load_network(d.path()).unwrap();
        assert_eq!(net.name, "a");
        assert_eq!(net.plugins.len(), 1);
        assert_eq!(net.cni_version, "0.4.0");
    }

    #[test]
    fn empty_or_broken_config_dir_says_which() {
        let d = tempfile::tempdir().unwrap();
        let e = load_network(d.path()).unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
        assert!(e.msg.contains(&d.path().display().to_string()), "{}", e.msg);
        fs::write(d.path().join("10-x.conflist"), "{broken").unwrap();
        let e = load_network(d.path()).unwrap_err();
        assert_eq!(e.code, code::DECODE_FAILURE);
        assert!(e.msg.contains("10-x.conflist"), "{}", e.msg);
    }
}
