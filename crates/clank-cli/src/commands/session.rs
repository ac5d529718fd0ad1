//! Getting a token: `init` on a fresh daemon, `login` with a token, `whoami`.

use clank_api::members::{NewWorkspace, TokenCreated};
use clank_api::system::{Membership, WhoAmI};

use crate::app::{App, wire_name};
use crate::client::{CliError, Client, Context};

pub(crate) async fn init(
    app: &App,
    url: String,
    workspace: String,
    name: String,
    email: String,
    password_stdin: bool,
) -> Result<(), CliError> {
    let password = if password_stdin {
        Some(read_password(std::io::stdin().lock())?)
    } else {
        None
    };
    let created: TokenCreated = app
        .client
        .post(
            "/v1/init",
            &NewWorkspace {
                workspace: workspace.clone(),
                name,
                email,
                password,
            },
        )
        .await?;
    let ctx = Context {
        url: Some(url),
        token: Some(created.token.clone()),
        workspace: Some(workspace.clone()),
    };
    ctx.save()?;
    app.show(&created, |_| {
        format!(
            "workspace `{workspace}` created; you are its Owner. Token saved to {}",
            Context::path().display()
        )
    });
    Ok(())
}

pub(crate) async fn login(app: &App, url: String, token: String) -> Result<(), CliError> {
    let who: WhoAmI = Client::new(url.clone(), Some(token.clone()))
        .get("/v1/whoami")
        .await?;
    let ctx = Context {
        url: Some(url),
        token: Some(token),
        workspace: Some(who.workspace.clone()),
    };
    ctx.save()?;
    app.show(&who, |w| {
        format!(
            "logged in to workspace `{}` as {}",
            w.workspace,
            wire_name(&w.role)
        )
    });
    Ok(())
}

/// Who the token is, and every workspace its user is a member of (`--json`: `/v1/whoami`'s
/// answer with `memberships` added).
pub(crate) async fn whoami(app: &App) -> Result<(), CliError> {
    let who: WhoAmI = app.client.get("/v1/whoami").await?;
    let memberships: Vec<Membership> = app.client.get("/v1/memberships").await?;
    let mut shown = serde_json::json!(who);
    shown["memberships"] = serde_json::json!(memberships);
    app.show(&shown, |_| {
        let mut out = format!(
            "{} in `{}` ({})",
            who.user,
            who.workspace,
            wire_name(&who.role)
        );
        let others: Vec<String> = memberships
            .iter()
            .filter(|m| !m.current)
            .map(|m| format!("`{}` ({})", m.workspace, wire_name(&m.role)))
            .collect();
        if !others.is_empty() {
            out.push_str(&format!(
                "\nalso a member of {} (`clank login` with a token of one to use it)",
                others.join(", ")
            ));
        }
        out
    });
    Ok(())
}

/// The first line of `input`, without its line ending: a password piped in (`--password-stdin`).
pub(crate) fn read_password(mut input: impl std::io::BufRead) -> Result<String, CliError> {
    let mut line = String::new();
    input.read_line(&mut line).map_err(|e| {
        CliError::new(
            format!("--password-stdin: cannot read standard input: {e}"),
            2,
        )
    })?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(CliError::new(
            "--password-stdin: standard input has no password (pipe one line in)",
            2,
        ));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_the_first_line_without_its_ending_and_an_empty_one_is_refused() {
        assert_eq!(
            read_password(&b"correct horse battery\r\nnext"[..]).unwrap(),
            "correct horse battery"
        );
        assert_eq!(read_password(&b" spaced  "[..]).unwrap(), " spaced  ");
        assert!(read_password(&b"\n"[..]).is_err());
        assert!(read_password(&b""[..]).is_err());
    }
}
