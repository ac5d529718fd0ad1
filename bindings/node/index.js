'use strict';
// Clank from Node: the deployment platform with Promises.
//
//   const clank = require('./bindings/node');
//   const p = await clank.Platform.open('./clank-data');
//   await p.createProject('Shop', { slug: 'shop' });
//   await p.createService('shop', 'api', { image: 'nginx:1.27' });
//   const events = p.events('shop/api');            // before the deploy: nothing is missed
//   const d = await p.deploy('shop/api');
//   for await (const e of events) { if (e.number === d.number && e.to === 'ACTIVE') break; }
//   await p.close();
//
// Method and option names are camelCase; records keep the platform's JSON field names
// (`created_at`, `health_check_path`, ...), the same as the REST API and the Python binding.
// Every rejection is a `ClankError` subclass with `code` and `field`. Secrets are always shown
// as "********". The native module (`clank.node`, built by build.sh) is private.

// --- Loading the native addon (packaging: scripts/package, bindings/README.md) -------------
// A development build (`clank.node` beside this file, from build.sh) wins; an installed
// package finds the addon in its per-platform package (an optionalDependency: npm installs only
// the one whose os/cpu/libc match).
const PLATFORM_PACKAGES = {
  'linux-x64-gnu': '@clank-platform/clank-linux-x64-gnu',
  'linux-arm64-gnu': '@clank-platform/clank-linux-arm64-gnu',
};

function platformKey() {
  const { platform, arch } = process;
  if (platform !== 'linux') return `${platform}-${arch}`;
  // glibc or musl: Node reports the glibc it runs on; musl builds report none.
  const header = process.report && typeof process.report.getReport === 'function'
    ? process.report.getReport().header
    : {};
  return `${platform}-${arch}-${header.glibcVersionRuntime ? 'gnu' : 'musl'}`;
}

function loadNative() {
  const local = require('node:path').join(__dirname, 'clank.node');
  if (require('node:fs').existsSync(local)) return require(local);
  const key = platformKey();
  const pkg = PLATFORM_PACKAGES[key];
  if (pkg) {
    try {
      return require(pkg);
    } catch (err) {
      // Only "that package is not installed" means "not found"; a broken addon is reported as is.
      if (err.code !== 'MODULE_NOT_FOUND' || !String(err.message).includes(pkg)) throw err;
    }
  }
  const supported = Object.keys(PLATFORM_PACKAGES).join(', ');
  throw new Error(
    pkg
      ? `clank: the native addon for ${key} is missing: install ${pkg} (npm installs it as an ` +
          'optional dependency; --omit=optional leaves it out), or put a clank.node built from ' +
          `the sources (bindings/node/build.sh) at ${local}`
      : `clank: no native addon for this platform (${key}); prebuilt ones exist for ` +
          `${supported}. Build clank.node from the sources (bindings/node/build.sh) into ${local}`,
  );
}

const native = loadNative();
// --- end of loading --------------------------------------------------------------------------

const ERROR_MARKER = 'clank-error:';

class ClankError extends Error {
  constructor(message, code = 'internal', field = null) {
    super(message);
    this.name = this.constructor.name;
    this.code = code;
    this.field = field;
  }
}
class NotFound extends ClankError {}
class Conflict extends ClankError {}
class InvalidInput extends ClankError {}
class Unauthorized extends ClankError {}
class Forbidden extends ClankError {}
class Unavailable extends ClankError {}
class Timeout extends ClankError {}
class Internal extends ClankError {}
/** Every call on a closed platform (and iterating its events or logs) rejects with this: code `closed`. */
class Closed extends ClankError {}

const ERROR_CLASSES = {
  not_found: NotFound,
  conflict: Conflict,
  invalid: InvalidInput,
  unauthorized: Unauthorized,
  forbidden: Forbidden,
  unavailable: Unavailable,
  timeout: Timeout,
  internal: Internal,
  closed: Closed,
};

// The one place native errors become ClankErrors (the native side encodes kind and field).
function toClankError(err) {
  if (err instanceof ClankError) return err;
  const text = err && typeof err.message === 'string' ? err.message : String(err);
  if (text.startsWith(ERROR_MARKER)) {
    const { code, field, message } = JSON.parse(text.slice(ERROR_MARKER.length));
    const Class = ERROR_CLASSES[code] || Internal;
    return new Class(message, code, field === undefined ? null : field);
  }
  return new Internal(text, 'internal', null);
}

function yieldToLoop() {
  return new Promise((resolve) => setImmediate(resolve));
}

async function guard(promise) {
  try {
    return await promise;
  } catch (err) {
    throw toClankError(err);
  }
}

function target(t = {}) {
  const given = ['workspace', 'team', 'project', 'environment', 'service'].filter((k) => t[k] != null);
  if (given.length !== 1) {
    throw new InvalidInput(
      'name exactly one of workspace, team, project, environment or service',
      'invalid',
      'target',
    );
  }
  return { [given[0]]: t[given[0]] };
}

/**
 * A native subscription as an async iterator of parsed JSON items: `next()` gives `done` once
 * it is closed or ended; `return()` (what `break` in `for await` calls) and `close()` end it.
 */
class Subscription {
  constructor(subscription) {
    this._native = subscription;
  }

  /** The next item, or `done` once closed or ended. */
  async next() {
    const raw = await guard(this._native.next());
    return raw === null ? { done: true, value: undefined } : { done: false, value: JSON.parse(raw) };
  }

  /** Stop following (also what `break` in `for await` does). */
  async return() {
    this._native.close();
    return { done: true, value: undefined };
  }

  close() {
    this._native.close();
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

/** Events from the moment `Platform.events()` was called; an async iterator. */
class Events extends Subscription {}

/**
 * A service's log lines (each the same object as a `logs()` line: `process`, `replica`,
 * `stream`, `line`, `at`): the last `tail` lines of history, then new lines as they are printed
 * (`clank logs -f`); an async iterator. Ends when closed (`return()`, which `break` in
 * `for await` calls, or `close()`), which also ends the stream (and, connected, its HTTP
 * request), or when the workloads' output ends. A reader that falls behind slows the reading
 * (a bounded buffer): no line is dropped.
 */
class Logs extends Subscription {}

class Platform {
  constructor(nativePlatform) {
    this._native = nativePlatform;
  }

  /** Open (or create) the platform in `dataDir`; `runtime`: 'auto' | 'docker' | 'process'. */
  static async open(dataDir, options = {}) {
    const { runtime = 'auto' } = options;
    return new Platform(await guard(native.open(String(dataDir), runtime)));
  }

  /**
   * Connect to a running daemon (`'http://127.0.0.1:7070'`) with an API token: the same
   * methods, answered by the daemon under the token's role. Short addresses mean the token's
   * workspace (or `workspace`). `timeout` bounds each call (seconds; `Timeout` past it); a call
   * that failed on the way is tried `retries` more times where that cannot do anything twice.
   * `caCert`: a CA certificate file (PEM) to trust for an `https://` daemon beside the system's
   * roots (a private CA); one that cannot be read rejects with `InvalidInput`, field `ca_cert`.
   */
  static async connect(url, token, options = {}) {
    const { timeout = 30, retries = 2, workspace = null, caCert = null } = options;
    const nativePlatform = await guard(
      native.connect(
        String(url),
        String(token),
        Number(timeout),
        Number(retries),
        workspace,
        caCert == null ? null : String(caCert),
      ),
    );
    return new Platform(nativePlatform);
  }

  /** The runtime running workloads: 'docker' or 'process'; 'remote' when connected. */
  get runtime() {
    return this._native.runtime;
  }

  /** Whether `close()` was called. */
  get closed() {
    return this._native.closed;
  }

  /**
   * Stop the engine and release the data directory (idempotent): once this resolves, another
   * platform (in this process or another) can open the same directory. Running workloads keep
   * running. Every later call, and iterating an `Events` or a `Logs`, rejects with `Closed`; a
   * call running meanwhile gets a short grace period to finish.
   */
  async close() {
    await guard(this._native.close());
  }

  async _call(request) {
    let answer;
    try {
      answer = this._native.call(JSON.stringify(request));
    } catch (err) {
      throw toClankError(err);
    }
    if (typeof answer === 'string') {
      // Answered in place (a store read of an embedded platform, no hop through a thread-safe
      // function): still yield to the event loop once, as awaiting I/O would, so a loop of
      // such calls does not starve timers and I/O.
      await yieldToLoop();
    } else {
      answer = await guard(answer);
    }
    return JSON.parse(answer);
  }

  // ---- Workspaces, projects, environments ----
  ensureWorkspace(slug) {
    return this._call({ op: 'ensure_workspace', slug });
  }
  listWorkspaces() {
    return this._call({ op: 'list_workspaces' });
  }
  createProject(name, options = {}) {
    const { slug = null, workspace = null } = options;
    return this._call({ op: 'create_project', workspace, name, slug });
  }
  getProject(project) {
    return this._call({ op: 'get_project', project });
  }
  listProjects(options = {}) {
    const { workspace = null, includeDeleted = false } = options;
    return this._call({ op: 'list_projects', workspace, include_deleted: includeDeleted });
  }
  /** Soft delete with its environments and services (restorable); `purge` removes it for good. */
  deleteProject(project, options = {}) {
    const { purge = false, volumes = false } = options;
    return this._call({ op: 'delete_project', project, purge, volumes });
  }
  restoreProject(project) {
    return this._call({ op: 'restore_project', project });
  }
  createEnvironment(project, name) {
    return this._call({ op: 'create_environment', project, name });
  }
  /** `includeDeleted`: soft-deleted ones too (`deleted_at` set). */
  listEnvironments(project, options = {}) {
    const { includeDeleted = false } = options;
    return this._call({ op: 'list_environments', project, include_deleted: includeDeleted });
  }
  deleteEnvironment(environment, options = {}) {
    const { purge = false, volumes = false } = options;
    return this._call({ op: 'delete_environment', environment, purge, volumes });
  }
  restoreEnvironment(environment) {
    return this._call({ op: 'restore_environment', environment });
  }
  /** Copy `environment` into a new one named `name` (config copied unless `copyConfig: false`;
   * volume data only with `copyVolumes: true`). */
  cloneEnvironment(environment, name, options = {}) {
    const { domainPattern = null, copyConfig = true, deploy = false, copyVolumes = false } = options;
    const clone = { name, copy_config: copyConfig, deploy, copy_volumes: copyVolumes };
    if (domainPattern != null) clone.domain_pattern = domainPattern;
    return this._call({ op: 'clone_environment', environment, clone });
  }

  // ---- Promotion plans ----
  planPromotion(source, target) {
    return this._call({ op: 'plan_promotion', source, target });
  }
  getPlan(plan, options = {}) {
    const { workspace = null } = options;
    return this._call({ op: 'get_plan', workspace, plan });
  }
  /** Apply exactly that plan (Conflict if anything it read changed since). */
  applyPlan(plan, options = {}) {
    const { workspace = null } = options;
    return this._call({ op: 'apply_plan', workspace, plan });
  }

  // ---- Declarations ----
  /** The project as a declaration (what `clank export` writes); secrets by name only. */
  exportProject(project) {
    return this._call({ op: 'export_project', project });
  }
  /**
   * Plan applying a declaration to its project (created if missing): the plan is stored,
   * nothing else written; apply exactly it with `applyPlan(plan.id)`. `secrets` holds the
   * values of the secrets the target lacks, by `secret_env` name.
   */
  applyDeclaration(declaration, options = {}) {
    const { secrets = {}, workspace = null, source = null } = options;
    return this._call({ op: 'apply_declaration', workspace, declaration, secrets, source });
  }

  // ---- Pull-request previews ----
  previewSettings(project) {
    return this._call({ op: 'get_preview_settings', project });
  }
  setPreviewSettings(project, settings) {
    return this._call({ op: 'set_preview_settings', project, settings });
  }
  listPreviews(project) {
    return this._call({ op: 'list_previews', project });
  }
  closePreview(project, pullRequest) {
    return this._call({ op: 'close_preview', project, pull_request: pullRequest });
  }

  // ---- Teams (`[workspace/]team`, slug or id; a team grants no access) ----
  createTeam(name, options = {}) {
    const { slug = null, workspace = null } = options;
    return this._call({ op: 'create_team', workspace, name, slug });
  }
  listTeams(options = {}) {
    const { workspace = null } = options;
    return this._call({ op: 'list_teams', workspace });
  }
  getTeam(team) {
    return this._call({ op: 'get_team', team });
  }
  /** Rejects with Conflict while projects are assigned to the team. */
  deleteTeam(team) {
    return this._call({ op: 'delete_team', team });
  }
  addTeamMember(team, member) {
    return this._call({ op: 'add_team_member', team, member });
  }
  removeTeamMember(team, member) {
    return this._call({ op: 'remove_team_member', team, member });
  }
  listTeamMembers(team) {
    return this._call({ op: 'list_team_members', team });
  }
  assignProject(project, team) {
    return this._call({ op: 'assign_project', project, team });
  }
  unassignProject(project) {
    return this._call({ op: 'assign_project', project, team: null });
  }

  // ---- Services ----
  async createService(environment, slug, options = {}) {
    const { image, source, name, settings, volumes, endpoint, command } = options;
    let { processes } = options;
    if ((image == null) === (source == null)) {
      throw new InvalidInput('give exactly one of image or source', 'invalid', 'source');
    }
    if (command != null) {
      if (processes != null) throw new InvalidInput('give command or processes, not both', 'invalid', 'command');
      processes = { web: { command: [...command], replicas: 1 } };
    }
    const spec = { slug, source: source != null ? source : { type: 'docker_image', image } };
    if (name != null) spec.name = name;
    if (settings != null) spec.settings = settings;
    if (volumes != null) spec.volumes = volumes;
    if (endpoint != null) spec.endpoint = endpoint;
    if (processes != null) spec.processes = processes;
    return this._call({ op: 'create_service', environment, spec });
  }
  getService(service) {
    return this._call({ op: 'get_service', service });
  }
  /** Change name, source, settings, volumes, endpoint, processes or server_id (next deploy). */
  updateService(service, changes) {
    const patch = { ...changes };
    if ('serverId' in patch) {
      patch.server_id = patch.serverId;
      delete patch.serverId;
    }
    return this._call({ op: 'update_service', service, patch });
  }
  /** `includeDeleted`: soft-deleted ones too (`deleted_at` set). */
  listServices(environment, options = {}) {
    const { includeDeleted = false } = options;
    return this._call({ op: 'list_services', environment, include_deleted: includeDeleted });
  }
  deleteService(service, options = {}) {
    const { purge = false, volumes = false } = options;
    return this._call({ op: 'delete_service', service, purge, volumes });
  }
  restoreService(service) {
    return this._call({ op: 'restore_service', service });
  }
  stopService(service) {
    return this._call({ op: 'stop_service', service });
  }
  startService(service) {
    return this._call({ op: 'start_service', service });
  }

  // ---- Templates and stacks ----
  listTemplates() {
    return this._call({ op: 'list_templates' });
  }
  template(name) {
    return this._call({ op: 'get_template', name });
  }
  /** Create `template`'s services in `environment` and deploy them, dependencies first. */
  createStack(environment, template, options) {
    const { name, inputs = {}, images = {}, domain, lan = false } = options || {};
    const stack = { template, inputs, images, lan };
    if (name !== undefined) stack.name = name;
    if (domain !== undefined) stack.domain = domain;
    return this._call({ op: 'create_stack', environment, stack });
  }
  stacks(environment) {
    return this._call({ op: 'list_stacks', environment });
  }
  stack(stack) {
    return this._call({ op: 'get_stack', stack });
  }
  /** Without `apply`: the preview (`changes`, `plan_id`); with `apply: planId`: that plan, applied. */
  upgradeStack(stack, options) {
    const { to = null, apply = null } = options || {};
    return this._call({ op: 'upgrade_stack', stack, to, apply });
  }

  // ---- Config ----
  /** Set plain `values`, sealed `secrets` and remove `unset` keys at one scope, all or nothing. */
  async setConfig(options) {
    const { values = {}, secrets = {}, unset = [] } = options || {};
    const tgt = target(options);
    const changes = [
      ...Object.entries(values).map(([key, value]) => ({ key, value: String(value), secret: false })),
      ...Object.entries(secrets).map(([key, value]) => ({ key, value: String(value), secret: true })),
      ...[].concat(unset).map((key) => ({ key, unset: true })),
    ];
    return this._call({ op: 'set_config', target: tgt, changes });
  }
  async config(scope) {
    return this._call({ op: 'get_config', target: target(scope) });
  }
  resolvedConfig(service) {
    return this._call({ op: 'resolved_config', service });
  }

  // ---- Deployments ----
  deploy(service) {
    return this._call({ op: 'deploy', service });
  }
  rollback(service, number) {
    return this._call({ op: 'rollback', service, number });
  }
  cancel(service, number) {
    return this._call({ op: 'cancel', service, number });
  }
  deployment(service, number) {
    return this._call({ op: 'get_deployment', service, number });
  }
  deployments(service, options = {}) {
    const { limit = 20, before = null } = options;
    return this._call({ op: 'list_deployments', service, limit, before });
  }
  /** A git service's builds, newest first; `before` continues from a build number. */
  builds(service, options = {}) {
    const { limit = 20, before = null } = options;
    return this._call({ op: 'list_builds', service, limit, before });
  }
  /** One build with the tail of its log. */
  build(service, number) {
    return this._call({ op: 'get_build', service, number });
  }
  deployLog(service, number) {
    return this._call({ op: 'deploy_log', service, number });
  }
  /** Wait until ACTIVE or finished; rejects with Timeout (code `timeout`) after `timeout` seconds. */
  wait(service, number, options = {}) {
    const { timeout = 300 } = options;
    return this._call({ op: 'wait', service, number, timeout_s: Number(timeout) });
  }
  endpoints(service, number) {
    return this._call({ op: 'endpoints', service, number });
  }
  // ---- What runs: status, logs, exec ----
  /** The service, its ACTIVE deployment however old (`active`), its five newest (`recent`). */
  status(service) {
    return this._call({ op: 'status', service });
  }
  /** The running service's recent output, oldest first (`tail` lines per workload, default 100). */
  logs(service, options = {}) {
    const { tail = null, process = null, replica = null } = options;
    return this._call({ op: 'logs', service, tail, process, replica });
  }
  /** Run `command` (an argument vector) in the running service, without a terminal. */
  exec(service, command, options = {}) {
    const { timeout = null, process = null, replica = null } = options;
    const argv = typeof command === 'string' ? [command] : [...command];
    return this._call({
      op: 'exec',
      service,
      exec: { command: argv, timeout_s: timeout, process, replica },
    });
  }

  // ---- Servers ----
  servers(options = {}) {
    const { workspace = null } = options;
    return this._call({ op: 'list_servers', workspace });
  }
  /** Register a server: its `join_token` (shown once) enrolls its agent. */
  createServer(name, options = {}) {
    const { workspace = null } = options;
    return this._call({ op: 'create_server', name, workspace });
  }
  server(name, options = {}) {
    const { workspace = null } = options;
    return this._call({ op: 'get_server', server: name, workspace });
  }
  serverJoinToken(name, options = {}) {
    const { workspace = null } = options;
    return this._call({ op: 'server_join_token', server: name, workspace });
  }
  revokeServer(name, options = {}) {
    const { workspace = null } = options;
    return this._call({ op: 'revoke_server', server: name, workspace });
  }

  // ---- Members, tokens, the audit log (a daemon's: `Platform.connect`) ----
  members() {
    return this._call({ op: 'list_members' });
  }
  /** Add a member; the answer's `token` is their first, shown once. */
  addMember(email, options) {
    const { name, role } = options;
    return this._call({ op: 'add_member', member: { name, email, role } });
  }
  setMemberRole(member, role) {
    return this._call({ op: 'update_member', member, role });
  }
  removeMember(member) {
    return this._call({ op: 'remove_member', member });
  }
  tokens(options = {}) {
    const { all = false } = options;
    return this._call({ op: 'list_tokens', all });
  }
  /** A token for yourself, with at most your role; its `token` is shown once. */
  createToken(name, options = {}) {
    const { role = null } = options;
    return this._call({ op: 'create_token', token: { name, role } });
  }
  async revokeToken(tokenId) {
    await this._call({ op: 'revoke_token', token: tokenId });
  }
  /** The workspace's audit log, newest first. */
  audit(options = {}) {
    const { limit = null, before = null, workspace = null } = options;
    return this._call({ op: 'list_audit', limit, before, workspace });
  }

  /** Follow events from now on, of one service or of all (`for await (const e of ...)`). */
  events(service = null) {
    try {
      return new Events(this._native.subscribe(service));
    } catch (err) {
      throw toClankError(err);
    }
  }

  /**
   * Follow the running service's output (`clank logs -f`):
   * `for await (const line of p.followLogs('shop/web', { tail: 10 }))`. First the last `tail`
   * lines (default 100, at most 10 000) of each workload (`process`/`replica` pick some), then
   * new lines as they come. A refusal (no such service, no ACTIVE deployment, an unknown process
   * type) rejects the first `next()`; closing the platform ends it with `Closed`.
   */
  followLogs(service, options = {}) {
    const { tail = null, process = null, replica = null } = options;
    if (tail != null && !(Number.isInteger(tail) && tail >= 0 && tail <= 0xffffffff)) {
      throw new InvalidInput(`tail is a number of lines (0 or more), not ${tail}`, 'invalid', 'tail');
    }
    try {
      return new Logs(this._native.followLogs(String(service), tail, process, replica));
    } catch (err) {
      throw toClankError(err);
    }
  }
}

module.exports = {
  Platform,
  Events,
  Logs,
  ClankError,
  NotFound,
  Conflict,
  InvalidInput,
  Unauthorized,
  Forbidden,
  Unavailable,
  Timeout,
  Internal,
  Closed,
};
