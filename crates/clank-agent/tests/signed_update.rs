//! Signed self-updates against a scripted control plane: the real `clank-agent` binary, a real
//! gRPC server on loopback that enrolls it (handing out — or not — a release key) and then
//! offers one update, signed, altered after signing, signed by another key, or unsigned. The
//! agent installs only the first; every other offer is refused before anything is downloaded,
//! and the binary on disk is untouched.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clank_proto::v1::{self, agent_message::Body as Up, control_message::Body as Down};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

const AGENT: &str = env!("CARGO_BIN_EXE_clank-agent");

async fn docker_available() -> bool {
    // The agent connects its Docker runtime before its session; nothing is run in it here.
    match clank_docker::DockerRuntime::connect().await {
        Ok(_) => true,
        Err(e) => {
            clank_testkit::runtime::skip_or_fail::<()>("a Docker Engine", &e.to_string());
            false
        }
    }
}

fn keypair() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn sign(pair: &Ed25519KeyPair, version: &str, sha256: &str, size: u64) -> Vec<u8> {
    let message = clank_proto::release_message(version, sha256, size).unwrap();
    pair.sign(&message).as_ref().to_vec()
}

/// What the scripted control plane does and saw.
struct Script {
    server_id: String,
    /// Handed out at enrollment (empty: a control plane that signs nothing).
    release_public_key: Mutex<Vec<u8>>,
    /// Refuse every join token (as once it has been used).
    refuse_enrollment: AtomicBool,
    enrollments: AtomicUsize,
    offer: v1::UpdateOffer,
    /// Served by `FetchUpdate`, whatever checksum is asked for.
    binary: Vec<u8>,
    fetches: AtomicUsize,
    results: mpsc::UnboundedSender<v1::UpdateResult>,
    /// The newest (non-probe) session's sender, to offer again.
    session: Mutex<Option<mpsc::Sender<Result<v1::ControlMessage, Status>>>>,
}

#[derive(Clone)]
struct Fake(Arc<Script>);

type DownStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<v1::ControlMessage, Status>> + Send>>;

fn lease(server_id: &str) -> v1::ControlMessage {
    v1::ControlMessage {
        body: Some(Down::Lease(v1::Lease {
            epoch: 1,
            ttl_ms: 60_000,
            server_id: server_id.to_owned(),
        })),
    }
}

fn offer_message(offer: &v1::UpdateOffer) -> v1::ControlMessage {
    v1::ControlMessage {
        body: Some(Down::Update(offer.clone())),
    }
}

#[tonic::async_trait]
impl clank_proto::AgentControl for Fake {
    async fn enroll(
        &self,
        _request: Request<v1::EnrollRequest>,
    ) -> Result<Response<v1::EnrollResponse>, Status> {
        if self.0.refuse_enrollment.load(Ordering::SeqCst) {
            return Err(Status::unauthenticated("join token refused: already used"));
        }
        self.0.enrollments.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(v1::EnrollResponse {
            server_id: self.0.server_id.clone(),
            credential: "clank-agent-scripted".into(),
            release_public_key: self.0.release_public_key.lock().unwrap().clone(),
        }))
    }

    type SessionStream = DownStream;

    async fn session(
        &self,
        request: Request<Streaming<v1::AgentMessage>>,
    ) -> Result<Response<DownStream>, Status> {
        let mut up = request.into_inner();
        let Ok(Some(v1::AgentMessage {
            body: Some(Up::Hello(hello)),
        })) = up.message().await
        else {
            return Err(Status::invalid_argument("a session starts with Hello"));
        };
        let (tx, rx) = mpsc::channel(16);
        let _ = tx.send(Ok(lease(&self.0.server_id))).await;
        if !hello.probe {
            let _ = tx.send(Ok(offer_message(&self.0.offer))).await;
            *self.0.session.lock().unwrap() = Some(tx.clone());
            let script = self.0.clone();
            tokio::spawn(async move {
                let _open = tx;
                while let Ok(Some(m)) = up.message().await {
                    if let Some(Up::UpdateResult(r)) = m.body {
                        let _ = script.results.send(r);
                    }
                }
            });
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type FetchUpdateStream = DownChunks;

    async fn fetch_update(
        &self,
        _request: Request<v1::FetchUpdateRequest>,
    ) -> Result<Response<DownChunks>, Status> {
        self.0.fetches.fetch_add(1, Ordering::SeqCst);
        let chunks: Vec<Result<v1::UpdateChunk, Status>> = self
            .0
            .binary
            .chunks(256 * 1024)
            .map(|c| Ok(v1::UpdateChunk { data: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    type FetchImageStream = DownImage;

    async fn fetch_image(
        &self,
        _request: Request<v1::FetchImageRequest>,
    ) -> Result<Response<DownImage>, Status> {
        Err(Status::not_found(
            "this scripted control plane offers no images",
        ))
    }
}

type DownImage = Pin<Box<dyn futures_util::Stream<Item = Result<v1::ImageChunk, Status>> + Send>>;
type DownChunks = Pin<Box<dyn futures_util::Stream<Item = Result<v1::UpdateChunk, Status>> + Send>>;

/// A scripted control plane and one agent process enrolled with it.
struct Scenario {
    script: Arc<Script>,
    results: mpsc::UnboundedReceiver<v1::UpdateResult>,
    dir: tempfile::TempDir,
    child: tokio::process::Child,
    control_plane: String,
    original: Vec<u8>,
}

impl Scenario {
    async fn start(
        release_public_key: Vec<u8>,
        offer: v1::UpdateOffer,
        binary: Vec<u8>,
    ) -> Scenario {
        let (results_tx, results) = mpsc::unbounded_channel();
        let server_id = format!("scripted-{}", hex::encode(rand_bytes()));
        let script = Arc::new(Script {
            server_id,
            release_public_key: Mutex::new(release_public_key),
            refuse_enrollment: AtomicBool::new(false),
            enrollments: AtomicUsize::new(0),
            offer,
            binary,
            fetches: AtomicUsize::new(0),
            results: results_tx,
            session: Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = clank_proto::AgentControlServer::new(Fake(script.clone()));
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        let exe = dir.path().join("bin/clank-agent");
        std::fs::copy(AGENT, &exe).unwrap();
        let original = std::fs::read(&exe).unwrap();
        let control_plane = format!("http://{addr}");
        let child = spawn_agent(dir.path(), &control_plane);
        Scenario {
            script,
            results,
            dir,
            child,
            control_plane,
            original,
        }
    }

    /// Stop the agent and start it again, with the join token again (as a unit file would).
    async fn restart_agent(&mut self) {
        let _ = self.child.kill().await;
        self.child = spawn_agent(self.dir.path(), &self.control_plane);
    }

    fn exe(&self) -> PathBuf {
        self.dir.path().join("bin/clank-agent")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    async fn result(&mut self) -> v1::UpdateResult {
        match tokio::time::timeout(Duration::from_secs(60), self.results.recv()).await {
            Ok(Some(r)) => r,
            _ => panic!("no update result within 60 s; agent log:\n{}", self.log()),
        }
    }

    /// The offer was refused for `reason`, nothing was downloaded, and the binary on disk is
    /// the one the agent started from; offered again, it is not tried again.
    async fn assert_refused(mut self, reason: &str) {
        let r = self.result().await;
        assert!(!r.ok, "{r:?}\n{}", self.log());
        assert!(
            r.message.contains(reason),
            "the refusal names its reason ({reason:?}): {r:?}"
        );
        assert_eq!(
            self.script.fetches.load(Ordering::SeqCst),
            0,
            "refused before any download"
        );
        assert_eq!(std::fs::read(self.exe()).unwrap(), self.original);
        assert!(!self.dir.path().join("bin/clank-agent.new").exists());
        assert!(!self.dir.path().join("bin/clank-agent.prev").exists());
        assert!(!self.dir.path().join("state/update-pending").exists());
        // Remembered: the same offer again gets no second attempt.
        let tx = self.script.session.lock().unwrap().clone().unwrap();
        tx.send(Ok(offer_message(&self.script.offer)))
            .await
            .unwrap();
        let again = tokio::time::timeout(Duration::from_secs(2), self.results.recv()).await;
        assert!(again.is_err(), "a refused offer is not retried: {again:?}");
        let _ = self.child.kill().await;
    }
}

/// The agent in `dir/bin`, its state in `dir/state`, its log appended to `dir/agent.log`.
fn spawn_agent(dir: &std::path::Path, control_plane: &str) -> tokio::process::Child {
    let exe = dir.join("bin/clank-agent");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("agent.log"))
        .unwrap();
    let mut cmd = tokio::process::Command::new(&exe);
    cmd.arg("--control-plane")
        .arg(control_plane)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--join-token")
        .arg("clank-join-scripted")
        .env("CLANK_AGENT_HEARTBEAT_S", "1")
        .env("CLANK_AGENT_BACKOFF_MAX_S", "1")
        .env("CLANK_AGENT_UPDATE_ROLLBACK_S", "20")
        .env("CLANK_LOG", "info,h2=warn,tower=warn,bollard=warn")
        .env_remove("CLANK_JOIN_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    // A binary copied a moment ago may still be open for writing in a child forked by a test
    // running beside this one (ETXTBSY) until that child execs: retry briefly.
    let mut attempt = 0;
    loop {
        match cmd.spawn() {
            Ok(child) => return child,
            Err(e) if e.raw_os_error() == Some(26) && attempt < 50 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("spawn {}: {e}", exe.display()),
        }
    }
}

fn rand_bytes() -> [u8; 6] {
    let mut b = [0u8; 6];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap();
    b
}

/// A runnable new build: the agent plus trailing bytes (another checksum).
fn new_build() -> Vec<u8> {
    let mut new = std::fs::read(AGENT).unwrap();
    new.extend_from_slice(b"\nclank-agent signed-update test build\n");
    new
}

fn signed_offer(pair: &Ed25519KeyPair, version: &str, binary: &[u8]) -> v1::UpdateOffer {
    let sha = sha256(binary);
    v1::UpdateOffer {
        version: version.into(),
        signature: sign(pair, version, &sha, binary.len() as u64),
        sha256: sha,
        size: binary.len() as u64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_signed_by_the_key_learned_at_enrollment_is_installed() {
    if !docker_available().await {
        return;
    }
    let pair = keypair();
    let binary = new_build();
    let offer = signed_offer(&pair, "0.3.0-signed", &binary);
    let mut s = Scenario::start(pair.public_key().as_ref().to_vec(), offer, binary.clone()).await;
    let r = s.result().await;
    assert!(r.ok, "{r:?}\n{}", s.log());
    assert_eq!(s.script.fetches.load(Ordering::SeqCst), 1);
    let stored = std::fs::read_to_string(s.dir.path().join("state/release-key")).unwrap();
    assert_eq!(
        stored.trim(),
        format!("ed25519:{}", hex::encode(pair.public_key().as_ref())),
        "the key from enrollment is kept in the state directory"
    );
    for _ in 0..100 {
        if std::fs::read(s.exe()).unwrap() == binary {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        std::fs::read(s.exe()).unwrap(),
        binary,
        "swapped in\n{}",
        s.log()
    );
    let _ = s.child.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_whose_checksum_was_altered_after_signing_is_refused() {
    if !docker_available().await {
        return;
    }
    let pair = keypair();
    // Signed for one build; the offer (and the download) are another, consistent with each
    // other: only the signature can tell.
    let mut offer = signed_offer(&pair, "0.3.0", b"the build that was signed");
    let swapped = new_build();
    offer.sha256 = sha256(&swapped);
    offer.size = swapped.len() as u64;
    Scenario::start(pair.public_key().as_ref().to_vec(), offer, swapped)
        .await
        .assert_refused("bad signature")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_whose_version_was_altered_after_signing_is_refused() {
    if !docker_available().await {
        return;
    }
    let pair = keypair();
    let binary = new_build();
    let mut offer = signed_offer(&pair, "0.3.0", &binary);
    offer.version = "9.0.0".into();
    Scenario::start(pair.public_key().as_ref().to_vec(), offer, binary)
        .await
        .assert_refused("bad signature")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_signed_by_another_key_is_refused() {
    if !docker_available().await {
        return;
    }
    let enrolled = keypair();
    let binary = new_build();
    let offer = signed_offer(&keypair(), "0.3.0", &binary);
    Scenario::start(enrolled.public_key().as_ref().to_vec(), offer, binary)
        .await
        .assert_refused("bad signature")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_offer_is_refused() {
    if !docker_available().await {
        return;
    }
    let pair = keypair();
    let binary = new_build();
    let mut offer = signed_offer(&pair, "0.3.0", &binary);
    offer.signature.clear();
    Scenario::start(pair.public_key().as_ref().to_vec(), offer, binary)
        .await
        .assert_refused("not signed")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_without_a_release_key_refuses_every_update_and_says_to_re_enroll() {
    if !docker_available().await {
        return;
    }
    let pair = keypair();
    let binary = new_build();
    let offer = signed_offer(&pair, "0.3.0", &binary);
    // Enrolled by a control plane that handed out no key (as every agent enrolled before
    // releases were signed): even a correctly signed offer is refused.
    Scenario::start(Vec::new(), offer, binary)
        .await
        .assert_refused("re-enroll")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_without_a_key_learns_it_only_by_enrolling_again_with_a_join_token() {
    if !docker_available().await {
        return;
    }
    let pair = keypair();
    let binary = new_build();
    let offer = signed_offer(&pair, "0.3.0", &binary);
    let mut s = Scenario::start(Vec::new(), offer, binary.clone()).await;
    let r = s.result().await;
    assert!(!r.ok && r.message.contains("re-enroll"), "{r:?}");
    let key_file = s.dir.path().join("state/release-key");
    assert!(!key_file.exists());

    // Started again with the join token from its first start, long used: the re-enrollment is
    // refused, the agent keeps its identity and its session, and still installs nothing —
    // the session that offers the update never teaches it a key.
    s.script.refuse_enrollment.store(true, Ordering::SeqCst);
    s.restart_agent().await;
    let r = s.result().await;
    assert!(
        !r.ok && r.message.contains("re-enroll"),
        "{r:?}\n{}",
        s.log()
    );
    assert!(!key_file.exists());
    assert_eq!(s.script.fetches.load(Ordering::SeqCst), 0);
    assert_eq!(std::fs::read(s.exe()).unwrap(), s.original);

    // A fresh join token: enrolling again hands out the key, and the signed offer installs.
    *s.script.release_public_key.lock().unwrap() = pair.public_key().as_ref().to_vec();
    s.script.refuse_enrollment.store(false, Ordering::SeqCst);
    s.restart_agent().await;
    let r = s.result().await;
    assert!(r.ok, "{r:?}\n{}", s.log());
    assert_eq!(s.script.enrollments.load(Ordering::SeqCst), 2);
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap().trim(),
        format!("ed25519:{}", hex::encode(pair.public_key().as_ref()))
    );
    let _ = s.child.kill().await;
}
