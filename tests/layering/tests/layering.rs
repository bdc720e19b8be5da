//! The workspace's boundaries (issue 14), from `cargo metadata` and a scan of the sources. Each check collects
//! every crossing, then fails once listing them as `file:line: what`, so one run shows all of them.
//!
//! Known crossings outside the apiserver are allowlisted below with the reason; an allowlisted item that no
//! longer crosses is printed (so the list can shrink) but does not fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root")
}

/// Fails with every crossing found, one a line.
fn report(rule: &str, crossings: &[String]) {
    assert!(crossings.is_empty(), "{rule}:\n  {}\n", crossings.join("\n  "));
}

fn note_stale(rule: &str, allowed: &[(&str, &str)], used: &BTreeSet<String>) {
    for (item, why) in allowed {
        if !used.contains(*item) {
            eprintln!("{rule}: allowlisted {item} ({why}) no longer crosses: remove it from the allowlist");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// crate dependencies, from cargo metadata

/// The workspace's packages: name -> (manifest dir relative to the root, [(dependency, kind)]), where the
/// dependencies are only the workspace's own crates and kind is "normal", "dev" or "build".
fn workspace_graph() -> BTreeMap<String, (String, Vec<(String, String)>)> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let ours: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let root = root();
    packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap_or_default().to_string();
            let manifest = Path::new(p["manifest_path"].as_str().unwrap_or_default());
            let dir = manifest.parent().and_then(|d| d.strip_prefix(&root).ok()).map(|d| d.display().to_string()).unwrap_or_default();
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| {
                    let dep = d["name"].as_str()?;
                    ours.contains(dep).then(|| (dep.to_string(), d["kind"].as_str().unwrap_or("normal").to_string()))
                })
                .collect();
            (name, (dir, deps))
        })
        .collect()
}

/// Crates that must not depend (normal or build) on any other crate of ours, but the ones named with them;
/// every crate so named must itself be in this list with nothing allowed (a leaf), so what a crate here may
/// reach is exactly what it names.
// rkube-cluster runs the `rkube` binary's subcommands as processes: it links no crate of ours. The CNI plugins
// share the spec's types and exec protocol with the kubelet's CNI client through rkube-cni-types, and the
// rtnetlink client with the kubelet through rkube-netlink, both leaves.
const LEAVES: &[(&str, &[&str])] = &[
    ("rkube-runtime", &[]),
    ("rkube-cni", &["rkube-cni-types", "rkube-netlink"]),
    ("rkube-cni-types", &[]),
    ("rkube-netlink", &[]),
    ("rkube-apimachinery", &[]),
    ("rkube-cluster", &[]),
];

/// (crate, crate it must not depend on in production, why).
const FORBIDDEN: &[(&str, &str, &str)] = &[
    ("rkube-apiserver", "rkube-kubelet", "the apiserver reaches kubelets over HTTP only"),
    ("rkube-apiserver", "rkube-runtime", "the apiserver runs no containers"),
    ("rkube-apiserver", "rkube-cni", "the apiserver sets up no network"),
    ("rkube-controllers", "rkube-apiserver", "controllers reach state only through the API (dev-dependency for tests is fine)"),
    ("rkube-controllers", "rkube-kubelet", "controllers reach nodes only through the API"),
    ("rkube-kubelet", "rkube-apiserver", "the kubelet reaches state only through the API"),
    ("rkube-kubelet", "rkube-cni", "the kubelet shares only the spec types with the plugins, through a small types crate"),
];

/// Crossings of [`FORBIDDEN`] known today, each with the issue that removes it.
const ALLOWED_DEPS: &[(&str, &str)] = &[];

#[test]
fn crate_dependencies_point_the_allowed_way() {
    let graph = workspace_graph();
    assert!(graph.contains_key("rkube-apiserver"), "cargo metadata lists the workspace");
    let mut crossings = Vec::new();
    let mut used = BTreeSet::new();
    let production = |name: &str| -> Vec<String> {
        graph.get(name).map(|(_, deps)| deps.iter().filter(|(_, k)| k != "dev").map(|(d, _)| d.clone()).collect()).unwrap_or_default()
    };
    for (leaf, allowed) in LEAVES {
        let (dir, _) = graph.get(*leaf).unwrap_or_else(|| panic!("{leaf} is a workspace member"));
        for a in *allowed {
            if !LEAVES.iter().any(|(l, deps)| l == a && deps.is_empty()) {
                crossings.push(format!("{dir}/Cargo.toml: {leaf} may depend on {a} only if {a} is a leaf itself (in LEAVES, allowed nothing)"));
            }
        }
        for dep in production(leaf) {
            if !allowed.contains(&dep.as_str()) {
                crossings.push(format!("{dir}/Cargo.toml: {leaf} depends on {dep}; it must depend on no crate of ours{}", if allowed.is_empty() { String::new() } else { format!(" but {}", allowed.join(", ")) }));
            }
        }
    }
    // the kubelet reaches the CNI plugins' side only through the shared types crate
    let kubelet_cni: Vec<String> = production("rkube-kubelet").into_iter().filter(|d| d.starts_with("rkube-cni")).collect();
    if kubelet_cni != ["rkube-cni-types"] {
        crossings.push(format!("kubelet/Cargo.toml: rkube-kubelet's CNI dependencies are {kubelet_cni:?}; it must reach CNI only through rkube-cni-types"));
    }
    for (from, to, why) in FORBIDDEN {
        let Some((dir, _)) = graph.get(*from) else { continue };
        if production(from).iter().any(|d| d == to) {
            let item = format!("{from} -> {to}");
            if ALLOWED_DEPS.iter().any(|(a, _)| *a == item) {
                used.insert(item);
                continue;
            }
            crossings.push(format!("{dir}/Cargo.toml: {from} depends on {to}: {why}"));
        }
    }
    note_stale("crate dependencies", ALLOWED_DEPS, &used);
    report("crate dependencies that cross a boundary", &crossings);
}

/// docs/architecture.md lists the production arrows between our crates in a ```deps block; it must say what
/// cargo metadata says, no more and no less.
#[test]
fn the_architecture_doc_draws_the_real_arrows() {
    let graph = workspace_graph();
    let mut real = BTreeSet::new();
    for (name, (_, deps)) in &graph {
        for (dep, kind) in deps {
            if kind != "dev" {
                real.insert(format!("{name} -> {dep}"));
            }
        }
    }
    let doc_path = root().join("docs/architecture.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/architecture.md");
    let start = doc.find("```deps\n").expect("docs/architecture.md has a ```deps block") + "```deps\n".len();
    let first_line = doc[..start].lines().count();
    let block = &doc[start..start + doc[start..].find("```").expect("the deps block ends")];
    let mut drawn = BTreeSet::new();
    let mut crossings = Vec::new();
    for (i, line) in block.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !real.contains(line) {
            crossings.push(format!("docs/architecture.md:{}: {line:?} is not a dependency in cargo metadata", first_line + i + 1));
        }
        drawn.insert(line.to_string());
    }
    for arrow in real.difference(&drawn) {
        crossings.push(format!("docs/architecture.md:{first_line}: the deps block lacks {arrow:?} (cargo metadata has it)"));
    }
    report("docs/architecture.md's arrows against cargo metadata", &crossings);
}

// ---------------------------------------------------------------------------------------------------------
// source scans

/// Every `.rs` file under `dir` (relative to the root), sorted.
fn rust_files(dir: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(d) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join(dir), &mut out);
    out.sort();
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

/// The production lines of a source file, numbered from 1: `#[cfg(test)]` items (a test module, most often)
/// are blanked, and so are `//` comments (doc comments included), so neither counts as an import.
fn production_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut skip_depth: Option<i64> = None;
    let mut pending_cfg_test = false;
    for (i, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        let trimmed = line.trim();
        if let Some(depth) = skip_depth.as_mut() {
            *depth += brace_delta(&line);
            if *depth <= 0 {
                skip_depth = None;
            }
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            pending_cfg_test = true;
            continue;
        }
        if pending_cfg_test && !trimmed.is_empty() && !trimmed.starts_with("#[") {
            pending_cfg_test = false;
            let delta = brace_delta(&line);
            if delta > 0 {
                skip_depth = Some(delta);
            }
            // a one-line item (`use x;`, `mod tests;`) is skipped with its line
            continue;
        }
        out.push((i + 1, line));
    }
    out
}

/// The line without a `//` comment (a `//` inside a string literal is kept).
fn strip_comment(line: &str) -> String {
    let mut in_str = false;
    let mut prev = '\0';
    for (i, c) in line.char_indices() {
        match c {
            '"' if prev != '\\' => in_str = !in_str,
            '/' if !in_str && prev == '/' => return line[..i - 1].to_string(),
            _ => {}
        }
        prev = if prev == '\\' && c == '\\' { '\0' } else { c };
    }
    line.to_string()
}

fn brace_delta(line: &str) -> i64 {
    line.chars().map(|c| match c {
        '{' => 1,
        '}' => -1,
        _ => 0,
    }).sum()
}

/// Whether `line` names `ident` as a path root (`ident::`, `use ident`, `extern crate ident`).
fn names_crate(line: &str, ident: &str) -> bool {
    line.match_indices(ident).any(|(i, _)| {
        let before = line[..i].chars().last();
        let after = &line[i + ident.len()..];
        before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) && (after.starts_with("::") || after.starts_with(';') || after.starts_with(" as "))
    })
}

/// (crate source dir, crate identifier it must not name, why). `*` is every crate of the workspace but the
/// crate's own.
const FORBIDDEN_IMPORTS: &[(&str, &str, &str)] = &[
    ("apiserver/src", "rkube_kubelet", "the apiserver never imports the kubelet"),
    ("apiserver/src", "rkube_runtime", "the apiserver never imports the runtime"),
    ("controllers/src", "rkube_apiserver", "controllers' production code reaches state only through the API"),
    ("runtime/src", "*", "the runtime depends on no crate of ours"),
    ("cni/src", "*", "the CNI plugins depend on no crate of ours (but the leaves rkube-cni-types and rkube-netlink)"),
    ("cni/types/src", "*", "the CNI types crate depends on no crate of ours"),
    ("netlink/src", "*", "the rtnetlink client depends on no crate of ours"),
    ("kubelet/src", "rkube_cni", "the kubelet reaches CNI only through rkube_cni_types"),
];

/// Crates a `*` rule of [`FORBIDDEN_IMPORTS`] lets a directory name after all: (dir, crate identifier).
const ALLOWED_IMPORTS: &[(&str, &str)] = &[("cni/src", "rkube_cni_types"), ("cni/src", "rkube_netlink")];

#[test]
fn production_code_imports_no_crate_across_a_boundary() {
    let graph = workspace_graph();
    let mut crossings = Vec::new();
    for (dir, ident, why) in FORBIDDEN_IMPORTS {
        let files = rust_files(dir);
        assert!(!files.is_empty(), "{dir} has sources");
        let idents: Vec<String> = if *ident == "*" {
            let own = dir.trim_end_matches("/src");
            graph
                .iter()
                .filter(|(_, (d, _))| d != own)
                .map(|(name, _)| name.replace('-', "_"))
                .filter(|id| !ALLOWED_IMPORTS.contains(&(*dir, id.as_str())))
                .collect()
        } else {
            vec![ident.to_string()]
        };
        for f in files {
            let text = std::fs::read_to_string(&f).expect("read a source file");
            for (n, line) in production_lines(&text) {
                for id in &idents {
                    if names_crate(&line, id) {
                        crossings.push(format!("{}:{n}: names {id}: {why}", rel(&f)));
                    }
                }
            }
        }
    }
    report("imports that cross a boundary", &crossings);
}

/// The cgroup filesystem belongs to the runtime. Read-only uses elsewhere that are known, with the reason.
const CGROUPFS_ALLOWED: &[(&str, &str)] = &[
    ("tests/support/src/vm.rs", "test fixture: prepares cgroup v2 inside the test VM, never on the host's node path"),
];

#[test]
fn nothing_outside_the_runtime_names_a_cgroupfs_path() {
    let graph = workspace_graph();
    let mut crossings = Vec::new();
    let mut used = BTreeSet::new();
    for (name, (dir, _)) in &graph {
        if name == "rkube-runtime" {
            continue;
        }
        for f in rust_files(&format!("{dir}/src")) {
            let text = std::fs::read_to_string(&f).expect("read a source file");
            for (n, line) in production_lines(&text) {
                if !line.contains("\"/sys/fs/cgroup") && !line.contains("sys/fs/cgroup/") {
                    continue;
                }
                let file = rel(&f);
                if CGROUPFS_ALLOWED.iter().any(|(a, _)| *a == file) {
                    used.insert(file);
                    continue;
                }
                crossings.push(format!("{file}:{n}: names a cgroupfs path: only runtime/ touches cgroupfs"));
            }
        }
    }
    note_stale("cgroupfs paths", CGROUPFS_ALLOWED, &used);
    report("cgroupfs paths outside runtime/", &crossings);
}

#[test]
fn cli_modules_stay_small() {
    let mut crossings = Vec::new();
    for f in rust_files("cli/src") {
        let lines = std::fs::read_to_string(&f).expect("read a source file").lines().count();
        if lines > 300 {
            crossings.push(format!("{}:{lines}: {lines} lines; cli/ only parses flags and wires crates (at most 300 a module)", rel(&f)));
        }
    }
    report("cli modules over 300 lines", &crossings);
}

// ---------------------------------------------------------------------------------------------------------
// the apiserver's internal layers

/// The apiserver's layers, bottom first: a module may import its own layer or one below, never one above,
/// and no modules may import each other in a circle. A module takes the layer of the longest prefix listed.
const APISERVER_LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "storage", "memory_store", "registry", "status", "object", "openapi", "discovery", "protobuf", "conversion", "selectors",
            "metrics", "tls", "kubeconfig", "private_files",
        ],
    ),
    ("state and config", &["config", "state", "auth::keys", "auth::user"]),
    ("request context", &["request", "auth"]),
    ("object helpers", &["admission", "strategy", "defaulting", "validation", "patch", "table"]),
    ("handlers", &["handlers", "auth::review", "node_proxy", "openapi::v2", "openapi::v3"]),
    ("background work", &["namespace_lifecycle"]),
    ("serving", &["connections", "routes", "bootstrap", "server"]),
];

/// The module path of a file under `apiserver/src` (`handlers/mod.rs` -> `handlers`).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(root().join("apiserver/src")).expect("under apiserver/src");
    let mut parts: Vec<String> = rel.with_extension("").iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
        parts.pop();
    }
    parts.join("::")
}

fn layer_of(module: &str) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, (_, prefixes)) in APISERVER_LAYERS.iter().enumerate() {
        for p in *prefixes {
            if (module == *p || module.starts_with(&format!("{p}::"))) && best.is_none_or(|(len, _)| p.len() > len) {
                best = Some((p.len(), i));
            }
        }
    }
    best.map(|(_, i)| i)
}

/// The modules one line refers to, as paths from the crate root: `crate::a::b`, `use crate::{a, b}`,
/// `super::x`, and child modules named bare by a `mod.rs` (`use context::X`).
fn references(line: &str, module: &str, is_mod_rs: bool, children: &BTreeSet<String>) -> Vec<String> {
    // the whole path (`auth::keys::TokenKeys`); the caller finds the longest module it names
    let ident = |s: &str| -> Option<String> {
        let segs: Vec<String> = s
            .split("::")
            .map(|seg| seg.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>())
            .take_while(|seg| !seg.is_empty())
            .collect();
        (!segs.is_empty()).then(|| segs.join("::"))
    };
    let mut out = Vec::new();
    let boundary = |l: &str, i: usize| l[..i].chars().last().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
    for (i, _) in line.match_indices("crate::") {
        if !boundary(line, i) {
            continue;
        }
        let rest = &line[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            for item in group.split('}').next().unwrap_or_default().split(',') {
                out.extend(ident(item.trim()));
            }
        } else {
            out.extend(ident(rest));
        }
    }
    // `super` is the parent module, for `a/b.rs` (module a::b) and `a/mod.rs` (module a) alike
    let parent: Vec<&str> = {
        let mut p: Vec<&str> = module.split("::").collect();
        p.pop();
        p
    };
    for (i, _) in line.match_indices("super::") {
        if !boundary(line, i) {
            continue;
        }
        let rest = &line[i + "super::".len()..];
        let base = parent.join("::");
        let join = |x: String| if base.is_empty() { x } else { format!("{base}::{x}") };
        if let Some(group) = rest.strip_prefix('{') {
            for item in group.split('}').next().unwrap_or_default().split(',') {
                out.extend(ident(item.trim()).into_iter().map(join));
            }
        } else {
            match ident(rest) {
                Some(path) => out.push(join(path)),
                None if !base.is_empty() => out.push(base.clone()),
                None => {}
            }
        }
    }
    if is_mod_rs {
        let t = line.trim_start();
        let body = t.strip_prefix("pub use ").or_else(|| t.strip_prefix("use "));
        if let Some(body) = body {
            let first: String = body.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if children.contains(&first) {
                out.push(format!("{module}::{first}"));
            }
        }
    }
    out
}

#[test]
fn apiserver_layers_import_downward_only() {
    let files = rust_files("apiserver/src");
    let modules: BTreeMap<String, PathBuf> = files.iter().map(|f| (module_of(f), f.clone())).collect();
    let mut crossings = Vec::new();
    // module -> (module it imports -> first file:line)
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (module, file) in &modules {
        if module.is_empty() {
            continue; // lib.rs declares and re-exports
        }
        let Some(from_layer) = layer_of(module) else {
            crossings.push(format!("{}:1: module {module} is in no layer; add it to APISERVER_LAYERS", rel(file)));
            continue;
        };
        let is_mod_rs = file.file_name().is_some_and(|n| n == "mod.rs");
        let children: BTreeSet<String> = modules
            .keys()
            .filter_map(|m| m.strip_prefix(&format!("{module}::")))
            .filter(|c| !c.contains("::"))
            .map(str::to_string)
            .collect();
        let text = std::fs::read_to_string(file).expect("read a source file");
        for (n, line) in production_lines(&text) {
            for r in references(&line, module, is_mod_rs, &children) {
                // the longest known module the path names
                let Some(target) = modules.keys().filter(|m| !m.is_empty() && (r == **m || r.starts_with(&format!("{m}::")))).max_by_key(|m| m.len())
                else {
                    continue;
                };
                if target == module {
                    continue;
                }
                // A child using what its parent module declares (`super::Item` in `a/b.rs` for `a/mod.rs`) is how a
                // Rust folder holds together, not a circle between layers: only the layer rule applies to it.
                if !module.starts_with(&format!("{target}::")) {
                    edges.entry(module.clone()).or_default().entry(target.clone()).or_insert_with(|| format!("{}:{n}", rel(file)));
                }
                if let Some(to_layer) = layer_of(target) {
                    if to_layer > from_layer {
                        crossings.push(format!(
                            "{}:{n}: {module} ({}) imports {target} ({}), a layer above it",
                            rel(file),
                            APISERVER_LAYERS[from_layer].0,
                            APISERVER_LAYERS[to_layer].0
                        ));
                    }
                }
            }
        }
    }
    crossings.sort();
    crossings.dedup();
    for circle in circles(&edges) {
        let ties: Vec<String> = circle
            .iter()
            .flat_map(|a| {
                let edges = &edges;
                circle.iter().filter_map(move |b| edges.get(a).and_then(|e| e.get(b)).map(|at| format!("{at}: {a} -> {b}")))
            })
            .collect();
        crossings.push(format!("modules importing each other in a circle: {}\n    {}", circle.join(", "), ties.join("\n    ")));
    }
    report("apiserver modules that import upward or in a circle", &crossings);
}

/// Strongly connected components of more than one module (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on: BTreeSet<String>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit(t: &mut T<'_>, v: &str) {
        t.index.insert(v.to_string(), t.next);
        t.low.insert(v.to_string(), t.next);
        t.next += 1;
        t.stack.push(v.to_string());
        t.on.insert(v.to_string());
        let succ: Vec<String> = t.edges.get(v).map(|e| e.keys().cloned().collect()).unwrap_or_default();
        for w in succ {
            if !t.index.contains_key(&w) {
                visit(t, &w);
                let lw = t.low[&w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if t.on.contains(&w) {
                let iw = t.index[&w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(&w);
                let done = w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), next: 0, out: Vec::new() };
    let nodes: Vec<String> = edges.keys().cloned().collect();
    for v in nodes {
        if !t.index.contains_key(&v) {
            visit(&mut t, &v);
        }
    }
    t.out
}

#[test]
fn the_scanner_sees_what_it_must() {
    // production_lines drops test modules and comments
    let src = "use crate::a::B; // crate::hidden\n#[cfg(test)]\nmod tests {\n    use crate::never;\n}\nfn f() { crate::c::d(); }\n";
    let lines: Vec<String> = production_lines(src).into_iter().map(|(_, l)| l).collect();
    assert!(lines.iter().any(|l| l.contains("crate::a::B")));
    assert!(lines.iter().all(|l| !l.contains("hidden") && !l.contains("never")));
    assert!(lines.iter().any(|l| l.contains("crate::c::d")));
    // a URL in a string is not a comment
    assert_eq!(strip_comment(r#"let u = "http://x"; // c"#), r#"let u = "http://x"; "#);
    // references: crate paths, groups, super, a mod.rs's children
    let kids: BTreeSet<String> = ["context".to_string()].into();
    let r = references("use crate::{auth::User, state};", "handlers", true, &kids);
    assert_eq!(r, ["auth::User", "state"]);
    let r = references("use super::context::Ctx;", "handlers::create", false, &kids);
    assert_eq!(r, ["handlers::context::Ctx"]);
    let r = references("pub use context::{Ctx, Written};", "handlers", true, &kids);
    assert_eq!(r, ["handlers::context"]);
    assert!(names_crate("use rkube_apiserver::auth;", "rkube_apiserver"));
    assert!(!names_crate("let rkube_apiserver_x = 1;", "rkube_apiserver"));
    assert_eq!(layer_of("auth::review"), Some(4));
    assert_eq!(layer_of("auth::rbac"), Some(2));
}
