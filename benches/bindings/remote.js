'use strict';
// Remote binding overhead, the Node side (see benches/bindings-remote.sh): sequential
// `getService` calls through `Platform.connect` against CLANK_BENCH_URL. One JSON line.
const clank = require('../../bindings/node');

const CALLS = Number(process.env.CALLS || 2000);
const ROUNDS = Number(process.env.ROUNDS || 5);

async function main() {
  const p = await clank.Platform.connect(process.env.CLANK_BENCH_URL, process.env.CLANK_BENCH_TOKEN);
  try {
    const rounds = [];
    for (let r = 0; r <= ROUNDS; r++) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < CALLS; i++) await p.getService('bench/api');
      const us = Number(process.hrtime.bigint() - start) / 1e3 / CALLS;
      if (r) rounds.push(Number(us.toFixed(3)));
    }
    console.log(JSON.stringify({ side: 'node remote: await getService', calls: CALLS, rounds_us: rounds }));
  } finally {
    await p.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
