//! Service settings with bounds: CPU and memory limits, replicas, health check interval,
//! retries and path, build and deploy timeouts.

use std::ops::RangeInclusive;

use crate::error::InvalidInput;

use super::{describe_char, first_disallowed, show};

/// Most CPUs a service may be given.
pub const CPU_LIMIT_MAX: f64 = 256.0;
/// Memory limit bounds in MB; Docker refuses limits under 6 MB.
pub const MEMORY_LIMIT_MB: RangeInclusive<u64> = 6..=1_048_576;
/// Replicas of one process type; 0 stops it without deleting it.
pub const REPLICAS: RangeInclusive<u32> = 0..=100;
/// Seconds between health checks.
pub const HEALTH_CHECK_INTERVAL_S: RangeInclusive<u32> = 1..=3600;
/// Failed health checks before a deployment fails.
pub const HEALTH_CHECK_RETRIES: RangeInclusive<u32> = 1..=100;
/// Seconds a build may take.
pub const BUILD_TIMEOUT_S: RangeInclusive<u32> = 10..=86_400;
/// Seconds a deployment may take to pass its health checks.
pub const DEPLOY_TIMEOUT_S: RangeInclusive<u32> = 5..=86_400;
/// Longest health check path.
pub const HEALTH_CHECK_PATH_MAX_LEN: usize = 1024;

fn check_range<T: PartialOrd + Copy + std::fmt::Display>(
    field: &str,
    what: &str,
    value: T,
    range: &RangeInclusive<T>,
    unit: &str,
) -> Result<T, InvalidInput> {
    if range.contains(&value) {
        return Ok(value);
    }
    Err(InvalidInput::new(
        field,
        "range",
        format!(
            "{what} {value}{unit} is out of range; it must be between {}{unit} and {}{unit}",
            range.start(),
            range.end()
        ),
    ))
}

/// Validate a CPU limit in cores (`0.5` = half a core): finite, above 0, at most
/// [`CPU_LIMIT_MAX`] (`range`; NaN and infinities included).
pub fn validate_cpu_limit(field: &str, cpus: f64) -> Result<f64, InvalidInput> {
    if cpus.is_finite() && cpus > 0.0 && cpus <= CPU_LIMIT_MAX {
        return Ok(cpus);
    }
    Err(InvalidInput::new(
        field,
        "range",
        format!(
            "CPU limit {cpus} is out of range; it must be a number above 0 and at most \
             {CPU_LIMIT_MAX} cores (e.g. 0.5 for half a core)"
        ),
    ))
}

/// Validate a memory limit in MB, within [`MEMORY_LIMIT_MB`] (`range`).
pub fn validate_memory_limit_mb(field: &str, mb: u64) -> Result<u64, InvalidInput> {
    check_range(field, "memory limit", mb, &MEMORY_LIMIT_MB, " MB")
}

/// Validate a replica count, within [`REPLICAS`] (`range`).
pub fn validate_replicas(field: &str, replicas: u32) -> Result<u32, InvalidInput> {
    check_range(field, "replica count", replicas, &REPLICAS, "")
}

/// Validate a health check interval in seconds, within [`HEALTH_CHECK_INTERVAL_S`] (`range`).
pub fn validate_health_check_interval_s(field: &str, secs: u32) -> Result<u32, InvalidInput> {
    check_range(
        field,
        "health check interval",
        secs,
        &HEALTH_CHECK_INTERVAL_S,
        " s",
    )
}

/// Validate a health check retry count, within [`HEALTH_CHECK_RETRIES`] (`range`).
pub fn validate_health_check_retries(field: &str, retries: u32) -> Result<u32, InvalidInput> {
    check_range(
        field,
        "health check retries",
        retries,
        &HEALTH_CHECK_RETRIES,
        "",
    )
}

/// Validate a build timeout in seconds, within [`BUILD_TIMEOUT_S`] (`range`).
pub fn validate_build_timeout_s(field: &str, secs: u32) -> Result<u32, InvalidInput> {
    check_range(field, "build timeout", secs, &BUILD_TIMEOUT_S, " s")
}

/// Validate a deploy timeout in seconds, within [`DEPLOY_TIMEOUT_S`] (`range`).
pub fn validate_deploy_timeout_s(field: &str, secs: u32) -> Result<u32, InvalidInput> {
    check_range(field, "deploy timeout", secs, &DEPLOY_TIMEOUT_S, " s")
}

/// Validate a health check path. Empty is allowed and means "no HTTP check" (databases and other
/// non-HTTP services get a TCP or "running and stable" check). Otherwise it starts with `/`
/// (`format`), is at most [`HEALTH_CHECK_PATH_MAX_LEN`] bytes (`too_long`), and is printable
/// ASCII without spaces (`charset`: percent-encode anything else).
pub fn validate_health_check_path(field: &str, path: &str) -> Result<(), InvalidInput> {
    if path.is_empty() {
        return Ok(());
    }
    if path.len() > HEALTH_CHECK_PATH_MAX_LEN {
        return Err(InvalidInput::new(
            field,
            "too_long",
            format!(
                "{} is {} bytes; a health check path has at most {HEALTH_CHECK_PATH_MAX_LEN}",
                show(path),
                path.len()
            ),
        ));
    }
    if let Some((pos, c)) = first_disallowed(path, |c| c.is_ascii_graphic()) {
        return Err(InvalidInput::new(
            field,
            "charset",
            format!(
                "{} contains {} at position {pos}; a path is printable ASCII without spaces \
                 (percent-encode the rest)",
                show(path),
                describe_char(c)
            ),
        ));
    }
    if !path.starts_with('/') {
        return Err(InvalidInput::new(
            field,
            "format",
            format!(
                "{} must start with `/` (e.g. `/health`), or be empty for no HTTP check",
                show(path)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::assert_rule;

    #[test]
    fn cpu_limit_must_be_finite_positive_and_at_most_256() {
        for ok in [0.5, 0.01, 1.0, 2.0, 256.0] {
            assert_eq!(validate_cpu_limit("cpu", ok), Ok(ok));
        }
        for bad in [
            0.0,
            -0.0,
            -1.0,
            256.5,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let e = validate_cpu_limit("cpu", bad).unwrap_err();
            assert_eq!(e.rule, "range", "{bad}");
        }
    }

    #[test]
    fn integer_limits_accept_their_bounds_and_reject_just_outside() {
        type Check = fn(&str, u32) -> Result<u32, InvalidInput>;
        let checks: &[(&str, Check, u32, u32)] = &[
            ("replicas", validate_replicas, 0, 100),
            ("interval", validate_health_check_interval_s, 1, 3600),
            ("retries", validate_health_check_retries, 1, 100),
            ("build", validate_build_timeout_s, 10, 86_400),
            ("deploy", validate_deploy_timeout_s, 5, 86_400),
        ];
        for &(name, check, lo, hi) in checks {
            assert_eq!(check(name, lo), Ok(lo), "{name} low bound");
            assert_eq!(check(name, hi), Ok(hi), "{name} high bound");
            assert_eq!(
                check(name, hi + 1).unwrap_err().rule,
                "range",
                "{name} above"
            );
            if lo > 0 {
                let e = check(name, lo - 1).unwrap_err();
                assert_eq!(e.rule, "range", "{name} below");
                assert!(e.message.contains(&lo.to_string()), "{}", e.message);
            }
        }
        assert_eq!(validate_memory_limit_mb("mem", 512), Ok(512));
        assert_eq!(validate_memory_limit_mb("mem", 6), Ok(6));
        assert_eq!(validate_memory_limit_mb("mem", 1_048_576), Ok(1_048_576));
        assert_rule("5", validate_memory_limit_mb("mem", 5), "range", &["6 MB"]);
        assert_rule("0", validate_memory_limit_mb("mem", 0), "range", &[]);
        assert_rule(
            "max",
            validate_memory_limit_mb("mem", 1_048_577),
            "range",
            &[],
        );
    }

    #[test]
    fn health_check_path_may_be_empty_or_an_absolute_printable_path() {
        for ok in ["", "/", "/health", "/api/v1/health?full=1", "/%E2%9C%93"] {
            assert_eq!(validate_health_check_path("hc", ok), Ok(()), "{ok:?}");
        }
        let long = format!("/{}", "a".repeat(1024));
        let cases: &[(&str, &str)] = &[
            ("health", "format"),
            ("http://x/health", "format"),
            ("/a b", "charset"),
            ("/a\tb", "charset"),
            ("/a\u{0}", "charset"),
            ("/✓", "charset"),
            (&long, "too_long"),
        ];
        for (input, rule) in cases {
            assert_rule(input, validate_health_check_path("hc", input), rule, &[]);
        }
    }
}
