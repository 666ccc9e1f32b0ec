// Enqueue with the real pg-boss (pinned in package.json) into the database given as argv[2]:
// emails: 2 ready + 1 deferred + 1 active; reports: 1 ready, 1 completed, 1 failed; idle: no job.
'use strict'
const PgBoss = require('pg-boss')

async function main () {
  const boss = new PgBoss({ connectionString: process.argv[2], supervise: false, schedule: false })
  boss.on('error', (err) => { console.error(err); process.exitCode = 1 })
  await boss.start()
  for (const q of ['emails', 'reports', 'idle']) await boss.createQueue(q)
  await boss.send('emails', { n: 1 })
  const [active] = await boss.fetch('emails')
  await boss.send('emails', { n: 2 })
  await boss.send('emails', { n: 3 })
  await boss.send('emails', { n: 4 }, { startAfter: 3600 })
  await boss.send('reports', { n: 1 }, { retryLimit: 0 })
  const [bad] = await boss.fetch('reports')
  await boss.fail('reports', bad.id, { message: 'boom' })
  await boss.send('reports', { n: 2 })
  const [good] = await boss.fetch('reports')
  await boss.complete('reports', good.id)
  await boss.send('reports', { n: 3 })
  await boss.stop({ graceful: false, wait: true })
  console.log(JSON.stringify({ active: active.id, failed: bad.id, completed: good.id }))
}

main().catch((err) => { console.error(err); process.exit(1) })
