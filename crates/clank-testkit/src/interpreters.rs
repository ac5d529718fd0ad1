//! Base images with a real Node.js or Python interpreter, made from the host's own Debian
//! packages because no registry is reachable: the interpreter binary, every shared library
//! `ldd` lists for it (and, for Python, for its extension modules), the standard library,
//! the package manager (npm, pip), and Debian's static busybox as `/bin/sh` for `RUN` steps.
//! Built `FROM scratch` through the Docker build API and tagged [`NODE_IMAGE`] /
//! [`PYTHON_IMAGE`]; rebuilt only when the host's files change (a digest label).
//!
//! Generated Dockerfiles take these through their `NODE_IMAGE` / `PYTHON_IMAGE` build args.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bollard::Docker;

use crate::testapp::BUSYBOX;

/// A Node.js base image (the host's `node` and npm).
pub const NODE_IMAGE: &str = "clank-test-node:host";
/// A Python base image (the host's `python3`, stdlib and pip).
pub const PYTHON_IMAGE: &str = "clank-test-python:host";

const DIGEST_LABEL: &str = "clank.testkit.rootfs-digest";

type BoxError = Box<dyn StdError + Send + Sync>;

/// Busybox applets linked in `/bin` (and `/usr/bin/env` for `#!/usr/bin/env node`).
const APPLETS: &[&str] = &[
    "sh", "env", "mkdir", "rm", "cat", "echo", "ls", "cp", "mv", "ln", "chmod", "sleep", "true",
    "false", "test", "touch", "which", "id", "uname", "grep", "sed", "head", "tail",
];

/// What goes into a rootfs: path in the image → host file (or a symlink target).
#[derive(Debug, Default)]
struct Rootfs {
    files: BTreeMap<PathBuf, PathBuf>,
    links: BTreeMap<PathBuf, PathBuf>,
}

impl Rootfs {
    fn file(&mut self, host: &Path) {
        self.files.insert(host.to_owned(), host.to_owned());
    }

    /// A binary or shared object and the libraries `ldd` resolves for it.
    fn with_libraries(&mut self, binary: &Path) -> Result<(), BoxError> {
        self.file(binary);
        let out = std::process::Command::new("ldd").arg(binary).output()?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux… (0x…)`
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(p) = path.filter(|p| p.starts_with('/')) {
                self.file(Path::new(p));
            }
        }
        Ok(())
    }

    /// Every regular file under `dir` (symlinks kept as links), minus `skip` names.
    fn tree(&mut self, dir: &Path, skip: &[&str]) -> Result<(), BoxError> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if skip.iter().any(|s| name == *s) {
                continue;
            }
            let path = entry.path();
            let ft = entry.file_type()?;
            if ft.is_symlink() {
                self.links.insert(path.clone(), std::fs::read_link(&path)?);
            } else if ft.is_dir() {
                self.tree(&path, skip)?;
            } else if ft.is_file() {
                self.file(&path);
            }
        }
        Ok(())
    }

    fn busybox(&mut self) {
        self.files
            .insert(PathBuf::from("/bin/busybox"), PathBuf::from(BUSYBOX));
        for applet in APPLETS {
            self.links
                .insert(PathBuf::from(format!("/bin/{applet}")), "busybox".into());
        }
        self.links
            .insert(PathBuf::from("/usr/bin/env"), "/bin/busybox".into());
    }

    /// A digest of paths, sizes and mtimes: changes when the host's packages change.
    fn digest(&self) -> Result<String, BoxError> {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for (at, host) in &self.files {
            let meta = std::fs::metadata(host)?;
            eat(at.as_os_str().as_encoded_bytes());
            eat(&meta.len().to_le_bytes());
            eat(&meta.mtime().to_le_bytes());
        }
        for (at, target) in &self.links {
            eat(at.as_os_str().as_encoded_bytes());
            eat(target.as_os_str().as_encoded_bytes());
        }
        Ok(format!("{h:016x}"))
    }

    fn tar(&self, dockerfile: &str) -> Result<Vec<u8>, BoxError> {
        let mut tar = tar::Builder::new(Vec::new());
        let header = |kind: tar::EntryType, mode: u32, size: u64| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(size);
            h.set_mtime(0);
            h
        };
        let mut h = header(tar::EntryType::Regular, 0o644, dockerfile.len() as u64);
        tar.append_data(&mut h, "Dockerfile", dockerfile.as_bytes())?;
        for dir in ["rootfs/tmp", "rootfs/root", "rootfs/etc"] {
            let mut h = header(tar::EntryType::Directory, 0o1777, 0);
            tar.append_data(&mut h, dir, std::io::empty())?;
        }
        let passwd = "root:x:0:0:root:/root:/bin/sh\n";
        let mut h = header(tar::EntryType::Regular, 0o644, passwd.len() as u64);
        tar.append_data(&mut h, "rootfs/etc/passwd", passwd.as_bytes())?;
        for (at, host) in &self.files {
            let meta = std::fs::metadata(host)?;
            let mode = meta.mode() & 0o777;
            let mut h = header(tar::EntryType::Regular, mode, meta.len());
            let path = Path::new("rootfs").join(at.strip_prefix("/")?);
            tar.append_data(&mut h, path, std::fs::File::open(host)?)?;
        }
        for (at, target) in &self.links {
            let mut h = header(tar::EntryType::Symlink, 0o777, 0);
            let path = Path::new("rootfs").join(at.strip_prefix("/")?);
            tar.append_link(&mut h, path, target)?;
        }
        Ok(tar.into_inner()?)
    }
}

/// Make sure [`NODE_IMAGE`] exists; `Ok(false)` when the host has no `/usr/bin/node` + npm.
pub async fn ensure_node_image(docker: &Docker) -> Result<bool, BoxError> {
    let node = Path::new("/usr/bin/node");
    let npm = Path::new("/usr/lib/node_modules/npm");
    if !node.is_file() || !npm.is_dir() || !Path::new(BUSYBOX).is_file() {
        return Ok(false);
    }
    let mut fs = Rootfs::default();
    fs.busybox();
    fs.with_libraries(node)?;
    fs.tree(npm, &[])?;
    fs.links.insert(
        "/usr/bin/npm".into(),
        "../lib/node_modules/npm/bin/npm-cli.js".into(),
    );
    ensure(docker, NODE_IMAGE, &fs).await?;
    Ok(true)
}

/// Make sure [`PYTHON_IMAGE`] exists; `Ok(false)` when the host has no Debian python3.11.
pub async fn ensure_python_image(docker: &Docker) -> Result<bool, BoxError> {
    let python = Path::new("/usr/bin/python3.11");
    let stdlib = Path::new("/usr/lib/python3.11");
    let pip = Path::new("/usr/lib/python3/dist-packages/pip");
    if !python.is_file() || !stdlib.is_dir() || !Path::new(BUSYBOX).is_file() {
        return Ok(false);
    }
    let mut fs = Rootfs::default();
    fs.busybox();
    fs.with_libraries(python)?;
    // Official python images have no EXTERNALLY-MANAGED marker; leave out what no app needs.
    fs.tree(
        stdlib,
        &[
            "test",
            "idlelib",
            "tkinter",
            "turtledemo",
            "ensurepip",
            "lib2to3",
            "__pycache__",
            "EXTERNALLY-MANAGED",
        ],
    )?;
    let dynload: Vec<PathBuf> = std::fs::read_dir(stdlib.join("lib-dynload"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    for so in dynload {
        fs.with_libraries(&so)?;
    }
    if pip.is_dir() {
        fs.tree(pip, &["__pycache__"])?;
    }
    fs.links
        .insert("/usr/bin/python3".into(), "python3.11".into());
    fs.links
        .insert("/usr/bin/python".into(), "python3.11".into());
    ensure(docker, PYTHON_IMAGE, &fs).await?;
    Ok(true)
}

async fn ensure(docker: &Docker, image: &str, fs: &Rootfs) -> Result<(), BoxError> {
    let digest = fs.digest()?;
    if let Ok(found) = docker.inspect_image(image).await {
        let current = found
            .config
            .and_then(|c| c.labels)
            .and_then(|l| l.get(DIGEST_LABEL).cloned());
        if current.as_deref() == Some(digest.as_str()) {
            return Ok(());
        }
    }
    let dockerfile = format!(
        "FROM scratch\n\
         COPY rootfs/ /\n\
         ENV PATH=/usr/local/bin:/usr/bin:/bin HOME=/root\n\
         LABEL {DIGEST_LABEL}={digest}\n\
         CMD [\"/bin/sh\"]\n"
    );
    // Blocking, but this runs once per machine and only in tests.
    let context = fs.tar(&dockerfile)?;
    let labels = HashMap::from([(DIGEST_LABEL.to_owned(), digest)]);
    crate::testapp::docker::build_image(docker, image, context, Some(labels)).await?;
    Ok(())
}
