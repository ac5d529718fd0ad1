//! The native-process runtime against real processes (Debian's static busybox): lifecycle,
//! adoption by a new runtime instance, signals, volumes, logs, restarts and exec.

mod support;

use std::time::{Duration, Instant};

use clank_core::runtime::{
    ExecRequest, LogOptions, LogStream, PortBinding, RestartPolicy, Runtime, WorkloadState,
};
use clank_core::{Error, ErrorKind, RuntimeFailure};
use clank_process::{ProcessRuntime, volume_env_key};
use futures_util::StreamExt;
use support::*;

fn exec(argv: &[&str]) -> ExecRequest {
    ExecRequest {
        command: argv.iter().map(|s| (*s).to_owned()).collect(),
        tty: false,
        timeout: Duration::from_secs(10),
    }
}

fn failure<T>(result: Result<T, Error>) -> RuntimeFailure {
    let Err(err) = result else {
        panic!("expected an error");
    };
    err.runtime_failure()
        .unwrap_or_else(|| panic!("not a runtime failure: {err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_workload_serves_logs_execs_stops_and_is_removed() {
    let fx = Fixture::new();
    let rt = fx.rt();
    let docroot = fx.scratch("www");
    let spec = http_spec("web-1", &docroot);

    let status = rt.start(&spec).await.unwrap();
    assert!(matches!(status.state, WorkloadState::Running { .. }));
    assert_eq!(status.id, id("web-1"));
    let endpoint = status
        .endpoint
        .expect("a listening workload has an endpoint");
    assert!(endpoint.ip().is_loopback());
    assert_eq!(wait_healthy(endpoint).await.trim(), "ok");

    let lines = history(rt, "web-1").await;
    let port_line = format!("listening on {}", endpoint.port());
    assert!(
        lines
            .iter()
            .any(|l| l.line == port_line && l.stream == LogStream::Stdout),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.line == "to stderr" && l.stream == LogStream::Stderr),
        "{lines:?}"
    );

    // exec sees the workload's environment (secrets included) and working directory.
    let out = rt
        .exec(
            &id("web-1"),
            &exec(&[BUSYBOX, "sh", "-c", "echo $PORT $GREETING; pwd"]),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0));
    let workload_dir = rt.workload_dir(spec.owner.workspace, "web-1").unwrap();
    assert_eq!(
        out.stdout,
        format!(
            "{} hello-secret\n{}\n",
            endpoint.port(),
            workload_dir.display()
        )
    );

    rt.stop(&id("web-1"), Duration::from_secs(5)).await.unwrap();
    let stopped = rt.inspect(&id("web-1")).await.unwrap().unwrap();
    assert!(exit_code(&stopped).is_some(), "{stopped:?}");
    assert!(http_get(endpoint, "/health").await.is_err());
    rt.stop(&id("web-1"), Duration::from_secs(5)).await.unwrap();

    rt.remove(&id("web-1")).await.unwrap();
    assert_eq!(rt.inspect(&id("web-1")).await.unwrap(), None);
    assert!(!workload_dir.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_is_idempotent_for_the_same_owner_and_a_name_conflict_for_another() {
    let fx = Fixture::new();
    let rt = fx.rt();
    let spec = spec("idem", &[BUSYBOX, "sleep", "300"]);
    let first = rt.start(&spec).await.unwrap();
    let again = rt.start(&spec).await.unwrap();
    assert_eq!(first, again, "a second start returns the running workload");
    assert_eq!(rt.list(&for_service(&spec.owner)).await.unwrap().len(), 1);

    let mut intruder = spec.clone();
    intruder.owner = owner();
    assert_eq!(
        failure(rt.start(&intruder).await),
        RuntimeFailure::NameConflict
    );

    // An exited workload with the same owner is started again in place.
    rt.stop(&id("idem"), Duration::ZERO).await.unwrap();
    let restarted = rt.start(&spec).await.unwrap();
    assert!(matches!(restarted.state, WorkloadState::Running { .. }));
    rt.remove(&id("idem")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_is_idempotent_and_unknown_workloads_are_not_found() {
    let fx = Fixture::new();
    let rt = fx.rt();
    rt.start(&spec("gone", &[BUSYBOX, "sleep", "300"]))
        .await
        .unwrap();
    rt.remove(&id("gone")).await.unwrap();
    rt.remove(&id("gone")).await.unwrap();
    rt.remove(&id("never-existed")).await.unwrap();
    rt.remove(&id("../escape")).await.unwrap();
    assert_eq!(rt.inspect(&id("gone")).await.unwrap(), None);
    assert_eq!(
        failure(rt.stop(&id("gone"), Duration::ZERO).await),
        RuntimeFailure::NotFound
    );
    assert_eq!(
        failure(rt.logs(&id("gone"), LogOptions::default()).await),
        RuntimeFailure::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_port_in_use_fails_with_port_in_use_and_leaves_nothing() {
    let fx = Fixture::new();
    let rt = fx.rt();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut spec = http_spec("clash", &fx.scratch("www"));
    spec.publish = Some(PortBinding {
        host_port: Some(port),
        ..PortBinding::loopback()
    });
    let err = rt.start(&spec).await.unwrap_err();
    assert_eq!(err.runtime_failure(), Some(RuntimeFailure::PortInUse));
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    assert_eq!(rt.inspect(&id("clash")).await.unwrap(), None);
    assert!(
        !rt.workload_dir(spec.owner.workspace, "clash")
            .unwrap()
            .exists()
    );
    assert!(rt.list(&Default::default()).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_free_port_is_used_and_reported() {
    let fx = Fixture::new();
    let rt = fx.rt();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut spec = http_spec("fixed", &fx.scratch("www"));
    spec.publish = Some(PortBinding {
        host_port: Some(port),
        ..PortBinding::loopback()
    });
    let status = rt.start(&spec).await.unwrap();
    assert_eq!(status.endpoint.map(|e| e.port()), Some(port));
    wait_healthy(status.endpoint.unwrap()).await;
    rt.remove(&id("fixed")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_the_runtime_cannot_run_are_refused_before_anything_is_created() {
    let fx = Fixture::new();
    let rt = fx.rt();
    let mut no_command = spec("no-cmd", &[]);
    no_command.command = None;
    assert_eq!(
        failure(rt.start(&no_command).await),
        RuntimeFailure::Unsupported
    );
    for bad in ["../x", "a/b", ".hidden", ""] {
        let err = rt.start(&spec(bad, &[BUSYBOX, "true"])).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{bad:?}: {err}");
    }
    let missing = rt
        .start(&spec("missing", &["/nonexistent/program"]))
        .await
        .unwrap_err();
    assert_eq!(missing.runtime_failure(), Some(RuntimeFailure::StartFailed));
    assert!(
        missing.to_string().contains("/nonexistent/program"),
        "{missing}"
    );
    assert_eq!(rt.inspect(&id("missing")).await.unwrap(), None);
    let left: Vec<_> = std::fs::read_dir(fx.state_dir().join("workloads"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!fx.dir.path().join("x").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_that_exits_at_once_reports_its_exit_code() {
    let fx = Fixture::new();
    let rt = fx.rt();
    rt.start(&sh("quick", "echo bye; exit 3")).await.unwrap();
    let status = wait_status(rt, "quick", "exit code", |s| exit_code(s).is_some()).await;
    assert_eq!(exit_code(&status), Some(3));
    assert_eq!(status.restart_count, 0);
    assert_eq!(history_text(rt, "quick").await, ["bye"]);
    rt.remove(&id("quick")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_runtime_on_the_same_state_dir_adopts_and_controls_running_workloads() {
    let mut fx = Fixture::new();
    let spec = http_spec("adopted", &fx.scratch("www"));
    let endpoint = fx.rt().start(&spec).await.unwrap().endpoint.unwrap();
    wait_healthy(endpoint).await;

    // Only one instance may supervise a state directory.
    let second = ProcessRuntime::open(fx.state_dir()).unwrap_err();
    assert_eq!(
        second.runtime_failure(),
        Some(RuntimeFailure::EngineUnavailable)
    );

    fx.reopen();
    let rt = fx.rt();
    let found = rt.list(&for_service(&spec.owner)).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].name, "adopted");
    assert_eq!(found[0].owner, spec.owner);
    assert_eq!(found[0].endpoint, Some(endpoint));
    assert!(matches!(found[0].state, WorkloadState::Running { .. }));
    assert!(rt.list(&for_service(&owner())).await.unwrap().is_empty());
    wait_healthy(endpoint).await;
    assert!(
        history_text(rt, "adopted")
            .await
            .contains(&format!("listening on {}", endpoint.port()))
    );
    // The adopted process's environment comes back from the kernel.
    let out = rt
        .exec(
            &id("adopted"),
            &exec(&[BUSYBOX, "sh", "-c", "echo \"$GREETING\""]),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, "hello-secret\n", "{out:?}");

    rt.stop(&id("adopted"), Duration::from_secs(5))
        .await
        .unwrap();
    let stopped = rt.inspect(&id("adopted")).await.unwrap().unwrap();
    assert!(
        matches!(stopped.state, WorkloadState::Exited { code: None, .. }),
        "not our child, so its exit code is unknown: {stopped:?}"
    );
    assert!(http_get(endpoint, "/health").await.is_err());
    rt.remove(&id("adopted")).await.unwrap();
    assert_eq!(rt.inspect(&id("adopted")).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_pid_with_another_start_time_is_reported_exited_and_never_signalled() {
    let mut fx = Fixture::new();
    fx.rt().start(&sh("reused", "exit 0")).await.unwrap();
    wait_status(fx.rt(), "reused", "exit", is_exited).await;
    fx.runtime = None;

    // An unrelated process now holds a pid the record claims, as after pid reuse.
    let mut decoy = std::process::Command::new(BUSYBOX)
        .args(["sleep", "300"])
        .spawn()
        .unwrap();
    let meta_path = fx.state_dir().join("workloads/reused/meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["leader"]["pid"] = decoy.id().into();
    // Start times are in clock ticks (10 ms): record one no live process can have.
    meta["leader"]["start_ticks"] = 1.into();
    meta["phase"] = "running".into();
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();

    fx.reopen();
    let rt = fx.rt();
    let status = rt.inspect(&id("reused")).await.unwrap().unwrap();
    assert!(
        matches!(status.state, WorkloadState::Exited { code: None, .. }),
        "{status:?}"
    );
    rt.stop(&id("reused"), Duration::ZERO).await.unwrap();
    rt.remove(&id("reused")).await.unwrap();
    assert!(
        decoy.try_wait().unwrap().is_none(),
        "the unrelated process was signalled"
    );
    decoy.kill().unwrap();
    decoy.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_a_process_ignoring_sigterm_and_its_children_after_the_grace_period() {
    let fx = Fixture::new();
    let rt = fx.rt();
    rt.start(&sh(
        "stubborn",
        "trap '' TERM; /bin/busybox sleep 300 & echo $! > child.pid; wait",
    ))
    .await
    .unwrap();
    let child = read_pid_file(&work_dir(rt, "stubborn").await.join("child.pid")).await;
    assert!(pid_alive(child));

    let grace = Duration::from_secs(1);
    let started = Instant::now();
    rt.stop(&id("stubborn"), grace).await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= grace,
        "SIGTERM is ignored, so stop waits the grace out: {took:?}"
    );
    assert!(took < grace + Duration::from_secs(3), "{took:?}");
    assert!(!pid_alive(child), "the workload's child survived stop");
    let status = rt.inspect(&id("stubborn")).await.unwrap().unwrap();
    assert_eq!(exit_code(&status), Some(137), "{status:?}");
    rt.remove(&id("stubborn")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_within_the_grace_period_lets_the_process_exit_cleanly() {
    let fx = Fixture::new();
    let rt = fx.rt();
    rt.start(&sh(
        "polite",
        "trap 'echo bye; exit 0' TERM; echo up; while :; do /bin/busybox sleep 0.1; done",
    ))
    .await
    .unwrap();
    eventually("startup line", Duration::from_secs(10), || async {
        history_text(rt, "polite")
            .await
            .contains(&"up".to_owned())
            .then_some(())
    })
    .await;
    let started = Instant::now();
    rt.stop(&id("polite"), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let status = rt.inspect(&id("polite")).await.unwrap().unwrap();
    assert_eq!(exit_code(&status), Some(0), "{status:?}");
    assert!(history_text(rt, "polite").await.contains(&"bye".to_owned()));
    rt.remove(&id("polite")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_data_survives_remove_and_the_replacement_reads_it() {
    let fx = Fixture::new();
    let rt = fx.rt();
    rt.ensure_volume("app-data", &Default::default())
        .await
        .unwrap();
    rt.ensure_volume("app-data", &Default::default())
        .await
        .unwrap();
    let volume = clank_core::model::VolumeMount {
        name: "app-data".into(),
        mount_path: "/data".into(),
        shared: false,
    };
    let key = volume_env_key("app-data");
    assert_eq!(key, "CLANK_VOLUME_APP_DATA");

    let mut writer = sh(
        "writer",
        "echo persisted > \"$DATA_DIR/file\" && test \"$DATA_DIR\" = \"$CLANK_VOLUME_APP_DATA\"",
    );
    writer.volumes = vec![volume.clone()];
    let workspace = writer.owner.workspace;
    rt.start(&writer).await.unwrap();
    let done = wait_status(rt, "writer", "exit", |s| exit_code(s).is_some()).await;
    assert_eq!(
        exit_code(&done),
        Some(0),
        "{:?}",
        history_text(rt, "writer").await
    );
    rt.remove(&id("writer")).await.unwrap();
    let dir = rt.volume_dir(workspace, "app-data").unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("file")).unwrap(),
        "persisted\n"
    );

    let mut reader = sh("reader", "cat \"$CLANK_VOLUME_APP_DATA/file\"");
    reader.volumes = vec![volume];
    reader.owner.workspace = workspace;
    rt.start(&reader).await.unwrap();
    wait_status(rt, "reader", "exit", |s| exit_code(s).is_some()).await;
    assert_eq!(history_text(rt, "reader").await, ["persisted"]);

    let in_use = rt.remove_volume("app-data").await.unwrap_err();
    assert_eq!(in_use.kind(), ErrorKind::Conflict, "{in_use}");
    rt.remove(&id("reader")).await.unwrap();
    assert!(dir.join("file").exists());
    rt.remove_volume("app-data").await.unwrap();
    assert!(!dir.exists());
    rt.remove_volume("app-data").await.unwrap();
    assert_eq!(
        rt.ensure_volume("../x", &Default::default())
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Invalid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_logs_yields_later_lines_and_ends_when_the_workload_stops() {
    let fx = Fixture::new();
    let rt = fx.rt();
    rt.start(&sh(
        "chatty",
        "echo first; /bin/busybox sleep 1; echo second; exec /bin/busybox sleep 300",
    ))
    .await
    .unwrap();
    let mut stream = rt
        .logs(
            &id("chatty"),
            LogOptions {
                follow: true,
                tail: None,
            },
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = stream.next().await {
            let line = line.unwrap();
            assert!(line.at.is_some(), "{line:?}");
            seen.push(line.line);
            if seen.last().is_some_and(|l| l == "second") {
                break;
            }
        }
    })
    .await
    .expect("the later line arrives");
    assert_eq!(seen, ["first", "second"]);

    rt.stop(&id("chatty"), Duration::ZERO).await.unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the stream ends once the workload stopped");
    assert!(rest.is_none(), "{rest:?}");
    rt.remove(&id("chatty")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_returns_only_the_last_lines_in_order() {
    let fx = Fixture::new();
    let rt = fx.rt();
    rt.start(&sh(
        "counter",
        "for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2",
    ))
    .await
    .unwrap();
    wait_status(rt, "counter", "exit", |s| exit_code(s).is_some()).await;
    let tail: Vec<_> = rt
        .logs(
            &id("counter"),
            LogOptions {
                follow: false,
                tail: Some(2),
            },
        )
        .await
        .unwrap()
        .map(|l| l.unwrap().line)
        .collect()
        .await;
    // stdout and stderr interleave by time: `oops` came last.
    assert_eq!(tail, ["line5", "oops"]);
    rt.remove(&id("counter")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_restarts_a_crashing_process_up_to_its_limit_and_counts_restarts() {
    let fx = Fixture::new();
    let rt = fx.rt();
    let mut spec = sh("crashy", "echo crash; exit 3");
    spec.restart = RestartPolicy::OnFailure { max_retries: 2 };
    rt.start(&spec).await.unwrap();
    let status = wait_status(rt, "crashy", "two restarts, then exit", |s| {
        is_exited(s) && s.restart_count == 2
    })
    .await;
    assert_eq!(exit_code(&status), Some(3));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = rt.inspect(&id("crashy")).await.unwrap().unwrap();
    assert_eq!(later.restart_count, 2, "no restart past the limit");
    assert_eq!(
        history_text(rt, "crashy").await,
        ["crash", "crash", "crash"]
    );
    rt.remove(&id("crashy")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unless_stopped_restarts_a_killed_process_but_not_a_stopped_one() {
    let fx = Fixture::new();
    let rt = fx.rt();
    let mut spec = sh(
        "phoenix",
        "echo $$ > leader.pid; exec /bin/busybox sleep 300",
    );
    spec.restart = RestartPolicy::UnlessStopped;
    rt.start(&spec).await.unwrap();
    let pid_file = work_dir(rt, "phoenix").await.join("leader.pid");
    let first = read_pid_file(&pid_file).await;
    std::fs::remove_file(&pid_file).unwrap();
    let killed = std::process::Command::new(BUSYBOX)
        .args(["kill", "-9", &first.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let second = read_pid_file(&pid_file).await;
    assert_ne!(first, second);
    let status = wait_status(rt, "phoenix", "restarted", |s| {
        s.restart_count == 1 && matches!(s.state, WorkloadState::Running { .. })
    })
    .await;
    assert_eq!(status.restart_count, 1);

    rt.stop(&id("phoenix"), Duration::from_secs(5))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stopped = rt.inspect(&id("phoenix")).await.unwrap().unwrap();
    assert!(
        is_exited(&stopped),
        "a stopped workload was restarted: {stopped:?}"
    );
    assert_eq!(stopped.restart_count, 1);
    assert!(!pid_alive(second));
    rt.remove(&id("phoenix")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_is_killed_at_its_timeout_and_refuses_a_tty_or_a_stopped_workload() {
    let fx = Fixture::new();
    let rt = fx.rt();
    rt.start(&spec("host", &[BUSYBOX, "sleep", "300"]))
        .await
        .unwrap();

    let started = Instant::now();
    let err = rt
        .exec(
            &id("host"),
            &ExecRequest {
                timeout: Duration::from_millis(300),
                ..exec(&[
                    BUSYBOX,
                    "sh",
                    "-c",
                    "echo $$ > exec.pid; /bin/busybox sleep 30",
                ])
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.runtime_failure(),
        Some(RuntimeFailure::Timeout),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let exec_pid = read_pid_file(&work_dir(rt, "host").await.join("exec.pid")).await;
    eventually("timed-out exec gone", Duration::from_secs(5), || async {
        (!pid_alive(exec_pid)).then_some(())
    })
    .await;

    let tty = ExecRequest {
        tty: true,
        ..exec(&[BUSYBOX, "true"])
    };
    assert_eq!(
        failure(rt.exec(&id("host"), &tty).await),
        RuntimeFailure::Unsupported
    );
    let missing = rt
        .exec(&id("host"), &exec(&["/nonexistent/tool"]))
        .await
        .unwrap();
    assert_eq!(missing.exit_code, Some(127));
    let failing = rt
        .exec(
            &id("host"),
            &exec(&[BUSYBOX, "sh", "-c", "echo no >&2; exit 4"]),
        )
        .await
        .unwrap();
    assert_eq!(
        (failing.exit_code, failing.stderr.as_str()),
        (Some(4), "no\n")
    );

    rt.stop(&id("host"), Duration::ZERO).await.unwrap();
    let err = rt
        .exec(&id("host"), &exec(&[BUSYBOX, "true"]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    rt.remove(&id("host")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_measure_a_busy_workload_and_read_zero_once_stopped() {
    let fx = Fixture::new();
    let rt = fx.rt();
    rt.start(&sh("busy", "while :; do :; done")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = rt.stats(&id("busy")).await.unwrap();
    assert!(stats.memory_bytes > 0, "{stats:?}");
    assert!(stats.cpu_percent > 5.0, "a busy loop uses CPU: {stats:?}");
    assert_eq!(stats.memory_limit_bytes, None);
    rt.stop(&id("busy"), Duration::ZERO).await.unwrap();
    let stopped = rt.stats(&id("busy")).await.unwrap();
    assert_eq!((stopped.cpu_percent, stopped.memory_bytes), (0.0, 0));
    rt.remove(&id("busy")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_admit_shared_networking_and_network_calls_are_no_ops() {
    let fx = Fixture::new();
    let rt = fx.rt();
    assert_eq!(rt.name(), "process");
    let caps = rt.capabilities();
    assert!(!caps.isolated_networks && !caps.resource_limits && !caps.images);
    rt.ensure_network("clank-project-shop", &Default::default())
        .await
        .unwrap();
    rt.remove_network("clank-project-shop").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_written_before_a_runtime_restart_keep_their_times() {
    let mut fx = Fixture::new();
    fx.rt()
        .start(&sh("history", "echo early; exec /bin/busybox sleep 300"))
        .await
        .unwrap();
    eventually("early line stamped", Duration::from_secs(10), || async {
        history(fx.rt(), "history")
            .await
            .into_iter()
            .find(|l| l.line == "early" && l.at.is_some())
    })
    .await;
    fx.reopen();
    let lines = history(fx.rt(), "history").await;
    assert_eq!(lines.len(), 1);
    assert!(lines[0].at.is_some(), "{lines:?}");
    fx.rt().remove(&id("history")).await.unwrap();
}
