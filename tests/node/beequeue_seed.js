// Enqueue and process with the real Bee-Queue (the version pinned in package.json) and print what
// the library itself counts (Queue#checkHealth), so the Python tests compare the exporter with it.
//
// Usage: node beequeue_seed.js <redis-url> <prefix>
// Queue "work": a job that succeeds, one that fails for good, one that fails once and is retried
// with a 10-minute backoff (so it waits in `delayed`), and one delayed by 10 minutes; the real
// worker (Queue#process) runs the first three; then 3 jobs are added and another worker takes the
// oldest and is still running it when the process exits (it stays `active`). Prints one JSON object.
'use strict';

const Queue = require('bee-queue');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const [url, prefix] = process.argv.slice(2);
  const settings = { redis: { url }, prefix, isWorker: true, getEvents: false, sendEvents: false, stallInterval: 60000 };
  const work = new Queue('work', settings);
  await work.ready();
  const hour = 600000;
  await work.createJob({ kind: 'ok' }).save();
  await work.createJob({ kind: 'fail' }).save();
  await work.createJob({ kind: 'fail' }).retries(1).backoff('fixed', hour).save();
  await work.createJob({ kind: 'ok' }).delayUntil(Date.now() + hour).save();
  work.process(async (job) => {
    if (job.data.kind === 'fail') throw new Error('boom');
    return 42;
  });
  // done when the worker has run the three: one succeeded, one failed, the retry back in `delayed`
  const done = (h) => h.succeeded === 1 && h.failed === 1 && h.delayed === 2 && h.waiting === 0 && h.active === 0;
  for (let i = 0; i < 400 && !done(await work.checkHealth()); i += 1) await sleep(25);
  await work.close();

  const producer = new Queue('work', { ...settings, isWorker: false });
  await producer.ready();
  const waiting = [];
  for (let i = 0; i < 3; i += 1) waiting.push(await producer.createJob({ kind: 'ok', i }).save());
  // a worker that takes the oldest job and is still running it when the process ends
  const holder = new Queue('work', settings);
  holder.process(() => new Promise(() => {}));
  for (let i = 0; i < 400 && (await producer.checkHealth()).active !== 1; i += 1) await sleep(25);
  const health = await producer.checkHealth();
  // Bee-Queue's own listing (Queue#getJobs), for the job listing test
  const listed = async (type) => (await producer.getJobs(type, { start: 0, end: 10 })).map((job) => ({
    id: job.id, data: job.data, timestamp: job.options.timestamp }));
  const jobs = { waiting: await listed('waiting'), active: await listed('active') };
  process.stdout.write(JSON.stringify({ health, jobs, timestamps: waiting.map((job) => job.options.timestamp) }),
    () => process.exit(0));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
