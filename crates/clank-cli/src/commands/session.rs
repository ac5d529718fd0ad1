//! Getting a token: `init` on a fresh daemon, `login` with a token, `whoami`.

use clank_api::members::{NewWorkspace, TokenCreated};
use clank_api::system::WhoAmI;

use crate::app::{App, wire_name};
use crate::client::{CliError, Client, Context};

pub(crate) async fn init(
    app: &App,
    url: String,
    workspace: String,
    name: String,
    email: String,
) -> Result<(), CliError> {
    let created: TokenCreated = app
        .client
        .post(
            "/v1/init",
            &NewWorkspace {
                workspace: workspace.clone(),
                name,
                email,
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

pub(crate) async fn whoami(app: &App) -> Result<(), CliError> {
    let who: WhoAmI = app.client.get("/v1/whoami").await?;
    app.show(&who, |w| {
        format!("{} in `{}` ({})", w.user, w.workspace, wire_name(&w.role))
    });
    Ok(())
}
