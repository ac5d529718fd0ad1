// The package's ES module entry (package.json "exports" -> import) exports exactly what the
// CommonJS entry does, as the same objects. CLANK_NODE_PACKAGE may name an installed package
// directory to test instead of this source tree (scripts/test does, for the packed tarballs).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const PKG_DIR = process.env.CLANK_NODE_PACKAGE
  || path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const manifest = JSON.parse(fs.readFileSync(path.join(PKG_DIR, 'package.json'), 'utf8'));
const entries = manifest.exports['.'];

test('the ESM entry exports the CommonJS names, as the same objects', async () => {
  const cjs = createRequire(import.meta.url)(path.join(PKG_DIR, entries.require.default));
  const esm = await import(pathToFileURL(path.join(PKG_DIR, entries.import.default)).href);
  const names = Object.keys(esm).filter((n) => n !== 'default').sort();
  assert.deepEqual(names, Object.keys(cjs).sort());
  for (const name of names) assert.equal(esm[name], cjs[name], name);
  assert.equal(esm.default, cjs);
});

test('every file the exports map names is in the package', () => {
  for (const cond of Object.values(entries)) {
    for (const file of Object.values(cond)) {
      assert.ok(fs.existsSync(path.join(PKG_DIR, file)), file);
      assert.ok(manifest.files.includes(file.replace(/^\.\//, '')), `${file} is not in "files"`);
    }
  }
});
