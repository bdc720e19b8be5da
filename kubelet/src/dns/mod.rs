//! Cluster DNS, as Kubernetes defines it and CoreDNS's kubernetes plugin answers it, served by the node itself:
//! `<service>.<namespace>.svc.cluster.local` resolves to the ClusterIP (or to the ready endpoint addresses of a
//! headless Service, or to a CNAME for an ExternalName Service), `_<port>._<proto>.<service>...` to SRV records,
//! `<hostname>.<service>.<namespace>.svc...` to a StatefulSet pod, `a-b-c-d.<ns>.pod...` to the pod IP a.b.c.d,
//! and ClusterIPs and named endpoints have PTR records. Names outside the cluster domain are forwarded to the
//! node's own resolver. `docs/services.md` lists every answer with the dig command that shows it.
//!
//! - `zone`: the answers for a set of Namespaces, Services and EndpointSlices (pure, unit-tested).
//! - `server`: a DNS server (UDP and TCP) over hickory-proto's message codec, answering from the current zone:
//!   EDNS, truncation to the client's size, the upstream half of ExternalName answers, relaying.
//! - `local_address`: the node-local home of the cluster DNS address (a bridge of its own holding it as /32),
//!   so pods reach the server on every node without a DNS pod.
//!
//! Try it on a node: `nslookup kubernetes.default.svc.cluster.local <dns address>` from a pod, or
//! `kubectl exec <pod> -- cat /etc/resolv.conf` to see the search path the kubelet gave the pod.

pub mod local_address;
pub mod server;
pub mod zone;

pub use server::{DnsError, DnsServer, Transport};
pub use zone::Zone;
