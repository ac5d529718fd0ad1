// Hand-maintained types of index.js; test/index.test.js checks they declare exactly what the
// module exports (classes and their methods).
//
// Records keep the platform's JSON field names (snake_case), the same as the REST API and the
// Python binding. Timestamps are milliseconds since the Unix epoch; ids are UUID strings.

export type RuntimeName = 'auto' | 'docker' | 'process';

export type DeploymentStatus =
  | 'PENDING'
  | 'BUILDING'
  | 'DEPLOYING'
  | 'HEALTH_CHECKING'
  | 'ACTIVE'
  | 'SUPERSEDED'
  | 'FAILED'
  | 'CANCELLED';

export interface Workspace {
  id: string;
  slug: string;
  name: string;
  created_at: number;
}

export interface Project {
  id: string;
  workspace_id: string;
  team_id: string | null;
  name: string;
  slug: string;
  created_at: number;
  deleted_at: number | null;
}

export interface Environment {
  id: string;
  project_id: string;
  name: string;
  kind: string;
  created_at: number;
}

export interface ProcessSpec {
  command?: string[] | null;
  replicas?: number;
}

export interface VolumeMount {
  name: string;
  mount_path: string;
}

export interface ServiceSettings {
  port?: number | null;
  health_check_path?: string;
  health_check_interval_s?: number;
  health_check_retries?: number;
  build_timeout_s?: number;
  deploy_timeout_s?: number;
  cpu_limit?: number;
  memory_limit_mb?: number;
  auto_deploy?: boolean;
  is_public?: boolean;
}

export type ServiceSource =
  | { type: 'docker_image'; image: string }
  | {
      type: 'git';
      repo_url: string;
      branch: string;
      dockerfile_path?: string | null;
      build_context?: string | null;
    }
  | { type: 'template'; template: string; version: string; image: string };

export interface Service {
  id: string;
  workspace_id: string;
  project_id: string;
  environment_id: string;
  slug: string;
  name: string;
  source: ServiceSource;
  settings: Required<ServiceSettings>;
  server_id: string | null;
  volumes: VolumeMount[];
  endpoint: Record<string, unknown> | null;
  processes: Record<string, Required<ProcessSpec>>;
  active_deployment: string | null;
  next_deployment_number: number;
  next_build_number: number;
  /** Set (Unix milliseconds) while the service is stopped; absent when it runs. */
  stopped_at?: number;
  created_at: number;
  updated_at: number;
}

/** A variable set at one scope; a secret's value is always "********". */
export interface ConfigVar {
  key: string;
  value: string;
  secret: boolean;
  updated_at: number;
}

/** A variable after the cascade, with its provenance (`"<level>:<id>"` scopes). */
export interface ResolvedVar {
  key: string;
  value: string;
  secret: boolean;
  source: string;
  overridden: string[];
}

export interface StatusChange {
  from: DeploymentStatus | null;
  to: DeploymentStatus;
  at: number;
  reason: string | null;
}

export interface Deployment {
  id: string;
  service_id: string;
  number: number;
  status: DeploymentStatus;
  reason: string | null;
  trigger: { kind: string; [key: string]: unknown };
  artifact: { kind: string; [key: string]: unknown };
  image: string | null;
  created_at: number;
  deadline: number | null;
  history: StatusChange[];
  /** The resolved config frozen into the deployment, secrets masked. */
  config: ResolvedVar[];
  settings: Required<ServiceSettings>;
  processes: Record<string, Required<ProcessSpec>>;
  volumes: VolumeMount[];
  endpoint: Record<string, unknown> | null;
  cancel_requested: boolean;
}

export interface LogEntry {
  at: number;
  message: string;
}

interface EventBase {
  at: number;
  /** The service's id. */
  service: string;
  /** The deployment's id. */
  deployment: string;
  number: number;
}

export type Event =
  | (EventBase & { type: 'created' })
  | (EventBase & {
      type: 'transition';
      from: DeploymentStatus;
      to: DeploymentStatus;
      reason: string | null;
    })
  | (EventBase & { type: 'log'; message: string })
  | (EventBase & { type: 'restarted'; reason: string });

/** Exactly one scope, by address. */
export type ConfigScope =
  | { workspace: string }
  | { team: string }
  | { project: string }
  | { environment: string }
  | { service: string };

export type SetConfigOptions = ConfigScope & {
  values?: Record<string, string | number | boolean>;
  secrets?: Record<string, string>;
  unset?: string | string[];
};

export interface CloneEnvironmentOptions {
  /** How the copies' domains are named (`{service}-{env}.example.com`); absent: no domains. */
  domainPattern?: string;
  /** Copy the environment's and each service's config (default true). */
  copyConfig?: boolean;
  /** Deploy every copied service afterwards (default false). */
  deploy?: boolean;
  /** Copy each volume's data into the copy's new volume (default false: they start empty). */
  copyVolumes?: boolean;
}

/** A config value in a declaration: plain text, or a secret by the name its value goes by. */
export type Declared = string | { secret_env: string };

export interface ServiceDeclaration {
  name: string;
  source: ServiceSource;
  settings?: ServiceSettings;
  volumes?: VolumeMount[];
  endpoint?: Record<string, unknown> | null;
  processes?: Record<string, ProcessSpec>;
  depends_on?: string[];
  config?: Record<string, Declared>;
}

export interface EnvironmentDeclaration {
  config?: Record<string, Declared>;
  services?: Record<string, ServiceDeclaration>;
}

/** A project as data: what `exportProject` returns and `applyDeclaration` takes. */
export interface Declaration {
  project: string;
  name: string;
  team?: string;
  config?: Record<string, Declared>;
  environments?: Record<string, EnvironmentDeclaration>;
}

export interface ApplyDeclarationOptions {
  /** Values of the secrets the target lacks, by `secret_env` name (others are kept). */
  secrets?: Record<string, string>;
  workspace?: string;
  /** What the plan shows as its source (a file name). */
  source?: string;
}

/** A stored plan (a promotion's or a declaration's); apply it by `id` before `expires_at`. */
export interface PlanView {
  id: string;
  kind: 'promotion' | 'apply';
  source: string;
  target: string;
  created_at: number;
  expires_at: number;
  services: Array<{
    service: string;
    action: 'create' | 'update' | 'deploy' | 'unchanged';
    image?: { from: string | null; to: string; digest?: string; build?: string };
    fields: Array<{ field: string; from: string | null; to: string | null }>;
    config: Array<{
      key: string;
      change: 'added' | 'removed' | 'changed';
      secret: boolean;
      from: string | null;
      to: string | null;
    }>;
    kept: string[];
  }>;
  unchanged: boolean;
  applied_at?: number;
}

export interface AppliedPlan {
  plan: string;
  /** The deployments it started (a declaration's: none). */
  deployments: Deployment[];
  /** Services it created. */
  created: string[];
}

export interface DeleteOptions {
  /** Remove for good instead of a restorable soft delete. */
  purge?: boolean;
  /** With `purge`: remove named volumes with their data too. */
  volumes?: boolean;
}

export interface DeleteReport {
  /** What was deleted, as an address. */
  target: string;
  deleted_at: number;
  /** Until when a restore brings it back; null once purged. */
  restorable_until: number | null;
  purged?: Record<string, unknown>;
}

export interface Team {
  id: string;
  workspace_id: string;
  slug: string;
  name: string;
  created_at: number;
}

export interface TeamView extends Team {
  members: number;
  /** Slugs of the projects assigned to the team. */
  projects: string[];
}

export interface Member {
  workspace_id: string;
  user_id: string;
  role: 'owner' | 'admin' | 'developer' | 'viewer';
  /** Team ids. */
  teams: string[];
  joined_at: number;
  name: string | null;
  email: string | null;
}

export interface CreateServiceOptions {
  image?: string;
  source?: ServiceSource;
  name?: string;
  settings?: ServiceSettings;
  volumes?: VolumeMount[];
  endpoint?: Record<string, unknown>;
  processes?: Record<string, ProcessSpec>;
  /** Short for one `web` process running this argument vector. */
  command?: string[];
}

export interface ServiceChanges {
  name?: string;
  source?: ServiceSource;
  settings?: ServiceSettings;
  volumes?: VolumeMount[];
  endpoint?: Record<string, unknown> | null;
  processes?: Record<string, ProcessSpec>;
  serverId?: string | null;
}

export type ErrorCode =
  | 'not_found'
  | 'conflict'
  | 'invalid'
  | 'unauthorized'
  | 'forbidden'
  | 'unavailable'
  | 'timeout'
  | 'internal'
  | 'closed';

/** Every rejection of this module. */
export declare class ClankError extends Error {
  constructor(message: string, code?: ErrorCode, field?: string | null);
  readonly code: ErrorCode;
  /** The offending input field (for InvalidInput), else null. */
  readonly field: string | null;
}
export declare class NotFound extends ClankError {}
export declare class Conflict extends ClankError {}
export declare class InvalidInput extends ClankError {}
export declare class Unauthorized extends ClankError {}
export declare class Forbidden extends ClankError {}
export declare class Unavailable extends ClankError {}
export declare class Timeout extends ClankError {}
export declare class Internal extends ClankError {}
/** Every call on a closed platform (and iterating its events) rejects with this: code `closed`. */
export declare class Closed extends ClankError {}

/** Events from the moment `Platform.events()` was called. */
export declare class Events implements AsyncIterableIterator<Event> {
  next(): Promise<IteratorResult<Event, undefined>>;
  return(): Promise<IteratorResult<Event, undefined>>;
  close(): void;
  [Symbol.asyncIterator](): Events;
}

/**
 * A service's log lines, from the last `tail` of its history on (`Platform.followLogs()`);
 * `return()` (what `break` in `for await` calls) or `close()` ends the stream.
 */
export declare class Logs implements AsyncIterableIterator<LogLine> {
  next(): Promise<IteratorResult<LogLine, undefined>>;
  return(): Promise<IteratorResult<LogLine, undefined>>;
  close(): void;
  [Symbol.asyncIterator](): Logs;
}

/** A Clank platform on the embedded defaults (redb store + Docker or native processes). */
export declare class Platform {
  private constructor();
  static open(dataDir: string, options?: { runtime?: RuntimeName }): Promise<Platform>;
  /** A running daemon, with an API token; the same methods, under the token's role. */
  static connect(url: string, token: string, options?: ConnectOptions): Promise<Platform>;
  /** The runtime running workloads: 'docker' or 'process'; 'remote' when connected. */
  readonly runtime: string;
  /** Whether `close()` was called. */
  readonly closed: boolean;
  /** Stop the engine and release the data directory at once; later calls reject with `Closed`. */
  close(): Promise<void>;

  ensureWorkspace(slug: string): Promise<Workspace>;
  listWorkspaces(): Promise<Workspace[]>;
  createProject(name: string, options?: { slug?: string; workspace?: string }): Promise<Project>;
  getProject(project: string): Promise<Project>;
  listProjects(options?: { workspace?: string; includeDeleted?: boolean }): Promise<Project[]>;
  /** Soft delete with its environments and services (restorable); `purge` removes it for good. */
  deleteProject(project: string, options?: DeleteOptions): Promise<DeleteReport>;
  restoreProject(project: string): Promise<Project>;
  createEnvironment(project: string, name: string): Promise<Environment>;
  /** `includeDeleted`: soft-deleted ones too (`deleted_at` set). */
  listEnvironments(project: string, options?: { includeDeleted?: boolean }): Promise<Environment[]>;
  deleteEnvironment(environment: string, options?: DeleteOptions): Promise<DeleteReport>;
  restoreEnvironment(environment: string): Promise<Environment>;
  cloneEnvironment(environment: string, name: string, options?: CloneEnvironmentOptions): Promise<Record<string, unknown>>;

  planPromotion(source: string, target: string): Promise<Record<string, unknown>>;
  getPlan(plan: string, options?: { workspace?: string }): Promise<Record<string, unknown>>;
  /** Apply exactly that plan (Conflict if anything it read changed since). */
  applyPlan(plan: string, options?: { workspace?: string }): Promise<AppliedPlan>;

  /** The project as a declaration (what `clank export` writes); secrets by name only. */
  exportProject(project: string): Promise<Declaration>;
  /** Plan applying `declaration` to its project (created if missing); apply with `applyPlan(plan.id)`. */
  applyDeclaration(declaration: Declaration, options?: ApplyDeclarationOptions): Promise<PlanView>;

  previewSettings(project: string): Promise<Record<string, unknown> | null>;
  setPreviewSettings(project: string, settings: Record<string, unknown>): Promise<Record<string, unknown>>;
  listPreviews(project: string): Promise<Record<string, unknown>[]>;
  closePreview(project: string, pullRequest: number): Promise<Record<string, unknown>>;

  createTeam(name: string, options?: { slug?: string; workspace?: string }): Promise<Team>;
  listTeams(options?: { workspace?: string }): Promise<TeamView[]>;
  getTeam(team: string): Promise<TeamView>;
  /** Rejects with Conflict while projects are assigned to the team. */
  deleteTeam(team: string): Promise<Team>;
  addTeamMember(team: string, member: string): Promise<Member>;
  removeTeamMember(team: string, member: string): Promise<Member>;
  listTeamMembers(team: string): Promise<Member[]>;
  assignProject(project: string, team: string): Promise<Project>;
  unassignProject(project: string): Promise<Project>;

  createService(environment: string, slug: string, options: CreateServiceOptions): Promise<Service>;
  getService(service: string): Promise<Service>;
  updateService(service: string, changes: ServiceChanges): Promise<Service>;
  /** `includeDeleted`: soft-deleted ones too (`deleted_at` set). */
  listServices(environment: string, options?: { includeDeleted?: boolean }): Promise<Service[]>;
  deleteService(service: string, options?: DeleteOptions): Promise<DeleteReport>;
  /** Bring a soft-deleted service back (its ACTIVE deployment starts again). */
  restoreService(service: string): Promise<Service>;
  /** Stop a service: its route and workloads go; deployments and volumes are kept. */
  stopService(service: string): Promise<Service>;
  /** Start a stopped service: its ACTIVE deployment runs and is routed again. */
  startService(service: string): Promise<Service>;

  listTemplates(): Promise<TemplateSummary[]>;
  template(name: string): Promise<Record<string, unknown>>;
  createStack(environment: string, template: string, options?: CreateStackOptions): Promise<StackView>;
  stacks(environment: string): Promise<StackView[]>;
  stack(stack: string): Promise<StackView>;
  upgradeStack(stack: string, options?: { to?: string; apply?: string }): Promise<StackUpgradeView>;

  setConfig(options: SetConfigOptions): Promise<ConfigVar[]>;
  config(scope: ConfigScope): Promise<ConfigVar[]>;
  resolvedConfig(service: string): Promise<ResolvedVar[]>;

  deploy(service: string): Promise<Deployment>;
  rollback(service: string, number: number): Promise<Deployment>;
  cancel(service: string, number: number): Promise<Deployment>;
  deployment(service: string, number: number): Promise<Deployment>;
  deployments(service: string, options?: { limit?: number; before?: number }): Promise<Deployment[]>;
  /** A git service's builds, newest first. */
  builds(service: string, options?: { limit?: number; before?: number }): Promise<Record<string, unknown>[]>;
  /** One build with the tail of its log. */
  build(service: string, number: number): Promise<Record<string, unknown>>;
  deployLog(service: string, number: number): Promise<LogEntry[]>;
  /** Until ACTIVE or finished; rejects with Timeout (code `timeout`) after `timeout` seconds (default 300). */
  wait(service: string, number: number, options?: { timeout?: number }): Promise<Deployment>;
  /** `host:port` where the deployment's web workloads listen now. */
  endpoints(service: string, number: number): Promise<string[]>;
  /** The service, its ACTIVE deployment however old, its five newest deployments. */
  status(service: string): Promise<ServiceStatus>;
  logs(service: string, options?: WorkloadPick & { tail?: number | null }): Promise<LogLine[]>;
  exec(service: string, command: string | string[], options?: ExecOptions): Promise<ExecResult>;
  servers(options?: { workspace?: string | null }): Promise<Record<string, unknown>[]>;
  createServer(name: string, options?: { workspace?: string | null }): Promise<Record<string, unknown>>;
  server(name: string, options?: { workspace?: string | null }): Promise<Record<string, unknown>>;
  serverJoinToken(name: string, options?: { workspace?: string | null }): Promise<Record<string, unknown>>;
  revokeServer(name: string, options?: { workspace?: string | null }): Promise<Record<string, unknown>>;
  members(): Promise<Record<string, unknown>[]>;
  addMember(email: string, options: { name: string; role: Role }): Promise<Record<string, unknown>>;
  setMemberRole(member: string, role: Role): Promise<Record<string, unknown>>;
  removeMember(member: string): Promise<Record<string, unknown>>;
  tokens(options?: { all?: boolean }): Promise<Record<string, unknown>[]>;
  createToken(name: string, options?: { role?: Role | null }): Promise<Record<string, unknown>>;
  revokeToken(tokenId: string): Promise<void>;
  audit(options?: AuditOptions): Promise<Record<string, unknown>[]>;
  events(service?: string | null): Events;
  /** Follow the running service's output: the last `tail` lines (default 100), then new ones. */
  followLogs(service: string, options?: WorkloadPick & { tail?: number | null }): Logs;
}

export interface ConnectOptions {
  /** Seconds one call may take (default 30). */
  timeout?: number;
  /** Further attempts of a call that failed on the way (default 2). */
  retries?: number;
  /** What short addresses mean (default: the token's workspace). */
  workspace?: string | null;
  /** A CA certificate file (PEM) to trust for an `https://` daemon, beside the system's roots. */
  caCert?: string | null;
}

export type Role = 'owner' | 'admin' | 'developer' | 'viewer';

export interface WorkloadPick {
  process?: string | null;
  replica?: number | null;
}

export interface ExecOptions extends WorkloadPick {
  /** Seconds the command may run (default 30, at most 600). */
  timeout?: number | null;
}

export interface AuditOptions {
  /** 1..1000, default 50. */
  limit?: number | null;
  /** An event id: the page after it. */
  before?: string | null;
  workspace?: string | null;
}

export interface ServiceStatus {
  service: Service;
  active: Deployment | null;
  recent: Deployment[];
}

export interface LogLine {
  process: string;
  replica: number;
  stream: string;
  line: string;
  at?: unknown;
}

export interface ExecResult {
  exit_code: number | null;
  stdout: string;
  stderr: string;
}

export interface TemplateSummary {
  name: string;
  title: string;
  version: string;
  category: string;
  description: string;
}

export interface CreateStackOptions {
  /** The stack's name (its app service's slug); default: from the template. */
  name?: string;
  inputs?: Record<string, string>;
  /** Image overrides by template service slug. */
  images?: Record<string, string>;
  domain?: string;
  lan?: boolean;
}

export interface StackServiceView {
  template_slug: string;
  service: string;
  service_id: string;
  image: string;
  active: boolean;
  status: string | null;
  deployment: Deployment | null;
}

export interface StackView {
  id: string;
  slug: string;
  template: string;
  version: string;
  available_version: string | null;
  services: StackServiceView[];
  variables: string[];
  created_at: string;
  updated_at: string;
}

export interface StackUpgradeView {
  stack: string;
  template: string;
  from_version: string;
  to_version: string;
  changes: string[];
  plan_id: string;
  applied: boolean;
  result: StackView | null;
}
