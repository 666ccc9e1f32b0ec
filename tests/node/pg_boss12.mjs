// Enqueue with the real pg-boss 12 (package alias pg-boss12, pinned in package.json) into the database
// given as argv[2] (schema argv[3]): a flow parent -> child on `flows` (the child is blocked until the parent finishes),
// on `emails` 1 delayed by startAfter that is due already (created first, but ready only at its
// start_after, after the next job was created) + 1 ready + 1 deferred; one job completed and one failed for good
// (retryLimit 0) on `done` (the finished window; a failed job stays live, LIVE_STATES in dist/plans.js), and
// pg-boss's own getQueueStats('done', { force: true }).failedCount to compare with.
import { PgBoss } from 'pg-boss12'

const boss = new PgBoss({ connectionString: process.argv[2], schema: process.argv[3], supervise: false, schedule: false })
boss.on('error', (err) => { console.error(err); process.exitCode = 1 })
await boss.start()
for (const q of ['emails', 'flows', 'done']) await boss.createQueue(q)
const due = await boss.send('emails', { n: 2 }, { startAfter: 1 })
const ready = await boss.send('emails', { n: 1 })
await boss.send('emails', { n: 3 }, { startAfter: 3600 })
const refs = await boss.flow([
  { ref: 'parent', name: 'flows', data: { step: 1 } },
  { ref: 'child', name: 'flows', data: { step: 2 }, dependsOn: ['parent'] }
])
await boss.send('done', { n: 1 })
const [job] = await boss.fetch('done')
await boss.complete('done', job.id)
await boss.send('done', { n: 2 }, { retryLimit: 0 })
const [doomed] = await boss.fetch('done')
await boss.fail('done', doomed.id, { message: 'boom' })
const [{ failedCount }] = await boss.getQueueStats('done', { force: true })
await new Promise((resolve) => setTimeout(resolve, 1500)) // the startAfter: 1 job becomes due
await boss.stop({ graceful: false, wait: true })
console.log(JSON.stringify({ due, ready, refs, completed: job.id, failed: doomed.id, failedCount }))
