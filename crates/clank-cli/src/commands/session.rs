//! Getting a token: `init` on a fresh daemon, `login` with a token, `whoami`.

use serde_json::{Value, json};

use crate::app::App;
use crate::client::{CliError, Client, Context};

pub(crate) async fn init(
    app: &App,
    url: String,
    workspace: String,
    name: String,
    email: String,
) -> Result<(), CliError> {
    let v: Value = app
        .client
        .post(
            "/v1/init",
            &json!({ "workspace": workspace, "name": name, "email": email }),
        )
        .await?;
    let ctx = Context {
        url: Some(url),
        token: v["token"].as_str().map(str::to_owned),
        workspace: Some(workspace.clone()),
    };
    ctx.save()?;
    app.show(&v, |_| {
        format!(
            "workspace `{workspace}` created; you are its Owner. Token saved to {}",
            Context::path().display()
        )
    });
    Ok(())
}

pub(crate) async fn login(app: &App, url: String, token: String) -> Result<(), CliError> {
    let who: Value = Client::new(url.clone(), Some(token.clone()))
        .get("/v1/whoami")
        .await?;
    let ctx = Context {
        url: Some(url),
        token: Some(token),
        workspace: who["workspace"].as_str().map(str::to_owned),
    };
    ctx.save()?;
    app.show(&who, |w| {
        format!(
            "logged in to workspace `{}` as {}",
            w["workspace"].as_str().unwrap_or("?"),
            w["role"].as_str().unwrap_or("?")
        )
    });
    Ok(())
}

pub(crate) async fn whoami(app: &App) -> Result<(), CliError> {
    let v: Value = app.client.get("/v1/whoami").await?;
    app.show(&v, |w| {
        format!(
            "{} in `{}` ({})",
            w["user"],
            w["workspace"].as_str().unwrap_or("?"),
            w["role"].as_str().unwrap_or("?")
        )
    });
    Ok(())
}
