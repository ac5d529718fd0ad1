//! `${…}` references in env values and commands.
//!
//! | written | means |
//! |---|---|
//! | `${name}` | the value of variable `name` |
//! | `${service.<slug>.host}` | the DNS name of service `<slug>` on the project network |
//! | `${service.<slug>.port}` | the port service `<slug>` listens on |
//! | `${stack}` | the stack's name (the app's slug) |
//! | `$$` | a literal `$` |
//!
//! Any other `$` is kept as written, so `"$REDIS_PASSWORD"` reaches a shell untouched.

/// A piece of an interpolated string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Text(String),
    Var(String),
    Host(String),
    Port(String),
    Stack,
}

/// Split `value` into text and references; `Err` says what is malformed.
pub(crate) fn parse(value: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        text.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            text.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some(end) = tail.find('}') else {
                return Err("`${` is not closed by `}` (write `$$` for a literal `$`)".to_owned());
            };
            let reference = &tail[..end];
            if !text.is_empty() {
                out.push(Segment::Text(std::mem::take(&mut text)));
            }
            out.push(reference_segment(reference)?);
            rest = &tail[end + 1..];
        } else {
            text.push('$');
            rest = after;
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Segment::Text(text));
    }
    Ok(out)
}

fn reference_segment(reference: &str) -> Result<Segment, String> {
    if reference == "stack" {
        return Ok(Segment::Stack);
    }
    if let Some(path) = reference.strip_prefix("service.") {
        return match path.rsplit_once('.') {
            Some((slug, "host")) => Ok(Segment::Host(slug.to_owned())),
            Some((slug, "port")) => Ok(Segment::Port(slug.to_owned())),
            _ => Err(format!(
                "`${{{reference}}}` is not `${{service.<slug>.host}}` or `${{service.<slug>.port}}`"
            )),
        };
    }
    if is_variable_name(reference) {
        Ok(Segment::Var(reference.to_owned()))
    } else {
        Err(format!(
            "`${{{}}}` is not a variable name (lowercase letters, digits and `_`)",
            reference.escape_debug()
        ))
    }
}

/// Variable names: `[a-z_][a-z0-9_]*`, at most 64 characters.
pub(crate) fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_text_and_escapes_are_split() {
        let s =
            parse("postgres://u:${pw}@${service.db.host}:${service.db.port}/x$$y $HOME").unwrap();
        assert_eq!(
            s,
            vec![
                Segment::Text("postgres://u:".into()),
                Segment::Var("pw".into()),
                Segment::Text("@".into()),
                Segment::Host("db".into()),
                Segment::Text(":".into()),
                Segment::Port("db".into()),
                Segment::Text("/x$y $HOME".into()),
            ]
        );
    }

    #[test]
    fn malformed_references_are_refused() {
        assert!(parse("${open").is_err());
        assert!(parse("${Bad-Name}").is_err());
        assert!(parse("${service.db.user}").is_err());
    }
}
