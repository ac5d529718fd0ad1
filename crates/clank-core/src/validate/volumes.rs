//! Volumes: the path a volume is mounted at (absolute, normalised, never a system
//! directory) and the volume's name (Docker's pattern).

use crate::error::InvalidInput;

use super::{describe_char, first_disallowed, show};

/// Longest volume mount path (Linux `PATH_MAX`).
pub const MOUNT_PATH_MAX_LEN: usize = 4096;

/// Directories a volume may not be mounted on or under. The container runtime mounts procfs,
/// sysfs and devtmpfs there; a volume over them hides the kernel interfaces the container needs
/// (`/dev/null`, `/proc/self`), and runc refuses some of these mounts outright.
pub const RESERVED_MOUNT_DIRS: &[&str] = &["/proc", "/sys", "/dev"];

/// Files Docker bind-mounts into every container itself; a volume on them fails with a duplicate
/// mount point error, or silently breaks name resolution.
pub const RESERVED_MOUNT_FILES: &[&str] = &["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

/// Validate where a volume is mounted inside the container, and return it normalised (`//` and `.`
/// components and a trailing `/` removed).
///
/// Rules: `empty`; `too_long` (over [`MOUNT_PATH_MAX_LEN`] bytes); `charset` (NUL or other control
/// characters, and `:`, which Docker's `volume:path:mode` bind syntax splits on); `not_absolute`;
/// `traversal` (a `..` component); `root` (`/` itself would hide the whole image); `reserved`
/// (on or under [`RESERVED_MOUNT_DIRS`], or one of [`RESERVED_MOUNT_FILES`]).
pub fn validate_mount_path(field: &str, path: &str) -> Result<String, InvalidInput> {
    let err = |rule: &'static str, why: String| {
        Err(InvalidInput::new(
            field,
            rule,
            format!("{} is not a valid mount path: {why}", show(path)),
        ))
    };
    if path.is_empty() {
        return Err(InvalidInput::new(
            field,
            "empty",
            "must not be empty; give an absolute path such as `/var/lib/postgresql/data`",
        ));
    }
    if path.len() > MOUNT_PATH_MAX_LEN {
        return err(
            "too_long",
            format!(
                "it is {} bytes; a path has at most {MOUNT_PATH_MAX_LEN}",
                path.len()
            ),
        );
    }
    if let Some((pos, c)) = first_disallowed(path, |c| !c.is_control() && c != ':') {
        let why = if c == ':' {
            "Docker's `volume:path:mode` syntax splits on `:`"
        } else {
            "paths contain no control characters"
        };
        return err(
            "charset",
            format!("{} at position {pos}: {why}", describe_char(c)),
        );
    }
    if !path.starts_with('/') {
        return err(
            "not_absolute",
            "it is relative; a mount path starts with `/`".to_owned(),
        );
    }
    let mut normalised = String::with_capacity(path.len());
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                return err(
                    "traversal",
                    "it contains a `..` component (path traversal)".to_owned(),
                );
            }
            c => {
                normalised.push('/');
                normalised.push_str(c);
            }
        }
    }
    if normalised.is_empty() {
        return err(
            "root",
            "a volume on `/` would hide the whole image; mount it on a directory".to_owned(),
        );
    }
    let under = |dir: &str| {
        normalised == dir
            || normalised
                .strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    if let Some(dir) = RESERVED_MOUNT_DIRS.iter().find(|d| under(d)) {
        return err(
            "reserved",
            format!(
                "`{dir}` belongs to the container runtime (kernel interfaces); mount the volume \
                 elsewhere"
            ),
        );
    }
    if RESERVED_MOUNT_FILES.contains(&normalised.as_str()) {
        return err(
            "reserved",
            "Docker manages this file in every container; mount the volume elsewhere".to_owned(),
        );
    }
    Ok(normalised)
}

/// Longest volume name.
pub const VOLUME_NAME_MAX_LEN: usize = 128;

/// Validate a Docker volume name: Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (so at least two
/// characters, as in Docker's own check), at most [`VOLUME_NAME_MAX_LEN`].
///
/// Rules: `empty`, `too_short`, `too_long`, `leading_hyphen` / `format` (must start with a letter
/// or digit), `charset` (a `/` would make Docker read the name as a host path to bind-mount).
pub fn validate_volume_name(field: &str, name: &str) -> Result<(), InvalidInput> {
    const SHAPE: &str = "a volume name is letters, digits, `_`, `.` and `-`, starting with a \
                         letter or digit";
    if name.is_empty() {
        return Err(InvalidInput::new(
            field,
            "empty",
            format!("must not be empty; {SHAPE}"),
        ));
    }
    if let Some((pos, c)) = first_disallowed(name, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
    }) {
        let why = if c == '/' {
            "Docker would read a name with `/` as a host path to bind-mount"
        } else {
            "it is not allowed in Docker volume names"
        };
        return Err(InvalidInput::new(
            field,
            "charset",
            format!(
                "{} contains {} at position {pos}: {why}; {SHAPE}",
                show(name),
                describe_char(c)
            ),
        ));
    }
    if name.len() < 2 {
        return Err(InvalidInput::new(
            field,
            "too_short",
            format!(
                "{} is one character; Docker volume names have at least two",
                show(name)
            ),
        ));
    }
    if name.len() > VOLUME_NAME_MAX_LEN {
        return Err(InvalidInput::new(
            field,
            "too_long",
            format!(
                "{} is {} characters; a volume name has at most {VOLUME_NAME_MAX_LEN}",
                show(name),
                name.len()
            ),
        ));
    }
    if name.starts_with('-') {
        return Err(InvalidInput::new(
            field,
            "leading_hyphen",
            format!(
                "{} starts with `-`, which command lines read as an option; {SHAPE}",
                show(name)
            ),
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(InvalidInput::new(
            field,
            "format",
            format!("{} must start with a letter or digit; {SHAPE}", show(name)),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::assert_rule;

    #[test]
    fn mount_path_accepts_absolute_paths_and_normalises_them() {
        let cases = [
            ("/data", "/data"),
            ("/var/lib/postgresql/data", "/var/lib/postgresql/data"),
            ("/data/", "/data"),
            ("//data//x/./y", "/data/x/y"),
            ("/process", "/process"),
            ("/devices", "/devices"),
            ("/etc/hosts.d", "/etc/hosts.d"),
            ("/my dir", "/my dir"),
        ];
        for (input, want) in cases {
            assert_eq!(
                validate_mount_path("m", input).as_deref(),
                Ok(want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn mount_path_rejects_traversal_root_system_dirs_and_bad_characters() {
        let long = format!("/{}", "a".repeat(4096));
        let cases: &[(&str, &str, &[&str])] = &[
            ("", "empty", &[]),
            ("data", "not_absolute", &[]),
            ("../x", "not_absolute", &[]),
            ("/data/../etc", "traversal", &["`..`"]),
            ("/..", "traversal", &[]),
            ("/", "root", &[]),
            ("//", "root", &[]),
            ("/.", "root", &[]),
            ("/proc", "reserved", &["`/proc`"]),
            ("/proc/self", "reserved", &[]),
            ("/sys/fs/cgroup", "reserved", &["`/sys`"]),
            ("/dev", "reserved", &[]),
            ("//dev/", "reserved", &[]),
            ("/etc/hosts", "reserved", &[]),
            ("/etc/resolv.conf", "reserved", &[]),
            ("/data\u{0}", "charset", &["control character `\\0`"]),
            ("/data\n", "charset", &[]),
            ("/data:ro", "charset", &["`:`"]),
            (&long, "too_long", &["4097"]),
        ];
        for (input, rule, needles) in cases {
            assert_rule(
                input,
                validate_mount_path("mount_path", input),
                rule,
                needles,
            );
        }
    }

    #[test]
    fn volume_name_follows_dockers_pattern() {
        for n in [
            "clank-shop-postgres-data",
            "ab",
            "A1",
            "a_b.c-d",
            &"v".repeat(128),
        ] {
            assert_eq!(validate_volume_name("v", n), Ok(()), "{n:?}");
        }
        let long = "v".repeat(129);
        let cases: &[(&str, &str, &[&str])] = &[
            ("", "empty", &[]),
            ("a", "too_short", &[]),
            ("-v", "leading_hyphen", &[]),
            (".hidden", "format", &[]),
            ("_x", "format", &[]),
            ("../x", "charset", &[]),
            ("a/b", "charset", &["host path"]),
            ("a b", "charset", &[]),
            ("vol\u{0}", "charset", &[]),
            ("vоl", "charset", &["non-ASCII"]),
            (&long, "too_long", &[]),
        ];
        for (input, rule, needles) in cases {
            assert_rule(input, validate_volume_name("volume", input), rule, needles);
        }
    }
}
