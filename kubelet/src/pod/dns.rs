//! The per-pod /etc/hosts, /etc/hostname and /etc/resolv.conf, written into the pod directory and bind-mounted
//! into each container. With cluster DNS configured, resolv.conf points at it with the cluster search path;
//! otherwise (and for dnsPolicy Default) the node's resolv.conf is used.

use k8s_openapi::api::core::v1::Pod;

/// /etc/hosts: localhost entries, the pod's own name on its IP, and hostAliases.
pub fn hosts_file(pod: &Pod, pod_ip: Option<&str>) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let name = hostname(pod);
    let spec = pod.spec.as_ref();
    if let Some(ip) = pod_ip {
        let fqdn = match spec.and_then(|s| s.subdomain.as_deref()) {
            Some(sub) if !sub.is_empty() => {
                let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                format!("\t{name}.{sub}.{ns}.svc.cluster.local")
            }
            _ => String::new(),
        };
        s.push_str(&format!("{ip}\t{name}{fqdn}\n"));
    }
    for alias in spec.and_then(|s| s.host_aliases.as_deref()).unwrap_or(&[]) {
        let names = alias.hostnames.clone().unwrap_or_default().join("\t");
        s.push_str(&format!("\n# Entries added by HostAliases.\n{}\t{names}\n", alias.ip));
    }
    s
}

/// The pod's hostname: spec.hostname, else the pod name (truncated to 63 characters).
pub fn hostname(pod: &Pod) -> String {
    let h = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    h.chars().take(63).collect::<String>().trim_end_matches(['-', '.']).to_string()
}

/// resolv.conf for the pod. `node_resolv` is the node's own file content.
pub fn resolv_conf(pod: &Pod, cluster_dns: Option<&str>, cluster_domain: &str, node_resolv: &str) -> String {
    let spec = pod.spec.as_ref();
    let policy = spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst");
    let host_net = spec.and_then(|s| s.host_network).unwrap_or(false);
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let cluster = match (policy, cluster_dns) {
        ("ClusterFirst", Some(dns)) if !host_net => Some(dns),
        ("ClusterFirstWithHostNet", Some(dns)) => Some(dns),
        _ => None,
    };
    let mut servers: Vec<String> = Vec::new();
    let mut searches: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    match cluster {
        Some(dns) => {
            servers.push(dns.into());
            searches.extend([format!("{ns}.svc.{cluster_domain}"), format!("svc.{cluster_domain}"), cluster_domain.to_string()]);
            options.push("ndots:5".into());
        }
        None if policy != "None" => {
            for l in node_resolv.lines() {
                let mut f = l.split_whitespace();
                match f.next() {
                    Some("nameserver") => servers.extend(f.next().map(str::to_string)),
                    Some("search") | Some("domain") => searches.extend(f.map(str::to_string)),
                    Some("options") => options.extend(f.map(str::to_string)),
                    _ => {}
                }
            }
        }
        None => {}
    }
    if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
        servers.extend(cfg.nameservers.clone().unwrap_or_default());
        searches.extend(cfg.searches.clone().unwrap_or_default());
        for o in cfg.options.clone().unwrap_or_default() {
            options.push(match o.value {
                Some(v) => format!("{}:{v}", o.name.unwrap_or_default()),
                None => o.name.unwrap_or_default(),
            });
        }
    }
    let mut s = String::new();
    if !searches.is_empty() {
        s.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for sv in servers.iter().take(3) {
        s.push_str(&format!("nameserver {sv}\n"));
    }
    if !options.is_empty() {
        s.push_str(&format!("options {}\n", options.join(" ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::HostAlias;

    #[test]
    fn hosts_and_hostname() {
        let mut p = crate::pod::lifecycle::tests::pod("Always", &[], &["a"]);
        p.metadata.name = Some("web-0".into());
        p.spec.as_mut().expect("spec").host_aliases =
            Some(vec![HostAlias { ip: "10.1.1.1".into(), hostnames: Some(vec!["foo".into(), "bar".into()]) }]);
        let h = hosts_file(&p, Some("10.244.0.5"));
        assert!(h.contains("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("10.244.0.5\tweb-0\n"));
        assert!(h.contains("10.1.1.1\tfoo\tbar\n"));
        assert_eq!(hostname(&p), "web-0");
        p.spec.as_mut().expect("spec").hostname = Some("custom".into());
        assert_eq!(hostname(&p), "custom");
    }

    #[test]
    fn resolv_policies() {
        let node = "nameserver 192.168.1.1\nsearch lan\noptions edns0\n";
        let p = crate::pod::lifecycle::tests::pod("Always", &[], &["a"]);
        let r = resolv_conf(&p, Some("10.96.0.10"), "cluster.local", node);
        assert_eq!(r, "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n");
        let r = resolv_conf(&p, None, "cluster.local", node);
        assert_eq!(r, "search lan\nnameserver 192.168.1.1\noptions edns0\n");
        let mut hp = p.clone();
        hp.spec.as_mut().expect("spec").host_network = Some(true);
        assert!(resolv_conf(&hp, Some("10.96.0.10"), "cluster.local", node).contains("192.168.1.1"));
        let mut d = p.clone();
        d.spec.as_mut().expect("spec").dns_policy = Some("Default".into());
        assert!(!resolv_conf(&d, Some("10.96.0.10"), "cluster.local", node).contains("10.96.0.10"));
    }
}
