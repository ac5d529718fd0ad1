//! A git smart-HTTP server on loopback, as a forge serves repositories: the real
//! `git http-backend` (the CGI program git ships) behind a small HTTP/1.1 front end. Builds
//! then clone over `http://127.0.0.1:<port>/<name>.git` exactly as they would from a forge,
//! without the `file://` shortcut the builder refuses by default.
//!
//! One request per connection (`Connection: close`); request bodies with `Content-Length` or
//! chunked encoding, bounded; the CGI's answer is relayed with its status and headers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::gitrepo::{TestRepo, git};

/// Longest request head accepted.
const HEAD_MAX: usize = 64 * 1024;
/// Largest request body accepted (a fetch negotiation is a few KiB).
const BODY_MAX: usize = 64 * 1024 * 1024;

/// Bare repositories under a temporary root, served over smart HTTP until dropped.
#[derive(Debug)]
pub struct GitHttpServer {
    addr: SocketAddr,
    root: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GitHttpServer {
    /// Listen on an ephemeral loopback port.
    pub async fn start() -> std::io::Result<GitHttpServer> {
        let root = tempfile::tempdir()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let served = root.path().to_owned();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let root = served.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &root).await;
                });
            }
        });
        Ok(GitHttpServer { addr, root, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The clone URL of repository `name`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}.git", self.addr)
    }

    fn bare(&self, name: &str) -> PathBuf {
        self.root.path().join(format!("{name}.git"))
    }

    /// Serve `repo`'s history as `name` (a bare clone); returns its URL.
    pub fn publish(&self, repo: &TestRepo, name: &str) -> String {
        let bare = self.bare(name);
        git(
            self.root.path(),
            &[
                "clone",
                "--quiet",
                "--bare",
                &repo.path().display().to_string(),
                &bare.display().to_string(),
            ],
        );
        self.url(name)
    }

    /// Push `repo`'s `main` to the served copy `name` (what a developer's `git push` does).
    pub fn push(&self, repo: &TestRepo, name: &str) {
        git(
            repo.path(),
            &[
                "push",
                "--quiet",
                "--force",
                &self.bare(name).display().to_string(),
                "main:main",
            ],
        );
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn invalid(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

async fn read_request(stream: &mut BufReader<TcpStream>) -> std::io::Result<Request> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        stream.read_until(b'\n', &mut head).await?;
        if head.len() == before {
            return Err(invalid("connection closed in the request head"));
        }
        if head.len() > HEAD_MAX {
            return Err(invalid("request head too large"));
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
    }
    let head = String::from_utf8(head).map_err(|_| invalid("request head is not UTF-8"))?;
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut request = Request {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body: Vec::new(),
    };
    if request
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            stream.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| invalid("bad chunk size"))?;
            if request.body.len() + size > BODY_MAX {
                return Err(invalid("request body too large"));
            }
            let start = request.body.len();
            request.body.resize(start + size, 0);
            stream.read_exact(&mut request.body[start..]).await?;
            let mut crlf = String::new();
            stream.read_line(&mut crlf).await?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(len) = request.header("content-length") {
        let len: usize = len.parse().map_err(|_| invalid("bad content-length"))?;
        if len > BODY_MAX {
            return Err(invalid("request body too large"));
        }
        request.body.resize(len, 0);
        stream.read_exact(&mut request.body).await?;
    }
    Ok(request)
}

async fn serve(stream: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut stream = BufReader::new(stream);
    let request = read_request(&mut stream).await?;
    let mut cgi = tokio::process::Command::new("git");
    cgi.arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("REQUEST_METHOD", &request.method)
        .env("PATH_INFO", &request.path)
        .env("QUERY_STRING", &request.query)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", request.body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (header, var) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(v) = request.header(header) {
            cgi.env(var, v);
        }
    }
    let mut child = cgi.spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let body = request.body;
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let out = child.wait_with_output().await?;
    let _ = writer.await;

    // CGI output: headers (`Status:` among them), a blank line, the body.
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            out.stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        })
        .ok_or_else(|| invalid("git http-backend answered without headers"))?;
    let cgi_head = String::from_utf8_lossy(&out.stdout[..split.0]).into_owned();
    let body = &out.stdout[split.0 + split.1..];
    let mut status = "200 OK".to_owned();
    let mut head = String::new();
    for line in cgi_head.lines() {
        match line.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_owned(),
            Some((k, v)) => head.push_str(&format!("{}: {}\r\n", k.trim(), v.trim())),
            None => {}
        }
    }
    let mut stream = stream.into_inner();
    stream
        .write_all(
            format!(
                "HTTP/1.1 {status}\r\n{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}
