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

const native = require('./clank.node');

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

const ERROR_CLASSES = {
  not_found: NotFound,
  conflict: Conflict,
  invalid: InvalidInput,
  unauthorized: Unauthorized,
  forbidden: Forbidden,
  unavailable: Unavailable,
  timeout: Timeout,
  internal: Internal,
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

/** Events from the moment `Platform.events()` was called; an async iterator. */
class Events {
  constructor(subscription) {
    this._native = subscription;
  }

  /** The next event, or `null` once closed. */
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

class Platform {
  constructor(nativePlatform) {
    this._native = nativePlatform;
  }

  /** Open (or create) the platform in `dataDir`; `runtime`: 'auto' | 'docker' | 'process'. */
  static async open(dataDir, options = {}) {
    const { runtime = 'auto' } = options;
    return new Platform(await guard(native.open(String(dataDir), runtime)));
  }

  /** The runtime running workloads: 'docker' or 'process'. */
  get runtime() {
    return this._native.runtime;
  }

  /** Stop the engine (idempotent); running workloads keep running. */
  async close() {
    await guard(this._native.close());
  }

  async _call(request) {
    return JSON.parse(await guard(this._native.call(JSON.stringify(request))));
  }

  // ---- Workspaces, projects, environments ----
  ensureWorkspace(slug) {
    return this._call({ op: 'ensure_workspace', slug });
  }
  listWorkspaces() {
    return this._call({ op: 'list_workspaces' });
  }
  createProject(name, options = {}) {
    const { slug = null, workspace = 'default' } = options;
    return this._call({ op: 'create_project', workspace, name, slug });
  }
  getProject(project) {
    return this._call({ op: 'get_project', project });
  }
  listProjects(options = {}) {
    const { workspace = 'default', includeDeleted = false } = options;
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
  listEnvironments(project) {
    return this._call({ op: 'list_environments', project });
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
    const { workspace = 'default' } = options;
    return this._call({ op: 'get_plan', workspace, plan });
  }
  /** Apply exactly that plan (Conflict if anything it read changed since). */
  applyPlan(plan, options = {}) {
    const { workspace = 'default' } = options;
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
    const { secrets = {}, workspace = 'default', source = null } = options;
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
    const { slug = null, workspace = 'default' } = options;
    return this._call({ op: 'create_team', workspace, name, slug });
  }
  listTeams(options = {}) {
    const { workspace = 'default' } = options;
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
  listServices(environment) {
    return this._call({ op: 'list_services', environment });
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
  /** Wait until ACTIVE or finished; rejects with Conflict after `timeout` seconds. */
  wait(service, number, options = {}) {
    const { timeout = 300 } = options;
    return this._call({ op: 'wait', service, number, timeout_s: Number(timeout) });
  }
  endpoints(service, number) {
    return this._call({ op: 'endpoints', service, number });
  }
  /** Follow events from now on, of one service or of all (`for await (const e of ...)`). */
  events(service = null) {
    return new Events(this._native.subscribe(service));
  }
}

module.exports = {
  Platform,
  Events,
  ClankError,
  NotFound,
  Conflict,
  InvalidInput,
  Unauthorized,
  Forbidden,
  Unavailable,
  Timeout,
  Internal,
};
