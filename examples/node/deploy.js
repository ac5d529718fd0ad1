'use strict';
// Deploy an image service end to end on the embedded defaults and follow its events.
//
// A redb store in ./clank-data (or $CLANK_DATA), the local Docker Engine — or native processes
// when none is reachable (or CLANK_RUNTIME=process) — and the deploy engine, all inside this
// process. Reruns continue the service's history.
//
//   bindings/node/build.sh
//   cargo run -p clank-testkit --features docker --bin clank-testapp-image   # the demo image
//   node examples/node/deploy.js

const http = require('node:http');
const path = require('node:path');
const clank = require('../../bindings/node');

const IMAGE = process.env.CLANK_IMAGE || 'clank-testapp:latest';
const SERVICE = 'demo-node/hello';

async function ensureService(p) {
  await p.getProject('demo-node').catch(async (e) => {
    if (!(e instanceof clank.NotFound)) throw e;
    await p.createProject('Demo (Node)', { slug: 'demo-node' });
  });
  try {
    await p.getService(SERVICE);
    return;
  } catch (e) {
    if (!(e instanceof clank.NotFound)) throw e;
  }
  if (p.runtime === 'docker') {
    await p.createService('demo-node', 'hello', { image: IMAGE, settings: { health_check_interval_s: 2 } });
  } else {
    // Native processes run a command, not an image: busybox's httpd, checked by TCP.
    await p.createService('demo-node', 'hello', {
      image: IMAGE,
      command: ['/bin/busybox', 'sh', '-c', 'exec /bin/busybox httpd -f -p $PORT -h /tmp'],
      settings: { health_check_path: '', health_check_interval_s: 2 },
    });
  }
}

function get(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, { timeout: 5000 }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(body.trim()));
      })
      .on('error', reject);
  });
}

async function main() {
  const data = process.env.CLANK_DATA || 'clank-data';
  const p = await clank.Platform.open(data, { runtime: process.env.CLANK_RUNTIME || 'auto' });
  try {
    console.log(`store:   ${path.join(data, 'clank.redb')}\nruntime: ${p.runtime}`);
    await ensureService(p);
    await p.setConfig({ service: SERVICE, values: { GREETING: 'hello from Node' }, secrets: { API_TOKEN: 's3cr3t' } });
    for (const v of await p.resolvedConfig(SERVICE)) {
      console.log(`config:  ${v.key}=${v.value}  (from ${v.source.split(':')[0]})`);
    }

    const events = p.events(SERVICE); // subscribe first: nothing after this is missed
    const d = await p.deploy(SERVICE);
    console.log(`\ndeploying ${SERVICE} #${d.number} (${d.image || IMAGE})`);
    for await (const e of events) {
      if (e.number !== d.number) continue;
      if (e.type === 'transition') {
        console.log(`  #${String(e.number).padEnd(3)} ${e.from} -> ${e.to}${e.reason ? `: ${e.reason}` : ''}`);
        if (['ACTIVE', 'FAILED', 'CANCELLED'].includes(e.to)) break; // also closes the subscription
      } else if (e.type === 'log' && !e.message.includes('→')) {
        console.log(`  #${String(e.number).padEnd(3)}   ${e.message}`);
      }
    }

    const final = await p.deployment(SERVICE, d.number);
    if (final.status === 'ACTIVE') {
      for (const endpoint of await p.endpoints(SERVICE, d.number)) {
        if (p.runtime === 'docker') {
          const body = await get(`http://${endpoint}/env?GREETING`);
          console.log(`\nhttp://${endpoint}/env?GREETING says ${JSON.stringify(body)}`);
        } else {
          console.log(`\nlistening on http://${endpoint}/`);
        }
      }
    }
    console.log(`\ndeployments of ${SERVICE} (newest first):`);
    for (const past of await p.deployments(SERVICE, { limit: 5 })) {
      console.log(`  #${String(past.number).padEnd(3)} ${past.status.padEnd(11)} ${past.trigger.kind}`);
    }
  } finally {
    await p.close();
  }
}

main().catch((e) => {
  console.error(`${e.name} (${e.code}${e.field ? `, field ${e.field}` : ''}): ${e.message}`);
  process.exit(1);
});
