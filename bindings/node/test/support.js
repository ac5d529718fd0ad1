'use strict';
// What the binding suites share: the test app's image, removing a test's containers, one GET.
const { spawnSync } = require('node:child_process');
const http = require('node:http');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..', '..');

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

module.exports = { REPO, ensureTestImage, dockerCleanup, httpGet };
