// Run jobs to completion with the real BullMQ Worker (the version pinned in package.json), three ways:
// queue "kept" keeps completed jobs (the default), "dropped" removes them on completion but the worker
// records BullMQ's per-minute metrics, "blind" removes them with no metrics. Prints what BullMQ itself
// says: completed counts and the metrics' count.
//
// Usage: node bullmq_complete.js <redis-url> <prefix> <jobs-per-queue>
'use strict';

const { Queue, Worker, MetricsTime } = require('bullmq');
const IORedis = require('ioredis');

async function run(connection, prefix, name, n, jobOpts, workerOpts) {
  const queue = new Queue(name, { connection, prefix });
  let done = 0;
  const finished = new Promise((resolve) => {
    const worker = new Worker(name, async () => 'ok', { connection, prefix, ...workerOpts });
    worker.on('completed', () => {
      done += 1;
      if (done === n) resolve(worker);
    });
  });
  for (let i = 0; i < n; i++) {
    await queue.add('job', { i }, jobOpts);
  }
  const worker = await finished;
  await worker.close();
  const out = { completed: await queue.getCompletedCount() };
  if (workerOpts.metrics) {
    out.metrics = (await queue.getMetrics('completed')).meta.count;
  }
  await queue.close();
  return out;
}

async function main() {
  const [url, prefix, nArg] = process.argv.slice(2);
  const n = Number(nArg);
  const connection = new IORedis(url, { maxRetriesPerRequest: null });
  const out = {
    kept: await run(connection, prefix, 'kept', n, {}, {}),
    dropped: await run(connection, prefix, 'dropped', n, { removeOnComplete: true },
                       { metrics: { maxDataPoints: MetricsTime.ONE_HOUR } }),
    blind: await run(connection, prefix, 'blind', n, { removeOnComplete: true }, {}),
  };
  await connection.quit();
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
