//! The partial-sync writer: a sync's [`Op`]s sent to the kernel as one nftables netlink batch (NFNL
//! `BATCH_BEGIN` … `BATCH_END`, committed or aborted as a whole, like `nft -f`), without the nft binary.
//!
//! Why not `nft -f` for these: before it sends anything, nft fills its cache by dumping the table (tables, every
//! chain, the sets), whatever the script holds. At 5,000 Services × 10 endpoints (55,000 chains) that dump alone
//! takes 0.3-0.5 s for a one-element script (measured with `nft -f` in a netns on this machine: `add element`
//! 0.32-0.42 s, `add rule` 0.28-0.48 s, `add chain` 0.34-0.41 s; only `flush chain` skips it), so no layout of the
//! table (not even element-only updates of verdict maps) brings one change under 50 ms through nft. The kernel
//! itself needs no dump: it finds chains and sets by name. The full sync stays on `nft -f`
//! ([`super::nft::full_script`]), which replaces the table and where the dump of an empty table costs nothing.
//!
//! Each [`Rule`] is encoded as the expressions nft 1.0.6 generates for its text (`nft --debug=netlink` shows
//! them), so `nft list table` prints a rule written here exactly as one written by `nft -f`; kubelet/tests/proxy.rs
//! checks that on a real table.

use std::io;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use super::model::Protocol;
use super::nft::{Element, ElementKey, Op, ProxyError, Rule, MASQUERADE_MARK};

/// A batch larger than this goes through `nft -f` instead. The kernel refuses a netlink message larger than the
/// socket's send buffer, so [`send`] raises it to the batch's size first (`SO_SNDBUFFORCE`, as nft does for its
/// own batches): a shard's periodic resync (a few hundred Services) is one batch.
pub const MAX_BATCH_BYTES: usize = 64 << 20;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;

const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFPROTO_IPV4: u8 = 2;

const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_DELSET: u16 = 11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;

// attributes (linux/netfilter/nf_tables.h)
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFT_DROP: i32 = 0;
const NFT_GOTO: i32 = -4;
const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;

/// The expressions of one rule: (expression name, its attributes written by the closure).
type Expr<'a> = (&'static str, Box<dyn Fn(&mut Batch) + 'a>);

/// A netlink message buffer with nested attributes, built front to back; lengths are patched when a message or a
/// nest ends.
struct Batch {
    buf: Vec<u8>,
    seq: u32,
    msg_start: usize,
    nests: Vec<usize>,
    set_id: u32,
    /// (seq, the op's nft text) for each message, to name the op the kernel refused.
    ops: Vec<(u32, String)>,
}

impl Batch {
    fn new() -> Batch {
        let mut b = Batch { buf: Vec::with_capacity(4096), seq: 0, msg_start: 0, nests: Vec::new(), set_id: 0, ops: Vec::new() };
        b.begin(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        b.end();
        b
    }

    fn begin(&mut self, ty: u16, flags: u16, family: u8, res_id: u16) {
        self.seq += 1;
        self.msg_start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in end()
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        self.buf.extend_from_slice(&[family, 0]); // nfgenmsg: family, NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
    }

    /// Starts an nftables message on table `table` (every message here names it first).
    fn nft(&mut self, msg: u16, flags: u16, table: &str, op: String) {
        self.begin((NFNL_SUBSYS_NFTABLES << 8) | msg, NLM_F_REQUEST | flags, NFPROTO_IPV4, 0);
        self.ops.push((self.seq, op));
        self.string(1, table); // NFTA_{CHAIN,RULE,SET,SET_ELEM_LIST}_TABLE are all 1
    }

    fn end(&mut self) {
        let len = (self.buf.len() - self.msg_start) as u32;
        self.buf[self.msg_start..self.msg_start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        self.buf.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    fn string(&mut self, ty: u16, s: &str) {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(ty, &data);
    }

    fn be32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_be_bytes());
    }

    fn nest(&mut self, ty: u16) {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    }

    fn end_nest(&mut self) {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
    }

    /// `NFTA_DATA_VALUE` inside a nest of type `ty`.
    fn value(&mut self, ty: u16, data: &[u8]) {
        self.nest(ty);
        self.attr(NFTA_DATA_VALUE, data);
        self.end_nest();
    }

    /// `NFTA_DATA_VERDICT { code, chain }` inside a nest of type `ty`.
    fn verdict(&mut self, ty: u16, code: i32, chain: Option<&str>) {
        self.nest(ty);
        self.nest(NFTA_DATA_VERDICT);
        self.be32(NFTA_VERDICT_CODE, code as u32);
        if let Some(chain) = chain {
            self.string(NFTA_VERDICT_CHAIN, chain);
        }
        self.end_nest();
        self.end_nest();
    }

    fn finish(mut self) -> (Vec<u8>, Vec<(u32, String)>) {
        // the last op asks for an ack: with it the reply queue tells a committed batch from one not processed
        if let Some(flags) = self.buf.get_mut(self.msg_start + 6..self.msg_start + 8) {
            let f = u16::from_ne_bytes([flags[0], flags[1]]) | NLM_F_ACK;
            flags.copy_from_slice(&f.to_ne_bytes());
        }
        self.begin(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        self.end();
        (self.buf, self.ops)
    }
}

fn proto_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
    }
}

/// A concatenation's components each take a multiple of 4 bytes (nft's register layout).
fn element_key(e: &Element) -> Vec<u8> {
    match &e.key {
        ElementKey::Address { ip, proto, port } => {
            let mut k = ip.octets().to_vec();
            k.extend_from_slice(&[proto_number(*proto), 0, 0, 0]);
            k.extend_from_slice(&port.to_be_bytes());
            k.extend_from_slice(&[0, 0]);
            k
        }
        ElementKey::NodePort { proto, port } => {
            let mut k = vec![proto_number(*proto), 0, 0, 0];
            k.extend_from_slice(&port.to_be_bytes());
            k.extend_from_slice(&[0, 0]);
            k
        }
    }
}

fn expr_payload_saddr<'a>() -> Expr<'a> {
    // NFTA_PAYLOAD_DREG, BASE (network header), OFFSET, LEN
    ("payload", Box::new(|b: &mut Batch| {
        b.be32(1, NFT_REG_1);
        b.be32(2, 1);
        b.be32(3, 12);
        b.be32(4, 4);
    }))
}

fn expr_cmp_eq<'a>(data: Vec<u8>) -> Expr<'a> {
    // NFTA_CMP_SREG, OP (NFT_CMP_EQ), DATA
    ("cmp", Box::new(move |b: &mut Batch| {
        b.be32(1, NFT_REG_1);
        b.be32(2, 0);
        b.value(3, &data);
    }))
}

fn expr_meta_load<'a>(key: u32) -> Expr<'a> {
    // NFTA_META_KEY, DREG
    ("meta", Box::new(move |b: &mut Batch| {
        b.be32(2, key);
        b.be32(1, NFT_REG_1);
    }))
}

const NFT_META_MARK: u32 = 3;
const NFT_META_IIFNAME: u32 = 6;
const NFT_META_L4PROTO: u32 = 16;

/// `meta mark set meta mark | 0x4000`: load, `(reg & ~m) ^ m`, store.
fn exprs_mark_masquerade<'a>() -> Vec<Expr<'a>> {
    vec![
        expr_meta_load(NFT_META_MARK),
        // NFTA_BITWISE_SREG, DREG, LEN, MASK, XOR (the mark is a host-order u32)
        ("bitwise", Box::new(|b: &mut Batch| {
            b.be32(1, NFT_REG_1);
            b.be32(2, NFT_REG_1);
            b.be32(3, 4);
            b.value(4, &(!MASQUERADE_MARK).to_ne_bytes());
            b.value(5, &MASQUERADE_MARK.to_ne_bytes());
        })),
        // NFTA_META_KEY, SREG
        ("meta", Box::new(|b: &mut Batch| {
            b.be32(2, NFT_META_MARK);
            b.be32(3, NFT_REG_1);
        })),
    ]
}

fn expr_verdict<'a>(code: i32, chain: Option<&'a str>) -> Expr<'a> {
    // NFTA_IMMEDIATE_DREG, DATA
    ("immediate", Box::new(move |b: &mut Batch| {
        b.be32(1, NFT_REG_VERDICT);
        b.verdict(2, code, chain);
    }))
}

fn expr_immediate<'a>(reg: u32, data: Vec<u8>) -> Expr<'a> {
    ("immediate", Box::new(move |b: &mut Batch| {
        b.be32(1, reg);
        b.value(2, &data);
    }))
}

/// `lookup` of register 1 in `set` (NFTA_LOOKUP_SET, SREG, DREG for a verdict map, SET_ID for a set made in
/// this batch).
fn expr_lookup<'a>(set: &'a str, dreg: Option<u32>, set_id: Option<u32>) -> Expr<'a> {
    ("lookup", Box::new(move |b: &mut Batch| {
        b.string(1, set);
        b.be32(2, NFT_REG_1);
        if let Some(d) = dreg {
            b.be32(3, d);
        }
        if let Some(id) = set_id {
            b.be32(4, id);
        }
    }))
}

/// The rule's expressions. `Spread` first adds its anonymous verdict map (as nft does) and refers to it by id.
fn rule_exprs<'a>(b: &mut Batch, table: &str, rule: &'a Rule) -> Vec<Expr<'a>> {
    match rule {
        Rule::AffinityGoto { set, chain } => {
            vec![expr_payload_saddr(), expr_lookup(set, None, None), expr_verdict(NFT_GOTO, Some(chain))]
        }
        Rule::Spread(chains) => {
            b.set_id += 1;
            let id = b.set_id;
            b.nft(NFT_MSG_NEWSET, NLM_F_CREATE, table, format!("(the anonymous map of) {rule}"));
            b.string(2, "__map%d"); // NFTA_SET_NAME: the kernel numbers it
            b.be32(3, 0x1 | 0x2 | 0x8); // NFTA_SET_FLAGS: anonymous, constant, map
            b.be32(4, 4); // NFTA_SET_KEY_TYPE: integer
            b.be32(5, 4); // NFTA_SET_KEY_LEN
            b.be32(6, NFT_DATA_VERDICT); // NFTA_SET_DATA_TYPE
            b.be32(7, 0); // NFTA_SET_DATA_LEN
            b.be32(10, id); // NFTA_SET_ID
            b.nest(9); // NFTA_SET_DESC { SIZE }
            b.be32(1, chains.len() as u32);
            b.end_nest();
            // NFTA_SET_USERDATA as nft 1.0.6 writes it for `numgen ... vmap`: key byte order host, key typeof numgen
            b.attr(13, &[0, 4, 1, 0, 0, 0, 1, 4, 0, 0, 0, 0, 4, 8, 0, 4, 1, 0, 0, 0, 1, 0, 6, 4, 0, 0, 0, 0]);
            b.end();
            b.nft(NFT_MSG_NEWSETELEM, NLM_F_CREATE, table, format!("(the elements of) {rule}"));
            b.string(2, "__map%d");
            b.be32(4, id);
            b.nest(3);
            for (i, chain) in chains.iter().enumerate() {
                b.nest(NFTA_LIST_ELEM);
                b.value(1, &(i as u32).to_ne_bytes()); // NFTA_SET_ELEM_KEY: numgen's host-order integer
                b.verdict(2, NFT_GOTO, Some(chain)); // NFTA_SET_ELEM_DATA
                b.end_nest();
            }
            b.end_nest();
            b.end();
            let modulus = chains.len() as u32;
            vec![
                // NFTA_NG_DREG, MODULUS, TYPE (random), OFFSET
                ("numgen", Box::new(move |b: &mut Batch| {
                    b.be32(1, NFT_REG_1);
                    b.be32(2, modulus);
                    b.be32(3, 1);
                    b.be32(4, 0);
                })),
                expr_lookup("__map%d", Some(NFT_REG_VERDICT), Some(id)),
            ]
        }
        Rule::Drop => vec![expr_verdict(NFT_DROP, None)],
        Rule::MarkMasquerade => exprs_mark_masquerade(),
        Rule::Goto(chain) => vec![expr_verdict(NFT_GOTO, Some(chain))],
        Rule::FromBridgeGoto { bridge, chain } => {
            let mut name = [0u8; 16];
            let quoted = bridge.replace(['"', '\\'], "");
            for (d, s) in name.iter_mut().zip(quoted.bytes()) {
                *d = s;
            }
            vec![expr_meta_load(NFT_META_IIFNAME), expr_cmp_eq(name.to_vec()), expr_verdict(NFT_GOTO, Some(chain))]
        }
        Rule::FromNodeMasqueradeGoto(chain) => {
            let mut e = vec![
                // NFTA_FIB_DREG, RESULT (address type), FLAGS (saddr)
                ("fib", Box::new(|b: &mut Batch| {
                    b.be32(1, NFT_REG_1);
                    b.be32(2, 3);
                    b.be32(3, 1);
                }) as Box<dyn Fn(&mut Batch)>),
                expr_cmp_eq(2u32.to_ne_bytes().to_vec()), // RTN_LOCAL
            ];
            e.extend(exprs_mark_masquerade());
            e.push(expr_verdict(NFT_GOTO, Some(chain)));
            e
        }
        Rule::HairpinMasquerade(ip) => {
            let mut e = vec![expr_payload_saddr(), expr_cmp_eq(ip.octets().to_vec())];
            e.extend(exprs_mark_masquerade());
            e
        }
        Rule::AffinityUpdate(set) => vec![
            expr_payload_saddr(),
            // NFTA_DYNSET_SET_NAME, OP (update), SREG_KEY; the set's own timeout applies
            ("dynset", Box::new(move |b: &mut Batch| {
                b.string(1, set);
                b.be32(3, 1);
                b.be32(4, NFT_REG_1);
            })),
        ],
        Rule::Dnat { proto, ip, port } => dnat_exprs(*proto, *ip, *port),
    }
}

fn dnat_exprs<'a>(proto: Protocol, ip: Ipv4Addr, port: u16) -> Vec<Expr<'a>> {
    vec![
        expr_meta_load(NFT_META_L4PROTO),
        expr_cmp_eq(vec![proto_number(proto)]),
        expr_immediate(NFT_REG_1, ip.octets().to_vec()),
        expr_immediate(NFT_REG_2, port.to_be_bytes().to_vec()),
        // NFTA_NAT_TYPE (dnat), FAMILY, REG_ADDR_MIN, REG_PROTO_MIN, FLAGS (NF_NAT_RANGE_PROTO_SPECIFIED)
        ("nat", Box::new(|b: &mut Batch| {
            b.be32(1, 1);
            b.be32(2, u32::from(NFPROTO_IPV4));
            b.be32(3, NFT_REG_1);
            b.be32(5, NFT_REG_2);
            b.be32(7, 2);
        })),
    ]
}

fn element_msg(b: &mut Batch, msg: u16, flags: u16, table: &str, e: &Element, with_verdict: bool, text: String) {
    b.nft(msg, flags, table, text);
    b.string(2, e.map()); // NFTA_SET_ELEM_LIST_SET
    b.nest(3); // NFTA_SET_ELEM_LIST_ELEMENTS
    b.nest(NFTA_LIST_ELEM);
    b.value(1, &element_key(e)); // NFTA_SET_ELEM_KEY
    if with_verdict {
        b.verdict(2, NFT_GOTO, Some(&e.chain)); // NFTA_SET_ELEM_DATA
    }
    b.end_nest();
    b.end_nest();
    b.end();
}

/// The batch for `ops` on `table`: the bytes to send and each message's (seq, op text).
pub fn encode(table: &str, ops: &[Op<'_>]) -> (Vec<u8>, Vec<(u32, String)>) {
    encode_tables(&[(table, ops)])
}

/// One batch for the ops of several tables (the proxy's shards): one transaction, committed or refused whole.
pub fn encode_tables(groups: &[(&str, &[Op<'_>])]) -> (Vec<u8>, Vec<(u32, String)>) {
    let mut b = Batch::new();
    for (table, ops) in groups {
        for op in *ops {
            encode_op(&mut b, table, op);
        }
    }
    b.finish()
}

fn encode_op(b: &mut Batch, table: &str, op: &Op<'_>) {
    let mut text = String::new();
    op.write(&mut text, table);
    let text = text.trim_end().to_string();
    match op {
        Op::DeleteElement(e) => element_msg(b, NFT_MSG_DELSETELEM, 0, table, e, false, text),
        Op::AddElement(e) => element_msg(b, NFT_MSG_NEWSETELEM, NLM_F_CREATE, table, e, true, text),
        Op::FlushMap(map) => {
            b.nft(NFT_MSG_DELSETELEM, 0, table, text);
            b.string(2, map); // NFTA_SET_ELEM_LIST_SET, no elements: every element
            b.end();
        }
        Op::FlushChain(chain) => {
            b.nft(NFT_MSG_DELRULE, 0, table, text);
            b.string(2, chain); // NFTA_RULE_CHAIN, no handle: every rule of the chain
            b.end();
        }
        Op::DeleteChain(chain) | Op::AddChain(chain) => {
            let (msg, flags) = if matches!(op, Op::AddChain(_)) { (NFT_MSG_NEWCHAIN, NLM_F_CREATE) } else { (NFT_MSG_DELCHAIN, 0) };
            b.nft(msg, flags, table, text);
            b.string(3, chain); // NFTA_CHAIN_NAME
            b.end();
        }
        Op::DeleteSet(set) => {
            b.nft(NFT_MSG_DELSET, 0, table, text);
            b.string(2, set); // NFTA_SET_NAME
            b.end();
        }
        Op::AddSet(set, timeout) => {
            b.set_id += 1;
            let id = b.set_id;
            b.nft(NFT_MSG_NEWSET, NLM_F_CREATE, table, text);
            b.string(2, set);
            b.be32(3, 0x10 | 0x20); // NFTA_SET_FLAGS: timeout, eval (dynamic)
            b.be32(4, 7); // NFTA_SET_KEY_TYPE: ipv4_addr
            b.be32(5, 4); // NFTA_SET_KEY_LEN
            b.be32(10, id); // NFTA_SET_ID
            b.attr(11, &(u64::from(*timeout) * 1000).to_be_bytes()); // NFTA_SET_TIMEOUT, ms
            b.attr(13, &[0, 4, 2, 0, 0, 0]); // NFTA_SET_USERDATA: key byte order big endian, as nft writes it
            b.end();
        }
        Op::AddRule(chain, rule) => {
            let exprs = rule_exprs(b, table, rule);
            b.nft(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, table, text);
            b.string(2, chain); // NFTA_RULE_CHAIN
            b.nest(4); // NFTA_RULE_EXPRESSIONS
            for (name, data) in &exprs {
                b.nest(NFTA_LIST_ELEM);
                b.string(NFTA_EXPR_NAME, name);
                b.nest(NFTA_EXPR_DATA);
                data(b);
                b.end_nest();
                b.end_nest();
            }
            b.end_nest();
            b.end();
        }
    }
}

/// Sends `ops` on `table` as one batch and waits for the kernel's answer: every op applied, or none (the kernel
/// aborts the batch at the first refusal, which is named in the error).
pub fn apply(table: &str, ops: &[Op<'_>]) -> Result<(), ProxyError> {
    send(table, encode(table, ops))
}

/// The socket batches are sent over, opened on the first batch (in the process's network namespace then) and
/// kept: closing a netfilter netlink socket waits in the kernel (6.4 ms of each 1,000-Service bench sync in
/// `close`, strace on this machine at load 2.3), which every sync paid when each batch had a socket of its own.
/// Behind a lock, one batch at a time; dropped after a socket error, so the next batch opens a new one.
static SOCKET: Mutex<Option<Socket>> = Mutex::new(None);

/// Sends a batch made by [`encode`]: see [`apply`].
pub fn send(table: &str, batch: (Vec<u8>, Vec<(u32, String)>)) -> Result<(), ProxyError> {
    let mut socket = SOCKET.lock().unwrap_or_else(|e| e.into_inner());
    let result = send_on(&mut socket, table, batch);
    if matches!(result, Err(ProxyError::Netlink { .. })) {
        *socket = None;
    }
    result
}

/// A non-blocking socket bound to the kernel, asking for short acks.
fn open() -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    // the error of a refused message without the message itself echoed back
    let _ = socket.set_cap_ack(true);
    // the kernel processes a batch inside sendmsg and never blocks a sender to it; replies are read until none is
    // left
    socket.set_non_blocking(true)?;
    Ok(socket)
}

fn send_on(slot: &mut Option<Socket>, table: &str, (batch, msgs): (Vec<u8>, Vec<(u32, String)>)) -> Result<(), ProxyError> {
    let last = msgs.last().map(|(seq, _)| *seq);
    let Some(last) = last else { return Ok(()) };
    let io_err = |source: io::Error| ProxyError::Netlink { table: table.to_string(), source };
    let socket = match slot {
        Some(socket) => socket,
        None => slot.insert(open().map_err(io_err)?),
    };
    // nothing left of an earlier batch (every batch reads its answers to the end; this is a guard)
    while socket.recv_from_full().is_ok() {}
    // the whole batch is one message: room for it (the default, net.core.wmem_default, is 208 KiB); without
    // CAP_NET_ADMIN this fails and a large batch is refused below with EMSGSIZE
    if batch.len() > 128 * 1024 {
        let _ = nix::sys::socket::setsockopt(&*socket, nix::sys::socket::sockopt::SndBufForce, &(batch.len() + 64 * 1024));
    }
    let sent = socket.send_to(&batch, &SocketAddr::new(0, 0), 0).map_err(io_err)?;
    if sent != batch.len() {
        return Err(io_err(io::Error::other(format!("sent {sent} of {} bytes", batch.len()))));
    }
    // The kernel processes a batch inside sendmsg: every answer is queued by now. Read until the queue is empty.
    let mut acked = false;
    let mut refused: Option<(i32, u32)> = None;
    loop {
        let reply = match socket.recv_from_full() {
            Ok((reply, _)) => reply,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(io_err(e)),
        };
        let mut rest = &reply[..];
        while rest.len() >= 16 {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let ty = u16::from_ne_bytes([rest[4], rest[5]]);
            let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
            if len < 16 || len > rest.len() {
                break;
            }
            if ty == NLMSG_ERROR && len >= 20 {
                let code = i32::from_ne_bytes([rest[16], rest[17], rest[18], rest[19]]);
                if code != 0 && refused.is_none() {
                    refused = Some((code, seq));
                }
                if seq == last {
                    acked = true;
                }
            }
            rest = &rest[(len + 3) & !3..];
        }
    }
    if let Some((code, seq)) = refused {
        let op = msgs.iter().find(|(s, _)| *s == seq).map_or_else(|| format!("message {seq}"), |(_, t)| t.clone());
        return Err(ProxyError::NetlinkRefused { table: table.to_string(), op, source: io::Error::from_raw_os_error(-code) });
    }
    if !acked {
        return Err(io_err(io::Error::other("the kernel did not answer the batch")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (type, flags, seq) of each message in a batch.
    fn headers(buf: &[u8]) -> Vec<(u16, u16, u32)> {
        let mut out = Vec::new();
        let mut rest = buf;
        while rest.len() >= 16 {
            let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
            out.push((u16::from_ne_bytes([rest[4], rest[5]]), u16::from_ne_bytes([rest[6], rest[7]]), u32::from_ne_bytes(rest[8..12].try_into().unwrap())));
            assert_eq!(len % 4, 0, "messages stay 4-byte aligned");
            rest = &rest[len..];
        }
        assert!(rest.is_empty(), "no trailing bytes");
        out
    }

    #[test]
    fn batch_is_framed_and_only_the_last_op_asks_for_an_ack() {
        let rule = Rule::Spread(vec!["ep-a".into(), "ep-b".into()]);
        let e = Element { key: ElementKey::NodePort { proto: Protocol::Tcp, port: 30080 }, chain: "ext-x".into() };
        let ops = [Op::FlushChain("svc-x"), Op::AddRule("svc-x", &rule), Op::AddElement(&e)];
        let (buf, msgs) = encode("t", &ops);
        let h = headers(&buf);
        let types: Vec<u16> = h.iter().map(|m| m.0).collect();
        let nft = |m: u16| (10 << 8) | m;
        assert_eq!(
            types,
            [0x10, nft(NFT_MSG_DELRULE), nft(NFT_MSG_NEWSET), nft(NFT_MSG_NEWSETELEM), nft(NFT_MSG_NEWRULE), nft(NFT_MSG_NEWSETELEM), 0x11],
            "the anonymous map and its elements come before the rule that looks it up"
        );
        let acks: Vec<u32> = h.iter().filter(|m| m.1 & NLM_F_ACK != 0).map(|m| m.2).collect();
        assert_eq!(acks, [h[5].2]);
        assert_eq!(msgs.len(), 5);
        assert_eq!(msgs[4].1, "add element ip t service-nodeports { tcp . 30080 : goto ext-x }");
    }

    #[test]
    fn concatenated_keys_pad_each_component_to_four_bytes() {
        let e = Element { key: ElementKey::Address { ip: Ipv4Addr::new(10, 96, 0, 1), proto: Protocol::Tcp, port: 80 }, chain: "c".into() };
        assert_eq!(element_key(&e), [10, 96, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0]);
        let e = Element { key: ElementKey::NodePort { proto: Protocol::Udp, port: 30053 }, chain: "c".into() };
        assert_eq!(element_key(&e), [17, 0, 0, 0, 0x75, 0x65, 0, 0]);
    }
}
