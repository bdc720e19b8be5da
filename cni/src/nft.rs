//! ipMasq: one nftables table per network (`inet rkube_masq_<network>`) with a `postrouting` nat chain that
//! masquerades traffic from the pod subnets to destinations outside them (and not multicast).
//!
//! The table is made by the first attachment that asks for it and removed when the last one goes: each attachment
//! leaves a file under `<stateDir>/<network>/masq/`, changed under an exclusive `flock`.
//!
//! The table is written with nf_tables netlink messages in one atomic batch, in-process: no `nft` process is
//! started, which keeps ADD fast.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use fs2::FileExt;
use ipnet::IpNet;
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

#[derive(Debug, thiserror::Error)]
pub(crate) enum NftError {
    #[error("nftables table inet {table}: {op}: {source}")]
    Netlink {
        table: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("masquerade state {path}: {op}: {source}")]
    State {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("nftables table inet {table} is missing (ipMasq is on): run ADD again to restore it")]
    Missing { table: String },
}

/// The masquerade table of one network.
pub(crate) struct Masquerade {
    table: String,
    dir: PathBuf,
}

/// The table name for a network: nft identifiers take letters, digits and `_`.
pub fn table_name(network: &str) -> String {
    let clean: String = network.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("rkube_masq_{clean}")
}

impl Masquerade {
    pub(crate) fn new(network: &str, state_dir: &Path) -> Masquerade {
        Masquerade { table: table_name(network), dir: state_dir.join(network) }
    }

    fn state_err<'a>(&self, path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> NftError + 'a {
        move |source| NftError::State { path: path.to_path_buf(), op, source }
    }

    fn lock(&self) -> Result<fs::File, NftError> {
        let users = self.dir.join("masq");
        fs::create_dir_all(&users).map_err(self.state_err(&users, "create directory"))?;
        let path = self.dir.join("masq.lock");
        let f = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(self.state_err(&path, "open lock"))?;
        f.lock_exclusive().map_err(self.state_err(&path, "take lock"))?;
        Ok(f)
    }

    fn user_file(&self, container_id: &str, ifname: &str) -> PathBuf {
        self.dir.join("masq").join(format!("{container_id}@{ifname}"))
    }

    /// Union of the subnets every current user asked for.
    fn wanted(&self) -> Result<BTreeSet<IpNet>, NftError> {
        let users = self.dir.join("masq");
        let mut out = BTreeSet::new();
        let entries = match fs::read_dir(&users) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(self.state_err(&users, "list users")(e)),
        };
        for entry in entries.flatten() {
            let text = fs::read_to_string(entry.path()).unwrap_or_default();
            out.extend(text.lines().filter_map(|l| l.trim().parse::<IpNet>().ok()));
        }
        Ok(out)
    }

    fn installed(&self) -> BTreeSet<IpNet> {
        fs::read_to_string(self.dir.join("masq.subnets"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn record_installed(&self, subnets: &BTreeSet<IpNet>) -> Result<(), NftError> {
        let path = self.dir.join("masq.subnets");
        let text: String = subnets.iter().map(|s| format!("{s}\n")).collect();
        fs::write(&path, text).map_err(self.state_err(&path, "write"))
    }

    /// Registers the attachment and makes sure the table masquerades `subnets`.
    pub(crate) fn acquire(&self, container_id: &str, ifname: &str, subnets: &[IpNet]) -> Result<(), NftError> {
        let _lock = self.lock()?;
        let path = self.user_file(container_id, ifname);
        let text: String = subnets.iter().map(|s| format!("{}\n", s.trunc())).collect();
        fs::write(&path, text).map_err(self.state_err(&path, "write user"))?;
        let wanted = self.wanted()?;
        let mut nf = Nfnl::open(&self.table)?;
        if wanted != self.installed() || !nf.table_exists()? {
            nf.replace_table(&wanted)?;
            self.record_installed(&wanted)?;
        }
        Ok(())
    }

    /// Unregisters the attachment; the last one out deletes the table. Releasing twice is not an error.
    pub(crate) fn release(&self, container_id: &str, ifname: &str) -> Result<(), NftError> {
        if !self.dir.join("masq").exists() {
            return Ok(());
        }
        let _lock = self.lock()?;
        let path = self.user_file(container_id, ifname);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.state_err(&path, "remove user")(e)),
        }
        let wanted = self.wanted()?;
        let mut nf = Nfnl::open(&self.table)?;
        if wanted.is_empty() {
            nf.delete_table()?;
            let subnets = self.dir.join("masq.subnets");
            let _ = fs::remove_file(&subnets);
        } else if wanted != self.installed() {
            nf.replace_table(&wanted)?;
            self.record_installed(&wanted)?;
        }
        Ok(())
    }

    /// GC: forgets users not in `valid` (container id, ifname); deletes the table if none is left.
    pub(crate) fn retain(&self, valid: &std::collections::HashSet<(String, String)>) -> Result<(), NftError> {
        let users = self.dir.join("masq");
        let Ok(entries) = fs::read_dir(&users) else { return Ok(()) };
        let stale: Vec<(String, String)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let (id, ifname) = name.split_once('@')?;
                Some((id.to_string(), ifname.to_string()))
            })
            .filter(|k| !valid.contains(k))
            .collect();
        for (id, ifname) in stale {
            self.release(&id, &ifname)?;
        }
        Ok(())
    }

    /// CHECK: the table exists.
    pub(crate) fn check(&self) -> Result<(), NftError> {
        if Nfnl::open(&self.table)?.table_exists()? {
            Ok(())
        } else {
            Err(NftError::Missing { table: self.table.clone() })
        }
    }
}

// nf_tables netlink constants (linux/netfilter/nfnetlink.h, nf_tables.h).
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
const NF_INET_POST_ROUTING: u32 = 4;
const NF_IP_PRI_NAT_SRC: i32 = 100;
const NFT_REG_1: u32 = 1;
const NFT_META_NFPROTO: u32 = 15;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const CHAIN: &str = "postrouting";

/// Netlink attributes, appended to a byte buffer.
struct Attrs(Vec<u8>);

impl Attrs {
    fn new() -> Attrs {
        Attrs(Vec::new())
    }
    fn raw(&mut self, kind: u16, data: &[u8]) -> &mut Self {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(data);
        while self.0.len() % 4 != 0 {
            self.0.push(0);
        }
        self
    }
    fn str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        self.raw(kind, &d)
    }
    fn be32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.raw(kind, &v.to_be_bytes())
    }
    fn nest(&mut self, kind: u16, inner: Attrs) -> &mut Self {
        self.raw(kind | NLA_F_NESTED, &inner.0)
    }
}

fn data_value(bytes: &[u8]) -> Attrs {
    let mut a = Attrs::new();
    a.raw(1, bytes); // NFTA_DATA_VALUE
    a
}

fn expr(name: &str, data: Option<Attrs>) -> Attrs {
    let mut e = Attrs::new();
    e.str(1, name); // NFTA_EXPR_NAME
    if let Some(d) = data {
        e.nest(2, d); // NFTA_EXPR_DATA
    }
    e
}

fn meta_nfproto() -> Attrs {
    let mut d = Attrs::new();
    d.be32(1, NFT_REG_1).be32(2, NFT_META_NFPROTO); // DREG, KEY
    expr("meta", Some(d))
}

fn payload(offset: u32, len: u32) -> Attrs {
    let mut d = Attrs::new();
    d.be32(1, NFT_REG_1).be32(2, NFT_PAYLOAD_NETWORK_HEADER).be32(3, offset).be32(4, len);
    expr("payload", Some(d))
}

fn bitwise(mask: &[u8]) -> Attrs {
    let mut d = Attrs::new();
    d.be32(1, NFT_REG_1).be32(2, NFT_REG_1).be32(3, mask.len() as u32);
    d.nest(4, data_value(mask)).nest(5, data_value(&vec![0u8; mask.len()]));
    expr("bitwise", Some(d))
}

fn cmp(op: u32, value: &[u8]) -> Attrs {
    let mut d = Attrs::new();
    d.be32(1, NFT_REG_1).be32(2, op).nest(3, data_value(value));
    expr("cmp", Some(d))
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Expressions matching "address at `offset` is (or is not) inside `net`".
fn match_net(exprs: &mut Vec<Attrs>, offset: u32, net: IpNet, op: u32) {
    let len = if net.addr().is_ipv4() { 4 } else { 16 };
    exprs.push(payload(offset, len));
    exprs.push(bitwise(&ip_bytes(net.netmask())));
    exprs.push(cmp(op, &ip_bytes(net.network())));
}

/// `meta nfproto <family> <family> saddr <net> <family> daddr != <net> <family> daddr != <multicast> masquerade`.
fn masq_rule(net: IpNet) -> Attrs {
    let v4 = net.addr().is_ipv4();
    let (proto, saddr, daddr, mcast): (u8, u32, u32, IpNet) = if v4 {
        (NFPROTO_IPV4, 12, 16, "224.0.0.0/4".parse().unwrap_or_default())
    } else {
        (NFPROTO_IPV6, 8, 24, "ff00::/8".parse().unwrap_or_default())
    };
    let mut exprs = vec![meta_nfproto(), cmp(NFT_CMP_EQ, &[proto])];
    match_net(&mut exprs, saddr, net, NFT_CMP_EQ);
    match_net(&mut exprs, daddr, net, NFT_CMP_NEQ);
    match_net(&mut exprs, daddr, mcast, NFT_CMP_NEQ);
    exprs.push(expr("masq", None));
    let mut list = Attrs::new();
    for e in exprs {
        list.nest(1, e); // NFTA_LIST_ELEM
    }
    list
}

/// A NETLINK_NETFILTER socket working on one table.
struct Nfnl {
    sock: Socket,
    table: String,
    seq: u32,
}

impl Nfnl {
    fn open(table: &str) -> Result<Nfnl, NftError> {
        let err = |source| NftError::Netlink { table: table.to_string(), op: "open netfilter netlink socket", source };
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(err)?;
        sock.bind_auto().map_err(err)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(err)?;
        Ok(Nfnl { sock, table: table.to_string(), seq: 0 })
    }

    fn err(&self, op: &'static str) -> impl FnOnce(io::Error) -> NftError + '_ {
        move |source| NftError::Netlink { table: self.table.clone(), op, source }
    }

    /// Appends one message (header, nfgenmsg, attributes) to `buf`; returns its sequence number.
    fn push(&mut self, buf: &mut Vec<u8>, kind: u16, flags: u16, family: u8, attrs: &Attrs) -> u32 {
        self.seq += 1;
        let len = 16 + 4 + attrs.0.len();
        buf.extend_from_slice(&(len as u32).to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&self.seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        let res_id = if kind == NFNL_MSG_BATCH_BEGIN || kind == NFNL_MSG_BATCH_END { NFNL_SUBSYS_NFTABLES } else { 0 };
        buf.extend_from_slice(&[family, 0]);
        buf.extend_from_slice(&res_id.to_be_bytes());
        buf.extend_from_slice(&attrs.0);
        self.seq
    }

    fn table_attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        a.str(1, &self.table); // NFTA_TABLE_NAME
        a
    }

    /// Sends `buf` and reads replies until every sequence in `acks` was answered. Errors named by `errno` in
    /// `tolerate` count as success.
    fn exchange(&mut self, buf: &[u8], acks: &[u32], tolerate: &[i32], op: &'static str) -> Result<bool, NftError> {
        self.sock.send(buf, 0).map_err(self.err(op))?;
        let mut pending: BTreeSet<u32> = acks.iter().copied().collect();
        let mut tolerated = false;
        let mut rbuf = vec![0u8; 64 * 1024];
        while !pending.is_empty() {
            let n = self.sock.recv(&mut &mut rbuf[..], 0).map_err(self.err(op))?;
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes([rbuf[off], rbuf[off + 1], rbuf[off + 2], rbuf[off + 3]]) as usize;
                let kind = u16::from_ne_bytes([rbuf[off + 4], rbuf[off + 5]]);
                let seq = u32::from_ne_bytes([rbuf[off + 8], rbuf[off + 9], rbuf[off + 10], rbuf[off + 11]]);
                if len < 16 {
                    break;
                }
                if kind == NLMSG_ERROR && off + 20 <= n {
                    let code = i32::from_ne_bytes([rbuf[off + 16], rbuf[off + 17], rbuf[off + 18], rbuf[off + 19]]);
                    pending.remove(&seq);
                    if code != 0 {
                        if tolerate.contains(&-code) {
                            tolerated = true;
                        } else {
                            return Err(self.err(op)(io::Error::from_raw_os_error(-code)));
                        }
                    }
                } else if kind == NLMSG_DONE {
                    pending.remove(&seq);
                }
                off += (len + 3) & !3;
            }
        }
        Ok(tolerated)
    }

    fn table_exists(&mut self) -> Result<bool, NftError> {
        let mut buf = Vec::new();
        let attrs = self.table_attrs();
        let seq = self.push(&mut buf, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, NLM_F_REQUEST | NLM_F_ACK, NFPROTO_INET, &attrs);
        let missing = self.exchange(&buf, &[seq], &[libc::ENOENT], "look up table")?;
        Ok(!missing)
    }

    /// One atomic batch: add table (so the delete cannot fail), delete it, add it again with chain and rules.
    fn replace_table(&mut self, subnets: &BTreeSet<IpNet>) -> Result<(), NftError> {
        let mut buf = Vec::new();
        let mut acks = Vec::new();
        let t = self.table_attrs();
        let sub = NFNL_SUBSYS_NFTABLES << 8;
        let flags = NLM_F_REQUEST | NLM_F_ACK;
        self.push(&mut buf, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, &Attrs::new());
        acks.push(self.push(&mut buf, sub | NFT_MSG_NEWTABLE, flags | NLM_F_CREATE, NFPROTO_INET, &t));
        acks.push(self.push(&mut buf, sub | NFT_MSG_DELTABLE, flags, NFPROTO_INET, &t));
        acks.push(self.push(&mut buf, sub | NFT_MSG_NEWTABLE, flags | NLM_F_CREATE, NFPROTO_INET, &t));
        let mut hook = Attrs::new();
        hook.be32(1, NF_INET_POST_ROUTING).be32(2, NF_IP_PRI_NAT_SRC as u32);
        let mut chain = Attrs::new();
        chain.str(1, &self.table).str(3, CHAIN).nest(4, hook).str(7, "nat");
        acks.push(self.push(&mut buf, sub | NFT_MSG_NEWCHAIN, flags | NLM_F_CREATE, NFPROTO_INET, &chain));
        for net in subnets {
            let mut rule = Attrs::new();
            rule.str(1, &self.table).str(2, CHAIN).nest(4, masq_rule(*net));
            acks.push(self.push(&mut buf, sub | NFT_MSG_NEWRULE, flags | NLM_F_CREATE | 0x800, NFPROTO_INET, &rule));
        }
        self.push(&mut buf, NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, &Attrs::new());
        self.exchange(&buf, &acks, &[], "replace table").map(|_| ())
    }

    /// Deletes the table; a table already gone is not an error.
    fn delete_table(&mut self) -> Result<(), NftError> {
        let mut buf = Vec::new();
        let t = self.table_attrs();
        self.push(&mut buf, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, &Attrs::new());
        let seq = self.push(&mut buf, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELTABLE, NLM_F_REQUEST | NLM_F_ACK, NFPROTO_INET, &t);
        self.push(&mut buf, NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, &Attrs::new());
        self.exchange(&buf, &[seq], &[libc::ENOENT], "delete table").map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_nft_identifiers() {
        assert_eq!(table_name("pods-1.net"), "rkube_masq_pods_1_net");
    }

    #[test]
    fn attributes_are_padded_to_four_bytes() {
        let mut a = Attrs::new();
        a.str(1, "ab");
        assert_eq!(a.0.len(), 8);
        assert_eq!(&a.0[..4], &[7, 0, 1, 0]);
        let mut n = Attrs::new();
        n.nest(4, a);
        assert_eq!(u16::from_ne_bytes([n.0[2], n.0[3]]), 4 | NLA_F_NESTED);
    }
}
