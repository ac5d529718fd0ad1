//! Interactive exec through an agent (`clank exec -it` on a remote server): a real control-plane
//! fleet (in-memory store, TLS gRPC endpoint on loopback), a real `clank-agent` process
//! enrolled with a join token, and workloads on the real Docker engine. The terminal is
//! `AgentRuntime::exec_interactive`, as the daemon's WebSocket endpoint calls it.

mod common;

use std::time::Duration;

use clank_core::id::{DeploymentId, EnvironmentId, ProjectId, ServerId, ServiceId, WorkspaceId};
use clank_core::runtime::{
    ExecRequest, Owner, Runtime, TerminalInput, TerminalSession, TerminalSize, WorkloadId,
    WorkloadState,
};
use clank_fleet::{AgentRuntime, Fleet};
use clank_testkit::runtime::TestApp;
use clank_testkit::testapp::BUSYBOX;
use common::{FleetEndpoint, docker_with_testapp};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

/// A fleet with one enrolled, connected agent, and a running test-app workload on it.
struct Remote {
    runtime: AgentRuntime,
    workload: WorkloadId,
    stop: CancellationToken,
    agent: Option<tokio::process::Child>,
    dir: tempfile::TempDir,
}

impl Remote {
    /// `None` (skip) without a Docker engine, outside CI.
    async fn start(suffix: &str) -> Option<Remote> {
        docker_with_testapp().await?;
        let dir = tempfile::tempdir().unwrap();
        let endpoint = FleetEndpoint::start(dir.path()).await;
        let fleet = endpoint.fleet.clone();
        let stop = endpoint.stop.clone();
        let workspace = WorkspaceId::new();
        let (server, join_token) = fleet.create_server(workspace, "tty").await.unwrap();
        let child = endpoint.spawn_agent(dir.path(), &join_token, &[]);
        let mut remote = Remote {
            runtime: AgentRuntime::new(fleet.clone(), server.id),
            workload: WorkloadId(String::new()),
            stop,
            agent: Some(child),
            dir,
        };
        remote.wait_connected(&fleet, server.id).await;
        let run: u32 = rand_suffix();
        let app = TestApp {
            name: format!("tty-{run:08x}-{suffix}"),
            owner: Owner {
                workspace,
                project: ProjectId::new(),
                environment: EnvironmentId::new(),
                service: ServiceId::new(),
                deployment: DeploymentId::new(),
                process: "web".to_owned(),
                replica: 0,
            },
            env: Vec::new(),
            command: None,
            data_volume: None,
            network: None,
        };
        let started = remote
            .runtime
            .start(&app.container_spec())
            .await
            .unwrap_or_else(|e| panic!("start the test app through the agent: {e}"));
        remote.workload = started.id;
        for _ in 0..300 {
            let w = remote.runtime.inspect(&remote.workload).await.unwrap();
            if w.is_some_and(|w| matches!(w.state, WorkloadState::Running { .. })) {
                return Some(remote);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the test app did not run within 30 s");
    }

    async fn wait_connected(&mut self, fleet: &Fleet, server: ServerId) {
        for _ in 0..600 {
            if fleet.server(server).await.unwrap().connected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the agent did not connect within 30 s; its log:\n{}",
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    async fn shell(&self, size: TerminalSize) -> TerminalSession {
        self.runtime
            .exec_interactive(&self.workload, &[BUSYBOX.to_owned(), "sh".to_owned()], size)
            .await
            .unwrap_or_else(|e| panic!("a shell through the agent: {e}\n{}", self.log()))
    }

    /// The workload's processes (`ps`, through a non-interactive exec).
    async fn processes(&self) -> Vec<String> {
        let out = self
            .runtime
            .exec(
                &self.workload,
                &ExecRequest {
                    command: vec![BUSYBOX.to_owned(), "ps".to_owned()],
                    tty: false,
                    timeout: Duration::from_secs(10),
                },
            )
            .await
            .unwrap();
        assert_eq!(out.exit_code, Some(0), "ps: {out:?}");
        out.stdout.lines().map(str::to_owned).collect()
    }

    /// Wait (10 s at most) until no process of the workload matches `gone`.
    async fn wait_gone(&self, what: &str, gone: impl Fn(&str) -> bool) {
        let mut last = Vec::new();
        for _ in 0..100 {
            last = self.processes().await;
            if !last.iter().any(|l| gone(l)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what} still runs after 10 s: {last:#?}");
    }

    async fn finish(mut self) {
        if self.runtime.remove(&self.workload).await.is_ok() {
            self.workload = WorkloadId(String::new());
        }
        if let Some(mut child) = self.agent.take() {
            let _ = child.kill().await;
        }
        self.stop.cancel();
    }
}

/// A failed test still removes its workload (from the engine: the agent may be gone).
impl Drop for Remote {
    fn drop(&mut self) {
        let id = std::mem::replace(&mut self.workload, WorkloadId(String::new()));
        if id.0.is_empty() {
            return;
        }
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(docker) = clank_docker::DockerRuntime::connect().await {
                    let _ = docker.remove(&id).await;
                }
            });
        })
        .join();
    }
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.finish() as u32
}

fn typed(text: &str) -> TerminalInput {
    TerminalInput::Data(text.as_bytes().to_vec())
}

/// Read the terminal's output into `seen` until it shows `want` (15 s at most).
async fn read_until(session: &mut TerminalSession, seen: &mut String, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.contains(want) {
        let chunk = tokio::time::timeout_at(deadline, session.output.next())
            .await
            .unwrap_or_else(|_| panic!("`{want}` within 15 s; the terminal showed {seen:?}"))
            .unwrap_or_else(|| panic!("the output ended before `{want}`: {seen:?}"))
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// Read the rest of the output (15 s at most); each chunk within the protocol's size.
async fn read_to_end(session: &mut TerminalSession, seen: &mut String) -> usize {
    let mut bytes = 0;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(15), session.output.next())
            .await
            .unwrap_or_else(|_| panic!("the output ends within 15 s; it showed {seen:?}"));
        let Some(chunk) = next else { return bytes };
        let chunk = chunk.unwrap();
        assert!(chunk.len() <= clank_proto::TERMINAL_CHUNK_BYTES);
        bytes += chunk.len();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// A shell on a terminal in a workload on the remote server: what is typed reaches it, what it
/// prints comes back, and its exit code ends the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_through_the_agent_prints_and_reports_its_exit_code() {
    let Some(remote) = Remote::start("exit").await else {
        return;
    };
    assert!(remote.runtime.capabilities().terminals);
    let mut session = remote.shell(TerminalSize::default()).await;
    // `h''i` echoes as typed; only the command's output reads `hi`.
    session
        .input
        .send(typed("echo h''i; exit 7\n"))
        .await
        .unwrap();
    let mut seen = String::new();
    read_to_end(&mut session, &mut seen).await;
    assert!(
        seen.lines().any(|l| l.trim_end_matches('\r') == "hi"),
        "the shell's output: {seen:?}"
    );
    assert_eq!(session.exit_code.await.unwrap(), Some(7));
    remote.finish().await;
}

/// A resize reaches the command's terminal: `stty size` prints the new rows and columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resize_reaches_the_terminal_on_the_remote_server() {
    let Some(remote) = Remote::start("resize").await else {
        return;
    };
    let mut session = remote
        .shell(TerminalSize {
            rows: 40,
            cols: 100,
        })
        .await;
    let mut seen = String::new();
    session
        .input
        .send(typed(&format!("{BUSYBOX} stty size; echo mark-$((6*7))\n")))
        .await
        .unwrap();
    read_until(&mut session, &mut seen, "mark-42").await;
    assert!(seen.contains("40 100"), "the asked size: {seen:?}");
    session
        .input
        .send(TerminalInput::Resize(TerminalSize {
            rows: 33,
            cols: 101,
        }))
        .await
        .unwrap();
    session
        .input
        .send(typed(&format!("{BUSYBOX} stty size; echo mark-$((7*7))\n")))
        .await
        .unwrap();
    read_until(&mut session, &mut seen, "mark-49").await;
    assert!(seen.contains("33 101"), "the new size: {seen:?}");
    // A size no terminal has is refused here, before it crosses.
    let bad = session
        .input
        .send(TerminalInput::Resize(TerminalSize { rows: 0, cols: 80 }))
        .await
        .expect_err("a terminal of 0 rows");
    assert_eq!(bad.field(), Some("size"), "{bad}");
    session.input.send(typed("exit 3\n")).await.unwrap();
    read_to_end(&mut session, &mut seen).await;
    assert_eq!(session.exit_code.await.unwrap(), Some(3));
    remote.finish().await;
}

/// Output far larger than the windows flows through them whole (credits come back as it is
/// read), in chunks of at most `TERMINAL_CHUNK_BYTES`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_larger_than_the_windows_arrives_whole() {
    let Some(remote) = Remote::start("bulk").await else {
        return;
    };
    let mut session = remote.shell(TerminalSize::default()).await;
    // 1.5 MB of `y` lines (`y` CR LF on a terminal), then the end: a hundred windows.
    session
        .input
        .send(typed(&format!(
            "{BUSYBOX} yes | {BUSYBOX} head -n 500000; echo e''nd; exit 0\n"
        )))
        .await
        .unwrap();
    let mut seen = String::new();
    let bytes = read_to_end(&mut session, &mut seen).await;
    assert!(bytes >= 1_500_000, "{bytes} bytes of output");
    assert!(seen.contains("\nend"), "the end of the output");
    assert_eq!(session.exit_code.await.unwrap(), Some(0));
    remote.finish().await;
}

/// Dropping the session ends the command on the server: no shell (and nothing it started)
/// is left in the workload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_session_ends_the_command_on_the_server() {
    let Some(remote) = Remote::start("drop").await else {
        return;
    };
    let mut session = remote.shell(TerminalSize::default()).await;
    session
        .input
        .send(typed(&format!("echo st''arted; {BUSYBOX} sleep 4321\n")))
        .await
        .unwrap();
    let mut seen = String::new();
    read_until(&mut session, &mut seen, "started").await;
    let mut running = remote.processes().await;
    for _ in 0..50 {
        if running.iter().any(|l| l.contains("sleep 4321")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        running = remote.processes().await;
    }
    assert!(
        running.iter().any(|l| l.contains("sleep 4321")),
        "the command runs: {running:#?}"
    );
    assert!(
        running
            .iter()
            .any(|l| l.trim_end().ends_with(&format!("{BUSYBOX} sh"))),
        "the shell runs: {running:#?}"
    );
    drop(session);
    remote
        .wait_gone("the dropped terminal's shell", |l| {
            l.contains("sleep 4321") || l.trim_end().ends_with(&format!("{BUSYBOX} sh"))
        })
        .await;
    remote.finish().await;
}

/// An agent serves at most `MAX_TERMINALS` terminals: the next one is refused with an error
/// that says so, and a dropped one frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_refuses_terminals_beyond_its_cap() {
    let Some(remote) = Remote::start("cap").await else {
        return;
    };
    let cap = clank_agent::terminal::MAX_TERMINALS;
    let mut sessions = Vec::new();
    for _ in 0..cap {
        sessions.push(remote.shell(TerminalSize::default()).await);
    }
    let refused = remote
        .runtime
        .exec_interactive(
            &remote.workload,
            &[BUSYBOX.to_owned(), "sh".to_owned()],
            TerminalSize::default(),
        )
        .await
        .expect_err("a terminal beyond the cap");
    let message = refused.to_string();
    assert!(
        message.contains(&format!("already runs {cap} terminal sessions")),
        "{message}"
    );
    // A dropped terminal frees its place (once its close reached the agent).
    drop(sessions.pop());
    let mut again = None;
    for _ in 0..50 {
        match remote
            .runtime
            .exec_interactive(
                &remote.workload,
                &[BUSYBOX.to_owned(), "sh".to_owned()],
                TerminalSize::default(),
            )
            .await
        {
            Ok(s) => {
                again = Some(s);
                break;
            }
            Err(e) if e.to_string().contains("terminal sessions") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    sessions.push(again.expect("a place after a terminal was dropped"));
    drop(sessions);
    remote
        .wait_gone("a dropped terminal's shell", |l| {
            l.trim_end().ends_with(&format!("{BUSYBOX} sh"))
        })
        .await;
    remote.finish().await;
}

/// The workload's processes, asked of the engine directly (the control plane may be gone).
async fn engine_ps(container: &str) -> Vec<String> {
    use bollard::exec::{StartExecOptions, StartExecResults};
    let docker = clank_docker::DockerRuntime::connect().await.unwrap();
    let client = docker.client();
    let config = bollard::models::ExecConfig {
        attach_stdout: Some(true),
        cmd: Some(vec![BUSYBOX.to_owned(), "ps".to_owned()]),
        ..bollard::models::ExecConfig::default()
    };
    let exec = client.create_exec(container, config).await.unwrap();
    let options = StartExecOptions {
        detach: false,
        tty: false,
        output_capacity: None,
    };
    let StartExecResults::Attached { mut output, .. } =
        client.start_exec(&exec.id, Some(options)).await.unwrap()
    else {
        panic!("ps started detached");
    };
    let mut text = String::new();
    while let Some(frame) = output.next().await {
        text.push_str(&String::from_utf8_lossy(&frame.unwrap().into_bytes()));
    }
    text.lines().map(str::to_owned).collect()
}

/// When the agent's session goes away (the control plane shut down), the agent ends the
/// session's terminals: their commands do not run on unattended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_session_ends_the_commands_of_its_terminals() {
    let Some(remote) = Remote::start("lost").await else {
        return;
    };
    let mut session = remote.shell(TerminalSize::default()).await;
    session
        .input
        .send(typed(&format!("echo st''arted; {BUSYBOX} sleep 4322\n")))
        .await
        .unwrap();
    let mut seen = String::new();
    read_until(&mut session, &mut seen, "started").await;
    let container = remote.workload.0.clone();
    let mut running = Vec::new();
    for _ in 0..50 {
        running = engine_ps(&container).await;
        if running.iter().any(|l| l.contains("sleep 4322")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        running.iter().any(|l| l.contains("sleep 4322")),
        "the command runs: {running:#?}"
    );
    // The control plane goes; the terminal's reader learns it, and so does the agent.
    remote.stop.cancel();
    let end = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(item) = session.output.next().await {
            if item.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the output ends with the session");
    let shell = format!("{BUSYBOX} sh");
    for _ in 0..100 {
        running = engine_ps(&container).await;
        if !running
            .iter()
            .any(|l| l.contains("sleep 4322") || l.trim_end().ends_with(&shell))
        {
            drop(session);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the terminal's command outlived the session: {running:#?}\n{}",
        remote.log()
    );
}
