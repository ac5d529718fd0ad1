'use strict';
// Closing and error details, the same as the Python suite (tests/test_lifecycle.py): after
// close() every call rejects with Closed and the data directory is free at once; wait() times
// out with Timeout; a bad value is named by its JSON path (the same fields as in Python).
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');

const { PKG_DIR, clank, tempDir, rejectsWith } = require('./support.js');

/** A deployment of `shop/api` that stays PENDING: it depends on `db`, never deployed. */
async function pendingDeployment(p) {
  await p.createProject('Shop', { slug: 'shop' });
  for (const [slug, deps] of [['db', []], ['api', ['db']]]) {
    await p._call({
      op: 'create_service',
      environment: 'shop',
      spec: {
        slug,
        depends_on: deps,
        source: { type: 'docker_image', image: 'clank-testapp:latest' },
        processes: { web: { command: ['/bin/true'], replicas: 1 } },
      },
    });
  }
  return (await p.deploy('shop/api')).number;
}

/** Open (and close) the platform in `dir` from another process: its exit status. */
function openElsewhere(dir) {
  const script =
    'require(process.argv[1]).Platform.open(process.argv[2], { runtime: "process" })' +
    '.then((p) => p.close()).catch((e) => { console.error(e); process.exit(1); });';
  const r = spawnSync(process.execPath, ['-e', script, PKG_DIR, dir], { encoding: 'utf8', timeout: 60_000 });
  return r;
}

test('after close() every call rejects with Closed and the data directory is free at once', async () => {
  const dir = tempDir();
  try {
    const p = await clank.Platform.open(dir, { runtime: 'process' });
    const number = await pendingDeployment(p);
    const events = p.events();
    const pendingEvent = events.next();
    const pendingWait = p.wait('shop/api', number, { timeout: 600 });
    pendingWait.catch(() => {}); // inspected below
    pendingEvent.catch(() => {});
    // While open, the directory is this platform's alone (here and in another process).
    await rejectsWith(clank.Platform.open(dir, { runtime: 'process' }), clank.ClankError);
    assert.notEqual(openElsewhere(dir).status, 0);
    assert.equal(p.closed, false);

    const started = Date.now();
    await p.close();
    assert.ok(Date.now() - started < 8000, 'close took too long');
    assert.equal(p.closed, true);
    const closed = (e) => {
      assert.equal(e.code, 'closed');
      assert.equal(e.message, 'platform is closed');
      assert.equal(e.field, null);
    };
    await rejectsWith(pendingWait, clank.Closed, closed);
    await rejectsWith(pendingEvent, clank.Closed, closed);
    await rejectsWith(p.getService('shop/api'), clank.Closed, closed);
    await rejectsWith(p.listWorkspaces(), clank.Closed, closed);
    await rejectsWith(p.deploy('shop/api'), clank.Closed, closed);
    assert.throws(() => p.events(), (e) => e instanceof clank.Closed && e.code === 'closed');
    await rejectsWith(
      (async () => {
        for await (const e of events) assert.fail(`an event after close: ${JSON.stringify(e)}`);
      })(),
      clank.Closed,
    );
    await p.close(); // idempotent

    // Free now, in this process (p is still referenced: no garbage collection) and in another.
    const again = await clank.Platform.open(dir, { runtime: 'process' });
    assert.equal((await again.deployment('shop/api', number)).status, 'PENDING');
    await again.close();
    const elsewhere = openElsewhere(dir);
    assert.equal(elsewhere.status, 0, elsewhere.stderr);
    assert.ok(p);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('wait() times out with Timeout', async () => {
  const dir = tempDir();
  const p = await clank.Platform.open(dir, { runtime: 'process' });
  try {
    const number = await pendingDeployment(p);
    const started = Date.now();
    await rejectsWith(p.wait('shop/api', number, { timeout: 0.3 }), clank.Timeout, (e) => {
      assert.equal(e.code, 'timeout');
      assert.equal(e.field, null);
      assert.match(e.message, /PENDING/);
    });
    assert.ok(Date.now() - started >= 300);
  } finally {
    await p.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// [what is called, the field named]: the same cases, the same fields, as BAD_CALLS in
// tests/test_lifecycle.py.
const BAD_CALLS = [
  ["create_service(settings.port='x')", 'settings.port'],
  ['create_service(settings.port=70000)', 'settings.port'],
  ['create_service(volumes[1].mount_path=5)', 'volumes[1].mount_path'],
  ['create_service(source.image=5)', 'source.image'],
  ["create_service(source.type='ftp')", 'source.type'],
  ['create_service(settings.cpu_limit=-1)', 'settings.cpu_limit'],
  ['update_service(settings.health_check_interval_s=-1)', 'settings.health_check_interval_s'],
  ["deployment(number='one')", 'number'],
  ['create_stack(inputs.nope)', 'inputs.nope'],
];

function badCall(p, name) {
  const image = 'clank-testapp:latest';
  const calls = {
    "create_service(settings.port='x')": () => p.createService('shop', 'x', { image, settings: { port: 'x' } }),
    'create_service(settings.port=70000)': () => p.createService('shop', 'x', { image, settings: { port: 70000 } }),
    'create_service(volumes[1].mount_path=5)': () =>
      p.createService('shop', 'x', {
        image,
        volumes: [{ name: 'data', mount_path: '/data' }, { name: 'logs', mount_path: 5 }],
      }),
    'create_service(source.image=5)': () =>
      p.createService('shop', 'x', { source: { type: 'docker_image', image: 5 } }),
    "create_service(source.type='ftp')": () => p.createService('shop', 'x', { source: { type: 'ftp' } }),
    'create_service(settings.cpu_limit=-1)': () => p.createService('shop', 'x', { image, settings: { cpu_limit: -1 } }),
    'update_service(settings.health_check_interval_s=-1)': () =>
      p.updateService('shop/api', { settings: { health_check_interval_s: -1 } }),
    "deployment(number='one')": () => p.deployment('shop/api', 'one'),
    'create_stack(inputs.nope)': () => p.createStack('shop', 'postgres', { inputs: { nope: '1' } }),
  };
  return calls[name]();
}

test('a bad value is named by its JSON path, as in Python', async () => {
  const dir = tempDir();
  const p = await clank.Platform.open(dir, { runtime: 'process' });
  try {
    await p.createProject('Shop', { slug: 'shop' });
    await p.createService('shop', 'api', { image: 'clank-testapp:latest' });
    for (const [name, field] of BAD_CALLS) {
      await rejectsWith(badCall(p, name), clank.InvalidInput, (e) => {
        assert.deepEqual([e.code, e.field], ['invalid', field], `${name}: ${e.message}`);
        assert.ok(e.message.startsWith(`${field}: `), `${name}: ${e.message}`);
      });
    }
    assert.deepEqual((await p.listServices('shop')).map((s) => s.slug), ['api']);
  } finally {
    await p.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
