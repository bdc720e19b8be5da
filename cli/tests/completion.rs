//! `rkube completion`: the bash script is valid bash (`bash -n`) and, sourced in a real bash and asked as bash's
//! programmable completion asks (COMP_WORDS, COMP_CWORD, the function `complete -F` registered), completes
//! subcommands and their subcommands; zsh and fish get their scripts; an unknown shell is refused. Needs bash.

use std::path::Path;
use std::process::Command;

fn rkube(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rkube")).args(args).env("RKUBE_LOG", "warn").output().expect("run rkube")
}

fn script(shell: &str) -> String {
    let out = rkube(&["completion", shell]);
    assert!(out.status.success(), "rkube completion {shell}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// What bash offers for the words typed so far (the last is the one being completed), as `complete -F` would
/// call the function `rkube completion bash` registered for rkube.
fn bash_complete(script_path: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        r#"source '{}'
fn=$(complete -p rkube | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
[ -n "$fn" ] || {{ echo "no completion function registered for rkube" >&2; exit 3; }}
COMP_WORDS=({})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
"$fn" rkube "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        script_path.display(),
        quoted.join(" ")
    );
    let out = Command::new("bash").args(["--norc", "--noprofile", "-c", &program]).output().expect("run bash");
    assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
}

#[test]
fn the_bash_script_parses_and_completes_subcommands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rkube.bash");
    std::fs::write(&path, script("bash")).expect("write script");
    let check = Command::new("bash").arg("-n").arg(&path).output().expect("bash -n");
    assert!(check.status.success(), "bash -n: {}", String::from_utf8_lossy(&check.stderr));

    assert_eq!(bash_complete(&path, &["rkube", "insp"]), vec!["inspect"]);
    let top = bash_complete(&path, &["rkube", ""]);
    for want in ["up", "down", "inspect", "completion", "image"] {
        assert!(top.iter().any(|w| w == want), "{want} in {top:?}");
    }
    let inspect = bash_complete(&path, &["rkube", "inspect", ""]);
    for want in ["pod", "node", "service"] {
        assert!(inspect.iter().any(|w| w == want), "{want} in {inspect:?}");
    }
    assert!(!inspect.iter().any(|w| w == "up"), "only inspect's subcommands after inspect: {inspect:?}");
    let flags = bash_complete(&path, &["rkube", "inspect", "pod", "--"]);
    for want in ["--namespace", "--output", "--kubeconfig"] {
        assert!(flags.iter().any(|w| w == want), "{want} in {flags:?}");
    }
    assert_eq!(bash_complete(&path, &["rkube", "completion", "f"]), vec!["fish"]);
}

#[test]
fn zsh_and_fish_get_their_scripts_and_other_shells_are_refused() {
    let zsh = script("zsh");
    assert!(zsh.starts_with("#compdef rkube"), "{}", &zsh[..zsh.len().min(200)]);
    assert!(zsh.contains("'inspect:"), "zsh completes inspect");
    let fish = script("fish");
    assert!(fish.lines().any(|l| l.starts_with("complete -c rkube") && l.contains("-a \"inspect\"")), "fish completes inspect");
    let out = rkube(&["completion", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid value 'tcsh'") && err.contains("bash, zsh, fish"), "{err}");
}
