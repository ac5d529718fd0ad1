//! Container image references (`ghcr.io/acme/api:1.2@sha256:…`), parsed by Docker's grammar.
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ registry "/" ] repository           (at most 255 characters)
//! registry   := host [ ":" port ]                     (host: DNS name, IPv4, or [IPv6])
//! repository := component ( "/" component )*
//! component  := [a-z0-9]+ ( separator [a-z0-9]+ )*    separator := "." | "_" | "__" | "-"+
//! tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest     := "sha256:" 64 lowercase hex digits
//! ```
//!
//! As in Docker, the first path component is the registry only when it looks like a host: it
//! contains `.` or `:`, is `localhost`, or has uppercase letters. So `acme/api` is a repository on
//! the default registry and `registry.acme.io/api` is not.
//!
//! The reference is kept as written: `nginx` and `docker.io/library/nginx:latest` name the same
//! image but are different `ImageRef`s, so `Display` gives back exactly the input. Only `sha256`
//! digests are accepted (every registry Clank talks to uses them).

use std::fmt;
use std::str::FromStr;

use crate::error::InvalidInput;
use crate::validate::{describe_char, show};

/// Longest `registry/repository`, as in Docker.
pub const IMAGE_NAME_MAX_LEN: usize = 255;
/// Longest tag, as in Docker.
pub const IMAGE_TAG_MAX_LEN: usize = 128;
/// The registry used when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// The field named by errors from [`ImageRef::parse`] (use `validate::validate_image_ref` to name
/// another).
const FIELD: &str = "image";

/// A parsed, valid image reference. Serialises as its string form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef {
    registry: Option<String>,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// Parse `reference` by the grammar in the module docs.
    ///
    /// Rules (field `image`): `empty`, `too_long` (name over [`IMAGE_NAME_MAX_LEN`]), `charset`
    /// (whitespace, control, non-ASCII, or uppercase in the repository), `leading_hyphen`
    /// (`-x` would be read as an option by `docker pull`), `registry` (a bad host or port),
    /// `repository` (an empty or malformed path component, or a 64-hex-digit name that Docker
    /// would confuse with an image id), `tag`, `digest`.
    pub fn parse(reference: &str) -> Result<ImageRef, InvalidInput> {
        let invalid = |rule: &'static str, why: String| {
            InvalidInput::new(
                FIELD,
                rule,
                format!("{} is not a valid image reference: {why}", show(reference)),
            )
        };
        let err = |rule: &'static str, why: String| Err(invalid(rule, why));
        if reference.is_empty() {
            return Err(InvalidInput::new(
                FIELD,
                "empty",
                "must not be empty; give an image such as `nginx:1.27` or `ghcr.io/acme/api:v2`",
            ));
        }
        if let Some((pos, c)) = reference
            .chars()
            .enumerate()
            .find(|&(_, c)| !c.is_ascii_graphic())
        {
            return err(
                "charset",
                format!("{} at position {}", describe_char(c), pos + 1),
            );
        }
        if reference.starts_with('-') {
            return err(
                "leading_hyphen",
                "it starts with `-`, which `docker pull` would read as an option".to_owned(),
            );
        }

        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (reference, None),
        };
        if let Some(digest) = digest {
            let hex = digest.strip_prefix("sha256:");
            if !hex.is_some_and(|h| {
                h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            }) {
                return err(
                    "digest",
                    format!(
                        "the digest {} is not `sha256:` followed by 64 lowercase hex digits",
                        show(digest)
                    ),
                );
            }
        }
        // A `:` after the last `/` starts the tag; one before it is a registry port.
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|s| colon > s) => {
                (&rest[..colon], Some(&rest[colon + 1..]))
            }
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(|why| invalid("tag", why))?;
        }
        if name.is_empty() {
            return err("repository", "it names no repository".to_owned());
        }
        if name.len() > IMAGE_NAME_MAX_LEN {
            return err(
                "too_long",
                format!(
                    "the name is {} characters; Docker allows at most {IMAGE_NAME_MAX_LEN}",
                    name.len()
                ),
            );
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (Some(first), remainder)
            }
            _ => (None, name),
        };
        if let Some(registry) = registry {
            check_registry(registry).map_err(|why| invalid("registry", why))?;
        }
        check_repository(repository).map_err(|(rule, why)| invalid(rule, why))?;
        if registry.is_none()
            && repository.len() == 64
            && repository.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return err(
                "repository",
                "a 64-hex-digit name reads as an image id; Docker refuses it as a repository"
                    .to_owned(),
            );
        }
        Ok(ImageRef {
            registry: registry.map(str::to_owned),
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// The registry host (and port) as written, if any: `ghcr.io`, `localhost:5000`.
    pub fn registry(&self) -> Option<&str> {
        self.registry.as_deref()
    }

    /// The registry to pull from: the one written, or [`DEFAULT_REGISTRY`].
    pub fn registry_or_default(&self) -> &str {
        self.registry.as_deref().unwrap_or(DEFAULT_REGISTRY)
    }

    /// The repository path: `nginx`, `acme/api`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any: `1.27`, `latest`.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any: `sha256:` and 64 hex digits.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// Whether the reference names exactly one image (by digest) rather than a movable tag.
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some()
    }
}

fn check_tag(tag: &str) -> Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let Some(&first) = tag.as_bytes().first() else {
        return Err("the tag after `:` is empty".to_owned());
    };
    if tag.len() > IMAGE_TAG_MAX_LEN {
        return Err(format!(
            "the tag is {} characters; Docker allows at most {IMAGE_TAG_MAX_LEN}",
            tag.len()
        ));
    }
    if !word(first) {
        return Err(format!(
            "the tag {} must start with a letter, digit or `_`",
            show(tag)
        ));
    }
    if let Some(b) = tag.bytes().find(|&b| !(word(b) || b == b'.' || b == b'-')) {
        return Err(format!(
            "the tag {} contains `{}`; a tag is letters, digits, `_`, `.` and `-`",
            show(tag),
            char::from(b).escape_debug()
        ));
    }
    Ok(())
}

fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = if let Some(inner) = registry.strip_prefix('[') {
        let Some((v6, after)) = inner.split_once(']') else {
            return Err(format!(
                "the registry {} has an unclosed `[`",
                show(registry)
            ));
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`[{v6}]` is not an IPv6 address"));
        }
        match after {
            "" => ("", None),
            _ => match after.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return Err(format!("unexpected {} after the IPv6 host", show(after))),
            },
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        }
    };
    // A bracketed IPv6 host was checked above; `host` is then empty.
    if !registry.starts_with('[') {
        if host.is_empty() {
            return Err(format!("the registry {} names no host", show(registry)));
        }
        for component in host.split('.') {
            let ok = !component.is_empty()
                && component
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !component.starts_with('-')
                && !component.ends_with('-');
            if !ok {
                return Err(format!(
                    "the registry host {} is not a host name (letters, digits and inner `-`, \
                     separated by `.`)",
                    show(host)
                ));
            }
        }
    }
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("the registry port {} is not a number", show(port)));
        }
    }
    Ok(())
}

fn check_repository(repository: &str) -> Result<(), (&'static str, String)> {
    if repository.is_empty() {
        return Err((
            "repository",
            "it names no repository after the registry".to_owned(),
        ));
    }
    if let Some(c) = repository.chars().find(char::is_ascii_uppercase) {
        return Err((
            "charset",
            format!(
                "the repository {} contains the uppercase letter `{c}`; repositories are \
                 lowercase",
                show(repository)
            ),
        ));
    }
    for component in repository.split('/') {
        if !is_path_component(component) {
            return Err((
                "repository",
                format!(
                    "the path component {} is not lowercase letters and digits joined by `.`, \
                     `_`, `__` or `-`",
                    show(component)
                ),
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*`
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(registry) = &self.registry {
            write!(f, "{registry}/")?;
        }
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

impl TryFrom<String> for ImageRef {
    type Error = InvalidInput;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ImageRef::parse(&s)
    }
}

impl From<ImageRef> for String {
    fn from(image: ImageRef) -> String {
        image.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn image_ref_parses_the_parts_of_valid_references() {
        let with_digest = format!("ghcr.io/acme/api:v2@{DIGEST}");
        let digest_only = format!("alpine@{DIGEST}");
        // (input, registry, repository, tag, digest)
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
        );
        let cases: &[Case<'_>] = &[
            ("nginx", None, "nginx", None, None),
            ("nginx:1.27", None, "nginx", Some("1.27"), None),
            (
                "library/nginx:latest",
                None,
                "library/nginx",
                Some("latest"),
                None,
            ),
            ("acme/api", None, "acme/api", None, None),
            ("ghcr.io/acme/api", Some("ghcr.io"), "acme/api", None, None),
            ("localhost/app", Some("localhost"), "app", None, None),
            (
                "localhost:5000/app:dev",
                Some("localhost:5000"),
                "app",
                Some("dev"),
                None,
            ),
            (
                "registry.acme.io:443/team/sub/app",
                Some("registry.acme.io:443"),
                "team/sub/app",
                None,
                None,
            ),
            ("MyRegistry/app", Some("MyRegistry"), "app", None, None),
            (
                "127.0.0.1:5000/app",
                Some("127.0.0.1:5000"),
                "app",
                None,
                None,
            ),
            ("[::1]:5000/app", Some("[::1]:5000"), "app", None, None),
            ("f/a.b_c__d---e", None, "f/a.b_c__d---e", None, None),
            ("app:V1_rc-2.x", None, "app", Some("V1_rc-2.x"), None),
            ("app:_x", None, "app", Some("_x"), None),
            (
                &with_digest,
                Some("ghcr.io"),
                "acme/api",
                Some("v2"),
                Some(DIGEST),
            ),
            (&digest_only, None, "alpine", None, Some(DIGEST)),
        ];
        for &(input, registry, repository, tag, digest) in cases {
            let image = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(image.registry(), registry, "{input:?}");
            assert_eq!(image.repository(), repository, "{input:?}");
            assert_eq!(image.tag(), tag, "{input:?}");
            assert_eq!(image.digest(), digest, "{input:?}");
            assert_eq!(image.to_string(), input, "Display must round-trip");
        }
    }

    #[test]
    fn image_ref_rejects_references_outside_dockers_grammar() {
        let long_name = "a".repeat(256);
        let long_tag = format!("app:{}", "t".repeat(129));
        let hex_name = "a".repeat(64);
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("Nginx", "charset"),
            ("acme/API", "charset"),
            ("nginx latest", "charset"),
            ("nginx\u{0}", "charset"),
            ("nginх", "charset"), // Cyrillic х
            ("-nginx", "leading_hyphen"),
            ("--upload-pack=x", "leading_hyphen"),
            ("../x", "registry"), // `..` contains a dot, so Docker reads it as a host
            ("x/..", "repository"),
            ("a/../b", "repository"),
            ("a//b", "repository"),
            ("ghcr.io/", "repository"),
            ("_app", "repository"),
            ("app_", "repository"),
            ("a___b", "repository"),
            ("a.-b", "repository"),
            ("a..b", "repository"),
            (":tag", "repository"),
            ("app:", "tag"),
            ("app:.x", "tag"),
            ("app:-x", "tag"),
            ("app:a+b", "tag"),
            (&long_tag, "tag"),
            ("app@sha256:abc", "digest"),
            ("app@md5:0123456789abcdef0123456789abcdef", "digest"),
            ("app@", "digest"),
            ("-x.io/app", "leading_hyphen"),
            ("ex_ample.io/app", "registry"),
            ("a-.io/app", "registry"),
            ("localhost:port/app", "registry"),
            ("[zz]:5000/app", "registry"),
            ("ext::sh", "repository"),
            (&long_name, "too_long"),
            (&hex_name, "repository"),
        ];
        for (input, rule) in cases {
            match ImageRef::parse(input) {
                Ok(image) => panic!("{input:?}: expected `{rule}`, got {image:?}"),
                Err(e) => {
                    assert_eq!(e.rule, *rule, "{input:?}: {}", e.message);
                    assert_eq!(e.field, "image");
                }
            }
        }
    }

    #[test]
    fn image_ref_uppercase_digest_is_rejected() {
        let upper = format!("app@{}", DIGEST.to_uppercase().replace("SHA256", "sha256"));
        assert_eq!(ImageRef::parse(&upper).unwrap_err().rule, "digest");
    }

    #[test]
    fn image_ref_serialises_as_its_string_and_validates_on_deserialise() {
        let image: ImageRef = "ghcr.io/acme/api:v2".parse().unwrap();
        let json = serde_json::to_string(&image).unwrap();
        assert_eq!(json, r#""ghcr.io/acme/api:v2""#);
        assert_eq!(serde_json::from_str::<ImageRef>(&json).unwrap(), image);
        let err = serde_json::from_str::<ImageRef>(r#""Bad Image""#).unwrap_err();
        assert!(
            err.to_string().contains("not a valid image reference"),
            "{err}"
        );
    }

    #[test]
    fn image_ref_knows_its_default_registry_and_pinning() {
        let plain: ImageRef = "nginx".parse().unwrap();
        assert_eq!(plain.registry_or_default(), "docker.io");
        assert!(!plain.is_pinned());
        let pinned: ImageRef = format!("ghcr.io/a/b@{DIGEST}").parse().unwrap();
        assert_eq!(pinned.registry_or_default(), "ghcr.io");
        assert!(pinned.is_pinned());
    }
}
