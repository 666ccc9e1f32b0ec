// Enqueue with the real BullMQ (the version pinned in package.json) and print what the library
// itself counts, so the Python tests can compare the exporter's numbers with BullMQ's own.
//
// Usage: node bullmq_seed.js <redis-url> <prefix> <base-timestamp-ms>
// Queue "work": 3 jobs with timestamps base, base+1000, base+2000, one delayed job (60 s) and one
// prioritized job (priority 5, timestamp base-5000). Queue "held": 2 jobs, then paused (v6 keeps
// them in `wait` and sets meta.paused). Prints one JSON object: counts per queue, paused flags and
// the Redis keys BullMQ wrote under the prefix with their types.
'use strict';

const { Queue } = require('bullmq');
const IORedis = require('ioredis');

async function main() {
  const [url, prefix, baseArg] = process.argv.slice(2);
  const base = Number(baseArg);
  const connection = new IORedis(url, { maxRetriesPerRequest: null });
  const work = new Queue('work', { connection, prefix });
  const held = new Queue('held', { connection, prefix });
  for (const offset of [0, 1000, 2000]) {
    await work.add('job', { offset }, { timestamp: base + offset });
  }
  await work.add('later', { delayed: true }, { timestamp: base + 3000, delay: 60000 });
  await work.add('urgent', { prioritized: true }, { timestamp: base - 5000, priority: 5 });
  await held.add('job', { n: 1 }, { timestamp: base + 10000 });
  await held.add('job', { n: 2 }, { timestamp: base + 11000 });
  await held.pause();

  const states = ['wait', 'paused', 'prioritized', 'delayed', 'active', 'completed', 'failed', 'waiting-children'];
  const out = { queues: {}, keys: {} };
  for (const queue of [work, held]) {
    out.queues[queue.name] = {
      counts: await queue.getJobCounts(...states),
      waiting: await queue.getWaitingCount(),
      count: await queue.count(),
      paused: await queue.isPaused(),
    };
  }
  let cursor = '0';
  do {
    const [next, keys] = await connection.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      out.keys[key] = await connection.type(key);
    }
  } while (cursor !== '0');
  await work.close();
  await held.close();
  await connection.quit();
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
