//! The `Runtime` contract's properties: each takes a [`Harness`] and asserts one behaviour
//! every runtime must have; [`runtime_contract_tests!`](crate::runtime_contract_tests) turns
//! them into named tests per backend.

use super::*;

/// The whole life of a workload: start → running with an endpoint → `/health` 200 → its start
/// line in the logs → exec → stop (twice) → exited → remove (twice) → gone.
pub async fn lifecycle_start_serve_log_exec_stop_remove<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let spec = h.spec(&h.app("life"));
    let started = start(&*rt, &spec).await;
    assert_eq!(started.name, spec.name);
    assert_eq!(started.owner, spec.owner);

    let running = wait_running(&*rt, &started.id).await;
    assert_eq!(
        running.id, started.id,
        "inspect reports the id start returned"
    );
    let endpoint = running
        .endpoint
        .unwrap_or_else(|| panic!("a workload with a published port reports its endpoint"));
    let health = wait_http(endpoint, "/health", 200).await;
    assert_eq!(health.body.trim(), "ok");

    let line = wait_log(&*rt, &started.id, "testapp listening").await;
    assert_eq!(
        line.stream,
        LogStream::Stdout,
        "the start line is on stdout"
    );

    let out = exec(&*rt, &started.id, &[BUSYBOX, "echo", "hello from exec"]).await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "hello from exec\n");

    rt.stop(&started.id, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("stop failed: {e}"));
    let stopped = inspect(&*rt, &started.id)
        .await
        .unwrap_or_else(|| panic!("a stopped workload is still there until removed"));
    match stopped.state {
        WorkloadState::Exited {
            code, oom_killed, ..
        } => {
            assert_eq!(code, Some(0), "the app exits 0 on SIGTERM");
            assert!(!oom_killed);
        }
        other => panic!("after stop the workload should be exited, not {other:?}"),
    }
    rt.stop(&started.id, Duration::from_secs(1))
        .await
        .unwrap_or_else(|e| panic!("stopping a stopped workload must be Ok: {e}"));

    rt.remove(&started.id)
        .await
        .unwrap_or_else(|e| panic!("remove failed: {e}"));
    assert_eq!(inspect(&*rt, &started.id).await, None, "removed means gone");
    rt.remove(&started.id)
        .await
        .unwrap_or_else(|e| panic!("removing a removed workload must be Ok: {e}"));
}

/// An id nobody started: `inspect` is `None` and `remove` Ok (both idempotent); `stop`, `logs`,
/// `exec` and `stats` fail with `NotFound`.
pub async fn unknown_workloads_are_absent_or_not_found<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let id = WorkloadId(h.name("never-started"));
    assert_eq!(inspect(&*rt, &id).await, None);
    rt.remove(&id)
        .await
        .unwrap_or_else(|e| panic!("removing an unknown workload must be Ok: {e}"));
    assert_failure(
        rt.stop(&id, Duration::from_secs(1)).await,
        RuntimeFailure::NotFound,
        "stop",
    );
    assert_failure(
        rt.exec(&id, &exec_request(&[BUSYBOX, "true"])).await,
        RuntimeFailure::NotFound,
        "exec",
    );
    assert_failure(rt.stats(&id).await, RuntimeFailure::NotFound, "stats");
    assert_failure(
        rt.logs(&id, LogOptions::default()).await.map(|_| ()),
        RuntimeFailure::NotFound,
        "logs",
    );
}

/// Starting the same spec again (also concurrently) returns the same workload; there is only
/// ever one.
pub async fn start_is_idempotent_by_name<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let spec = h.spec(&h.app("idem"));
    let first = start(&*rt, &spec).await;
    let again = start(&*rt, &spec).await;
    assert_eq!(
        again.id, first.id,
        "a second start returns the same workload"
    );

    let other = h.spec(&h.app("idem-race"));
    let (a, b) = tokio::join!(rt.start(&other), rt.start(&other));
    let (a, b) = (
        a.unwrap_or_else(|e| panic!("concurrent start failed: {e}")),
        b.unwrap_or_else(|e| panic!("concurrent start failed: {e}")),
    );
    assert_eq!(
        a.id, b.id,
        "two concurrent starts of one spec make one workload"
    );

    for s in [&spec, &other] {
        let listed = list(&*rt, &service_filter(&s.owner)).await;
        assert_eq!(
            listed.len(),
            1,
            "exactly one workload for {}: {listed:?}",
            s.name
        );
    }
}

/// `prepare` (twice: idempotent) readies a spec without starting anything — a stop-first
/// cutover relies on it to fail before it stops the running version — and `start` follows.
pub async fn prepare_starts_nothing_and_start_follows<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let spec = h.spec(&h.app("prep"));
    for _ in 0..2 {
        rt.prepare(&spec)
            .await
            .unwrap_or_else(|e| panic!("prepare failed: {e}"));
    }
    let listed = list(&*rt, &service_filter(&spec.owner)).await;
    assert!(listed.is_empty(), "prepare started something: {listed:?}");
    let started = start(&*rt, &spec).await;
    assert_eq!(started.name, spec.name);
}

/// A name taken by a workload of another owner is a `NameConflict`, and the existing workload
/// is left alone.
pub async fn start_with_a_taken_name_and_another_owner_is_a_name_conflict<F: Fixture>(
    h: Arc<Harness<F>>,
) {
    let rt = h.runtime();
    let app = h.app("taken");
    let first = start(&*rt, &h.spec(&app)).await;
    let mut intruder = app.clone();
    intruder.owner = h.owner();
    assert_failure(
        rt.start(&h.spec(&intruder)).await.map(|_| ()),
        RuntimeFailure::NameConflict,
        "start under a taken name",
    );
    let still = inspect(&*rt, &first.id)
        .await
        .unwrap_or_else(|| panic!("the first workload must survive the conflict"));
    assert_eq!(still.owner, app.owner);
}

/// Data written to a volume by one workload is read by its replacement after the first is
/// removed (removing a workload never removes its volumes); `remove_volume` deletes it, or
/// answers `Unsupported` on a runtime that never deletes data.
pub async fn volume_data_survives_replacing_the_workload<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let volume = h.volume("data");
    let owner = h.owner();
    rt.ensure_volume(&volume, &h.project_labels(owner.project))
        .await
        .unwrap_or_else(|e| panic!("ensure_volume failed: {e}"));
    let token = format!("token-{}", h.run);

    let mut first = h.app("vol-1");
    first.owner = owner.clone();
    first.data_volume = Some(volume.clone());
    let a = start(&*rt, &h.spec(&first)).await;
    let a_endpoint = wait_endpoint(&*rt, &a.id).await;
    wait_http(a_endpoint, &format!("/data/write?{token}"), 200).await;
    rt.remove(&a.id)
        .await
        .unwrap_or_else(|e| panic!("remove failed: {e}"));

    let mut second = first.clone();
    second.name = h.name("vol-2");
    second.owner.deployment = DeploymentId::new();
    let b = start(&*rt, &h.spec(&second)).await;
    let read = wait_http(wait_endpoint(&*rt, &b.id).await, "/data", 200).await;
    assert_eq!(read.body.trim(), token, "the replacement reads the data");
    rt.remove(&b.id)
        .await
        .unwrap_or_else(|e| panic!("remove failed: {e}"));

    match rt.remove_volume(&volume).await {
        Ok(()) => {}
        Err(e) if e.runtime_failure() == Some(RuntimeFailure::Unsupported) => {
            eprintln!(
                "note: {} keeps volumes (remove_volume: {e}); data survival proven",
                rt.name()
            );
            return;
        }
        Err(e) => panic!("remove_volume failed: {e}"),
    }
    rt.ensure_volume(&volume, &h.project_labels(owner.project))
        .await
        .unwrap_or_else(|e| panic!("ensure_volume failed: {e}"));
    let mut third = first.clone();
    third.name = h.name("vol-3");
    let c = start(&*rt, &h.spec(&third)).await;
    let read = wait_http(wait_endpoint(&*rt, &c.id).await, "/data", 404).await;
    assert_eq!(
        read.body.trim(),
        "no data",
        "remove_volume deleted the data"
    );
}

/// `copy_volume` puts the source's data into a new volume that then lives on its own (writes
/// to either never reach the other); it refuses a target that exists, a source that does not,
/// and another owner's volume (as absent). A runtime that cannot copy answers `Unsupported`.
pub async fn a_volume_copy_carries_the_data_into_a_new_volume_only<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let (source, copy) = (h.volume("copy-src"), h.volume("copy-dst"));
    let owner = h.owner();
    let labels = h.project_labels(owner.project);
    rt.ensure_volume(&source, &labels)
        .await
        .unwrap_or_else(|e| panic!("ensure_volume failed: {e}"));
    let token = format!("token-{}", h.run);
    let mut app = h.app("copy-1");
    app.owner = owner.clone();
    app.data_volume = Some(source.clone());
    let writer = start(&*rt, &h.spec(&app)).await;
    wait_http(
        wait_endpoint(&*rt, &writer.id).await,
        &format!("/data/write?{token}"),
        200,
    )
    .await;
    rt.remove(&writer.id)
        .await
        .unwrap_or_else(|e| panic!("remove failed: {e}"));

    let copied = match rt.copy_volume(&source, &copy, &labels).await {
        Ok(bytes) => bytes,
        Err(e) if e.runtime_failure() == Some(RuntimeFailure::Unsupported) => {
            eprintln!("note: {} cannot copy volumes: {e}", rt.name());
            return;
        }
        Err(e) => panic!("copy_volume failed: {e}"),
    };
    assert!(copied >= token.len() as u64, "{copied} bytes copied");

    // The copy reads the data; a write to it leaves the source as it was.
    let mut reader = app.clone();
    reader.name = h.name("copy-2");
    reader.owner.deployment = DeploymentId::new();
    reader.data_volume = Some(copy.clone());
    let b = start(&*rt, &h.spec(&reader)).await;
    let b_endpoint = wait_endpoint(&*rt, &b.id).await;
    assert_eq!(wait_http(b_endpoint, "/data", 200).await.body.trim(), token);
    wait_http(b_endpoint, "/data/write?changed-in-the-copy", 200).await;
    rt.remove(&b.id)
        .await
        .unwrap_or_else(|e| panic!("remove failed: {e}"));
    let mut again = app.clone();
    again.name = h.name("copy-3");
    again.owner.deployment = DeploymentId::new();
    let a = start(&*rt, &h.spec(&again)).await;
    let read = wait_http(wait_endpoint(&*rt, &a.id).await, "/data", 200).await;
    assert_eq!(read.body.trim(), token, "the source keeps its own data");
    rt.remove(&a.id)
        .await
        .unwrap_or_else(|e| panic!("remove failed: {e}"));

    assert_failure(
        rt.copy_volume(&source, &copy, &labels).await,
        RuntimeFailure::NameConflict,
        "a copy into an existing volume",
    );
    let never = h.volume("copy-never");
    assert_failure(
        rt.copy_volume(&h.name("copy-missing"), &never, &labels)
            .await,
        RuntimeFailure::NotFound,
        "a copy of a missing volume",
    );
    let stranger = Owner::labels_for_project(WorkspaceId::new(), ProjectId::new());
    assert_failure(
        rt.copy_volume(&source, &never, &stranger).await,
        RuntimeFailure::NotFound,
        "a copy of another owner's volume",
    );
    assert!(
        !rt.volume_belongs(&never, &labels).await.unwrap_or(false),
        "a refused copy leaves no target behind"
    );
}

/// `list` with a filter returns exactly the workloads whose owner matches, by workspace,
/// project, service and deployment.
pub async fn list_by_owner_returns_exactly_the_matching_workloads<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let base = h.owner();
    let d1_r0 = base.clone();
    let d1_r1 = Owner {
        replica: 1,
        ..base.clone()
    };
    let d2 = Owner {
        deployment: DeploymentId::new(),
        ..base.clone()
    };
    let other_service = Owner {
        service: ServiceId::new(),
        deployment: DeploymentId::new(),
        ..base.clone()
    };
    let owners = [
        ("d1-r0", &d1_r0),
        ("d1-r1", &d1_r1),
        ("d2", &d2),
        ("svc2", &other_service),
    ];
    for (suffix, owner) in owners {
        let mut app = h.app(suffix);
        app.owner = owner.clone();
        app.command = Some(sleep_forever());
        start(&*rt, &h.spec(&app)).await;
    }
    let names =
        |suffixes: &[&str]| -> BTreeSet<String> { suffixes.iter().map(|s| h.name(s)).collect() };
    let cases = [
        (
            OwnerFilter {
                workspace: Some(h.workspace),
                ..OwnerFilter::default()
            },
            names(&["d1-r0", "d1-r1", "d2", "svc2"]),
        ),
        (
            OwnerFilter {
                project: Some(base.project),
                ..OwnerFilter::default()
            },
            names(&["d1-r0", "d1-r1", "d2", "svc2"]),
        ),
        (service_filter(&base), names(&["d1-r0", "d1-r1", "d2"])),
        (
            OwnerFilter {
                deployment: Some(base.deployment),
                ..OwnerFilter::default()
            },
            names(&["d1-r0", "d1-r1"]),
        ),
        (service_filter(&other_service), names(&["svc2"])),
        (
            OwnerFilter {
                workspace: Some(h.workspace),
                project: Some(ProjectId::new()),
                ..OwnerFilter::default()
            },
            names(&[]),
        ),
    ];
    for (filter, want) in cases {
        let listed = list(&*rt, &filter).await;
        let got: BTreeSet<String> = listed.iter().map(|w| w.name.clone()).collect();
        assert_eq!(got, want, "list({filter:?})");
        for w in &listed {
            assert!(filter.matches(&w.owner), "{w:?} does not match {filter:?}");
        }
    }
}

/// Drop the runtime, make a new one: it lists what the old one started and controls it.
pub async fn a_new_runtime_adopts_and_controls_workloads_of_the_old_one<F: Fixture>(
    h: Arc<Harness<F>>,
) {
    let owner = h.owner();
    let mut ids = BTreeSet::new();
    {
        let old = h.runtime();
        for replica in 0..2 {
            let mut app = h.app(&format!("adopt-{replica}"));
            app.owner = Owner {
                replica,
                ..owner.clone()
            };
            ids.insert(start(&*old, &h.spec(&app)).await.id);
        }
    }
    let rt = h.reconnect().await;
    let listed = list(&*rt, &service_filter(&owner)).await;
    let found: BTreeSet<WorkloadId> = listed.iter().map(|w| w.id.clone()).collect();
    assert_eq!(found, ids, "the new runtime lists the old one's workloads");

    let first = listed
        .iter()
        .find(|w| w.owner.replica == 0)
        .unwrap_or_else(|| panic!("replica 0 is listed"));
    let endpoint = wait_endpoint(&*rt, &first.id).await;
    wait_http(endpoint, "/health", 200).await;
    rt.stop(&first.id, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("the new runtime cannot stop an adopted workload: {e}"));
    let stopped = inspect(&*rt, &first.id).await;
    assert!(
        matches!(
            stopped,
            Some(WorkloadStatus {
                state: WorkloadState::Exited { .. },
                ..
            })
        ),
        "adopted workload stopped: {stopped:?}"
    );
    for id in &ids {
        rt.remove(id)
            .await
            .unwrap_or_else(|e| panic!("the new runtime cannot remove an adopted workload: {e}"));
    }
    assert!(list(&*rt, &service_filter(&owner)).await.is_empty());
}

/// A follow stream opened with no history yields lines the workload writes afterwards, on the
/// stream they were written to.
pub async fn logs_follow_yields_lines_written_after_the_stream_opened<F: Fixture>(
    h: Arc<Harness<F>>,
) {
    let rt = h.runtime();
    let w = start(&*rt, &h.spec(&h.app("follow"))).await;
    let endpoint = wait_endpoint(&*rt, &w.id).await;
    wait_http(endpoint, "/health", 200).await;
    wait_log(&*rt, &w.id, "testapp listening").await;

    let mut stream = rt
        .logs(
            &w.id,
            LogOptions {
                follow: true,
                tail: Some(0),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("logs(follow) failed: {e}"));
    let out_token = format!("out{}", h.run);
    let err_token = format!("err{}", h.run);
    wait_http(endpoint, &format!("/log?{out_token}"), 200).await;
    wait_http(endpoint, &format!("/err?{err_token}"), 200).await;

    let want_out = format!("testapp log {out_token}");
    let want_err = format!("testapp err {err_token}");
    let mut seen_out = None;
    let mut seen_err = None;
    let mut history = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen_out.is_none() || seen_err.is_none() {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        let line = match next {
            Ok(Some(Ok(line))) => line,
            Ok(Some(Err(e))) => panic!("the follow stream failed: {e}"),
            Ok(None) => panic!("the follow stream ended early; saw {history:#?}"),
            Err(_) => panic!("the follow stream did not yield the new lines; saw {history:#?}"),
        };
        assert!(
            !line.line.contains("testapp listening"),
            "tail 0 must not replay history: {line:?}"
        );
        assert!(
            !line.line.ends_with('\n'),
            "lines come without their newline"
        );
        if line.line == want_out {
            seen_out = Some(line.stream);
        } else if line.line == want_err {
            seen_err = Some(line.stream);
        }
        history.push(line);
    }
    assert_eq!(seen_out, Some(LogStream::Stdout));
    assert_eq!(seen_err, Some(LogStream::Stderr));
}

/// `tail: Some(n)` without follow returns the last `n` lines and ends.
pub async fn logs_tail_returns_only_the_last_lines<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let w = start(&*rt, &h.spec(&h.app("tail"))).await;
    let endpoint = wait_endpoint(&*rt, &w.id).await;
    for i in 1..=5 {
        wait_http(endpoint, &format!("/log?line{i}"), 200).await;
    }
    let last = "testapp request GET /log?line5 -> 200 OK";
    wait_log(&*rt, &w.id, last).await;
    let lines = logs(
        &*rt,
        &w.id,
        LogOptions {
            follow: false,
            tail: Some(2),
        },
    )
    .await;
    let text: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(text, ["testapp log line5", last], "tail 2");
    let all = logs(&*rt, &w.id, LogOptions::default()).await;
    assert!(all.len() > 10, "no tail means the whole history: {all:#?}");
    assert!(
        all.iter().any(|l| l.line == "testapp log line1"),
        "{all:#?}"
    );
}

/// A command that exits at once is reported as exited with its exit code.
pub async fn a_command_that_exits_at_once_shows_exited_with_its_code<F: Fixture>(
    h: Arc<Harness<F>>,
) {
    let rt = h.runtime();
    let mut app = h.app("exits");
    app.command = Some(argv(&[BUSYBOX, "sh", "-c", "echo bye; exit 3"]));
    let mut spec = h.spec(&app);
    spec.restart = RestartPolicy::Never;
    let w = start(&*rt, &spec).await;
    let exited = wait_state(&*rt, &w.id, "exited", |s| {
        matches!(s, WorkloadState::Exited { .. })
    })
    .await;
    match exited.state {
        WorkloadState::Exited {
            code, oom_killed, ..
        } => {
            assert_eq!(code, Some(3));
            assert!(!oom_killed);
        }
        other => panic!("not exited: {other:?}"),
    }
    wait_log(&*rt, &w.id, "bye").await;
}

/// `stop` on a process that ignores SIGTERM kills it once the grace period is over.
pub async fn stop_kills_a_workload_that_ignores_sigterm_after_the_grace_period<F: Fixture>(
    h: Arc<Harness<F>>,
) {
    let rt = h.runtime();
    let mut app = h.app("stubborn");
    app.command = Some(argv(&[
        BUSYBOX,
        "sh",
        "-c",
        "trap '' TERM; echo ready; while :; do /bin/busybox sleep 1; done",
    ]));
    let w = start(&*rt, &h.spec(&app)).await;
    wait_log(&*rt, &w.id, "ready").await;
    let grace = Duration::from_secs(2);
    let began = tokio::time::Instant::now();
    rt.stop(&w.id, grace)
        .await
        .unwrap_or_else(|e| panic!("stop failed: {e}"));
    let took = began.elapsed();
    assert!(
        took >= grace.mul_f64(0.75),
        "stop returned after {took:?}, before the {grace:?} grace period: was SIGTERM ignored?"
    );
    assert!(
        took <= grace + Duration::from_secs(10),
        "stop took {took:?} with a grace of {grace:?}"
    );
    let state = inspect(&*rt, &w.id).await.map(|s| s.state);
    assert!(
        matches!(state, Some(WorkloadState::Exited { .. })),
        "killed workload is exited: {state:?}"
    );
}

/// `exec` returns the exit code, stdout and stderr (each capped at `EXEC_OUTPUT_MAX`); refuses
/// a TTY with `Unsupported`; and fails with `Timeout` when the command outlives its timeout.
pub async fn exec_reports_exit_code_and_both_streams_and_honours_its_timeout<F: Fixture>(
    h: Arc<Harness<F>>,
) {
    let rt = h.runtime();
    let w = start(&*rt, &h.spec(&h.app("exec"))).await;
    wait_running(&*rt, &w.id).await;
    let out = exec(
        &*rt,
        &w.id,
        &[BUSYBOX, "sh", "-c", "echo out; echo err >&2; exit 4"],
    )
    .await;
    assert_eq!(out.exit_code, Some(4), "{out:?}");
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");

    // A 3 MiB answer on each stream is cut to the platform-wide cap, and the command still
    // runs to its end (its exit code arrives).
    let big = exec(
        &*rt,
        &w.id,
        &[
            BUSYBOX,
            "sh",
            "-c",
            "/bin/busybox head -c 3145728 /dev/zero; /bin/busybox head -c 3145728 /dev/zero >&2; exit 3",
        ],
    )
    .await;
    assert_eq!(big.exit_code, Some(3));
    let cap = clank_core::runtime::EXEC_OUTPUT_MAX + clank_core::runtime::EXEC_TRUNCATED.len();
    assert_eq!(
        big.stdout.len(),
        cap,
        "stdout kept {} bytes",
        big.stdout.len()
    );
    assert_eq!(
        big.stderr.len(),
        cap,
        "stderr kept {} bytes",
        big.stderr.len()
    );
    assert!(big.stdout.ends_with("[output truncated]\n"));

    let mut tty = exec_request(&[BUSYBOX, "sh"]);
    tty.tty = true;
    assert_failure(
        rt.exec(&w.id, &tty).await,
        RuntimeFailure::Unsupported,
        "exec with a TTY",
    );

    let mut slow = exec_request(&[BUSYBOX, "sleep", "30"]);
    slow.timeout = Duration::from_secs(1);
    let began = tokio::time::Instant::now();
    assert_failure(
        rt.exec(&w.id, &slow).await,
        RuntimeFailure::Timeout,
        "exec past its timeout",
    );
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "the timeout was not honoured"
    );
}

/// Plain values and decrypted secrets reach the workload's environment unchanged.
pub async fn env_values_and_secrets_reach_the_workload<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let mut app = h.app("env");
    app.env = vec![
        (
            "GREETING".to_owned(),
            EnvValue::Plain("hello-world".to_owned()),
        ),
        (
            "API_TOKEN".to_owned(),
            EnvValue::Secret(SecretString::new("s3cr3t-value")),
        ),
    ];
    let w = start(&*rt, &h.spec(&app)).await;
    let endpoint = wait_endpoint(&*rt, &w.id).await;
    assert_eq!(
        wait_http(endpoint, "/env?GREETING", 200).await.body.trim(),
        "hello-world"
    );
    assert_eq!(
        wait_http(endpoint, "/env?API_TOKEN", 200).await.body.trim(),
        "s3cr3t-value"
    );
}

/// `HEALTH=fail` starts unhealthy; `touch health.ok` / `rm health.ok` run through `exec` in the
/// working directory flip it. (This is how later tests fail a deployment's health on demand.)
pub async fn health_follows_the_health_env_and_the_state_file<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let mut app = h.app("health");
    app.env = vec![("HEALTH".to_owned(), EnvValue::Plain("fail".to_owned()))];
    let w = start(&*rt, &h.spec(&app)).await;
    let endpoint = wait_endpoint(&*rt, &w.id).await;
    wait_http(endpoint, "/health", 503).await;
    let out = exec(&*rt, &w.id, &[BUSYBOX, "touch", "health.ok"]).await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    wait_http(endpoint, "/health", 200).await;
    let out = exec(&*rt, &w.id, &[BUSYBOX, "rm", "health.ok"]).await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    wait_http(endpoint, "/health", 503).await;
}

/// `stats` of a running workload reports the memory it uses and a sane CPU figure.
pub async fn stats_report_memory_in_use<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let w = start(&*rt, &h.spec(&h.app("stats"))).await;
    wait_http(wait_endpoint(&*rt, &w.id).await, "/health", 200).await;
    let stats = rt
        .stats(&w.id)
        .await
        .unwrap_or_else(|e| panic!("stats failed: {e}"));
    assert!(stats.memory_bytes > 0, "{stats:?}");
    assert!(
        stats.cpu_percent.is_finite() && stats.cpu_percent >= 0.0,
        "{stats:?}"
    );
    if let Some(limit) = stats.memory_limit_bytes {
        assert!(limit >= stats.memory_bytes, "{stats:?}");
    }
}

/// `ensure_*` twice (and concurrently) and `remove_*` twice are all Ok (`remove_volume` may
/// instead answer `Unsupported` every time, on a runtime that never deletes data).
pub async fn networks_and_volumes_are_idempotent<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let labels = h.project_labels(ProjectId::new());
    let network = h.network("idem-net");
    let volume = h.volume("idem-vol");
    let ensures = (0..4).map(|_| rt.ensure_network(&network, &labels));
    for r in futures_util::future::join_all(ensures).await {
        r.unwrap_or_else(|e| panic!("concurrent ensure_network failed: {e}"));
    }
    rt.ensure_network(&network, &labels)
        .await
        .unwrap_or_else(|e| panic!("ensure_network again failed: {e}"));
    for _ in 0..2 {
        rt.remove_network(&network)
            .await
            .unwrap_or_else(|e| panic!("remove_network must be idempotent: {e}"));
    }
    for _ in 0..2 {
        rt.ensure_volume(&volume, &labels)
            .await
            .unwrap_or_else(|e| panic!("ensure_volume must be idempotent: {e}"));
    }
    for _ in 0..2 {
        match rt.remove_volume(&volume).await {
            Ok(()) => {}
            // A runtime that keeps data (a remote server's) says so, every time.
            Err(e) if e.runtime_failure() == Some(RuntimeFailure::Unsupported) => {
                eprintln!("note: {} keeps volumes: {e}", rt.name());
            }
            Err(e) => panic!("remove_volume must be idempotent: {e}"),
        }
    }
}

/// In one project's network, services reach each other by service name; a service in another
/// project can neither resolve nor reach them. Needs `isolated_networks`.
pub async fn services_in_one_project_reach_each_other_by_name_and_other_projects_cannot<
    F: Fixture,
>(
    h: Arc<Harness<F>>,
) {
    let rt = h.runtime();
    if !rt.capabilities().isolated_networks {
        eprintln!(
            "{}: no isolated networks; property not applicable",
            rt.name()
        );
        return;
    }
    let project_a = h.owner();
    let project_b = h.owner();
    let net_a = h.network("net-a");
    let net_b = h.network("net-b");
    rt.ensure_network(&net_a, &h.project_labels(project_a.project))
        .await
        .unwrap_or_else(|e| panic!("ensure_network failed: {e}"));
    rt.ensure_network(&net_b, &h.project_labels(project_b.project))
        .await
        .unwrap_or_else(|e| panic!("ensure_network failed: {e}"));

    let member = |suffix: &str, project: &Owner, network: &str, alias: &str| {
        let mut app = h.app(suffix);
        app.owner = Owner {
            service: ServiceId::new(),
            ..project.clone()
        };
        app.network = Some(NetworkAttachment {
            network: network.to_owned(),
            aliases: vec![alias.to_owned()],
        });
        app
    };
    let api_spec = h.spec(&member("api", &project_a, &net_a, "api"));
    let api = start(&*rt, &api_spec).await;
    let web = start(&*rt, &h.spec(&member("web", &project_a, &net_a, "web"))).await;
    let stranger = start(
        &*rt,
        &h.spec(&member("stranger", &project_b, &net_b, "web")),
    )
    .await;
    wait_http(wait_endpoint(&*rt, &api.id).await, "/health", 200).await;
    wait_running(&*rt, &web.id).await;
    wait_running(&*rt, &stranger.id).await;

    let port = api_spec
        .port
        .unwrap_or_else(|| panic!("the fixture's app spec has a port"));
    let url = format!("http://api:{port}/health");
    // busybox wget's own -T option crashes Debian's static build; `timeout` bounds it instead.
    let fetch = [
        BUSYBOX,
        "timeout",
        "10",
        BUSYBOX,
        "wget",
        "-q",
        "-O",
        "-",
        url.as_str(),
    ];
    let inside = exec(&*rt, &web.id, &fetch).await;
    assert_eq!(
        (inside.exit_code, inside.stdout.trim()),
        (Some(0), "ok"),
        "a service reaches its sibling by name: {inside:?}"
    );
    let outside = exec(&*rt, &stranger.id, &fetch).await;
    assert_ne!(
        outside.exit_code,
        Some(0),
        "a service of another project must not reach `api`: {outside:?}"
    );
}

/// A workload that allocates past its memory limit is killed and reported `oom_killed`.
/// Needs `resource_limits`.
pub async fn memory_limit_is_enforced_by_an_oom_kill<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    if !rt.capabilities().resource_limits {
        eprintln!("{}: no resource limits; property not applicable", rt.name());
        return;
    }
    let mut app = h.app("oom");
    // Doubling a string allocates without bound, in busybox alone.
    app.command = Some(argv(&[
        BUSYBOX,
        "awk",
        "BEGIN { s = \"x\"; while (1) s = s s }",
    ]));
    let mut spec = h.spec(&app);
    spec.memory_limit_mb = 16;
    spec.restart = RestartPolicy::Never;
    let w = start(&*rt, &spec).await;
    let exited = wait_state(&*rt, &w.id, "exited", |s| {
        matches!(s, WorkloadState::Exited { .. })
    })
    .await;
    assert!(
        matches!(
            exited.state,
            WorkloadState::Exited {
                oom_killed: true,
                ..
            }
        ),
        "a workload past its memory limit is OOM-killed: {exited:?}"
    );
}

// ---- helpers ---------------------------------------------------------------------------------

/// `exec_interactive` runs a shell on a terminal of the asked size that follows a resize,
/// echoes what is typed, and reports the shell's exit code once its output ends; a runtime
/// without terminals refuses with `Unsupported`, and a bad size is refused before anything
/// runs.
pub async fn an_interactive_exec_runs_on_a_resizable_terminal_and_reports_its_exit_code<
    F: Fixture,
>(
    h: Arc<Harness<F>>,
) {
    use clank_core::runtime::{TerminalInput, TerminalSize};
    use futures_util::StreamExt;
    let rt = h.runtime();
    let w = start(&*rt, &h.spec(&h.app("tty"))).await;
    wait_running(&*rt, &w.id).await;
    let shell = argv(&[BUSYBOX, "sh"]);
    let size = TerminalSize {
        rows: 40,
        cols: 100,
    };
    if !rt.capabilities().terminals {
        assert_failure(
            rt.exec_interactive(&w.id, &shell, size).await,
            RuntimeFailure::Unsupported,
            "an interactive exec on a runtime without terminals",
        );
        return;
    }
    let bad = rt
        .exec_interactive(&w.id, &shell, TerminalSize { rows: 0, cols: 80 })
        .await
        .expect_err("a terminal of 0 rows");
    assert_eq!(bad.field(), Some("size"), "{bad}");

    let mut session = rt
        .exec_interactive(&w.id, &shell, size)
        .await
        .unwrap_or_else(|e| panic!("an interactive shell in {}: {e}", rt.name()));
    let mut seen = String::new();
    let type_in = |text: &str| TerminalInput::Data(text.as_bytes().to_vec());
    session
        .input
        .send(type_in(&format!(
            "{BUSYBOX} stty size; echo tty-$((6*7))\n"
        )))
        .await
        .unwrap();
    read_until(&mut session, &mut seen, "tty-42").await;
    assert!(seen.contains("40 100"), "the asked size: {seen:?}");
    session
        .input
        .send(TerminalInput::Resize(TerminalSize { rows: 30, cols: 90 }))
        .await
        .unwrap();
    session
        .input
        .send(type_in(&format!("{BUSYBOX} stty size; exit 7\n")))
        .await
        .unwrap();
    read_until(&mut session, &mut seen, "30 90").await;
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(15), session.output.next())
        .await
        .expect("the output ends when the shell exits")
    {
        chunk.unwrap();
    }
    assert_eq!(session.exit_code.await.unwrap(), Some(7));
}

/// Read the terminal's output into `seen` until it shows `want` (15 s at most).
async fn read_until(
    session: &mut clank_core::runtime::TerminalSession,
    seen: &mut String,
    want: &str,
) {
    use futures_util::StreamExt;
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
