// Enqueue and process with the real classic Bull (the version pinned in package.json) and print
// what the library itself counts, so the Python tests compare the `bullmq` layout with Bull.
//
// Usage: node bull_seed.js <redis-url> <prefix>
// Queue "work": a job that succeeds, one that fails for good, one that fails once and is retried
// with a 10-minute backoff (so it waits in `delayed`), and one delayed by 10 minutes; the real
// worker (Queue#process) runs the first three; then 3 jobs are added and another worker takes the
// oldest and is still running it when the process exits (it stays `active`). Queue "held": 2 jobs, then paused
// (Bull RENAMEs `wait` to `paused` and sets `meta-paused` and `meta.paused`). Prints one JSON object.
'use strict';

const Queue = require('bull');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const [url, prefix] = process.argv.slice(2);
  const opts = { prefix, settings: { stalledInterval: 0 } };
  const work = new Queue('work', url, opts);
  const held = new Queue('held', url, opts);
  const later = 600000;
  await work.add({ kind: 'ok' });
  await work.add({ kind: 'fail' });
  await work.add({ kind: 'fail' }, { attempts: 2, backoff: { type: 'fixed', delay: later } });
  await work.add({ kind: 'ok' }, { delay: later });
  work.process(async (job) => {
    if (job.data.kind === 'fail') throw new Error('boom');
    return 42;
  });
  // done when the worker has run the three: one completed, one failed, the retry back in `delayed`
  const done = (c) => c.completed === 1 && c.failed === 1 && c.delayed === 2 && c.waiting === 0 && c.active === 0;
  for (let i = 0; i < 400 && !done(await work.getJobCounts()); i += 1) await sleep(25);
  await work.close();

  const producer = new Queue('work', url, opts);
  const waiting = [];
  for (let i = 0; i < 3; i += 1) waiting.push(await producer.add({ kind: 'ok', i }));
  // a worker that takes the oldest job and is still running it when the process ends
  const holder = new Queue('work', url, opts);
  holder.process(() => new Promise(() => {}));
  for (let i = 0; i < 400 && (await producer.getJobCounts()).active !== 1; i += 1) await sleep(25);
  for (let i = 0; i < 2; i += 1) await held.add({ n: i });
  await held.pause();
  const out = { queues: {} };
  for (const queue of [producer, held]) {
    out.queues[queue.name] = {
      counts: await queue.getJobCounts(), paused: await queue.isPaused(),
    };
  }
  out.timestamps = waiting.map((job) => job.timestamp);
  out.heldTimestamps = (await held.getWaiting()).map((job) => job.timestamp);
  await held.close();
  process.stdout.write(JSON.stringify(out), () => process.exit(0));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
