//! `healthCheckNodePort`: for a LoadBalancer Service with `externalTrafficPolicy: Local`, an HTTP server on that
//! port of the node that answers what upstream kube-proxy answers (pkg/proxy/healthcheck/service_health.go):
//! 200 when this node has endpoints of the Service, else 503, a JSON body with `localEndpoints`, and the
//! `X-Load-Balancing-Endpoint-Weight` header. A load balancer polls it to send traffic only to nodes that
//! have endpoints. Any path answers, as upstream's does.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::model::ServicePort;

/// One health check: which Service, how many local endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// Ready endpoints on this node (0: the check answers 503).
    pub local_endpoints: usize,
}

/// healthCheckNodePort → its check, for every service port that has one. Local endpoints are counted once per
/// address across the Service's ports.
pub fn wanted<'a>(ports: impl IntoIterator<Item = &'a ServicePort>) -> BTreeMap<u16, Check> {
    let mut ips: BTreeMap<u16, (Check, std::collections::BTreeSet<Ipv4Addr>)> = BTreeMap::new();
    for p in ports {
        let Some(hc) = p.health_check_node_port else { continue };
        let entry = ips.entry(hc).or_insert_with(|| {
            (Check { namespace: p.namespace.clone(), name: p.service.clone(), local_endpoints: 0 }, Default::default())
        });
        entry.1.extend(p.local_endpoints.iter().map(|e| e.ip));
    }
    ips.into_iter().map(|(port, (mut c, set))| {
        c.local_endpoints = set.len();
        (port, c)
    }).collect()
}

/// The HTTP response upstream's handler writes, whole.
pub fn response(c: &Check) -> String {
    let body = format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": {:?},\n\t\t\"name\": {:?}\n\t}},\n\t\"localEndpoints\": {},\n\t\"serviceProxyHealthy\": true\n}}",
        c.namespace, c.name, c.local_endpoints
    );
    let status = if c.local_endpoints > 0 { "200 OK" } else { "503 Service Unavailable" };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nX-Load-Balancing-Endpoint-Weight: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        c.local_endpoints,
        body.len()
    )
}

/// Why a health check is not served.
#[derive(Debug, thiserror::Error)]
pub enum HealthCheckError {
    /// Its healthCheckNodePort could not be bound.
    #[error("health check for service {namespace}/{name}: listen on {addr}: {source} (is another process bound to that healthCheckNodePort?)")]
    Bind {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        name: String,
        /// The address it was to listen on.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
}

/// The health check servers this node runs, started and stopped to follow [`wanted`].
#[derive(Default)]
pub struct HealthServers {
    servers: BTreeMap<u16, (Arc<Mutex<Check>>, tokio::task::JoinHandle<()>)>,
}

impl std::fmt::Debug for HealthServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.servers.keys()).finish()
    }
}

impl HealthServers {
    /// Starts the missing servers, updates the counts of the others, stops the ones no longer wanted. Needs a
    /// tokio runtime (the service watch's). A port that cannot be bound is reported and retried next time.
    pub fn update(&mut self, wanted: BTreeMap<u16, Check>) -> Vec<HealthCheckError> {
        self.servers.retain(|port, (_, task)| {
            let keep = wanted.contains_key(port);
            if !keep {
                task.abort();
            }
            keep
        });
        let mut errors = Vec::new();
        for (port, check) in wanted {
            if let Some((shared, _)) = self.servers.get(&port) {
                *shared.lock().unwrap_or_else(|e| e.into_inner()) = check;
                continue;
            }
            let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
            let bind = || -> std::io::Result<tokio::net::TcpListener> {
                let l = std::net::TcpListener::bind(addr)?;
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l)
            };
            let listener = match bind() {
                Ok(l) => l,
                Err(source) => {
                    errors.push(HealthCheckError::Bind { namespace: check.namespace, name: check.name, addr, source });
                    continue;
                }
            };
            tracing::info!(service = %format!("{}/{}", check.namespace, check.name), port, "health check node port serving");
            let shared = Arc::new(Mutex::new(check));
            let task = tokio::spawn(serve(listener, shared.clone()));
            self.servers.insert(port, (shared, task));
        }
        errors
    }
}

impl Drop for HealthServers {
    fn drop(&mut self) {
        for (_, task) in self.servers.values() {
            task.abort();
        }
    }
}

async fn serve(listener: tokio::net::TcpListener, check: Arc<Mutex<Check>>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else { continue };
        let check = check.clone();
        tokio::spawn(async move {
            // read the request head (bounded); any method and path get the answer
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            while n < buf.len() {
                match tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf[n..])).await {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(k)) => n += k,
                }
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let text = response(&check.lock().unwrap_or_else(|e| e.into_inner()).clone());
            let _ = conn.write_all(text.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_proxy::model::{Endpoint, Protocol};

    #[test]
    fn counts_local_endpoints_once_per_address_and_answers_as_upstream() {
        let ep = |ip: &str, port| Endpoint { ip: ip.parse().unwrap(), port };
        let mut a = ServicePort::new("ns1", "web", "http", Protocol::Tcp, Ipv4Addr::new(10, 96, 0, 5), 80);
        a.health_check_node_port = Some(32000);
        a.local_endpoints = vec![ep("10.244.1.2", 8080), ep("10.244.1.3", 8080)];
        let mut b = a.clone();
        b.port_name = "https".into();
        b.local_endpoints = vec![ep("10.244.1.2", 8443)];
        let plain = ServicePort::new("ns1", "other", "", Protocol::Tcp, Ipv4Addr::new(10, 96, 0, 6), 80);
        let w = wanted(&[a, b, plain]);
        assert_eq!(w.len(), 1);
        let c = &w[&32000];
        assert_eq!((c.namespace.as_str(), c.name.as_str(), c.local_endpoints), ("ns1", "web", 2));
        let r = response(c);
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && r.contains("X-Load-Balancing-Endpoint-Weight: 2\r\n"), "{r}");
        let body = r.split("\r\n\r\n").nth(1).expect("body");
        let v: serde_json::Value = serde_json::from_str(body).expect("json body");
        assert_eq!(v["localEndpoints"], 2);
        assert_eq!(v["service"]["namespace"], "ns1");
        assert_eq!(v["serviceProxyHealthy"], true);
        let none = Check { local_endpoints: 0, ..c.clone() };
        assert!(response(&none).starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    }
}
