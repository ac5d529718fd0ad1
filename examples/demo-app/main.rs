//! The demo app the main-job example (`deploy.rs`) deploys: a tiny HTTP server on std alone.
//!
//! - listens on `0.0.0.0:$PORT` (default 8080) and prints `demo app listening on :PORT`;
//! - `GET /health` answers 200 `ok` (the platform's default health check);
//! - `GET /` answers `$GREETING` (the config the example sets and rolls back);
//! - anything else answers 404; one line per request goes to stdout;
//! - exits 0 on SIGTERM, also as PID 1 in a container (where the default action is ignored).
//!
//! `build.rs` compiles this same file with `+crt-static` and the example embeds the result, so
//! it runs in a `FROM scratch` image and as a native process with nothing else installed. It is
//! also the package's `clank-demo-app` binary, which keeps it under fmt, clippy and the tests.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
    exit_on_sigterm();
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".to_owned());
    let listener = match TcpListener::bind(format!("0.0.0.0:{port}")) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("demo app: cannot listen on 0.0.0.0:{port}: {e}");
            std::process::exit(1);
        }
    };
    println!("demo app listening on :{port}");
    for stream in listener.incoming().flatten() {
        // One request per connection, one at a time: enough for a health check and a person.
        if let Err(e) = serve(stream) {
            eprintln!("demo app: request failed: {e}");
        }
    }
}

fn serve(stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers so the client sees a clean close.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = match (method, path) {
        ("GET", "/health") => ("200 OK", "ok\n".to_owned()),
        ("GET", "/") => (
            "200 OK",
            format!(
                "{}\n",
                std::env::var("GREETING").unwrap_or_else(|_| "hello".to_owned())
            ),
        ),
        _ => ("404 Not Found", "not found\n".to_owned()),
    };
    println!("demo app: {method} {path} -> {status}");
    let mut stream = reader.into_inner();
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// SIGTERM ends the app with status 0. std has no signal API, hence the two libc calls.
#[allow(unsafe_code)]
fn exit_on_sigterm() {
    const SIGTERM: i32 = 15;
    unsafe extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
        fn _exit(status: i32) -> !;
    }
    extern "C" fn on_term(_: i32) {
        // SAFETY: `_exit` is async-signal-safe.
        unsafe { _exit(0) }
    }
    // SAFETY: installs a handler that only calls an async-signal-safe function.
    unsafe {
        signal(SIGTERM, on_term);
    }
}
