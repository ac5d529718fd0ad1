//! Throwaway TLS material for test servers (the ACME test CA, the test registry), made with
//! the `openssl` CLI: a CA and one server leaf it signed, valid for two days.

use std::path::Path;
use std::process::Stdio;

/// Run `program` with `args` in `dir`; its stdout. Panics, with its stderr, when it fails.
pub(crate) fn run(program: &str, args: &[&str], dir: &Path) -> Vec<u8> {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Write a P-256 CA (`ca.pem`, `ca.key`; subject `ca_name`) and a server leaf it signed
/// (`leaf.pem`, `leaf.key`; subject `leaf_name`, valid for `subject_alt_names`, e.g.
/// `DNS:localhost,IP:127.0.0.1`) into `dir`.
pub(crate) fn make_ca_and_leaf(
    dir: &Path,
    ca_name: &str,
    leaf_name: &str,
    subject_alt_names: &str,
) {
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let ca_subject = format!("/CN={ca_name}");
    let mut ca = vec!["req", "-x509"];
    ca.extend(key);
    ca.extend([
        "-days",
        "2",
        "-subj",
        &ca_subject,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run("openssl", &ca, dir);
    let leaf_subject = format!("/CN={leaf_name}");
    let mut csr = vec!["req"];
    csr.extend(key);
    csr.extend([
        "-subj",
        &leaf_subject,
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
    ]);
    run("openssl", &csr, dir);
    std::fs::write(
        dir.join("leaf.ext"),
        format!(
            "subjectAltName={subject_alt_names}\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"
        ),
    )
    .expect("write leaf.ext");
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ],
        dir,
    );
}
