//! Procfiles: `name: command` lines naming a service's process types (`web`, `worker`,
//! `release`, …), as Heroku and foreman read them. A build records the repository's
//! Procfile; the engine runs each process type the service declares without a command of its
//! own with the Procfile's command.

/// One process type of a Procfile. The command is a shell command line, run in the image as
/// `sh -c` (see [`ProcfileEntry::argv`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcfileEntry {
    pub name: String,
    pub command: String,
}

impl ProcfileEntry {
    /// The argument vector that runs the command inside the container with the image's own
    /// shell (never the host's): `sh -c 'exec …'` for a simple command, so the process
    /// replaces the shell and receives signals; `sh -c '…'` when the command uses shell syntax
    /// (`;`, `&&`, pipes, redirections), which `exec` would break.
    pub fn argv(&self) -> Vec<String> {
        let compound = self
            .command
            .contains([';', '&', '|', '(', ')', '<', '>', '\n', '`']);
        let script = if compound || self.command.starts_with("exec ") {
            self.command.clone()
        } else {
            format!("exec {}", self.command)
        };
        vec!["/bin/sh".to_owned(), "-c".to_owned(), script]
    }
}

/// Parse a Procfile. Blank lines and `#` comments are skipped; a name is lowercase letters,
/// digits and `-` (a valid process type), starting with a letter; each name once.
pub fn parse(text: &str) -> Result<Vec<ProcfileEntry>, String> {
    let mut out: Vec<ProcfileEntry> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, command)) = line.split_once(':') else {
            return Err(format!("Procfile line {}: expected `name: command`", i + 1));
        };
        let (name, command) = (name.trim(), command.trim());
        let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(format!(
                "Procfile line {}: `{}` is not a valid process type (lowercase letters, digits \
                 and `-`, starting with a letter)",
                i + 1,
                name.escape_debug()
            ));
        }
        if command.is_empty() || command.contains('\0') {
            return Err(format!("Procfile line {}: `{name}` has no command", i + 1));
        }
        if out.iter().any(|e| e.name == name) {
            return Err(format!(
                "Procfile line {}: `{name}` is defined twice",
                i + 1
            ));
        }
        out.push(ProcfileEntry {
            name: name.to_owned(),
            command: command.to_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_process_types_and_refuses_bad_lines() {
        let p =
            parse("# app\nweb: node server.js --port $PORT\n\nworker:  node worker.js\n").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "web");
        assert_eq!(p[0].command, "node server.js --port $PORT");
        assert_eq!(p[1].argv(), ["/bin/sh", "-c", "exec node worker.js"]);
        let loop_ = parse("worker: while true; do sleep 1; done").unwrap();
        assert_eq!(
            loop_[0].argv(),
            ["/bin/sh", "-c", "while true; do sleep 1; done"],
            "compound commands run as they are"
        );
        assert!(parse("web node x").unwrap_err().contains("line 1"));
        assert!(parse("Web: x").is_err());
        assert!(parse("web: x\nweb: y").unwrap_err().contains("twice"));
        assert!(parse("web:").is_err());
    }
}
