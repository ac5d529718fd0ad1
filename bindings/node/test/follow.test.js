'use strict';
// Following a service's output (`followLogs`, the CLI's `clank logs -f`) on the native process
// runtime, embedded (`Platform.open`) and against the released daemon (`Platform.connect`),
// with the same lines and the same errors; `connect({ caCert })`. The same in the Python suite
// (tests/test_follow_logs.py).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { clank, tempDir, rejectsWith, startDaemon, httpGet } = require('./support.js');

// A web process on the native process runtime that prints a line (on stderr) for each request
// it answers (a 404 for every path), and nothing else once it serves.
const SERVER = [
  '/bin/sh',
  '-c',
  'echo starting; exec /usr/bin/python3 -u -m http.server --bind 127.0.0.1 $PORT',
];
const TCP_CHECK = { health_check_path: '', health_check_interval_s: 1 };
const DONE = { done: true, value: undefined };

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A temporary directory the workloads' own user (the process runtime isolates each
 * workspace's) can reach. */
function reachableDir() {
  const dir = tempDir('clank-node-follow-');
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** `promise`, or a rejection after `ms`. */
async function within(promise, ms = 10_000) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`nothing within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function nextLine(logs) {
  const r = await within(logs.next());
  assert.equal(r.done, false, 'a line');
  return r.value;
}

/** Read `logs` until a line containing `text`. */
async function untilLine(logs, text) {
  for (;;) {
    const line = await nextLine(logs);
    if (line.line.includes(text)) return line;
  }
}

/** The service `project/web` deployed and ACTIVE: its address and endpoint. */
async function serving(p, project) {
  const svc = `${project}/web`;
  await p.createProject('Follow', { slug: project });
  await p.createService(project, 'web', { image: 'clank-testapp:latest', command: SERVER, settings: TCP_CHECK });
  const d = await p.deploy(svc);
  const status = (await p.wait(svc, d.number, { timeout: 120 })).status;
  assert.equal(status, 'ACTIVE', JSON.stringify((await p.deployLog(svc, d.number)).map((e) => e.message)));
  const [endpoint] = await p.endpoints(svc, d.number);
  return [svc, endpoint];
}

/** Stop the service and wait until its workloads are gone (they would outlive the platform). */
async function stop(p, svc) {
  await p.stopService(svc);
  const { number } = (await p.status(svc)).active;
  for (let i = 0; i < 200; i++) {
    if ((await p.endpoints(svc, number)).length === 0) return;
    await sleep(50);
  }
  assert.fail(`${svc} still runs`);
}

/** What a script following a service's output sees, for comparing the two modes. */
async function followScript(p, project) {
  const seen = {};
  const [svc, endpoint] = await serving(p, project);
  try {
    for (let i = 0; i < 3; i++) await httpGet(endpoint, `/before-${i}`);
    for (let i = 0; i < 100; i++) {
      if ((await p.logs(svc)).some((l) => l.line.includes('/before-2'))) break;
      await sleep(100);
    }

    const logs = p.followLogs(svc, { tail: 2 });
    // The tail: the last two lines printed before the follow began (each request prints two).
    const history = [(await nextLine(logs)).line, (await nextLine(logs)).line];
    seen.history = history.map((h) => h.includes('/before-2'));
    // A line printed after the follow began, the same object as a logs() line.
    await httpGet(endpoint, '/after-follow');
    const later = await untilLine(logs, '/after-follow');
    const [recent] = await p.logs(svc, { tail: 1 });
    seen.keys = JSON.stringify(Object.keys(later).sort()) === JSON.stringify(Object.keys(recent).sort());
    seen.line = [later.process, later.replica, later.stream];
    assert.deepEqual(await logs.return(), DONE);
    assert.deepEqual(await within(logs.next()), DONE);

    // `break` in `for await` closes it.
    const picked = p.followLogs(svc, { tail: 1, process: 'web', replica: 0 });
    for await (const line of picked) {
      seen.picked = [line.process, line.replica];
      break;
    }
    assert.deepEqual(await within(picked.next()), DONE);

    // A refusal rejects the first next(), with the same code and field either way.
    await rejectsWith(p.followLogs(`${project}/nope`).next(), clank.NotFound, (e) => {
      seen.notFound = [e.code, e.field];
    });
    const drain = async (it) => {
      for await (const _ of it); // eslint-disable-line no-unused-vars
    };
    await rejectsWith(drain(p.followLogs(`nope-${project}/web`)), clank.NotFound, (e) => {
      seen.noProject = [e.code, e.field];
    });
    await rejectsWith(p.followLogs(svc, { process: 'worker' }).next(), clank.InvalidInput, (e) => {
      seen.badProcess = [e.code, e.field];
    });
    assert.throws(
      () => p.followLogs(svc, { tail: -1 }),
      (e) => {
        seen.badTail = [e.code, e.field];
        return e instanceof clank.InvalidInput;
      },
    );

    // Opened and closed again and again: each close ends its stream (a daemon allows a token
    // 8 open streams: the HTTP requests must have ended).
    for (let i = 0; i < 10; i++) {
      const again = p.followLogs(svc, { tail: 1 });
      await nextLine(again);
      again.close();
      await sleep(50);
    }
  } finally {
    await stop(p, svc);
  }
  return seen;
}

/** A follow pending when its platform is closed rejects with Closed, like events(). */
async function closingEndsIt(openPlatform) {
  const p = await openPlatform();
  let logs;
  let pending;
  try {
    await serving(p, 'quiet');
    logs = p.followLogs('quiet/web', { tail: 1 });
    await nextLine(logs);
    pending = logs.next();
    let settled = false;
    pending.then(
      () => (settled = true),
      () => (settled = true),
    );
    await sleep(300);
    assert.equal(settled, false, 'nothing more is printed');
  } finally {
    await p.close();
  }
  await rejectsWith(within(pending), clank.Closed, (e) => {
    assert.equal(e.code, 'closed');
    assert.equal(e.message, 'platform is closed');
  });
  await rejectsWith(logs.next(), clank.Closed);
  assert.throws(() => p.followLogs('quiet/web'), clank.Closed);
  const again = await openPlatform();
  try {
    await stop(again, 'quiet/web');
  } finally {
    await again.close();
  }
}

test('followLogs embedded and against a daemon alike', { timeout: 300_000 }, async () => {
  const dir = reachableDir();
  try {
    const p = await clank.Platform.open(path.join(dir, 'embedded'), { runtime: 'process' });
    let here;
    try {
      here = await followScript(p, 'shop');
    } finally {
      await p.close();
    }
    const daemon = await startDaemon(dir, 'process');
    let there;
    try {
      const remote = await clank.Platform.connect(daemon.url, daemon.token);
      try {
        there = await followScript(remote, 'shop');
      } finally {
        await remote.close();
      }
      await closingEndsIt(() => clank.Platform.connect(daemon.url, daemon.token));
    } finally {
      await daemon.stop();
    }
    assert.deepEqual(here, there);
    assert.deepEqual(here.history, [false, true]);
    assert.equal(here.keys, true);
    assert.deepEqual(here.line, ['web', 0, 'stderr']);
    assert.deepEqual(here.picked, ['web', 0]);
    assert.deepEqual(here.notFound, ['not_found', null]);
    assert.deepEqual(here.noProject, ['not_found', null]);
    assert.deepEqual(here.badProcess, ['invalid', 'process']);
    assert.deepEqual(here.badTail, ['invalid', 'tail']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('closing the platform ends a follow with Closed', { timeout: 120_000 }, async () => {
  const dir = reachableDir();
  try {
    await closingEndsIt(() => clank.Platform.open(dir, { runtime: 'process' }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('connect passes caCert and refuses a bad one naming ca_cert', async () => {
  const dir = tempDir();
  try {
    const missing = path.join(dir, 'missing.pem');
    await rejectsWith(
      clank.Platform.connect('https://127.0.0.1:9', 'clank_token', { caCert: missing }),
      clank.InvalidInput,
      (e) => {
        assert.equal(e.code, 'invalid');
        assert.equal(e.field, 'ca_cert');
        assert.ok(e.message.includes(missing), e.message);
      },
    );
    const notPem = path.join(dir, 'not.pem');
    fs.writeFileSync(notPem, 'not a certificate\n');
    await rejectsWith(
      clank.Platform.connect('https://127.0.0.1:9', 'clank_token', { caCert: notPem }),
      clank.InvalidInput,
      (e) => assert.equal(e.field, 'ca_cert'),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
