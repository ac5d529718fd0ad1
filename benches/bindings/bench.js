'use strict';
// Binding overhead, the Node side (see benches/bindings.sh): sequential `getService` calls
// through the Node binding (also with every read awaited). One JSON line per side.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const clank = require('../../bindings/node');
// The addon index.js loaded (same file, same module): its read budget is a bench knob.
const native = require('../../bindings/node/clank.node');

const CALLS = Number(process.env.CALLS || 10000);
const ROUNDS = Number(process.env.ROUNDS || 5);

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clank-bench-'));
  const p = await clank.Platform.open(path.join(dir, 'data'), { runtime: 'process' });
  try {
    await p.createProject('Bench', { slug: 'bench' });
    await p.createService('bench', 'api', { image: 'clank-testapp:latest' });
    // Budget 0: every read answered through a Promise resolved by a thread-safe function (what
    // every call did before reads were answered in place).
    for (const [budget, side] of [
      [1000, 'node: await Platform.getService'],
      [0, 'node: the same, every call awaited (read budget 0)'],
    ]) {
      native.setReadBudget(budget);
      const rounds = [];
      for (let r = 0; r <= ROUNDS; r++) {
        const start = process.hrtime.bigint();
        for (let i = 0; i < CALLS; i++) await p.getService('bench/api');
        const us = Number(process.hrtime.bigint() - start) / 1e3 / CALLS;
        if (r) rounds.push(Number(us.toFixed(3)));
      }
      console.log(JSON.stringify({ side, calls: CALLS, rounds_us: rounds }));
    }
    native.setReadBudget(1000);
  } finally {
    await p.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
