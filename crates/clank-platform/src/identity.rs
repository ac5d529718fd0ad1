//! Who may act where: the instance's first run (`init`) and its operator, workspaces created
//! for tenants, members (added, re-roled, removed with their tokens) and API tokens (issued,
//! listed, revoked).
//!
//! The rules on top of the role table live here: only an Owner makes, unmakes, removes an
//! Owner or revokes an Owner's token (an Admin manages everyone else); the last Owner can be
//! neither removed nor demoted; removing a member deletes their tokens in the same write; a
//! token never has more than its holder's role. Who is calling, and whether their role allows
//! an operation at all, is the caller's to establish ([`Caller`]); so are token secrets: the
//! platform stores only a [`TokenDigest`], and token hashes never leave the catalog.
//!
//! A user may also have a password for the dashboard's sign-in (set at `init`, for a new
//! tenant's new Owner, or later by an Owner): kept as an Argon2id hash in a record of its own
//! (never a field of `User`, which the API returns), checked by [`Platform::password_sign_in`],
//! which answers a right password with a short-lived token of the user's role, so a password
//! session is a token session: listed with the user's tokens and revocable like one.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use clank_api::system::Membership;
use clank_core::id::{TokenId, UserId};
use clank_core::model::{ApiToken, Instance, Member, Permission, Role, User, Workspace};
use clank_core::store::catalog::{Batch, Catalog, Page, Record, Versioned};
use clank_core::{Error, InvalidInput, Timestamp};

use crate::Platform;

/// Who an operation acts for: a member of `workspace` whose token carries `role`.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub workspace: &'a Workspace,
    pub user: UserId,
    pub role: Role,
}

impl Caller<'_> {
    /// Refuse unless the role allows `p` (the daemon's own check says the same).
    pub fn require(&self, p: Permission) -> Result<(), IdentityError> {
        if self.role.allows(p) {
            Ok(())
        } else {
            Err(IdentityError::forbidden(format!(
                "your role ({:?}) does not allow {p:?}",
                self.role
            )))
        }
    }

    /// Only an Owner may act on an Owner (remove, re-role, revoke their tokens).
    fn may_act_on(&self, target: Role, what: &str) -> Result<(), IdentityError> {
        if target == Role::Owner && !self.role.allows(Permission::OwnWorkspace) {
            return Err(IdentityError::forbidden(format!(
                "your role ({:?}) cannot {what} an Owner; ask an Owner of the workspace",
                self.role
            )));
        }
        Ok(())
    }
}

/// What the platform keeps of a new token: its hash and the prefix listings show. The secret
/// stays with whoever minted it.
#[derive(Debug, Clone)]
pub struct TokenDigest {
    pub hash: String,
    pub prefix: String,
}

impl TokenDigest {
    fn record(self, workspace: &Workspace, user: UserId, name: &str, role: Role) -> ApiToken {
        ApiToken {
            id: TokenId::new(),
            workspace_id: workspace.id,
            user_id: user,
            name: name.to_owned(),
            role,
            prefix: self.prefix,
            hash: self.hash,
            created_at: Timestamp::now(),
            expires_at: None,
            revoked_at: None,
        }
    }
}

/// Why an identity operation was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum IdentityError {
    /// `init` ran already.
    AlreadyInitialised,
    /// The caller's role may not do this; `field` names the input that asked too much.
    Forbidden {
        message: String,
        field: Option<&'static str>,
    },
    /// The change would leave `workspace` without an Owner.
    LastOwner { workspace: String },
    /// `who` (a user id or an email) is not a member of `workspace`.
    NotMember { who: String, workspace: String },
    /// No token with this id in the caller's workspace.
    TokenNotFound(TokenId),
    /// A password sign-in with an unknown email, a user without a password, or a wrong
    /// password: one answer for all, so it tells nothing about which.
    BadCredentials,
    /// Invalid input, or the store's answer.
    Platform(Error),
}

impl IdentityError {
    fn forbidden(message: String) -> Self {
        IdentityError::Forbidden {
            message,
            field: None,
        }
    }
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::AlreadyInitialised => {
                f.write_str("already initialised: ask an Owner or Admin for a token")
            }
            IdentityError::Forbidden { message, .. } => f.write_str(message),
            IdentityError::LastOwner { workspace } => write!(
                f,
                "this is the last Owner of workspace `{workspace}`; make another member Owner first"
            ),
            IdentityError::NotMember { who, workspace } => write!(
                f,
                "`{}` is not a member of workspace `{workspace}`",
                who.escape_debug()
            ),
            IdentityError::TokenNotFound(id) => write!(f, "token `{id}` not found"),
            IdentityError::BadCredentials => f.write_str("wrong email or password"),
            IdentityError::Platform(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for IdentityError {}

impl From<Error> for IdentityError {
    fn from(e: Error) -> Self {
        IdentityError::Platform(e)
    }
}

impl From<InvalidInput> for IdentityError {
    fn from(e: InvalidInput) -> Self {
        IdentityError::Platform(e.into())
    }
}

/// An email address, trimmed and lowercased, or why it is not one.
pub fn validate_email(email: &str) -> Result<String, InvalidInput> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(e)
    } else {
        Err(InvalidInput::new(
            "email",
            "format",
            format!("`{}` is not an email address", email.escape_debug()),
        ))
    }
}

pub use clank_api::members::NewWorkspace;

/// A new workspace's first Owner: the workspace, the user and their first token's record.
#[derive(Debug, Clone)]
pub struct FirstOwner {
    pub workspace: Workspace,
    pub user: User,
    pub token: ApiToken,
}

pub use clank_api::members::{MemberRemoved, MemberView, TokenInfo};

fn first_owner(
    ws: &Workspace,
    user: &User,
    token_name: &str,
    digest: TokenDigest,
) -> (Member, ApiToken) {
    let member = Member {
        workspace_id: ws.id,
        user_id: user.id,
        role: Role::Owner,
        teams: Default::default(),
        joined_at: Timestamp::now(),
    };
    (member, digest.record(ws, user.id, token_name, Role::Owner))
}

fn new_user(name: &str, email: String) -> Result<User, InvalidInput> {
    let name = clank_core::validate::validate_display_name("name", name)?.to_owned();
    Ok(User {
        id: UserId::new(),
        name,
        email,
        created_at: Timestamp::now(),
    })
}

impl Platform {
    /// The first workspace and its Owner, who becomes the instance operator. Only while no
    /// user exists; of concurrent inits, one commits.
    pub async fn init(
        &self,
        req: &NewWorkspace,
        digest: TokenDigest,
    ) -> Result<FirstOwner, IdentityError> {
        let cat = self.catalog();
        if !cat.list::<User>(Page::first(1)).await?.items.is_empty() {
            return Err(IdentityError::AlreadyInitialised);
        }
        let email = validate_email(&req.email)?;
        let user = new_user(&req.name, email)?;
        let ws = Workspace::new(&req.workspace, Some(&req.workspace), Timestamp::now())?;
        let password = match &req.password {
            Some(p) => Some(PasswordRecord::new(user.id, p).await?),
            None => None,
        };
        let (member, token) = first_owner(&ws, &user, "init", digest);
        let instance = Instance {
            operator: user.id,
            initialised_at: Timestamp::now(),
        };
        let mut b = Batch::new();
        b.create(&instance)?
            .create(&ws)?
            .create(&user)?
            .create(&member)?
            .create(&token)?;
        if let Some(p) = &password {
            b.create(p)?;
        }
        // The instance record makes this write conditional.
        match cat.commit(b).await {
            Ok(_) => Ok(FirstOwner {
                workspace: ws,
                user,
                token,
            }),
            Err(Error::Conflict(_) | Error::WriteConflict { .. }) => {
                Err(IdentityError::AlreadyInitialised)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A new workspace (tenant) and its first Owner: the user with that email if one exists,
    /// else a new user. Whether the caller may (the instance operator) is the caller's check.
    pub async fn create_tenant(
        &self,
        req: &NewWorkspace,
        digest: TokenDigest,
    ) -> Result<FirstOwner, IdentityError> {
        let cat = self.catalog();
        let email = validate_email(&req.email)?;
        let name = clank_core::validate::validate_display_name("name", &req.name)?.to_owned();
        let ws = Workspace::new(&req.workspace, Some(&req.workspace), Timestamp::now())?;
        let existing = cat.lookup::<User>("email", &email).await?;
        let user = match &existing {
            Some(u) => u.value.clone(),
            None => new_user(&name, email)?,
        };
        // A user who exists already keeps the password they have: it is theirs to change.
        let password = match (&req.password, &existing) {
            (Some(_), Some(_)) => {
                return Err(InvalidInput::new(
                    "password",
                    "exists",
                    format!(
                        "`{}` already has an account: their password stays theirs (leave \
                         `password` out)",
                        user.email
                    ),
                )
                .into());
            }
            (Some(p), None) => Some(PasswordRecord::new(user.id, p).await?),
            (None, _) => None,
        };
        let (member, token) = first_owner(&ws, &user, "owner", digest);
        let mut b = Batch::new();
        b.create(&ws)?.create(&member)?.create(&token)?;
        if existing.is_none() {
            b.create(&user)?;
        }
        if let Some(p) = &password {
            b.create(p)?;
        }
        cat.commit(b).await?;
        Ok(FirstOwner {
            workspace: ws,
            user,
            token,
        })
    }

    /// The instance operator: the user who ran `init`.
    pub async fn instance_operator(&self) -> clank_core::Result<Option<UserId>> {
        Ok(self
            .catalog()
            .get::<Instance>(Instance::ID)
            .await?
            .map(|i| i.operator))
    }

    /// A store initialised before the `Instance` record existed gets one naming its first
    /// user (the one who ran `init`), so the operator never changes as users come and go.
    pub async fn pin_operator(&self) -> clank_core::Result<()> {
        let cat = self.catalog();
        if cat.get::<Instance>(Instance::ID).await?.is_some() {
            return Ok(());
        }
        let Some(first) = cat
            .list::<User>(Page::first(1))
            .await?
            .items
            .into_iter()
            .next()
        else {
            return Ok(());
        };
        let instance = Instance {
            operator: first.id,
            initialised_at: first.created_at,
        };
        match cat.create(&instance).await {
            Ok(_) | Err(Error::Conflict(_) | Error::WriteConflict { .. }) => {
                tracing::info!(operator = %first.email, "The instance operator is the first user.");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Add a user to the caller's workspace with `role`, and their first token.
    pub async fn add_member(
        &self,
        caller: Caller<'_>,
        name: &str,
        email: &str,
        role: Role,
        digest: TokenDigest,
    ) -> Result<(User, ApiToken), IdentityError> {
        let email = validate_email(email)?;
        let user = new_user(name, email)?;
        let member = Member {
            workspace_id: caller.workspace.id,
            user_id: user.id,
            role,
            teams: Default::default(),
            joined_at: Timestamp::now(),
        };
        let token = digest.record(caller.workspace, user.id, "first", role);
        let mut b = Batch::new();
        b.create(&user)?.create(&member)?.create(&token)?;
        self.catalog().commit(b).await?;
        Ok((user, token))
    }

    /// The caller's workspace's members, with their names and emails.
    pub async fn members(&self, caller: Caller<'_>) -> Result<Vec<MemberView>, IdentityError> {
        let cat = self.catalog();
        let mut out = Vec::new();
        for m in members_of(cat, caller).await? {
            out.push(view(cat, m.value).await?);
        }
        Ok(out)
    }

    /// The workspaces `user` is a member of, oldest membership first (at most
    /// [`MAX_MEMBERSHIPS`]), with their role in each; `current` marks `workspace`.
    pub async fn memberships(
        &self,
        user: UserId,
        current: &Workspace,
    ) -> clank_core::Result<Vec<Membership>> {
        let cat = self.catalog();
        let members = cat
            .find::<Member>("user", &user.to_string(), Page::first(MAX_MEMBERSHIPS))
            .await?
            .items;
        let ids: Vec<String> = members
            .iter()
            .map(|m| m.value.workspace_id.to_string())
            .collect();
        let workspaces = cat.get_many::<Workspace>(&ids).await?;
        Ok(members
            .into_iter()
            .zip(workspaces)
            // A workspace deleted under a membership is skipped, not an error.
            .filter_map(|(m, ws)| {
                let ws = ws?.value;
                Some(Membership {
                    current: ws.id == current.id,
                    workspace: ws.slug,
                    name: ws.name,
                    role: m.value.role,
                })
            })
            .collect())
    }

    /// Change the role of the member `who` names (a user id or an email). Making, or changing
    /// the role of, an Owner is for Owners; the last Owner cannot be demoted.
    pub async fn change_role(
        &self,
        caller: Caller<'_>,
        who: &str,
        role: Role,
    ) -> Result<MemberView, IdentityError> {
        let cat = self.catalog();
        let target = find_member(cat, caller, who).await?;
        caller.may_act_on(target.value.role, "change the role of")?;
        caller.may_act_on(role, "make")?;
        let mut next = target.value.clone();
        next.role = role;
        let mut b = Batch::new();
        b.update(&target, &next)?;
        if target.value.role == Role::Owner && role != Role::Owner {
            let members = members_of(cat, caller).await?;
            let guard = other_owner(&members, &target.value, caller)?;
            b.update(guard, &guard.value)?;
        }
        cat.commit(b).await?;
        Ok(view(cat, next).await?)
    }

    /// Remove a member (offboarding): their membership and every token of theirs in the
    /// workspace go in one write; a user in no other workspace goes too, unless they are the
    /// instance operator.
    pub async fn remove_member(
        &self,
        caller: Caller<'_>,
        who: &str,
    ) -> Result<MemberRemoved, IdentityError> {
        let cat = self.catalog();
        let target = find_member(cat, caller, who).await?;
        caller.may_act_on(target.value.role, "remove")?;
        let user_id = target.value.user_id;
        let mut b = Batch::new();
        b.delete(&target);
        if target.value.role == Role::Owner {
            let members = members_of(cat, caller).await?;
            let guard = other_owner(&members, &target.value, caller)?;
            b.update(guard, &guard.value)?;
        }
        let tokens: Vec<_> = cat
            .find::<ApiToken>("user", &user_id.to_string(), Page::all())
            .await?
            .items
            .into_iter()
            .filter(|t| t.value.workspace_id == caller.workspace.id)
            .collect();
        for t in &tokens {
            b.delete(t);
        }
        // So the email can be invited again; the audit log keeps who they were.
        let user = cat.get::<User>(&user_id.to_string()).await?;
        let elsewhere = cat
            .find::<Member>("user", &user_id.to_string(), Page::all())
            .await?
            .items
            .iter()
            .any(|m| m.value.workspace_id != caller.workspace.id);
        // The operator is who they are, member or not.
        let operator = self.instance_operator().await? == Some(user_id);
        if let (Some(u), false, false) = (&user, elsewhere, operator) {
            b.delete(u);
            if let Some(p) = cat.get::<PasswordRecord>(&user_id.to_string()).await? {
                b.delete(&p);
            }
        }
        cat.commit(b).await?;
        Ok(MemberRemoved {
            user: user_id,
            email: user.map(|u| u.value.email),
            role: target.value.role,
            tokens_deleted: tokens.len(),
        })
    }

    /// A token for the caller, with at most their own role (default: theirs).
    pub async fn issue_token(
        &self,
        caller: Caller<'_>,
        name: &str,
        role: Option<Role>,
        digest: TokenDigest,
    ) -> Result<ApiToken, IdentityError> {
        let role = role.unwrap_or(caller.role);
        if role > caller.role {
            return Err(IdentityError::Forbidden {
                message: format!(
                    "a token cannot have more than your role ({:?})",
                    caller.role
                ),
                field: Some("role"),
            });
        }
        let name = clank_core::validate::validate_display_name("name", name)?;
        let token = digest.record(caller.workspace, caller.user, name, role);
        self.catalog().create(&token).await?;
        Ok(token)
    }

    /// The caller's own tokens; with `all`, every token of the workspace (Owner), or of every
    /// member who is not an Owner (Admin). Whether the caller may list all is theirs to check.
    pub async fn tokens(
        &self,
        caller: Caller<'_>,
        all: bool,
    ) -> Result<Vec<TokenInfo>, IdentityError> {
        let cat = self.catalog();
        let tokens = if all {
            let hidden: BTreeSet<UserId> = if caller.role.allows(Permission::OwnWorkspace) {
                BTreeSet::new()
            } else {
                members_of(cat, caller)
                    .await?
                    .into_iter()
                    .filter(|m| m.value.role == Role::Owner)
                    .map(|m| m.value.user_id)
                    .collect()
            };
            cat.find::<ApiToken>("workspace", &caller.workspace.id.to_string(), Page::all())
                .await?
                .items
                .into_iter()
                .filter(|t| !hidden.contains(&t.value.user_id))
                .collect::<Vec<_>>()
        } else {
            cat.find::<ApiToken>("user", &caller.user.to_string(), Page::all())
                .await?
                .items
                .into_iter()
                .filter(|t| t.value.workspace_id == caller.workspace.id)
                .collect()
        };
        Ok(tokens
            .into_iter()
            .map(|t| TokenInfo::from(t.value))
            .collect())
    }

    /// Revoke a token: the caller's own, or (with `ManageMembers`) a non-Owner's, or (Owner)
    /// anyone's.
    pub async fn revoke_token(&self, caller: Caller<'_>, id: &str) -> Result<(), IdentityError> {
        let id: TokenId = id.parse()?;
        let cat = self.catalog();
        let t = cat
            .get::<ApiToken>(&id.to_string())
            .await?
            .filter(|t| t.workspace_id == caller.workspace.id)
            .ok_or(IdentityError::TokenNotFound(id))?;
        if t.user_id != caller.user {
            caller.require(Permission::ManageMembers)?;
            let holder = cat
                .get::<Member>(&format!("{}:{}", caller.workspace.id, t.user_id))
                .await?;
            if let Some(holder) = holder {
                caller.may_act_on(holder.value.role, "revoke a token of")?;
            }
        }
        let mut next = t.value.clone();
        next.revoked_at.get_or_insert(Timestamp::now());
        cat.update(&t, &next).await?;
        Ok(())
    }

    /// Set (or change) the dashboard password of the member `who` names (a user id or an
    /// email). Anyone may set their own; an Owner may set another member's, unless that user
    /// is also a member of another workspace (whose Owners are not this one's).
    pub async fn set_password(
        &self,
        caller: Caller<'_>,
        who: &str,
        password: &str,
    ) -> Result<(), IdentityError> {
        let cat = self.catalog();
        let target = find_member(cat, caller, who).await?;
        let user_id = target.value.user_id;
        if user_id != caller.user {
            caller.require(Permission::OwnWorkspace)?;
            let elsewhere = cat
                .find::<Member>("user", &user_id.to_string(), Page::all())
                .await?
                .items
                .iter()
                .any(|m| m.value.workspace_id != caller.workspace.id);
            if elsewhere {
                return Err(IdentityError::Forbidden {
                    message: format!(
                        "`{}` is also a member of another workspace: only they can set their \
                         password",
                        who.escape_debug()
                    ),
                    field: Some("password"),
                });
            }
        }
        let record = PasswordRecord::new(user_id, password).await?;
        match cat.get::<PasswordRecord>(&user_id.to_string()).await? {
            Some(old) => cat.update(&old, &record).await?,
            None => cat.create(&record).await?,
        };
        Ok(())
    }

    /// The dashboard's sign-in with an email and a password: on a match, a new token of the
    /// user's role in `workspace` (a slug; by default their first workspace), expiring after
    /// `lifetime` (the session's), named [`SIGN_IN_TOKEN_NAME`]. An unknown email, a user
    /// without a password, a wrong password and a workspace they are not a member of all take
    /// an Argon2 verification and answer [`IdentityError::BadCredentials`].
    pub async fn password_sign_in(
        &self,
        email: &str,
        password: &str,
        workspace: Option<&str>,
        digest: TokenDigest,
        lifetime: Duration,
    ) -> Result<SignedIn, IdentityError> {
        let cat = self.catalog();
        let user = match validate_email(email) {
            Ok(email) => cat.lookup::<User>("email", &email).await?,
            Err(_) => None,
        };
        let stored = match &user {
            Some(u) => cat.get::<PasswordRecord>(&u.id.to_string()).await?,
            None => None,
        };
        let matches = match &stored {
            Some(p) => verify_password(p.phc.clone(), password.to_owned()).await?,
            None => {
                // The same work as a real check, so the time tells nothing either.
                verify_password(dummy_hash().await?, password.to_owned()).await?;
                false
            }
        };
        let Some(user) = user.filter(|_| matches) else {
            return Err(IdentityError::BadCredentials);
        };
        let member = match workspace {
            Some(slug) => match cat.lookup::<Workspace>("slug", slug).await? {
                Some(ws) => cat.get::<Member>(&format!("{}:{}", ws.id, user.id)).await?,
                None => None,
            },
            // Workspace ids are time-ordered: the first is the one they joined (or made) first.
            None => cat
                .find::<Member>("user", &user.id.to_string(), Page::first(1))
                .await?
                .items
                .into_iter()
                .next(),
        };
        let Some(member) = member else {
            return Err(IdentityError::BadCredentials);
        };
        let workspace = cat
            .require::<Workspace>(&member.workspace_id.to_string())
            .await?
            .value;
        let now = Timestamp::now();
        let mut token = digest.record(&workspace, user.id, SIGN_IN_TOKEN_NAME, member.role);
        token.expires_at = Some(now.saturating_add(lifetime));
        cat.create(&token).await?;
        Ok(SignedIn {
            workspace,
            user: user.value,
            token,
        })
    }
}

/// Most memberships [`Platform::memberships`] lists.
pub const MAX_MEMBERSHIPS: usize = 1000;

/// The name of the token a password sign-in makes.
pub const SIGN_IN_TOKEN_NAME: &str = "dashboard sign-in";

/// A password is at least this many characters.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// And at most this many bytes (the hash reads every one).
const MAX_PASSWORD_BYTES: usize = 1024;

/// What a password sign-in opened: the workspace, the user and the new token's record.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub workspace: Workspace,
    pub user: User,
    pub token: ApiToken,
}

/// A user's dashboard password as stored: its Argon2id hash as a PHC string (algorithm,
/// parameters, salt and hash), one record per user, keyed by the user's id.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct PasswordRecord {
    user_id: UserId,
    phc: String,
    set_at: Timestamp,
}

impl fmt::Debug for PasswordRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordRecord")
            .field("user_id", &self.user_id)
            .field("set_at", &self.set_at)
            .finish_non_exhaustive()
    }
}

impl Record for PasswordRecord {
    const TABLE: &'static str = "password";
    fn id_string(&self) -> String {
        self.user_id.to_string()
    }
}

impl PasswordRecord {
    /// `password` checked and hashed for `user`.
    async fn new(user_id: UserId, password: &str) -> Result<PasswordRecord, IdentityError> {
        validate_password(password)?;
        Ok(PasswordRecord {
            user_id,
            phc: hash_password(password.to_owned()).await?,
            set_at: Timestamp::now(),
        })
    }
}

/// Whether `password` may be one: long enough, not absurdly long.
pub fn validate_password(password: &str) -> Result<(), InvalidInput> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(InvalidInput::new(
            "password",
            "length",
            format!("a password has at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(InvalidInput::new(
            "password",
            "length",
            format!("a password has at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane) with a random 128-bit salt, off
/// the async threads.
async fn hash_password(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        use argon2::PasswordHasher as _;
        let salt = argon2::password_hash::SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|e| Error::Internal(format!("password salt: {e}")))?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("password hash: {e}")))
    })
    .await
    .map_err(|e| Error::Internal(format!("password hash: {e}")))?
}

/// Whether `password` matches the PHC string `phc`, off the async threads.
async fn verify_password(phc: String, password: String) -> Result<bool, Error> {
    tokio::task::spawn_blocking(move || {
        use argon2::PasswordVerifier as _;
        let parsed = argon2::PasswordHash::new(&phc)
            .map_err(|e| Error::Internal(format!("stored password hash: {e}")))?;
        Ok(argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| Error::Internal(format!("password check: {e}")))?
}

/// A hash of a random password, made once: what an unknown email is checked against.
async fn dummy_hash() -> Result<String, Error> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return Ok(h.clone());
    }
    let random = format!("{:032x}", rand::random::<u128>());
    let h = hash_password(random).await?;
    Ok(DUMMY.get_or_init(|| h).clone())
}

async fn view(cat: &Catalog, member: Member) -> clank_core::Result<MemberView> {
    let user = cat.get::<User>(&member.user_id.to_string()).await?;
    Ok(MemberView {
        member,
        name: user.as_ref().map(|u| u.value.name.clone()),
        email: user.map(|u| u.value.email),
    })
}

async fn members_of(
    cat: &Catalog,
    caller: Caller<'_>,
) -> clank_core::Result<Vec<Versioned<Member>>> {
    Ok(cat
        .find::<Member>("workspace", &caller.workspace.id.to_string(), Page::all())
        .await?
        .items)
}

/// The member `who` names in the caller's workspace: a user id, or the user's email.
async fn find_member(
    cat: &Catalog,
    caller: Caller<'_>,
    who: &str,
) -> Result<Versioned<Member>, IdentityError> {
    let user = if who.contains('@') {
        cat.lookup::<User>("email", &who.trim().to_lowercase())
            .await?
            .map(|u| u.value.id)
    } else {
        Some(who.parse::<UserId>()?)
    };
    let member = match user {
        Some(u) => {
            cat.get::<Member>(&format!("{}:{u}", caller.workspace.id))
                .await?
        }
        None => None,
    };
    member.ok_or_else(|| IdentityError::NotMember {
        who: who.to_owned(),
        workspace: caller.workspace.slug.clone(),
    })
}

/// Another Owner than `leaving`, whose record the write that removes or demotes `leaving`
/// re-asserts unchanged: of two Owners removing each other at once, one write fails.
fn other_owner<'a>(
    members: &'a [Versioned<Member>],
    leaving: &Member,
    caller: Caller<'_>,
) -> Result<&'a Versioned<Member>, IdentityError> {
    members
        .iter()
        .find(|m| m.value.role == Role::Owner && m.value.user_id != leaving.user_id)
        .ok_or_else(|| IdentityError::LastOwner {
            workspace: caller.workspace.slug.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_has_at_least_twelve_characters_and_at_most_a_kilobyte() {
        assert!(validate_password("correct horse").is_ok());
        assert!(
            validate_password("ééééééééééé€").is_ok(),
            "characters, not bytes"
        );
        let short = validate_password("short").unwrap_err();
        assert_eq!(short.field, "password");
        assert!(validate_password(&"x".repeat(1025)).is_err());
    }

    #[tokio::test]
    async fn a_password_is_stored_as_an_argon2id_hash_that_only_it_matches() {
        let phc = hash_password("correct horse battery".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(
            verify_password(phc.clone(), "correct horse battery".into())
                .await
                .unwrap()
        );
        assert!(
            !verify_password(phc.clone(), "correct horse batterY".into())
                .await
                .unwrap()
        );
        // Salted: the same password hashes differently each time.
        assert_ne!(
            phc,
            hash_password("correct horse battery".into()).await.unwrap()
        );
        let record = PasswordRecord {
            user_id: UserId::new(),
            phc,
            set_at: Timestamp(0),
        };
        assert!(
            !format!("{record:?}").contains("argon2"),
            "Debug hides the hash"
        );
        // The dummy an unknown email is checked against is made once and is a real hash.
        let dummy = dummy_hash().await.unwrap();
        assert_eq!(dummy, dummy_hash().await.unwrap());
        assert!(
            !verify_password(dummy, "anything at all".into())
                .await
                .unwrap()
        );
    }

    #[test]
    fn an_email_is_trimmed_and_lowercased_and_a_non_email_names_the_field() {
        assert_eq!(
            validate_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "ada",
            "@example.com",
            "ada@example",
            "ada@.com",
            "a da@example.com",
        ] {
            let e = validate_email(bad).unwrap_err();
            assert_eq!(e.field, "email", "{bad}");
        }
    }
}
