'use strict';
// The Node binding end to end: errors, secrets, concurrency, and a real deploy/rollback on the
// Docker Engine (skipped loudly without one; a failure when CI is set).
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const {
  clank,
  tempDir,
  withPlatform,
  rejectsWith,
  ensureTestImage,
  dockerCleanup,
  httpGet,
} = require('./support.js');

const SECRET = 'hunter2-do-not-leak-9c1e';

test('a team gives its projects config below the services own', async () => {
  await withPlatform('process', async (p) => {
    await p.ensureWorkspace('default');
    await p.createProject('Shop', { slug: 'shop' });
    await p.createService('shop', 'api', { image: 'clank-testapp:latest', command: ['/bin/true'] });
    const team = await p.createTeam('Ops');
    assert.equal(team.slug, 'ops');
    assert.equal((await p.assignProject('shop', 'ops')).team_id, team.id);
    await p.setConfig({ team: 'ops', values: { REGION: 'eu', LEVEL: 'team' } });
    await p.setConfig({ service: 'shop/api', values: { LEVEL: 'service' } });
    assert.deepEqual((await p.config({ team: 'ops' })).map((v) => v.key).sort(), ['LEVEL', 'REGION']);
    const resolved = Object.fromEntries((await p.resolvedConfig('shop/api')).map((v) => [v.key, v]));
    assert.equal(resolved.REGION.source, `team:${team.id}`);
    assert.equal(resolved.LEVEL.value, 'service');
    assert.deepEqual(resolved.LEVEL.overridden, [`team:${team.id}`]);
    assert.deepEqual((await p.listTeams()).map((t) => [t.slug, t.projects]), [['ops', ['shop']]]);
    assert.equal((await p.getTeam(team.id)).slug, 'ops');
    assert.deepEqual(await p.listTeamMembers('ops'), []);

    await rejectsWith(p.deleteTeam('ops'), clank.Conflict, (e) => assert.match(e.message, /`shop`/));
    await rejectsWith(p.addTeamMember('ops', 'nobody@example.com'), clank.NotFound);
    await rejectsWith(p.createTeam('X', { slug: 'Bad Slug' }), clank.InvalidInput, (e) =>
      assert.equal(e.field, 'slug'),
    );
    await rejectsWith(p.config({ team: 'ops', project: 'shop' }), clank.InvalidInput, (e) =>
      assert.equal(e.field, 'target'),
    );
    assert.equal((await p.unassignProject('shop')).team_id, null);
    assert.equal((await p.deleteTeam('default/ops')).id, team.id);
    assert.deepEqual(await p.listTeams(), []);
  });
});

test('an exported project applies by plan id once and then plans nothing', async () => {
  await withPlatform('process', async (p) => {
    await p.ensureWorkspace('default');
    await p.createProject('Shop', { slug: 'shop' });
    await p.createService('shop', 'api', { image: 'clank-testapp:latest', command: ['/bin/true'] });
    await p.setConfig({ service: 'shop/api', values: { MODE: 'prod' }, secrets: { TOKEN: SECRET } });
    const exported = await p.exportProject('shop');
    assert.deepEqual(exported.environments.production.services.api.config, {
      MODE: 'prod',
      TOKEN: { secret_env: 'TOKEN' },
    });
    assert.ok(!JSON.stringify(exported).includes(SECRET));

    const copy = { ...exported, project: 'shop2' };
    await rejectsWith(p.applyDeclaration(copy), clank.InvalidInput, (e) =>
      assert.equal(e.field, 'environments.production.services.api.config.TOKEN'),
    );
    const plan = await p.applyDeclaration(copy, { secrets: { TOKEN: `fresh-${SECRET}` }, source: 'shop.json' });
    assert.equal(plan.kind, 'apply');
    assert.equal(plan.source, 'shop.json');
    assert.equal(plan.unchanged, false);
    assert.ok(
      plan.services.some((s) => s.service === 'default/shop2/production/api' && s.action === 'create'),
      JSON.stringify(plan.services),
    );
    assert.ok(!JSON.stringify(plan).includes(SECRET));
    const applied = await p.applyPlan(plan.id);
    assert.deepEqual(applied.created, ['default/shop2/production/api']);
    await rejectsWith(p.applyPlan(plan.id), clank.Conflict);
    const token = (await p.config({ service: 'shop2/api' })).find((v) => v.key === 'TOKEN');
    assert.equal(token.secret, true);
    assert.equal(token.value, '********');
    assert.equal((await p.applyDeclaration(copy)).unchanged, true);
  });
});

test('deleted services, environments and projects come back with restore', async () => {
  await withPlatform('process', async (p) => {
    await p.ensureWorkspace('default');
    await p.createProject('Shop', { slug: 'shop' });
    await p.createEnvironment('shop', 'staging');
    await p.createService('shop', 'api', { image: 'clank-testapp:latest', command: ['/bin/true'] });

    const report = await p.deleteService('shop/api');
    assert.match(report.target, /shop\/production\/api$/);
    assert.notEqual(report.restorable_until, null);
    assert.deepEqual(await p.listServices('shop'), []);
    assert.equal((await p.restoreService('shop/api')).slug, 'api');
    assert.deepEqual(await p.builds('shop/api'), []);
    await rejectsWith(p.build('shop/api', 1), clank.NotFound);
    assert.deepEqual((await p.listServices('shop')).map((s) => s.slug), ['api']);

    await rejectsWith(p.deleteEnvironment('shop/staging', { volumes: true }), clank.InvalidInput, (e) =>
      assert.equal(e.field, 'volumes'),
    );
    await p.deleteEnvironment('shop/staging');
    assert.deepEqual((await p.listEnvironments('shop')).map((e) => e.name), ['production']);
    assert.equal((await p.restoreEnvironment('shop/staging')).name, 'staging');

    await p.deleteProject('shop');
    assert.deepEqual(await p.listProjects(), []);
    assert.deepEqual((await p.listProjects({ includeDeleted: true })).map((x) => x.slug), ['shop']);
    assert.equal((await p.restoreProject('shop')).deleted_at, null);

    const purged = await p.deleteService('shop/api', { purge: true });
    assert.equal(purged.restorable_until, null);
    assert.ok(purged.purged);
    await rejectsWith(p.restoreService('shop/api'), clank.NotFound);
  });
});

test('platform errors reject with the mapped class, code and field', async () => {
  await withPlatform('process', async (p) => {
    await p.createProject('Shop', { slug: 'shop' });
    await rejectsWith(p.getService('shop/nope'), clank.NotFound, (e) => {
      assert.equal(e.code, 'not_found');
      assert.equal(e.field, null);
      assert.match(e.message, /shop\/production\/nope/);
    });
    await rejectsWith(p.deployment('shop/nope', 1), clank.NotFound);
    await rejectsWith(p.createProject('Again', { slug: 'shop' }), clank.Conflict, (e) =>
      assert.equal(e.code, 'conflict'),
    );
    await rejectsWith(p.createProject('Bad', { slug: 'Not A Slug' }), clank.InvalidInput, (e) => {
      assert.equal(e.code, 'invalid');
      assert.equal(e.field, 'slug');
    });
    await rejectsWith(p.getService('just-a-service'), clank.InvalidInput, (e) =>
      assert.equal(e.field, 'address'),
    );
    await rejectsWith(p.config({ service: 'shop/x', project: 'shop' }), clank.InvalidInput, (e) =>
      assert.equal(e.field, 'target'),
    );
    await p.createService('shop', 'never', { image: 'clank-testapp:latest', command: ['/nonexistent'] });
    const d = await p.deploy('shop/never');
    await rejectsWith(p.wait('shop/never', d.number, { timeout: 0 }), clank.Timeout, (e) =>
      assert.equal(e.code, 'timeout'),
    );
  });
  // No engine behind DOCKER_HOST: Unavailable, with the socket in the message.
  const saved = process.env.DOCKER_HOST;
  process.env.DOCKER_HOST = `unix://${tempDir()}/no-docker.sock`;
  try {
    await rejectsWith(clank.Platform.open(tempDir(), { runtime: 'docker' }), clank.Unavailable, (e) => {
      assert.equal(e.code, 'unavailable');
      assert.match(e.message, /no-docker\.sock/);
    });
  } finally {
    if (saved === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = saved;
  }
  await rejectsWith(clank.Platform.open(tempDir(), { runtime: 'kubernetes' }), clank.InvalidInput, (e) =>
    assert.equal(e.field, 'runtime'),
  );
});

test('a secret never appears in any returned value', async () => {
  const returned = [];
  await withPlatform('process', async (p) => {
    await p.createProject('Vault', { slug: 'vault' });
    await p.createService('vault', 'app', { image: 'clank-testapp:latest', command: ['/bin/true'] });
    const events = p.events('vault/app');
    returned.push(await p.setConfig({ service: 'vault/app', values: { PLAIN: 'visible' }, secrets: { TOKEN: SECRET } }));
    returned.push(await p.setConfig({ project: 'vault', secrets: { PROJECT_KEY: SECRET } }));
    returned.push(await p.config({ service: 'vault/app' }));
    returned.push(await p.config({ project: 'vault' }));
    const resolved = await p.resolvedConfig('vault/app');
    returned.push(resolved);
    const d = await p.deploy('vault/app');
    returned.push(d, await p.deployment('vault/app', d.number), await p.deployments('vault/app'));
    returned.push(await p.wait('vault/app', d.number, { timeout: 30 }));
    returned.push(await p.deployLog('vault/app', d.number));
    for await (const e of events) {
      returned.push(e);
      if (e.to === 'ACTIVE' || e.to === 'FAILED') break;
    }
    const byKey = Object.fromEntries(resolved.map((v) => [v.key, v]));
    assert.equal(byKey.TOKEN.value, '********');
    assert.equal(byKey.TOKEN.secret, true);
    assert.equal(byKey.PLAIN.value, 'visible');
    assert.match(byKey.PROJECT_KEY.source, /^project:/);
    assert.equal(d.config.find((v) => v.key === 'TOKEN').value, '********');
  });
  const text = JSON.stringify(returned);
  assert.ok(!text.includes(SECRET), 'the secret leaked');
  assert.ok(text.includes('********'));
});

test('a stack from a template: bad inputs change nothing, upgrades need the plan id', async () => {
  await withPlatform('process', async (p) => {
    await p.createProject('Shop', { slug: 'shop' });
    const names = (await p.listTemplates()).map((t) => t.name);
    assert.ok(names.includes('postgres') && names.includes('wordpress'));
    assert.deepEqual(
      (await p.template('wordpress')).services.map((s) => s.slug),
      ['db', 'app'],
    );
    await rejectsWith(p.createStack('shop', 'postgres', { inputs: { nope: '1' } }), clank.InvalidInput, (e) =>
      assert.equal(e.field, 'inputs.nope'),
    );
    await rejectsWith(p.createStack('shop', 'postgres', { images: { db: 'Not An Image!' } }), clank.InvalidInput, (e) =>
      assert.equal(e.field, 'images.db'),
    );
    assert.deepEqual(await p.listServices('shop'), []);

    const s = await p.createStack('shop', 'postgres', { name: 'db' });
    assert.deepEqual(s.services.map((x) => x.service), ['db']);
    assert.equal((await p.stack('shop/db')).template, 'postgres');
    assert.deepEqual((await p.stacks('shop')).map((x) => x.slug), ['db']);
    const pw = (await p.config({ service: 'shop/db' })).find((v) => v.key === 'POSTGRES_PASSWORD');
    assert.equal(pw.secret, true);
    assert.equal(pw.value, '********');

    const preview = await p.upgradeStack('shop/db');
    assert.equal(preview.applied, false);
    await rejectsWith(p.upgradeStack('shop/db', { apply: 'not-the-plan' }), clank.Conflict);
    const done = await p.upgradeStack('shop/db', { apply: preview.plan_id });
    assert.equal(done.applied, true);
  });
});

test('concurrent calls', async () => {
  await withPlatform('process', async (p) => {
    await p.createProject('Busy', { slug: 'busy' });
    const n = 16;
    const created = await Promise.all(
      Array.from({ length: n }, (_, i) => p.createService('busy', `svc-${i}`, { image: 'clank-testapp:latest' })),
    );
    assert.equal(new Set(created.map((s) => s.slug)).size, n);
    const got = await Promise.all(Array.from({ length: 400 }, (_, i) => p.getService(`busy/svc-${i % n}`)));
    assert.deepEqual(got.map((s) => s.slug), Array.from({ length: 400 }, (_, i) => `svc-${i % n}`));
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => p.setConfig({ service: 'busy/svc-0', values: { [`K${i}`]: i } })),
    );
    assert.equal((await p.config({ service: 'busy/svc-0' })).length, 20);

    // Several followers each see every event of a deployment.
    const followers = Array.from({ length: 4 }, () => p.events('busy/svc-1'));
    const d = await p.deploy('busy/svc-1');
    const firstCreated = async (events) => {
      for await (const e of events) if (e.type === 'created') return e.number;
      return null;
    };
    assert.deepEqual(await Promise.all(followers.map(firstCreated)), [d.number, d.number, d.number, d.number]);
  });
});

test('store reads answer alike in place or through a Promise, and yield to the loop', async () => {
  // The in-tree addon (the same module index.js loaded): its read budget is a test knob.
  const addon = path.join(__dirname, '..', 'clank.node');
  const native = !process.env.CLANK_NODE_PACKAGE && fs.existsSync(addon) ? require(addon) : null;
  await withPlatform('process', async (p) => {
    await p.createProject('Reads', { slug: 'reads' });
    await p.createService('reads', 'api', { image: 'clank-testapp:latest' });
    const request = JSON.stringify({ op: 'get_service', service: 'reads/api' });
    // 1 s: answered in place (a string); 0: always through a Promise.
    for (const budget of native ? [1_000_000, 0] : [null]) {
      if (native) native.setReadBudget(budget);
      try {
        const raw = p._native.call(request);
        if (native) assert.equal(typeof raw === 'string', budget > 0);
        await raw;
        assert.equal((await p.getService('reads/api')).slug, 'api');
        await rejectsWith(p.getService('reads/nope'), clank.NotFound, (e) => assert.equal(e.code, 'not_found'));
        assert.equal((await p.listServices('reads')).length, 1);
        // A write never answers in place.
        const write = p._native.call(JSON.stringify({ op: 'ensure_workspace', slug: 'w' }));
        assert.equal(typeof write, 'object');
        await write;
      } finally {
        if (native) native.setReadBudget(1000);
      }
    }
    // A loop of reads answered in place still lets timers and I/O run between them.
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const before = ticks;
    const until = Date.now() + 60;
    while (Date.now() < until) await p.getService('reads/api');
    clearInterval(timer);
    assert.ok(ticks - before >= 3, `only ${ticks - before} timer ticks during 60 ms of reads`);
  });
});

// ---- The real thing: Docker ---------------------------------------------------------------

async function followToActive(events, number, seen) {
  for (;;) {
    const { done, value: e } = await events.next();
    assert.ok(!done, 'event stream ended');
    if (e.number !== number || e.type !== 'transition') continue;
    seen.push(`#${number} ${e.from}->${e.to}`);
    assert.ok(!['FAILED', 'CANCELLED'].includes(e.to), JSON.stringify(e));
    if (e.to === 'ACTIVE') return;
  }
}

test('deploy, follow events to ACTIVE and roll back on Docker', { timeout: 300_000 }, async (t) => {
  const image = ensureTestImage();
  if (!image) {
    const banner = `\n${'!'.repeat(78)}\n!! NO DOCKER ENGINE: the Docker deploy test is SKIPPED (CI makes this a failure).\n${'!'.repeat(78)}`;
    if (process.env.CI) assert.fail(`CI is set but no Docker Engine is reachable${banner}`);
    console.error(banner);
    t.skip('no Docker Engine reachable');
    return;
  }
  const project = `node-${crypto.randomBytes(4).toString('hex')}`;
  const svc = `${project}/web`;
  let workspaceId = null;
  try {
    await withPlatform('docker', async (p) => {
      assert.equal(p.runtime, 'docker');
      workspaceId = (await p.ensureWorkspace('default')).id;
      await p.createProject('Node binding test', { slug: project });
      await p.createService(project, 'web', { image, settings: { health_check_interval_s: 1 } });
      await p.setConfig({ service: svc, values: { GREETING: 'first' }, secrets: { TOKEN: SECRET } });
      const seen = [];
      const events = p.events(svc);

      const first = await p.deploy(svc);
      assert.equal(first.status, 'PENDING');
      await followToActive(events, first.number, seen);
      let [endpoint] = await p.endpoints(svc, first.number);
      assert.equal(await httpGet(endpoint, '/env?GREETING'), 'first');
      assert.equal(await httpGet(endpoint, '/env?TOKEN'), SECRET);

      await p.setConfig({ service: svc, values: { GREETING: 'second' } });
      const second = await p.deploy(svc);
      await followToActive(events, second.number, seen);
      [endpoint] = await p.endpoints(svc, second.number);
      assert.equal(await httpGet(endpoint, '/env?GREETING'), 'second');

      const back = await p.rollback(svc, first.number);
      assert.equal(back.trigger.kind, 'rollback_of');
      await followToActive(events, back.number, seen);
      events.close();
      [endpoint] = await p.endpoints(svc, back.number);
      assert.equal(await httpGet(endpoint, '/env?GREETING'), 'first');

      const statuses = Object.fromEntries((await p.deployments(svc)).map((d) => [d.number, d.status]));
      assert.equal(statuses[back.number], 'ACTIVE');
      assert.equal(statuses[second.number], 'SUPERSEDED');
      assert.equal((await p.getService(svc)).active_deployment, back.id);
      const log = await p.deployLog(svc, back.number);
      assert.ok(log.length > 0 && log.every((entry) => !entry.message.includes(SECRET)));

      // Stopped: its workloads go away, the deployment stays ACTIVE, deploys are refused until
      // it is started again; started, the same version serves again.
      const stopped = await p.stopService(svc);
      assert.ok(stopped.stopped_at);
      assert.deepEqual(await endpointsWhen(p, svc, back.number, false), []);
      assert.equal((await p.deployment(svc, back.number)).status, 'ACTIVE');
      await rejectsWith(p.deploy(svc), clank.Conflict);
      const started = await p.startService(svc);
      assert.equal(started.stopped_at, undefined);
      [endpoint] = await endpointsWhen(p, svc, back.number, true);
      assert.equal(await httpGetOnceUp(endpoint, '/env?GREETING'), 'first');
    });
  } finally {
    if (workspaceId) dockerCleanup(workspaceId);
  }
});

/** The deployment's endpoints once there are some (`present`) or none, within 60 s. */
async function endpointsWhen(p, svc, number, present) {
  for (let i = 0; i < 600; i++) {
    const found = await p.endpoints(svc, number);
    if (found.length > 0 === present) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`endpoints of #${number} never became ${present ? 'present' : 'empty'}`);
}

/** `httpGet` once the workload answers (it may still be starting), within 30 s. */
async function httpGetOnceUp(endpoint, urlPath) {
  for (let i = 0; i < 300; i++) {
    try {
      return await httpGet(endpoint, urlPath);
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return httpGet(endpoint, urlPath);
}
