// A real BullMQ Worker with metrics enabled, so the Python tests can read what BullMQ counts.
//
// Usage: node bullmq_worker.js <redis-url> <prefix> <queue> <ok> <failing>
// Adds <ok> jobs that succeed and <failing> jobs that throw (attempts: 1), runs one Worker named
// "w1" (metrics: {maxDataPoints: 60}) until all have finished, prints one JSON line with BullMQ's own
// counts (getJobCounts, getMetrics, getWorkersCount), then keeps the worker connected until stdin
// closes, and exits after closing it.
'use strict';

const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');

async function main() {
  const [url, prefix, name, okArg, failArg] = process.argv.slice(2);
  const ok = Number(okArg);
  const failing = Number(failArg);
  const connection = new IORedis(url, { maxRetriesPerRequest: null });
  const workerConnection = new IORedis(url, { maxRetriesPerRequest: null });
  const queue = new Queue(name, { connection, prefix });
  let finished = 0;
  let done;
  const all = new Promise((resolve) => { done = resolve; });
  const worker = new Worker(name, async (job) => {
    if (job.data.fail) throw new Error('boom');
    return 1;
  }, { connection: workerConnection, prefix, name: 'w1',
       metrics: { maxDataPoints: 60 } });
  const tick = () => { finished += 1; if (finished === ok + failing) done(); };
  worker.on('completed', tick);
  worker.on('failed', tick);
  await worker.waitUntilReady();
  for (let i = 0; i < ok; i++) await queue.add('ok', { i }, { attempts: 1 });
  for (let i = 0; i < failing; i++) await queue.add('bad', { i, fail: true }, { attempts: 1 });
  await all;
  const counts = await queue.getJobCounts('completed', 'failed', 'wait', 'active');
  const completed = await queue.getMetrics('completed');
  const failed = await queue.getMetrics('failed');
  const workers = await queue.getWorkersCount();
  process.stdout.write(JSON.stringify({ counts, metrics: { completed: completed.meta.count,
    failed: failed.meta.count }, workers }) + '\n');
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.on('end', resolve));
  await worker.close();
  await queue.close();
  await connection.quit();
  await workerConnection.quit();
  process.exit(0);
}

main().catch((err) => { console.error(err); process.exit(1); });
