//! A UDP DNS server for the cluster domain. Queries for cluster names are answered from the current [`Zone`];
//! other names are relayed to an upstream resolver (the node's own, from /etc/resolv.conf) when one is set,
//! and refused otherwise. The zone is swapped whole on every change of Services or EndpointSlices.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

use super::zone::{Lookup, Qtype, Rec, Zone};
use crate::service_watch::{Consumer, ServiceState};

/// TTL of cluster answers: short, since pods come and go (kube-dns uses 30 s; CoreDNS's kubernetes plugin 5 s).
const TTL: u32 = 5;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("dns server on {addr}: {source}")]
    Socket {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// The server's shared state: cheap to clone, one zone for all clones.
#[derive(Clone)]
pub struct DnsServer {
    zone: Arc<RwLock<Arc<Zone>>>,
    upstream: Option<SocketAddr>,
}

impl DnsServer {
    /// `domain` is the cluster domain (`cluster.local`); `upstream` receives every other name.
    pub fn new(domain: &str, upstream: Option<SocketAddr>) -> DnsServer {
        DnsServer { zone: Arc::new(RwLock::new(Arc::new(Zone::build(domain, &[], &[])))), upstream }
    }

    fn zone(&self) -> Arc<Zone> {
        self.zone.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_zone(&self, zone: Zone) {
        *self.zone.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(zone);
    }

    /// A consumer for the shared service watch that rebuilds the zone on every change.
    pub fn consumer(&self) -> Consumer {
        let server = self.clone();
        Box::new(move |state: &ServiceState| {
            let zone = Zone::build(server.zone().domain(), &state.services, &state.slices);
            server.set_zone(zone);
        })
    }

    /// The answer to one query message from the zone, or None if it is not ours (relay it) or not a query.
    pub fn answer(&self, request: &Message) -> Option<Message> {
        if request.metadata.message_type != MessageType::Query || request.metadata.op_code != OpCode::Query {
            let mut resp = Message::error_msg(request.metadata.id, request.metadata.op_code, ResponseCode::NotImp);
            resp.queries = request.queries.clone();
            return Some(resp);
        }
        let query = request.queries.first()?;
        let qtype = match query.query_type() {
            RecordType::A => Qtype::A,
            RecordType::SRV => Qtype::Srv,
            _ => Qtype::Other,
        };
        let zone = self.zone();
        let mut resp = Message::response(request.metadata.id, OpCode::Query);
        resp.metadata.authoritative = true;
        resp.metadata.recursion_desired = request.metadata.recursion_desired;
        resp.metadata.recursion_available = self.upstream.is_some();
        resp.queries = vec![query.clone()];
        match zone.lookup(&query.name().to_ascii(), qtype) {
            Lookup::NotOurs => return None,
            Lookup::NxDomain => resp.metadata.response_code = ResponseCode::NXDomain,
            Lookup::Found(recs) => {
                for rec in recs {
                    let rdata = match rec {
                        Rec::A(ip) => RData::A(A(ip)),
                        Rec::Srv { port, target } => match Name::from_ascii(format!("{target}.")) {
                            Ok(t) => RData::SRV(SRV::new(0, 100, port, t)),
                            Err(_) => continue,
                        },
                    };
                    resp.answers.push(Record::from_rdata(query.name().clone(), TTL, rdata));
                }
            }
        }
        Some(resp)
    }

    async fn relay(&self, packet: &[u8], id: u16, op: OpCode, request: &Message) -> Vec<u8> {
        let refuse = |code| {
            let mut m = Message::error_msg(id, op, code);
            m.queries = request.queries.clone();
            m.to_vec().unwrap_or_default()
        };
        let Some(upstream) = self.upstream else { return refuse(ResponseCode::Refused) };
        let bind: SocketAddr = if upstream.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal addr");
        let Ok(sock) = UdpSocket::bind(bind).await else { return refuse(ResponseCode::ServFail) };
        if sock.send_to(packet, upstream).await.is_err() {
            return refuse(ResponseCode::ServFail);
        }
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(UPSTREAM_TIMEOUT, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) if from == upstream => buf[..n].to_vec(),
            _ => refuse(ResponseCode::ServFail),
        }
    }

    /// Serves queries on `socket` until it fails.
    pub async fn serve(&self, socket: UdpSocket) -> Result<(), DnsError> {
        let socket = Arc::new(socket);
        let addr = socket.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(addr = %addr, domain = %self.zone().domain(), "cluster dns serving");
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, peer) = socket
                .recv_from(&mut buf)
                .await
                .map_err(|source| DnsError::Socket { addr: addr.clone(), source })?;
            let packet = buf[..n].to_vec();
            let Ok(request) = Message::from_vec(&packet) else {
                continue; // not DNS: drop, as resolvers do
            };
            let server = self.clone();
            let socket = socket.clone();
            tokio::spawn(async move {
                let reply = match server.answer(&request) {
                    Some(resp) => resp.to_vec().unwrap_or_default(),
                    None => server.relay(&packet, request.metadata.id, request.metadata.op_code, &request).await,
                };
                let _ = socket.send_to(&reply, peer).await;
            });
        }
    }
}

impl DnsServer {
    /// Serves DNS over TCP on `listener` (two-byte length, then the message; RFC 1035 4.2.2) until it fails.
    /// Resolvers fall back to TCP for truncated answers, and the kube-dns Service advertises 53/TCP.
    pub async fn serve_tcp(&self, listener: tokio::net::TcpListener) -> Result<(), DnsError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        loop {
            let (mut conn, _) = listener.accept().await.map_err(|source| DnsError::Socket { addr: addr.clone(), source })?;
            let server = self.clone();
            tokio::spawn(async move {
                // one connection may carry several queries; an idle one is closed after a while
                loop {
                    let mut len = [0u8; 2];
                    match tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut len)).await {
                        Ok(Ok(_)) => {}
                        _ => return,
                    }
                    let mut packet = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if conn.read_exact(&mut packet).await.is_err() {
                        return;
                    }
                    let Ok(request) = Message::from_vec(&packet) else { return };
                    let reply = match server.answer(&request) {
                        Some(resp) => resp.to_vec().unwrap_or_default(),
                        None => server.relay(&packet, request.metadata.id, request.metadata.op_code, &request).await,
                    };
                    let Ok(n) = u16::try_from(reply.len()) else { return };
                    if conn.write_all(&n.to_be_bytes()).await.is_err() || conn.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    }
}

/// The first nameserver of a resolv.conf that is not `own` (to never relay to ourselves).
pub fn upstream_from_resolv_conf(text: &str, own: Option<IpAddr>) -> Option<SocketAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
        .find(|ip| Some(*ip) != own)
        .map(|ip| SocketAddr::new(ip, 53))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_skips_our_own_address() {
        let conf = "# x\nsearch a\nnameserver 10.96.0.10\nnameserver 127.0.0.53\n";
        assert_eq!(upstream_from_resolv_conf(conf, Some("10.96.0.10".parse().unwrap())), Some("127.0.0.53:53".parse().unwrap()));
        assert_eq!(upstream_from_resolv_conf("search a\n", None), None);
    }
}
