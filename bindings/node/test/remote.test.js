'use strict';
// One script, two platforms: the same operations (every group the CLI has) run against the
// embedded platform (`Platform.open`) and the released daemon on the Docker Engine
// (`Platform.connect(url, token)`), with the same answers and errors; members and tokens are a
// daemon's (refused embedded, clearly); a wrong token or URL fails at connect.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const {
  clank,
  tempDir,
  freePort,
  startDaemon,
  ensureTestImage,
  dockerCleanup,
  httpGet,
} = require('./support.js');

const SECRET = 'hunter2-remote-never-shown-node';

/** What a team's script does; what it saw, for comparing the two modes. */
async function script(p, project, image, workspaces) {
  const svc = `${project}/web`;
  const seen = {};
  workspaces.push((await p.createProject('Remote test', { slug: project })).workspace_id);
  await p.createEnvironment(project, 'staging');
  seen.environments = (await p.listEnvironments(project)).map((e) => e.name).sort();
  await p.createService(project, 'web', { image, settings: { health_check_interval_s: 1 } });
  await p.setConfig({ service: svc, values: { GREETING: 'hello' }, secrets: { TOKEN: SECRET } });
  seen.config = (await p.config({ service: svc })).map((v) => [v.key, v.value]).sort();

  const events = p.events(svc);
  const first = await p.deploy(svc);
  const active = await p.wait(svc, first.number, { timeout: 120 });
  seen.first = [first.status, active.status];
  const transitions = [];
  while (!transitions.includes('ACTIVE')) {
    const { done, value: e } = await events.next();
    assert.ok(!done, 'the event stream is open');
    if (e.type === 'transition') transitions.push(e.to);
  }
  events.close();
  seen.transitions = transitions;
  const [endpoint] = await p.endpoints(svc, first.number);
  seen.served = await httpGet(endpoint, '/env?GREETING');

  const status = await p.status(svc);
  seen.status = [status.active.number, status.recent.map((d) => d.number)];
  seen.exec = await p.exec(svc, ['/bin/busybox', 'sh', '-c', 'echo $GREETING; echo err >&2; exit 3']);
  await httpGet(endpoint, '/log?remote-line');
  seen.logged = false;
  for (let i = 0; i < 50 && !seen.logged; i++) {
    const lines = (await p.logs(svc)).filter((l) => l.process === 'web').map((l) => l.line);
    seen.logged = lines.includes('testapp log remote-line');
    if (!seen.logged) await new Promise((r) => setTimeout(r, 100));
  }

  const second = await p.deploy(svc);
  try {
    await p.wait(svc, second.number, { timeout: 0.001 });
    seen.shortWait = 'settled';
  } catch (err) {
    assert.ok(err instanceof clank.Timeout, `${err.name}: ${err.message}`);
    seen.shortWait = 'timeout';
  }
  await p.wait(svc, second.number, { timeout: 120 });
  const back = await p.rollback(svc, first.number);
  seen.rollback = (await p.wait(svc, back.number, { timeout: 120 })).status;
  seen.deployments = (await p.deployments(svc)).map((d) => [d.number, d.status]);

  await assert.rejects(p.updateService(svc, { settings: { port: 'eighty' } }), (err) => {
    seen.badField = [err.name, err.code, err.field];
    return true;
  });
  await assert.rejects(p.getService(`${project}/nope`), clank.NotFound);

  const team = await p.createTeam('Ops');
  seen.teamAssigned = (await p.assignProject(project, team.slug)).team_id === team.id;
  seen.unassigned = (await p.unassignProject(project)).team_id ?? null;
  seen.templates = (await p.listTemplates()).length > 0;
  const plan = await p.applyDeclaration(await p.exportProject(project));
  seen.planKeys = Object.keys(plan).sort();
  await assert.rejects(p.servers(), clank.InvalidInput);
  seen.auditIsAList = Array.isArray(await p.audit({ limit: 10 }));

  await p.stopService(svc);
  await p.startService(svc);
  await p.deleteService(svc);
  await p.restoreService(svc);
  await p.deleteProject(project, { purge: true });
  return seen;
}

test('the same script runs embedded and against a daemon with the same answers', { timeout: 300_000 }, async (t) => {
  const image = ensureTestImage();
  if (!image) {
    if (process.env.CI) assert.fail('CI is set but no Docker Engine is reachable');
    t.skip('no Docker Engine reachable');
    return;
  }
  const dir = tempDir('clank-node-remote-');
  const daemon = await startDaemon(dir, 'docker');
  const workspaces = [];
  const unique = crypto.randomBytes(4).toString('hex');
  try {
    const here = await clank.Platform.open(path.join(dir, 'embedded'), { runtime: 'docker' });
    let embedded;
    try {
      embedded = await script(here, `em-${unique}`, image, workspaces);
      await assert.rejects(here.members(), (err) => err instanceof clank.InvalidInput && err.field === 'op');
    } finally {
      await here.close();
    }
    // The one line that changes.
    const there = await clank.Platform.connect(daemon.url, daemon.token);
    let remote;
    try {
      assert.equal(there.runtime, 'remote');
      remote = await script(there, `re-${unique}`, image, workspaces);
      const added = await there.addMember('bob@example.com', { name: 'Bob', role: 'developer' });
      assert.ok(added.token);
      assert.equal((await there.members()).length, 2);
      const created = await there.createToken('ci');
      assert.ok((await there.tokens()).some((tk) => tk.id === created.id));
      await there.revokeToken(created.id);
      const actions = (await there.audit({ limit: 50 })).map((e) => e.action);
      assert.ok(actions.includes('token.revoke') && actions.includes('service.exec'), actions.join());
    } finally {
      await there.close();
    }
    assert.deepEqual(remote, embedded);
    assert.deepEqual(embedded.exec, { exit_code: 3, stdout: 'hello\n', stderr: 'err\n' });
    assert.equal(embedded.served, 'hello');
    assert.ok(embedded.logged, "the app's line is in logs()");
    assert.ok(!JSON.stringify(embedded).includes(SECRET));
    assert.deepEqual(embedded.badField, ['InvalidInput', 'invalid', 'settings.port']);
  } finally {
    await daemon.stop();
    for (const ws of workspaces) dockerCleanup(ws);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('connect fails at once on a wrong token, an absent daemon or a bad URL; closed is closed', { timeout: 120_000 }, async (t) => {
  if (!ensureTestImage()) {
    if (process.env.CI) assert.fail('CI is set but no Docker Engine is reachable');
    t.skip('no Docker Engine reachable');
    return;
  }
  const dir = tempDir('clank-node-remote-');
  const daemon = await startDaemon(dir, 'docker');
  try {
    await assert.rejects(clank.Platform.connect(daemon.url, 'clank_wrong'), (err) => {
      assert.ok(err instanceof clank.Unauthorized, err.message);
      assert.equal(err.field, 'token');
      return true;
    });
    const absent = `http://127.0.0.1:${await freePort()}`;
    await assert.rejects(clank.Platform.connect(absent, daemon.token, { retries: 0 }), (err) => {
      assert.ok(err instanceof clank.Unavailable, err.message);
      assert.match(err.message, /clank-daemon/);
      return true;
    });
    await assert.rejects(clank.Platform.connect('ftp://example.invalid', daemon.token), (err) => {
      assert.equal(err.field, 'url');
      return true;
    });
    const p = await clank.Platform.connect(daemon.url, daemon.token, { timeout: 5 });
    assert.deepEqual(await p.listProjects(), []);
    await p.close();
    await assert.rejects(p.listProjects(), clank.Closed);
  } finally {
    await daemon.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
