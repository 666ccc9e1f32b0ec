// Install a library's own schema with the real library (no jobs), for the benchmark and tests:
//   node migrate.mjs pg-boss12 <dsn> <schema> <queue>...   (pg-boss 12 schema and its queues)
//   node migrate.mjs graphile <dsn>                         (graphile-worker's migrations)
//   node migrate.mjs pg-boss12-stats <dsn> <schema> <queue>... (pg-boss's monitor cache of those queues, as
//                                                           its supervisor keeps it: getQueueStats(q, { force: true }))
import { createRequire } from 'node:module'
import { PgBoss } from 'pg-boss12'

const [lib, dsn, schema, ...queues] = process.argv.slice(2)
if (lib === 'pg-boss12') {
  const boss = new PgBoss({ connectionString: dsn, schema, supervise: false, schedule: false })
  boss.on('error', (err) => { console.error(err); process.exitCode = 1 })
  await boss.start()
  for (const q of queues) await boss.createQueue(q)
  await boss.stop({ graceful: false, wait: true })
} else if (lib === 'pg-boss12-stats') {
  const boss = new PgBoss({ connectionString: dsn, schema, supervise: false, schedule: false, migrate: false })
  boss.on('error', (err) => { console.error(err); process.exitCode = 1 })
  await boss.start()
  for (const q of queues) await boss.getQueueStats(q, { force: true })
  await boss.stop({ graceful: false, wait: true })
} else if (lib === 'graphile') {
  const { makeWorkerUtils } = createRequire(import.meta.url)('graphile-worker')
  const utils = await makeWorkerUtils({ connectionString: dsn })
  await utils.migrate()
  await utils.release()
} else {
  throw new Error(`unknown library ${lib}`)
}
console.log(JSON.stringify({ ok: true }))
