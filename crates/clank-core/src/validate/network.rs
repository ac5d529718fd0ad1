//! Ports and domain names (lowercased, without a trailing dot; no schemes, ports, paths or
//! IP literals).

use std::net::{IpAddr, SocketAddr};

use crate::error::InvalidInput;

use super::{describe_char, first_disallowed, show};

/// Validate a TCP port, 1..=65535 (`range`). Takes `u32` so `0` and `70000` from JSON or a CLI
/// flag reach this check instead of failing, or wrapping, in a cast.
pub fn validate_port(field: &str, port: u32) -> Result<u16, InvalidInput> {
    match u16::try_from(port) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(InvalidInput::new(
            field,
            "range",
            format!("port {port} is out of range; a port is between 1 and 65535"),
        )),
    }
}

/// Longest domain name (RFC 1035, without the trailing dot).
pub const DOMAIN_MAX_LEN: usize = 253;
/// Longest label of a domain name.
pub const DOMAIN_LABEL_MAX_LEN: usize = 63;

/// Validate a domain an endpoint serves (`app.example.com`, `*.preview.example.com`) and return it
/// normalised: lowercase, without a trailing dot.
///
/// An RFC 1123 host name with at least two labels; one leading `*.` wildcard label is allowed when
/// at least two labels follow it. Rules:
/// - `empty`; `too_long` (over [`DOMAIN_MAX_LEN`], or a label over [`DOMAIN_LABEL_MAX_LEN`]);
/// - `scheme` (`https://…`), `path` (`/`, `?`, `#`), `port` (`:8443`): give the host name only;
/// - `ip_literal`: an IPv4/IPv6 address, or an all-digit top-level label (TLS certificates are
///   issued for names, and `1.2.3.4` would otherwise pass as four labels);
/// - `charset`: only `a-z`, `0-9`, `-` and `.`. Internationalised names must be given in their
///   ASCII `xn--` form, which also keeps lookalike letters out;
/// - `empty_label` (`a..b`, `.a`), `leading_hyphen` / `trailing_hyphen` (per label), `wildcard`
///   (`*` anywhere but a single leading `*.`), `single_label` (`localhost`, `*.com`).
pub fn validate_domain(field: &str, domain: &str) -> Result<String, InvalidInput> {
    let err = |rule: &'static str, why: String| {
        Err(InvalidInput::new(
            field,
            rule,
            format!("{} is not a valid domain: {why}", show(domain)),
        ))
    };
    if domain.is_empty() {
        return Err(InvalidInput::new(
            field,
            "empty",
            "must not be empty; give a domain such as `app.example.com`",
        ));
    }
    if let Some(i) = domain.find("://") {
        return err(
            "scheme",
            format!(
                "remove the scheme `{}://`; give the host name only, e.g. `app.example.com`",
                domain[..i].escape_debug()
            ),
        );
    }
    if let Some((pos, c)) = first_disallowed(domain, |c| c.is_ascii_graphic()) {
        let why = if c.is_ascii() {
            "domains contain no whitespace or control characters".to_owned()
        } else {
            "internationalised domains must be given in their ASCII form (`xn--…`), which also \
             keeps lookalike letters out"
                .to_owned()
        };
        return err(
            "charset",
            format!("{} at position {pos}: {why}", describe_char(c)),
        );
    }
    let unbracketed = domain.trim_start_matches('[').trim_end_matches(']');
    if unbracketed.parse::<IpAddr>().is_ok() || domain.parse::<SocketAddr>().is_ok() {
        return err(
            "ip_literal",
            "it is an IP address; endpoints serve domain names (TLS certificates are issued for \
             names)"
                .to_owned(),
        );
    }
    if domain.contains(['/', '?', '#']) {
        return err(
            "path",
            "it contains a path or query; give the host name only".to_owned(),
        );
    }
    if domain.contains('@') {
        return err(
            "charset",
            "`@` (user info) is not part of a domain; give the host name only".to_owned(),
        );
    }
    if domain.contains(':') {
        if domain
            .split(':')
            .next()
            .is_some_and(|h| h.parse::<IpAddr>().is_ok())
        {
            return err(
                "ip_literal",
                "it is an IP address with a port; endpoints serve domain names".to_owned(),
            );
        }
        return err(
            "port",
            "it contains a port; endpoints serve on 80/443 and the service's own port is set \
             separately"
                .to_owned(),
        );
    }
    let mut normalised = domain.to_ascii_lowercase();
    if normalised.ends_with('.') {
        normalised.pop();
    }
    if normalised.len() > DOMAIN_MAX_LEN {
        return err(
            "too_long",
            format!(
                "it is {} characters; a domain has at most {DOMAIN_MAX_LEN}",
                normalised.len()
            ),
        );
    }
    let (wildcard, rest) = match normalised.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, normalised.as_str()),
    };
    if rest.contains('*') {
        return err(
            "wildcard",
            "`*` is only allowed as a single leading `*.` label".to_owned(),
        );
    }
    let mut labels = 0usize;
    let mut last = "";
    for label in rest.split('.') {
        labels += 1;
        last = label;
        if label.is_empty() {
            return err(
                "empty_label",
                "it has an empty label (`..`, or a leading or doubled trailing dot)".to_owned(),
            );
        }
        if label.len() > DOMAIN_LABEL_MAX_LEN {
            return err(
                "too_long",
                format!(
                    "the label {} is {} characters; a label has at most {DOMAIN_LABEL_MAX_LEN}",
                    show(label),
                    label.len()
                ),
            );
        }
        if let Some((_, c)) = first_disallowed(label, |c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
        {
            return err(
                "charset",
                format!(
                    "the label {} contains {}; host names use only letters, digits and `-`",
                    show(label),
                    describe_char(c)
                ),
            );
        }
        if label.starts_with('-') {
            return err(
                "leading_hyphen",
                format!("the label {} starts with `-`", show(label)),
            );
        }
        if label.ends_with('-') {
            return err(
                "trailing_hyphen",
                format!("the label {} ends with `-`", show(label)),
            );
        }
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return err(
            "ip_literal",
            "its top-level label is all digits, so it reads as an IPv4 address".to_owned(),
        );
    }
    if labels < 2 {
        return err(
            "single_label",
            if wildcard {
                "a wildcard needs at least two labels after `*.` (e.g. `*.example.com`)".to_owned()
            } else {
                "it is a single label; give a full name such as `app.example.com`".to_owned()
            },
        );
    }
    Ok(normalised)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::assert_rule;

    #[test]
    fn port_accepts_1_to_65535_and_rejects_the_rest() {
        for (p, ok) in [
            (0, false),
            (1, true),
            (8080, true),
            (65_535, true),
            (65_536, false),
            (70_000, false),
            (u32::MAX, false),
        ] {
            match validate_port("port", p) {
                Ok(v) => assert!(ok && u32::from(v) == p, "{p}"),
                Err(e) => {
                    assert!(!ok, "{p}");
                    assert_eq!(e.rule, "range");
                    assert!(e.message.contains(&p.to_string()));
                }
            }
        }
    }

    #[test]
    fn domain_is_normalised_to_lowercase_without_trailing_dot() {
        let cases = [
            ("app.example.com", "app.example.com"),
            ("App.Example.COM", "app.example.com"),
            ("app.example.com.", "app.example.com"),
            ("*.preview.example.com", "*.preview.example.com"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("a-b.c0.io", "a-b.c0.io"),
            ("123.example.com", "123.example.com"),
        ];
        for (input, want) in cases {
            assert_eq!(
                validate_domain("domain", input).as_deref(),
                Ok(want),
                "{input:?}"
            );
        }
        let label = "a".repeat(63);
        let long = [label.as_str(), &label, &label, &"a".repeat(61)].join(".");
        assert_eq!(long.len(), 253);
        assert_eq!(validate_domain("d", &long), Ok(long.clone()));
    }

    #[test]
    fn domain_rejects_schemes_ports_paths_ips_and_bad_labels() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long = format!("{}.com", ["a"; 127].join("."));
        let cases: &[(&str, &str, &[&str])] = &[
            ("", "empty", &[]),
            ("https://example.com", "scheme", &["`https://`"]),
            ("example.com/path", "path", &[]),
            ("example.com?q", "path", &[]),
            ("example.com:8443", "port", &[]),
            ("1.2.3.4", "ip_literal", &[]),
            ("1.2.3.4:80", "ip_literal", &[]),
            ("::1", "ip_literal", &[]),
            ("[::1]", "ip_literal", &[]),
            ("example.123", "ip_literal", &["all digits"]),
            ("localhost", "single_label", &[]),
            ("*.com", "single_label", &["wildcard"]),
            ("a..b.com", "empty_label", &[]),
            (".example.com", "empty_label", &[]),
            ("example.com..", "empty_label", &[]),
            ("-a.example.com", "leading_hyphen", &[]),
            ("a-.example.com", "trailing_hyphen", &[]),
            ("my_app.example.com", "charset", &["`_`"]),
            ("a b.com", "charset", &["a space"]),
            ("exаmple.com", "charset", &["U+0430", "xn--"]),
            ("a\u{0}.com", "charset", &["control"]),
            ("user@example.com", "charset", &["`@`"]),
            ("a.*.example.com", "wildcard", &[]),
            ("*.*.example.com", "wildcard", &[]),
            ("*", "wildcard", &[]),
            (&long_label, "too_long", &["64"]),
            (&long, "too_long", &[]),
        ];
        for (input, rule, needles) in cases {
            assert_rule(input, validate_domain("domain", input), rule, needles);
        }
    }
}
