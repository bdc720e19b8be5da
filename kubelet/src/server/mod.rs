//! The kubelet API the apiserver proxies to: `GET /containerLogs/<ns>/<pod>/<container>` with `follow`,
//! `tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`, `previous`, `limitBytes`; `/exec/<ns>/<pod>/<c>` and
//! `/attach/<ns>/<pod>/<c>` ([`remotecommand`], over [`spdy`] or WebSocket, running [`exec`]); `/portForward/<ns>/<pod>`
//! ([`portforward`]); `POST /run/<ns>/<pod>/<c>?cmd=..` (upstream's, the command's output in one answer);
//! `GET /inspect/pods/<ns>/<pod>`, `/inspect/node`, `/inspect/services/<ns>/<name>` (rkube's own, read-only: the
//! kernel objects of a pod, of the node, of a Service's proxy rules, [`crate::inspect`]); and
//! `/healthz`. Over HTTPS ([`tls`]) every request is authenticated and authorized first ([`auth`]: a
//! SubjectAccessReview on `nodes/proxy` and friends, as upstream's kubelet; `/inspect` is `nodes/proxy` like every
//! path upstream's kubelet does not name); plain HTTP on the node IP only when the kubelet knows no cluster CA, and
//! then without any authentication (it says so at start).

pub mod auth;
pub mod exec;
pub mod portforward;
pub mod remotecommand;
pub mod spdy;
pub mod tls;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use std::sync::Arc;

use crate::logs::read::{read_all, render, render_line, LogOptions};

/// Where logs live.
#[derive(Clone)]
pub struct LogRoot {
    /// The kubelet's log dir: `<ns>_<pod>_<uid>/<container>/<restart count>.log` under it.
    pub log_dir: PathBuf,
}

/// Everything the kubelet API reads: the logs, what exec and port-forward need, and what inspect reads.
pub struct ServerState {
    /// Where containerLogs reads.
    pub logs: LogRoot,
    /// What exec, attach, run and port-forward find containers and the runtime by.
    pub exec: exec::ExecEnv,
    /// What the inspect endpoints read.
    pub inspect: crate::inspect::InspectEnv,
}

impl ServerState {
    /// The state of a kubelet configured with `cfg`.
    pub fn from_config(cfg: &crate::config::KubeletConfig) -> ServerState {
        ServerState {
            logs: LogRoot { log_dir: cfg.log_dir.clone() },
            exec: exec::ExecEnv {
                pods_dir: cfg.root_dir.join("pods"),
                runtime_bin: cfg.runtime_bin.clone(),
                runtime_root: cfg.runtime_root.clone(),
                socket_dir: cfg.root_dir.join("exec"),
            },
            inspect: crate::inspect::InspectEnv::from_config(cfg),
        }
    }
}

/// The newest and the previous log file of a container: `<dir>/<ns>_<pod>_<uid>/<container>/<n>.log`.
fn log_files(root: &LogRoot, ns: &str, pod: &str, container: &str) -> Vec<PathBuf> {
    let prefix = format!("{ns}_{pod}_");
    let mut files: Vec<(u32, PathBuf)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&root.log_dir) {
        for e in rd.flatten() {
            if !e.file_name().to_string_lossy().starts_with(&prefix) {
                continue;
            }
            if let Ok(cd) = std::fs::read_dir(e.path().join(container)) {
                for f in cd.flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    if let Some(n) = name.strip_suffix(".log").and_then(|n| n.parse().ok()) {
                        files.push((n, f.path()));
                    }
                }
            }
        }
    }
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

async fn container_logs(
    State(state): State<Arc<ServerState>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let files = log_files(&state.logs, &ns, &pod, &container);
    let previous = q.get("previous").map(|v| v == "true" || v == "1").unwrap_or(false);
    let file = if previous { files.len().checked_sub(2).map(|i| files[i].clone()) } else { files.last().cloned() };
    let Some(file) = file else {
        let msg = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod}\" is waiting to start: no logs yet")
        };
        return (StatusCode::NOT_FOUND, msg).into_response();
    };
    let since_time = q
        .get("sinceTime")
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|| q.get("sinceSeconds").and_then(|s| s.parse::<i64>().ok()).map(|s| chrono::Utc::now() - chrono::Duration::seconds(s)));
    let opts = LogOptions {
        tail_lines: q.get("tailLines").and_then(|s| s.parse().ok()),
        since_time,
        timestamps: q.get("timestamps").map(|v| v == "true").unwrap_or(false),
        limit_bytes: q.get("limitBytes").and_then(|s| s.parse().ok()),
    };
    let lines = read_all(&file);
    let first = render(&lines, &opts);
    let follow = q.get("follow").map(|v| v == "true").unwrap_or(false);
    if !follow {
        return (StatusCode::OK, first).into_response();
    }
    // follow: send what is there, then poll the file for new complete records
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(16);
    let timestamps = opts.timestamps;
    tokio::spawn(async move {
        if tx.send(Ok(first)).await.is_err() {
            return;
        }
        let mut seen = lines.len();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let all = read_all(&file);
            if all.len() < seen {
                seen = 0; // rotated
            }
            for l in &all[seen..] {
                if tx.send(Ok(render_line(l, timestamps))).await.is_err() {
                    return;
                }
            }
            seen = all.len();
            if tx.is_closed() {
                return;
            }
        }
    });
    let stream = tokio_stream_from(rx);
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The most output `/run` answers with; the rest is dropped (a CRI ExecSync caps its output as well).
const RUN_OUTPUT_LIMIT: usize = 16 << 20;

/// `POST /run/{ns}/{pod}/{container}?cmd=..` as upstream's `getRun`: `cmd` split at spaces, run to its end in
/// the container, its stdout then stderr as the answer; a non-zero exit is a 500 with upstream's
/// `command '..' exited with N: <stderr>`.
async fn run_in_container(
    State(state): State<Arc<ServerState>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let target = match exec::find_container(&state.exec, &ns, &pod, &container) {
        Ok(t) => t,
        Err(e) => return (StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_REQUEST), e.message).into_response(),
    };
    let command: Vec<String> = q.get("cmd").map(|c| c.split(' ').map(str::to_string).collect()).unwrap_or_default();
    if command.iter().all(String::is_empty) {
        return (StatusCode::BAD_REQUEST, "you must specify at least one command for the container").into_response();
    }
    tracing::info!(pod = %format!("{ns}/{pod}"), container, command = ?command, "run");
    let collect = |mut rx: tokio::sync::mpsc::Receiver<bytes::Bytes>| {
        tokio::spawn(async move {
            let mut out = Vec::new();
            while let Some(chunk) = rx.recv().await {
                let room = RUN_OUTPUT_LIMIT.saturating_sub(out.len());
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            out
        })
    };
    let (out_tx, out_rx) = tokio::sync::mpsc::channel(16);
    let (err_tx, err_rx) = tokio::sync::mpsc::channel(16);
    let (stdout, stderr) = (collect(out_rx), collect(err_rx));
    let io = exec::ExecIo { stdout: Some(out_tx), stderr: Some(err_tx), ..Default::default() };
    let result = exec::run(&state.exec, &target, &command, false, io).await;
    let (mut out, err) = (stdout.await.unwrap_or_default(), stderr.await.unwrap_or_default());
    match result {
        Ok(0) => {
            out.extend_from_slice(&err);
            out.truncate(RUN_OUTPUT_LIMIT);
            (StatusCode::OK, [("content-type", "application/json")], out).into_response()
        }
        Ok(code) => {
            let msg = format!("command '{}' exited with {code}: {}", command.join(" "), String::from_utf8_lossy(&err));
            (StatusCode::INTERNAL_SERVER_ERROR, msg).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

/// `GET /inspect/pods/{ns}/{pod}`: the pod's kernel objects as a `PodInspection` (JSON). Read-only; the facts
/// are gathered on a blocking thread (it runs `ip`, `nft` and the runtime).
async fn inspect_pod(State(state): State<Arc<ServerState>>, Path((ns, pod)): Path<(String, String)>) -> Response {
    let env = state.inspect.clone();
    match tokio::task::spawn_blocking(move || crate::inspect::inspect_pod(&env, &ns, &pod)).await {
        Ok(Ok(doc)) => match serde_json::to_vec(&doc) {
            Ok(body) => (StatusCode::OK, [("content-type", "application/json")], body).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encode inspection: {e}")).into_response(),
        },
        Ok(Err(e)) => (StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST), e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("inspect: {e}")).into_response(),
    }
}

/// `GET /inspect/node`: this node's `NodeInspection`; `GET /inspect/services/{ns}/{name}`: this node's proxy rules
/// for the Service (`ServiceInspection`). Read-only, gathered on a blocking thread.
async fn inspect_node(State(state): State<Arc<ServerState>>) -> Response {
    let env = state.inspect.clone();
    json_answer(tokio::task::spawn_blocking(move || serde_json::to_vec(&crate::inspect::inspect_node(&env))).await)
}

async fn inspect_service(State(state): State<Arc<ServerState>>, Path((ns, name)): Path<(String, String)>) -> Response {
    let env = state.inspect.clone();
    json_answer(tokio::task::spawn_blocking(move || serde_json::to_vec(&crate::inspect::inspect_service(&env, &ns, &name))).await)
}

fn json_answer(r: Result<serde_json::Result<Vec<u8>>, tokio::task::JoinError>) -> Response {
    match r {
        Ok(Ok(body)) => (StatusCode::OK, [("content-type", "application/json")], body).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encode inspection: {e}")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("inspect: {e}")).into_response(),
    }
}

/// The router (tests serve it on 127.0.0.1).
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(|| async { ([("content-type", "text/plain; version=0.0.4")], crate::service_proxy::metrics::render() + &rkube_trace::export::metrics()) }))
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route("/exec/{ns}/{pod}/{container}", any(remotecommand::exec_handler))
        .route("/attach/{ns}/{pod}/{container}", any(remotecommand::attach_handler))
        .route("/portForward/{ns}/{pod}", any(portforward::portforward_handler))
        .route("/run/{ns}/{pod}/{container}", post(run_in_container))
        .route("/inspect/pods/{ns}/{pod}", get(inspect_pod))
        .route("/inspect/node", get(inspect_node))
        .route("/inspect/services/{ns}/{name}", get(inspect_service))
        .route("/debug/rkube/traces/{trace_id}", get(crate::trace::serve))
        // an explicit fallback, so the auth layer covers paths no route serves too
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found") })
        .with_state(Arc::new(state))
}

/// Serves the kubelet API on `addr` until the task is dropped.
pub async fn serve(addr: std::net::SocketAddr, state: ServerState) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router(state)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::cri::{CriWriter, Stream};

    async fn serve_tmp(dir: &std::path::Path) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = ServerState {
            logs: LogRoot { log_dir: dir.to_path_buf() },
            exec: exec::ExecEnv {
                pods_dir: dir.join("pods"),
                runtime_bin: "/bin/false".into(),
                runtime_root: dir.join("runtime"),
                socket_dir: dir.join("exec"),
            },
            inspect: crate::inspect::InspectEnv {
                node_name: "n1".into(),
                pods_dir: dir.join("pods"),
                runtime_bin: "/bin/false".into(),
                runtime_root: dir.join("runtime"),
                proxy_table: None,
                proc_root: dir.join("proc"),
                cgroup_root: "kubepods".into(),
                bridge: None,
                cluster_dns: None,
                dns_link: None,
            },
        };
        tokio::spawn(async move {
            let _ = axum::serve(listener, router(state)).await;
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn container_logs_current_previous_tail_and_follow() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cdir = tmp.path().join("default_web_uid1").join("app");
        std::fs::create_dir_all(&cdir).expect("dir");
        let mut old = CriWriter::open(&cdir.join("0.log"), 1 << 20, 2).expect("open");
        old.write(Stream::Stdout, b"first run\n").expect("write");
        let mut cur = CriWriter::open(&cdir.join("1.log"), 1 << 20, 2).expect("open");
        cur.write(Stream::Stdout, b"a\nb\nc\n").expect("write");
        let base = serve_tmp(tmp.path()).await;
        let get = |q: &str| {
            let url = format!("{base}/containerLogs/default/web/app{q}");
            async move { reqwest::get(url).await.expect("get") }
        };
        assert_eq!(get("").await.text().await.expect("body"), "a\nb\nc\n");
        assert_eq!(get("?tailLines=1").await.text().await.expect("body"), "c\n");
        assert_eq!(get("?previous=true").await.text().await.expect("body"), "first run\n");
        let ts = get("?timestamps=true&tailLines=1").await.text().await.expect("body");
        assert!(ts.ends_with("Z c\n") && ts.len() > 30, "{ts}");
        let missing = reqwest::get(format!("{base}/containerLogs/default/web/nope")).await.expect("get");
        assert_eq!(missing.status(), 404);
        // follow: new lines arrive on the open response
        let mut resp = get("?follow=true&tailLines=0").await;
        cur.write(Stream::Stdout, b"later\n").expect("write");
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                match resp.chunk().await.expect("chunk") {
                    Some(c) if !c.is_empty() => return c,
                    Some(_) => continue,
                    None => panic!("stream ended"),
                }
            }
        })
        .await
        .expect("followed line within 5 s");
        assert_eq!(&chunk[..], b"later\n");
    }
}
