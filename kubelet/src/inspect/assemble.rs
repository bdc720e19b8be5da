//! Pure pieces of a pod's inspection: the kernel's own texts (mountinfo, `/proc/<pid>/ns/*` links, `ip -j`
//! and `nft -j` output, the bundle's mounts) turned into the [`super::schema`] types. No I/O here: the unit
//! tests feed fixtures.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::schema::{EndpointRules, KernelMount, Layer, Link, Mount, Namespace, Rootfs, Route, Sharing};

/// The namespace kinds reported, in this order.
pub const NAMESPACE_KINDS: [&str; 7] = ["net", "ipc", "uts", "pid", "mnt", "cgroup", "user"];

/// The inode of a `/proc/<pid>/ns/<kind>` link target (`net:[4026532300]`).
pub fn ns_inode(link: &str) -> Option<u64> {
    link.rsplit_once('[')?.1.strip_suffix(']')?.parse().ok()
}

/// A process's namespaces (kind → inode) labelled against the sandbox's and the host's.
pub fn label_namespaces(own: &BTreeMap<String, u64>, sandbox: Option<&BTreeMap<String, u64>>, host: &BTreeMap<String, u64>) -> Vec<Namespace> {
    NAMESPACE_KINDS
        .iter()
        .filter_map(|k| {
            let inode = *own.get(*k)?;
            let shared = if host.get(*k) == Some(&inode) {
                Sharing::Host
            } else if sandbox.and_then(|s| s.get(*k)) == Some(&inode) {
                Sharing::Pod
            } else {
                Sharing::Own
            };
            Some(Namespace { kind: k.to_string(), inode, shared })
        })
        .collect()
}

/// One line of `/proc/<pid>/mountinfo`.
#[derive(Clone, Debug, PartialEq)]
pub struct MountInfo {
    /// Field 1: the mount's id.
    pub mount_id: u64,
    /// Field 3: `major:minor` of the filesystem's device.
    pub device: String,
    /// Field 4: the path within the filesystem that is mounted here.
    pub root: String,
    /// Field 5: where it is mounted, relative to the process's root.
    pub mount_point: String,
    /// Field 6: the mount's options (`rw,nosuid,...`).
    pub options: String,
    /// The filesystem type, after the `-` separator.
    pub fs_type: String,
    /// The mount source, after the filesystem type.
    pub source: String,
    /// The superblock's options, last.
    pub super_options: String,
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo (proc(5)): `id parent major:minor root mountpoint options [optional...] - fstype source super`.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.splitn(3, ' ').collect();
            if f.len() < 6 || r.len() < 2 {
                return None;
            }
            Some(MountInfo {
                mount_id: f[0].parse().ok()?,
                device: f[2].to_string(),
                root: unescape(f[3]),
                mount_point: unescape(f[4]),
                options: f[5].to_string(),
                fs_type: r[0].to_string(),
                source: unescape(r[1]),
                super_options: r.get(2).copied().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// The entry mounted last at `mount_point` (the one a path lookup sees).
pub fn mount_at<'a>(mounts: &'a [MountInfo], mount_point: &str) -> Option<&'a MountInfo> {
    mounts.iter().rev().find(|m| m.mount_point == mount_point)
}

/// The overlay root of a container's mount table: lowerdirs (topmost first) with their store digests, upperdir,
/// workdir. A non-overlay root is reported with its type and no layers.
pub fn rootfs_of(mounts: &[MountInfo]) -> Option<Rootfs> {
    let root = mount_at(mounts, "/")?;
    let mut fs = Rootfs { fs_type: root.fs_type.clone(), ..Default::default() };
    if root.fs_type != "overlay" {
        return Some(fs);
    }
    // super options are comma-separated; overlay escapes commas and colons in its paths with a backslash
    for opt in split_unescaped(&root.super_options, ',') {
        if let Some(v) = opt.strip_prefix("lowerdir=") {
            fs.lower_layers = split_unescaped(&v, ':')
                .into_iter()
                .map(|d| {
                    let dir = d.replace('\\', "");
                    Layer { digest: layer_digest(&dir), dir }
                })
                .collect();
        } else if let Some(v) = opt.strip_prefix("upperdir=") {
            fs.upper_dir = Some(v.replace('\\', ""));
        } else if let Some(v) = opt.strip_prefix("workdir=") {
            fs.work_dir = Some(v.replace('\\', ""));
        }
    }
    Some(fs)
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        if c == sep && !escaped {
            out.push(String::new());
            continue;
        }
        escaped = c == '\\' && !escaped;
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

/// `sha256:<hex>` for an image store layer directory (`<store>/layers/<hex>`).
pub fn layer_digest(dir: &str) -> Option<String> {
    let mut parts = dir.trim_end_matches('/').rsplit('/');
    let hex = parts.next()?;
    (parts.next()? == "layers" && hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("sha256:{hex}"))
}

/// A pod volume's kind from its spec (`emptyDir`, `emptyDir(Memory)`, `hostPath`, ...).
pub fn volume_kind(volume: &Value) -> String {
    for k in ["emptyDir", "hostPath", "configMap", "secret", "projected", "downwardAPI", "persistentVolumeClaim", "ephemeral"] {
        if let Some(v) = volume.get(k) {
            if k == "emptyDir" && v.get("medium").and_then(Value::as_str) == Some("Memory") {
                return "emptyDir(Memory)".into();
            }
            return k.into();
        }
    }
    "unknown".into()
}

/// The container's mounts that the kubelet asked for: each bind mount of the bundle (`config.json` `mounts`)
/// whose destination is one of the container's volumeMounts (named by its volume) or a kubelet-managed file,
/// joined with the kernel's entry at that path.
pub fn container_mounts(pod_spec: &Value, container: &str, bundle_mounts: &Value, mountinfo: &[MountInfo]) -> Vec<Mount> {
    let volumes: BTreeMap<&str, &Value> = pod_spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v.get("name")?.as_str()?, v)))
        .collect();
    let spec = pod_spec
        .get("containers")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("name").and_then(Value::as_str) == Some(container)));
    let by_path: BTreeMap<String, String> = spec
        .and_then(|c| c.get("volumeMounts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| Some((m.get("mountPath")?.as_str()?.trim_end_matches('/').to_string(), m.get("name")?.as_str()?.to_string())))
        .collect();
    let managed = ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/dev/termination-log"];
    let mut out = Vec::new();
    for m in bundle_mounts.as_array().into_iter().flatten() {
        let Some(dest) = m.get("destination").and_then(Value::as_str) else { continue };
        let dest = dest.trim_end_matches('/');
        let source = m.get("source").and_then(Value::as_str).unwrap_or_default();
        let (volume, kind) = match by_path.get(dest) {
            Some(v) => (Some(v.clone()), volumes.get(v.as_str()).map(|s| volume_kind(s)).unwrap_or_else(|| "unknown".into())),
            None if managed.contains(&dest) || spec.and_then(|c| c.get("terminationMessagePath")).and_then(Value::as_str) == Some(dest) => {
                (None, "kubelet".to_string())
            }
            None => continue,
        };
        let kernel = mount_at(mountinfo, dest).map(|k| KernelMount {
            mount_id: k.mount_id,
            fs_type: k.fs_type.clone(),
            root: k.root.clone(),
            device: k.device.clone(),
            source: k.source.clone(),
            read_only: k.options.split(',').any(|o| o == "ro"),
        });
        out.push(Mount { volume, kind, mount_path: dest.to_string(), host_source: source.to_string(), kernel });
    }
    out
}

/// A link of `ip -j addr show` (or `ip -j link show`) output.
pub fn link_of(v: &Value) -> Link {
    Link {
        name: v["ifname"].as_str().unwrap_or_default().to_string(),
        ifindex: v["ifindex"].as_u64().unwrap_or(0) as u32,
        peer_ifindex: v["link_index"].as_u64().map(|i| i as u32),
        mac: v["address"].as_str().unwrap_or_default().to_string(),
        master: v["master"].as_str().map(str::to_string),
        addresses: v["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["family"] == "inet")
            .filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"].as_u64()?)))
            .collect(),
    }
}

/// The pod's end of its veth (the interface holding `pod_ip`, else `eth0`), the host end (the host link whose
/// ifindex is the pod end's peer and whose peer is the pod end), and the bridge the host end is a port of.
pub fn veth_of(pod_links: &Value, host_links: &Value, pod_ip: Option<&str>) -> (Option<Link>, Option<Link>, Option<Link>) {
    let pod: Vec<Link> = pod_links.as_array().into_iter().flatten().map(link_of).collect();
    let pod_end = pod
        .iter()
        .find(|l| pod_ip.is_some_and(|ip| l.addresses.iter().any(|a| a.split('/').next() == Some(ip))))
        .or_else(|| pod.iter().find(|l| l.name == "eth0"))
        .cloned();
    let host: Vec<Link> = host_links.as_array().into_iter().flatten().map(link_of).collect();
    let host_end = pod_end.as_ref().and_then(|p| {
        host.iter().find(|h| Some(h.ifindex) == p.peer_ifindex && h.peer_ifindex == Some(p.ifindex)).cloned()
    });
    let bridge = host_end.as_ref().and_then(|h| h.master.as_ref()).and_then(|m| host.iter().find(|l| &l.name == m)).cloned();
    (pod_end, host_end, bridge)
}

/// Routes of `ip -j route show`.
pub fn routes_of(v: &Value) -> Vec<Route> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|r| Route {
            dst: r["dst"].as_str().unwrap_or("default").to_string(),
            gateway: r["gateway"].as_str().map(str::to_string),
            dev: r["dev"].as_str().map(str::to_string),
            prefsrc: r["prefsrc"].as_str().map(str::to_string),
        })
        .collect()
}

/// Every chain a rule jumps or goes to, anywhere in its expressions (verdicts, vmaps).
fn targets(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if (k == "goto" || k == "jump") && x.get("target").is_some() {
                    if let Some(t) = x["target"].as_str() {
                        out.push(t.to_string());
                    }
                } else {
                    targets(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| targets(x, out)),
        _ => {}
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The rules of a proxy table (`nft -j list table ip <table>`, one shard) that lead to `pod_ip`: each chain with a rule
/// that DNATs to the pod, the chains that reach it, and the map elements (service IPs, NodePorts) that start
/// the way.
pub fn service_rules(nft: &Value, pod_ip: &str) -> Vec<EndpointRules> {
    let items = nft["nftables"].as_array().cloned().unwrap_or_default();
    // chain → chains its rules lead to; and the chains that DNAT to the pod
    let mut edges: Vec<(String, String)> = Vec::new();
    let mut endpoints: BTreeMap<String, (String, String)> = BTreeMap::new(); // chain → (endpoint, table)
    let mut elements: Vec<(String, String, String)> = Vec::new(); // (map, key, target chain)
    for it in &items {
        if let Some(rule) = it.get("rule") {
            let chain = rule["chain"].as_str().unwrap_or_default().to_string();
            let mut t = Vec::new();
            targets(&rule["expr"], &mut t);
            edges.extend(t.into_iter().map(|x| (chain.clone(), x)));
            for e in rule["expr"].as_array().into_iter().flatten() {
                if let Some(d) = e.get("dnat") {
                    if d["addr"].as_str() == Some(pod_ip) {
                        let port = d.get("port").map(scalar).map(|p| format!(":{p}")).unwrap_or_default();
                        let table = rule["table"].as_str().unwrap_or_default().to_string();
                        endpoints.insert(chain.clone(), (format!("{pod_ip}{port}"), table));
                    }
                }
            }
        }
        if let Some(map) = it.get("map") {
            let name = map["name"].as_str().unwrap_or_default().to_string();
            for el in map["elem"].as_array().into_iter().flatten() {
                let (Some(k), Some(v)) = (el.get(0), el.get(1)) else { continue };
                let parts: Vec<String> = k["concat"].as_array().map(|a| a.iter().map(scalar).collect()).unwrap_or_else(|| vec![scalar(k)]);
                let key = match parts.as_slice() {
                    [ip, proto, port] => format!("{ip}:{port}/{proto}"),
                    [proto, port] => format!("{port}/{proto}"),
                    _ => parts.join(" . "),
                };
                let mut t = Vec::new();
                targets(v, &mut t);
                elements.extend(t.into_iter().map(|c| (name.clone(), key.clone(), c)));
            }
        }
    }
    endpoints
        .into_iter()
        .map(|(ep_chain, (endpoint, table))| {
            // breadth-first back along the edges, nearest first
            let mut via: Vec<String> = Vec::new();
            let mut seen: BTreeSet<String> = BTreeSet::from([ep_chain.clone()]);
            let mut frontier = vec![ep_chain.clone()];
            while !frontier.is_empty() {
                let mut next = Vec::new();
                for (from, to) in &edges {
                    if frontier.contains(to) && seen.insert(from.clone()) {
                        next.push(from.clone());
                    }
                }
                via.extend(next.iter().cloned());
                frontier = next;
            }
            let mut service_ips = Vec::new();
            let mut node_ports = Vec::new();
            for (map, key, target) in &elements {
                if seen.contains(target) {
                    if map.contains("nodeport") {
                        node_ports.push(key.clone());
                    } else {
                        service_ips.push(key.clone());
                    }
                }
            }
            service_ips.sort();
            service_ips.dedup();
            node_ports.sort();
            node_ports.dedup();
            // ep-<ns>/<name>/<proto>/<port>__<ip>/<port>
            let key = ep_chain.trim_start_matches("ep-").split("__").next().unwrap_or_default();
            let mut k = key.splitn(3, '/');
            let (ns, name, port) = (k.next().unwrap_or_default(), k.next().unwrap_or_default(), k.next().unwrap_or_default());
            // the entry chains (nat hooks, `services`) lead everywhere: they are not this endpoint's way
            via.retain(|c| c.starts_with("svc-") || c.starts_with("local-") || c.starts_with("ext-"));
            EndpointRules {
                service: format!("{ns}/{name}"),
                port: port.to_string(),
                endpoint,
                table,
                endpoint_chain: ep_chain,
                via_chains: via,
                service_ips,
                node_ports,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MOUNTINFO: &str = "\
2301 2200 0:301 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/rkube/images/layers/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:/var/lib/rkube/images/layers/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb,upperdir=/var/lib/rkube/images/containers/u1-app-0/upper,workdir=/var/lib/rkube/images/containers/u1-app-0/work
2302 2301 0:302 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
2310 2301 8:1 /var/lib/rkube/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/scratch /data rw,relatime - ext4 /dev/sda1 rw
2311 2301 8:1 /srv/host\\040dir /host ro,relatime - ext4 /dev/sda1 rw
2312 2301 0:55 / /cache rw,relatime - tmpfs tmpfs rw,size=1024k
2313 2301 8:1 /var/lib/rkube/kubelet/pods/u1/hosts /etc/hosts rw,relatime - ext4 /dev/sda1 rw
2314 2301 8:1 /var/lib/rkube/kubelet/pods/u1/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/sda1 rw
2315 2301 8:1 /tmp/other /data rw,relatime - ext4 /dev/sda1 rw
";

    #[test]
    fn namespace_links_are_labelled_pod_host_or_own() {
        assert_eq!(ns_inode("net:[4026532300]"), Some(4026532300));
        assert_eq!(ns_inode("garbage"), None);
        let m = |v: &[(&str, u64)]| v.iter().map(|(k, i)| (k.to_string(), *i)).collect::<BTreeMap<_, _>>();
        let host = m(&[("net", 1), ("ipc", 2), ("uts", 3), ("pid", 4), ("mnt", 5), ("cgroup", 6), ("user", 7)]);
        let sandbox = m(&[("net", 11), ("ipc", 12), ("uts", 13), ("pid", 4), ("mnt", 15), ("cgroup", 6), ("user", 7)]);
        let container = m(&[("net", 11), ("ipc", 12), ("uts", 13), ("pid", 24), ("mnt", 25), ("cgroup", 26), ("user", 7)]);
        let got = label_namespaces(&container, Some(&sandbox), &host);
        let summary: Vec<(String, u64, Sharing)> = got.into_iter().map(|n| (n.kind, n.inode, n.shared)).collect();
        assert_eq!(
            summary,
            vec![
                ("net".into(), 11, Sharing::Pod),
                ("ipc".into(), 12, Sharing::Pod),
                ("uts".into(), 13, Sharing::Pod),
                ("pid".into(), 24, Sharing::Own),
                ("mnt".into(), 25, Sharing::Own),
                ("cgroup".into(), 26, Sharing::Own),
                ("user".into(), 7, Sharing::Host),
            ]
        );
    }

    #[test]
    fn mountinfo_gives_the_overlay_layers_and_each_volume_source() {
        let mi = parse_mountinfo(MOUNTINFO);
        assert_eq!(mi.len(), 8);
        assert_eq!(mi[3].root, "/srv/host dir", "octal escapes are undone");
        let root = rootfs_of(&mi).expect("root");
        assert_eq!(root.fs_type, "overlay");
        assert_eq!(root.lower_layers.len(), 2);
        assert_eq!(root.lower_layers[0].digest.as_deref(), Some(&*format!("sha256:{}", "a".repeat(64))));
        assert_eq!(root.lower_layers[1].dir, format!("/var/lib/rkube/images/layers/{}", "b".repeat(64)));
        assert_eq!(root.upper_dir.as_deref(), Some("/var/lib/rkube/images/containers/u1-app-0/upper"));
        assert_eq!(layer_digest("/x/empty"), None);

        let spec = json!({
            "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "host", "hostPath": {"path": "/srv/host dir"}},
                        {"name": "cache", "emptyDir": {"medium": "Memory"}}],
            "containers": [{"name": "app", "volumeMounts": [{"name": "scratch", "mountPath": "/data"},
                {"name": "host", "mountPath": "/host/", "readOnly": true}, {"name": "cache", "mountPath": "/cache"}]}]
        });
        let bundle = json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/data", "type": "bind", "source": "/var/lib/rkube/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/scratch"},
            {"destination": "/host", "type": "bind", "source": "/srv/host dir", "options": ["rbind", "ro"]},
            {"destination": "/cache", "type": "bind", "source": "/var/lib/rkube/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/cache"},
            {"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/rkube/kubelet/pods/u1/hosts"}
        ]);
        let got = container_mounts(&spec, "app", &bundle, &mi);
        let summary: Vec<(Option<&str>, &str, &str, Option<&str>, Option<bool>)> = got
            .iter()
            .map(|m| (m.volume.as_deref(), m.kind.as_str(), m.mount_path.as_str(), m.kernel.as_ref().map(|k| k.fs_type.as_str()), m.kernel.as_ref().map(|k| k.read_only)))
            .collect();
        assert_eq!(
            summary,
            vec![
                (Some("scratch"), "emptyDir", "/data", Some("ext4"), Some(false)),
                (Some("host"), "hostPath", "/host", Some("ext4"), Some(true)),
                (Some("cache"), "emptyDir(Memory)", "/cache", Some("tmpfs"), Some(false)),
                (None, "kubelet", "/etc/hosts", Some("ext4"), Some(false)),
            ]
        );
        // the last mount at a path is the one the container sees
        assert_eq!(got[0].kernel.as_ref().map(|k| k.root.as_str()), Some("/tmp/other"));
        assert_eq!(got[1].host_source, "/srv/host dir");
    }

    #[test]
    fn the_veth_pair_is_matched_by_peer_indexes_and_the_bridge_by_master() {
        let pod = json!([
            {"ifindex": 1, "ifname": "lo", "address": "00:00:00:00:00:00", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
            {"ifindex": 2, "ifname": "eth0", "link_index": 40, "link_netnsid": 0, "address": "0a:58:0a:f4:15:05",
             "addr_info": [{"family": "inet", "local": "10.244.21.5", "prefixlen": 24}, {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]}
        ]);
        let host = json!([
            {"ifindex": 39, "ifname": "vethother", "link_index": 2, "master": "rkb1", "address": "aa:aa:aa:aa:aa:01"},
            {"ifindex": 40, "ifname": "veth1234", "link_index": 2, "master": "rkb1", "address": "aa:aa:aa:aa:aa:02"},
            {"ifindex": 30, "ifname": "rkb1", "address": "bb:bb:bb:bb:bb:bb", "addr_info": [{"family": "inet", "local": "10.244.21.1", "prefixlen": 24}]}
        ]);
        let (p, h, b) = veth_of(&pod, &host, Some("10.244.21.5"));
        let p = p.expect("pod end");
        assert_eq!((p.name.as_str(), p.ifindex, p.peer_ifindex), ("eth0", 2, Some(40)));
        assert_eq!(p.addresses, vec!["10.244.21.5/24"]);
        let h = h.expect("host end");
        assert_eq!((h.name.as_str(), h.ifindex, h.master.as_deref()), ("veth1234", 40, Some("rkb1")));
        let b = b.expect("bridge");
        assert_eq!((b.name.as_str(), b.mac.as_str()), ("rkb1", "bb:bb:bb:bb:bb:bb"));
        // no pod interface: nothing is guessed
        let (p, h, b) = veth_of(&json!([]), &host, None);
        assert!(p.is_none() && h.is_none() && b.is_none());
        let routes = routes_of(&json!([{"dst": "default", "gateway": "10.244.21.1", "dev": "eth0"}, {"dst": "10.244.21.0/24", "dev": "eth0", "prefsrc": "10.244.21.5"}]));
        assert_eq!(routes[0], Route { dst: "default".into(), gateway: Some("10.244.21.1".into()), dev: Some("eth0".into()), prefsrc: None });
        assert_eq!(routes[1].prefsrc.as_deref(), Some("10.244.21.5"));
    }

    #[test]
    fn service_rules_follow_the_chains_back_from_the_dnat_to_the_pod() {
        // `nft -j list table` of a table laid out as the proxy lays out its own (captured from nft 1.0.6)
        let nft: Value = serde_json::from_str(include_str!("fixtures/nft-table.json")).expect("fixture");
        let got = service_rules(&nft, "10.244.21.5");
        assert_eq!(got.len(), 1, "{got:?}");
        let e = &got[0];
        assert_eq!(e.service, "default/web");
        assert_eq!(e.port, "tcp/80");
        assert_eq!(e.endpoint, "10.244.21.5:8080");
        assert_eq!(e.table, "rkube-proxy");
        assert_eq!(e.endpoint_chain, "ep-default/web/tcp/80__10.244.21.5/8080");
        assert_eq!(e.via_chains, vec!["svc-default/web/tcp/80", "ext-default/web/tcp/80"]);
        assert_eq!(e.service_ips, vec!["10.96.0.20:80/tcp", "192.168.50.1:80/tcp"]);
        assert_eq!(e.node_ports, vec!["30080/tcp"]);
        let other = service_rules(&nft, "10.244.21.7");
        assert_eq!(other[0].service_ips, vec!["10.96.0.53:53/tcp"]);
        assert!(other[0].node_ports.is_empty());
        assert!(service_rules(&nft, "10.244.21.99").is_empty(), "a pod no service selects has no rules");
        assert!(service_rules(&json!({}), "10.244.21.5").is_empty());
    }
}
