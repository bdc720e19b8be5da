//! docs/guide.md, run: every command of its ```console blocks, in order, against one live `rkube up` (node
//! address on a veth of the test's own, like the other `up*` tests) and, for its multi-node part, one `rkube
//! cluster up` the guide itself starts. Each command's exit code and its output are checked against what the
//! guide prints under it, by the rules in the guide's header comment (implemented by `line_matches` and
//! `output_matches` below, whose unit tests need no root). A command that fails or prints something else fails
//! the test with the guide's line number, the command, what was expected and what it printed.
//!
//! `GUIDE_CAPTURE=1` runs every command and prints what each printed without stopping at a difference: how the
//! guide's outputs were captured, and how to refresh them after a change of rkube's output.

mod up_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rkube_testsupport::unique_name;

/// One `$ ` command of the guide, with what it must print.
#[derive(Debug, PartialEq)]
struct Step {
    /// 1-based line of the command in docs/guide.md.
    line: usize,
    command: String,
    /// Expected output lines (blank lines dropped), `...` lines included.
    expected: Vec<String>,
    /// Expected exit code: 0 unless the output ends with `[exit N]`.
    exit: i32,
}

/// The steps of every ```console block, in order. Inside a block: `$ CMD` starts a command; a line ending in
/// `\` continues it on the next line; a command with a here-document (`<<'EOF'` or `<<EOF`) takes the lines up
/// to the terminator as its own; every other line until the next `$ ` or the block's end is expected output.
fn parse(md: &str) -> Vec<Step> {
    let lines: Vec<&str> = md.lines().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    let mut in_console = false;
    while i < lines.len() {
        let l = lines[i];
        if !in_console {
            in_console = l.trim_end() == "```console";
            i += 1;
            continue;
        }
        if l.trim_end() == "```" {
            in_console = false;
            i += 1;
            continue;
        }
        if let Some(first) = l.strip_prefix("$ ") {
            let line = i + 1;
            let mut command = first.to_string();
            i += 1;
            while command.ends_with('\\') && i < lines.len() {
                command.push('\n');
                command.push_str(lines[i]);
                i += 1;
            }
            if let Some(term) = heredoc_terminator(&command) {
                while i < lines.len() {
                    command.push('\n');
                    command.push_str(lines[i]);
                    i += 1;
                    if lines[i - 1] == term {
                        break;
                    }
                }
            }
            let mut expected = Vec::new();
            while i < lines.len() && !lines[i].starts_with("$ ") && lines[i].trim_end() != "```" {
                if !lines[i].trim().is_empty() {
                    expected.push(lines[i].to_string());
                }
                i += 1;
            }
            let mut exit = 0;
            if let Some(code) = expected.last().and_then(|l| l.trim().strip_prefix("[exit ")).and_then(|r| r.strip_suffix(']')) {
                exit = code.parse().unwrap_or_else(|_| panic!("guide line {line}: [exit N] needs a number"));
                expected.pop();
            }
            steps.push(Step { line, command, expected, exit });
            continue;
        }
        assert!(l.trim().is_empty(), "guide line {}: output before any `$ ` command in a console block: {l:?}", i + 1);
        i += 1;
    }
    assert!(!in_console, "docs/guide.md ends inside a ```console block");
    steps
}

/// `EOF` for a command with `<<'EOF'`, `<<"EOF"` or `<<EOF`.
fn heredoc_terminator(command: &str) -> Option<String> {
    let rest = &command[command.find("<<")? + 2..];
    let rest = rest.trim_start_matches('-').trim_start();
    let word: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    let word = word.trim_matches(|c| c == '\'' || c == '"').to_string();
    (!word.is_empty()).then_some(word)
}

/// Whitespace runs to one space, ends trimmed: column widths depend on name lengths, not on rkube.
fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One piece of an expected line.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    Lit(&'a str),
    /// `...`: any text, possibly none.
    Any,
    /// `{n}`: one or more digits.
    Num,
    /// `{ip}`: an IPv4 address, with an optional /prefix.
    Ip,
    /// `{hex}`: one or more hex digits.
    Hex,
    /// `{age}`: a kubectl age or duration (`5s`, `2m3s`, `1.5ms`, `<invalid>`).
    Age,
    /// `{w}`: one or more characters other than a space.
    Word,
}

fn tokens(pattern: &str) -> Vec<Tok<'_>> {
    const MARKS: [(&str, Tok<'static>); 6] =
        [("...", Tok::Any), ("{n}", Tok::Num), ("{ip}", Tok::Ip), ("{hex}", Tok::Hex), ("{age}", Tok::Age), ("{w}", Tok::Word)];
    let mut out = Vec::new();
    let mut lit_start = 0;
    let mut i = 0;
    while i < pattern.len() {
        if let Some((m, t)) = MARKS.iter().find(|(m, _)| pattern[i..].starts_with(m)) {
            if lit_start < i {
                out.push(Tok::Lit(&pattern[lit_start..i]));
            }
            out.push(*t);
            i += m.len();
            lit_start = i;
        } else {
            i += pattern[i..].chars().next().map(char::len_utf8).unwrap_or(1);
        }
    }
    if lit_start < pattern.len() {
        out.push(Tok::Lit(&pattern[lit_start..]));
    }
    out
}

/// Byte lengths of the prefixes of `s` that one placeholder can take (shortest first).
fn takes(t: Tok<'_>, s: &str) -> Vec<usize> {
    let run = |ok: &dyn Fn(char) -> bool| s.char_indices().take_while(|(_, c)| ok(*c)).map(|(i, c)| i + c.len_utf8()).collect::<Vec<_>>();
    match t {
        Tok::Lit(l) => s.starts_with(l).then_some(vec![l.len()]).unwrap_or_default(),
        Tok::Any => std::iter::once(0).chain(s.char_indices().map(|(i, c)| i + c.len_utf8())).collect(),
        Tok::Num => run(&|c| c.is_ascii_digit()),
        Tok::Hex => run(&|c| c.is_ascii_hexdigit()),
        Tok::Word => run(&|c| c != ' '),
        Tok::Age => {
            if s.starts_with("<invalid>") {
                return vec![9];
            }
            run(&|c| c.is_ascii_digit() || c == '.' || "smhdyµu".contains(c)).into_iter().filter(|&n| s[..n].chars().any(|c| c.is_ascii_digit())).collect()
        }
        Tok::Ip => {
            let mut out = Vec::new();
            let cand = run(&|c| c.is_ascii_digit() || c == '.' || c == '/');
            for n in cand {
                let (addr, prefix) = s[..n].split_once('/').map(|(a, p)| (a, Some(p))).unwrap_or((&s[..n], None));
                let octets: Vec<&str> = addr.split('.').collect();
                let addr_ok = octets.len() == 4 && octets.iter().all(|o| o.parse::<u8>().is_ok());
                let prefix_ok = prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= 32));
                if addr_ok && prefix_ok {
                    out.push(n);
                }
            }
            out
        }
    }
}

fn match_tokens(toks: &[Tok<'_>], s: &str) -> bool {
    match toks.split_first() {
        None => s.is_empty(),
        Some((t, rest)) => takes(*t, s).into_iter().any(|n| match_tokens(rest, &s[n..])),
    }
}

/// Whether an output line matches an expected line, both squeezed: the text is literal but for the placeholders.
fn line_matches(pattern: &str, line: &str) -> bool {
    match_tokens(&tokens(&squeeze(pattern)), &squeeze(line))
}

/// Whether the whole output (blank lines dropped) is what `expected` says: line by line, in order, a line that
/// is only `...` standing for any number of lines.
fn output_matches(expected: &[String], output: &[&str]) -> bool {
    match expected.split_first() {
        None => output.is_empty(),
        Some((e, rest)) if e.trim() == "..." => (0..=output.len()).any(|k| output_matches(rest, &output[k..])),
        Some((e, rest)) => output.split_first().is_some_and(|(o, orest)| line_matches(e, o) && output_matches(rest, orest)),
    }
}

#[test]
fn matching_rules_as_the_guide_states_them() {
    assert!(line_matches("NAME   STATUS", "NAME STATUS   "));
    assert!(!line_matches("NAME STATUS", "NAME STATUS X"));
    assert!(line_matches("pid {n} ip {ip}", "pid 4321 ip 10.244.1.5"));
    assert!(line_matches("{ip} dev eth0", "10.244.1.0/24 dev eth0"));
    assert!(!line_matches("pid {n}", "pid 12a"));
    assert!(!line_matches("ip {ip}", "ip 10.244.1"));
    assert!(!line_matches("ip {ip}", "ip 300.1.1.1"));
    assert!(line_matches("web-{hex}-{w} 1/1 Running 0 {age}", "web-7c9f8d55b-x2k4q   1/1     Running   0          12s"));
    assert!(line_matches("took {age}", "took 2m30s"));
    assert!(!line_matches("took {age}", "took now"));
    assert!(line_matches("net:[...]", "net:[4026532301]"));
    assert!(line_matches("a ... b", "a b") || line_matches("a...b", "ab"));
    assert!(line_matches("sandbox ...", "sandbox pid 3 (pause)"));
    assert!(!line_matches("sandbox", "sandbox pid 3"));
    let exp = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(output_matches(&exp(&["a", "...", "z"]), &["a", "b", "c", "z"]));
    assert!(output_matches(&exp(&["a", "...", "z"]), &["a", "z"]));
    assert!(!output_matches(&exp(&["a", "z"]), &["a", "b", "z"]));
    assert!(!output_matches(&exp(&["a"]), &["a", "b"]));
    assert!(output_matches(&exp(&["a", "..."]), &["a", "b"]));
    assert!(output_matches(&exp(&[]), &[]));
    assert!(!output_matches(&exp(&[]), &["x"]));
    let steps = parse("text\n```console\n$ echo a \\\n  b\na b\n\n$ cat <<'EOF'\nx\nEOF\nx\n$ false\n[exit 1]\n```\n```sh\n$ not run\n```\n");
    assert_eq!(
        steps,
        vec![
            Step { line: 3, command: "echo a \\\n  b".into(), expected: exp(&["a b"]), exit: 0 },
            Step { line: 7, command: "cat <<'EOF'\nx\nEOF".into(), expected: exp(&["x"]), exit: 0 },
            Step { line: 11, command: "false".into(), expected: vec![], exit: 1 },
        ]
    );
}

fn guide_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/guide.md")
}

/// `rkube cluster down` of the guide's cluster on drop, pass or fail (the guide starts it; down of a cluster
/// that was never made does nothing).
struct ClusterGuard {
    name: String,
    data: PathBuf,
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        let out = Command::new(up_support::bin("rkube"))
            .args(["cluster", "down", "--name", &self.name, "--data-dir"])
            .arg(&self.data)
            .env("RKUBE_LOG", "warn")
            .output();
        if let Ok(out) = out {
            if !out.status.success() {
                eprintln!("rkube cluster down {}: {}", self.name, String::from_utf8_lossy(&out.stderr));
            }
        }
        if std::thread::panicking() {
            if let Some(tail) = rkube_testsupport::log_tail(&self.data.join("server.log"), 20) {
                eprintln!("cluster server.log:\n{tail}");
            }
        }
    }
}

#[test]
fn every_command_of_the_guide_prints_what_the_guide_says() {
    let md = std::fs::read_to_string(guide_path()).expect("read docs/guide.md");
    let steps = parse(&md);
    assert!(steps.len() > 20, "docs/guide.md has {} console commands", steps.len());
    let capture = std::env::var_os("GUIDE_CAPTURE").is_some();
    rkube_testsupport::require_command("nsenter", "util-linux");
    rkube_testsupport::require_command("jq", "jq");
    rkube_testsupport::require_command("curl", "curl");
    let t0 = Instant::now();
    let up = up_support::Up::start();
    let node = up.kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    eprintln!("rkube up ready in {:.1} s", t0.elapsed().as_secs_f64());

    // the guide's multi-node part: its own LAN 172.28.<200..249>.0/24 (cluster.rs uses 100..199)
    let tmp = tempfile::tempdir().expect("tempdir");
    let cluster = ClusterGuard { name: unique_name("g"), data: tmp.path().join("cluster") };
    let subnet = format!("172.28.{}.0/24", 200 + std::process::id() % 50);
    let busybox = rkube_testsupport::busybox_oci_layout_as(&tmp.path().join("busybox-oci"), "latest", &["sh"], None);

    let bin_dir = up_support::bin("rkube").parent().expect("bin dir").to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    // the variables the guide's setup block exports, here for this test's node and cluster
    let state = tmp.path().join("guide.env");
    let vars = [
        ("PATH", path),
        ("KUBECONFIG", up.kubeconfig().display().to_string()),
        ("DATA", up.data.path().display().to_string()),
        ("NODE", node.trim().to_string()),
        ("NODE_IP", up.node_ip.clone()),
        ("BRIDGE", up.bridge.clone()),
        ("PROXY_TABLE", up.net.proxy_table.clone()),
        ("CLUSTER_DNS", up.net.cluster_dns.clone()),
        ("CLUSTER", cluster.name.clone()),
        ("CLUSTER_DATA", cluster.data.display().to_string()),
        ("CLUSTER_SUBNET", subnet),
        ("BUSYBOX_OCI", busybox.dir.display().to_string()),
    ];
    let env: String = vars.iter().map(|(k, v)| format!("export {k}='{v}'\n")).collect();
    std::fs::write(&state, env).expect("write the guide's environment");

    let mut failures = Vec::new();
    for step in &steps {
        let started = Instant::now();
        // one bash per command; what it exports (set -a: every assignment) carries to the next, as in a terminal
        let script = format!(
            "exec 2>&1; set -a -o pipefail; cd \"$HOME\" 2>/dev/null || cd /; . '{state}'\n{{\n{cmd}\n}}\nrc=$?; export -p > '{state}'; exit $rc\n",
            state = state.display(),
            cmd = step.command
        );
        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc", "-c", &script]).env("RKUBE_LOG", "warn");
        let out = rkube_testsupport::output_within(&mut cmd, None, Duration::from_secs(150), &format!("guide line {}: {}", step.line, step.command));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let printed: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let code = out.status.code().unwrap_or(-1);
        let ok = code == step.exit && output_matches(&step.expected, &printed);
        let report = format!(
            "docs/guide.md:{}: $ {}\n--- exit {} (expected {}), {:.1} s; printed:\n{}\n--- expected:\n{}\n",
            step.line,
            step.command,
            code,
            step.exit,
            started.elapsed().as_secs_f64(),
            text.trim_end(),
            step.expected.join("\n")
        );
        if capture {
            eprintln!("{}{report}", if ok { "" } else { "MISMATCH " });
            if !ok {
                failures.push(step.line);
            }
            continue;
        }
        assert!(ok, "the guide's command does not do what the guide says:\n{report}");
    }
    eprintln!("the guide's {} commands took {:.1} s, rkube up included", steps.len(), t0.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "capture run: commands at docs/guide.md lines {failures:?} differ from the guide");
    drop(cluster);
    drop(up);
}
