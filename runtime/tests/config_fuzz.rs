//! A bounded fuzz of config.json parsing and validation (runs in CI in a few seconds): a valid config is mutated
//! 2000 times with a seeded generator, structurally (values of other types, removed and added keys, odd strings and
//! numbers) and byte-wise. Neither parse nor validate may panic, and every refusal names the field it is about.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rkube_runtime::config::{self, SpecError};
use serde_json::{json, Value};

/// xorshift64*: a fixed seed gives the same 2000 cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn odd_value(r: &mut Rng) -> Value {
    match r.below(14) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(u64::MAX),
        4 => json!(i64::MIN),
        5 => json!(1e308),
        6 => json!(""),
        7 => json!("../../../etc"),
        8 => json!("\u{0}nul"),
        9 => json!([]),
        10 => json!({}),
        11 => json!(["CAP_NOPE", 3, null]),
        12 => json!({"type": "mount", "path": "/proc/self/ns/net"}),
        _ => json!("x".repeat(r.below(5000))),
    }
}

/// Every container (object or array) in `v`, as JSON pointers.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            out.push(at.clone());
            for (k, c) in m {
                pointers(c, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(a) => {
            out.push(at.clone());
            for (i, c) in a.iter().enumerate() {
                pointers(c, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn mutate(base: &Value, r: &mut Rng) -> Vec<u8> {
    let mut v = base.clone();
    for _ in 0..=r.below(4) {
        let mut ps = Vec::new();
        pointers(&v, String::new(), &mut ps);
        let p = ps[r.below(ps.len())].clone();
        let node = v.pointer_mut(&p).expect("pointer from the walk");
        match node {
            Value::Object(m) if !m.is_empty() => {
                let keys: Vec<String> = m.keys().cloned().collect();
                let k = keys[r.below(keys.len())].clone();
                match r.below(3) {
                    0 => {
                        m.remove(&k);
                    }
                    1 => {
                        m.insert(k, odd_value(r));
                    }
                    _ => {
                        m.insert(format!("unknown{}", r.below(100)), odd_value(r));
                    }
                }
            }
            Value::Array(a) if !a.is_empty() => {
                let i = r.below(a.len());
                if r.below(2) == 0 {
                    a[i] = odd_value(r);
                } else {
                    let dup = a[i].clone();
                    a.push(dup);
                }
            }
            other => *other = odd_value(r),
        }
    }
    let mut bytes = serde_json::to_vec(&v).unwrap();
    if r.below(5) == 0 && !bytes.is_empty() {
        // a few raw byte flips on top
        for _ in 0..=r.below(3) {
            let i = r.below(bytes.len());
            bytes[i] = (r.next() & 0xff) as u8;
        }
    }
    bytes
}

#[test]
fn mutated_configs_never_panic_and_every_refusal_names_a_field() {
    let bundle = tempfile::tempdir().unwrap();
    std::fs::create_dir(bundle.path().join("rootfs")).unwrap();
    let mut base = common::default_config(&["sh", "-c", "true"], "/rkube-fuzz");
    base["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]});
    base["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 1}});
    base["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
    base["linux"]["resources"]["memory"] = json!({"limit": 16777216});
    let valid = serde_json::to_vec(&base).unwrap();
    let spec = config::parse(&valid, Path::new("config.json")).expect("the base config parses");
    config::validate(&spec, bundle.path(), true).expect("the base config is valid");

    let mut r = Rng(0x5eed_1234_abcd_0001);
    let (mut parsed, mut refused_parse, mut refused_validate) = (0, 0, 0);
    for case in 0..2000 {
        let bytes = mutate(&base, &mut r);
        let outcome = catch_unwind(AssertUnwindSafe(|| match config::parse(&bytes, Path::new("config.json")) {
            Err(e) => Err(e),
            Ok(spec) => config::validate(&spec, bundle.path(), true).map(|_| ()),
        }));
        let res = outcome.unwrap_or_else(|_| panic!("case {case} panicked on: {}", String::from_utf8_lossy(&bytes)));
        match res {
            Ok(()) => parsed += 1,
            Err(SpecError::Parse { field, message, .. }) => {
                refused_parse += 1;
                assert!(!field.is_empty() && !message.is_empty(), "case {case}: {field:?} {message:?}");
            }
            Err(SpecError::Invalid { field, reason }) => {
                refused_validate += 1;
                assert!(!field.is_empty() && !reason.is_empty(), "case {case}: {field:?} {reason:?}");
                let root = field.split(['.', '[']).next().unwrap();
                assert!(
                    ["ociVersion", "root", "process", "mounts", "linux", "hooks", "annotations", "hostname", "domainname"].contains(&root),
                    "case {case}: refusal names no config field: {field:?}: {reason}"
                );
            }
            Err(e @ SpecError::Read { .. }) => panic!("case {case}: {e}"),
        }
    }
    // The mutations reach both layers, not only the JSON parser.
    assert!(parsed > 50 && refused_parse > 50 && refused_validate > 20, "ok={parsed} parse={refused_parse} validate={refused_validate}");
}
