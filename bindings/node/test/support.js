'use strict';
// What the binding suites share: the binding itself, temporary platforms and directories, the
// error check, the released daemon, the test app's image, removing a test's containers, one GET.
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..', '..');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(REPO, 'target');
// CLANK_NODE_PACKAGE: an installed package directory to test instead of this tree (scripts/test).
const PKG_DIR = process.env.CLANK_NODE_PACKAGE || path.join(__dirname, '..');
const clank = require(PKG_DIR);

/** A fresh temporary directory. */
function tempDir(prefix = 'clank-node-test-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** `fn(platform)` on an embedded platform on `runtime` in a fresh directory, closed after. */
async function withPlatform(runtime, fn) {
  const dir = tempDir();
  const p = await clank.Platform.open(dir, { runtime });
  try {
    return await fn(p);
  } finally {
    await p.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `promise` rejects with a `Class` (a ClankError), which `check` may look at further. */
async function rejectsWith(promise, Class, check = () => {}) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof Class, `expected ${Class.name}, got ${err && err.name}: ${err && err.message}`);
    assert.ok(err instanceof clank.ClankError);
    check(err);
    return true;
  });
}

/** The test app's image on the Docker Engine, or `null` when no engine answers. */
function ensureTestImage() {
  const bin = process.env.CLANK_TESTAPP_IMAGE_BIN;
  const [cmd, args] = bin
    ? [bin, []]
    : ['cargo', ['run', '-q', '--manifest-path', path.join(REPO, 'Cargo.toml'), '-p', 'clank-testkit',
        '--features', 'docker', '--bin', 'clank-testapp-image']];
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status === 2) return null;
  if (r.status !== 0) throw new Error(`building the test image failed:\n${r.stderr}`);
  return 'clank-testapp:latest';
}

function dockerCleanup(workspaceId) {
  const label = `label=clank.workspace=${workspaceId}`;
  const ids = spawnSync('docker', ['ps', '-aq', '--filter', label], { encoding: 'utf8' });
  if (ids.error) {
    console.error('docker CLI missing: containers of this test are left running');
    return;
  }
  const containers = ids.stdout.split(/\s+/).filter(Boolean);
  if (containers.length) spawnSync('docker', ['rm', '-f', ...containers]);
  const nets = spawnSync('docker', ['network', 'ls', '-q', '--filter', label], { encoding: 'utf8' });
  const networks = nets.stdout.split(/\s+/).filter(Boolean);
  if (networks.length) spawnSync('docker', ['network', 'rm', ...networks]);
}

function httpGet(endpoint, urlPath) {
  return new Promise((resolve, reject) => {
    http
      .get(`http://${endpoint}${urlPath}`, { timeout: 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(body.trim()));
      })
      .on('error', reject);
  });
}

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * The released daemon (`cargo build -p clank-daemon`) on `runtime` (`docker` or `process`),
 * configured as the README documents; workspace `acme` made by `init`. Stopped by `stop()`.
 */
async function startDaemon(dir, runtime) {
  const binary = path.join(TARGET, 'debug', 'clank-daemon');
  assert.ok(fs.existsSync(binary), `build the daemon first: cargo build -p clank-daemon (${binary})`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log = fs.openSync(path.join(dir, 'daemon.log'), 'w');
  const proc = spawn(binary, [], {
    env: {
      ...process.env,
      CLANK_DATA: path.join(dir, 'daemon-data'),
      CLANK_LISTEN: `127.0.0.1:${port}`,
      CLANK_RUNTIME: runtime,
      CLANK_PROXY_LISTEN: 'off',
      CLANK_LOG: 'warn',
    },
    stdio: ['ignore', log, log],
  });
  const stop = () =>
    new Promise((resolve) => {
      if (proc.exitCode !== null) return resolve();
      proc.once('exit', resolve);
      proc.kill('SIGTERM');
      setTimeout(() => proc.kill('SIGKILL'), 15_000).unref();
    });
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${url}/v1/health`)).ok) break;
      } catch {
        // not up yet
      }
      if (i > 400) throw new Error(`clank-daemon did not come up: ${fs.readFileSync(path.join(dir, 'daemon.log'))}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    const init = await fetch(`${url}/v1/init`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ workspace: 'acme', name: 'Ada', email: 'ada@example.com' }),
    });
    const { token } = await init.json();
    return { url, token, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

module.exports = {
  REPO,
  PKG_DIR,
  clank,
  tempDir,
  withPlatform,
  rejectsWith,
  freePort,
  startDaemon,
  ensureTestImage,
  dockerCleanup,
  httpGet,
};
