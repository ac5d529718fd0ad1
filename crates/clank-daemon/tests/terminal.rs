//! Interactive exec through the daemon's WebSocket (`…/services/{s}/terminal`), on the native
//! runtime's test app: a shell on a terminal of the client's size that follows a resize and
//! whose exit code is the session's last message; refused before the upgrade without Deploy,
//! for an unknown service, and past the token's stream limit; a bad first message is an error
//! naming the field.

mod common;

use std::time::Duration;

use clank_api::terminal::{TerminalControl, TerminalNotice, TerminalStart};
use clank_core::runtime::TerminalSize;
use clank_daemon::ApiLimits;
use clank_testkit::testapp;
use common::{Daemon, ENV};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open the terminal socket of `service` with `token`: the socket, or the HTTP status refusing.
async fn open(d: &Daemon, token: &str, service: &str) -> Result<Socket, u16> {
    let url = format!("ws://{}{ENV}/services/{service}/terminal", d.addr);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("the terminal socket: {e}"),
    }
}

async fn notice(socket: &mut Socket) -> TerminalNotice {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(15), socket.next())
            .await
            .expect("a notice within 15 s")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = m {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Read terminal bytes into `seen` until it shows `want`.
async fn read_until(socket: &mut Socket, seen: &mut String, want: &str) {
    while !seen.contains(want) {
        let m = tokio::time::timeout(Duration::from_secs(15), socket.next())
            .await
            .unwrap_or_else(|_| panic!("`{want}` within 15 s; the terminal showed {seen:?}"))
            .expect("the socket is open")
            .unwrap();
        match m {
            Message::Binary(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Message::Text(text) => panic!("{text} before `{want}`; the terminal showed {seen:?}"),
            _ => {}
        }
    }
}

fn start(size: TerminalSize) -> Message {
    let start = TerminalStart {
        command: vec![testapp::BUSYBOX.into(), "sh".into()],
        size,
        process: None,
        replica: None,
    };
    Message::Text(serde_json::to_string(&start).unwrap().into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_runs_on_the_clients_terminal_follows_a_resize_and_ends_with_its_exit_code() {
    let d = Daemon::start(ApiLimits {
        max_streams_per_token: 1,
        ..ApiLimits::default()
    })
    .await;
    let owner = d.init().await;
    if d.active_testapp(&owner).await.is_none() {
        return;
    }
    let (_, viewer) = d.member(&owner, "vera", "viewer").await;
    assert_eq!(open(&d, &viewer, "web").await.err(), Some(403));
    assert_eq!(open(&d, &owner, "nope").await.err(), Some(404));

    let mut socket = open(&d, &owner, "web").await.unwrap();
    // One session is this token's limit: a second is refused before the upgrade.
    assert_eq!(open(&d, &owner, "web").await.err(), Some(429));
    socket
        .send(start(TerminalSize {
            rows: 40,
            cols: 100,
        }))
        .await
        .unwrap();
    assert_eq!(notice(&mut socket).await, TerminalNotice::Started);
    let mut seen = String::new();
    let bb = testapp::BUSYBOX;
    socket
        .send(Message::Binary(
            format!("{bb} stty size; echo via-$((6*7))\n")
                .into_bytes()
                .into(),
        ))
        .await
        .unwrap();
    read_until(&mut socket, &mut seen, "via-42").await;
    assert!(seen.contains("40 100"), "{seen:?}");
    let resize = TerminalControl::Resize(TerminalSize { rows: 33, cols: 77 });
    socket
        .send(Message::Text(
            serde_json::to_string(&resize).unwrap().into(),
        ))
        .await
        .unwrap();
    socket
        .send(Message::Binary(
            format!("{bb} stty size; exit 5\n").into_bytes().into(),
        ))
        .await
        .unwrap();
    read_until(&mut socket, &mut seen, "33 77").await;
    assert_eq!(notice(&mut socket).await, TerminalNotice::Exited(Some(5)));
    drop(socket);

    // The slot is free again; a first message that is not a TerminalStart is an error.
    let mut socket = loop {
        match open(&d, &owner, "web").await {
            Ok(s) => break s,
            Err(429) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(s) => panic!("{s}"),
        }
    };
    socket
        .send(Message::Text(r#"{"command": "sh"}"#.into()))
        .await
        .unwrap();
    match notice(&mut socket).await {
        TerminalNotice::Error(e) => assert_eq!(e.field.as_deref(), Some("start"), "{e:?}"),
        other => panic!("{other:?}"),
    }
    d.stop().await;
}
