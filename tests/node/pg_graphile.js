// Enqueue with the real graphile-worker (pinned in package.json) into the database given as argv[2],
// then let one runOnce pass work: send_email: 2 ready + 1 scheduled; flaky: 1 failed for good
// (max_attempts 1) + 1 waiting to retry (fails, attempts left); ok: run and deleted.
'use strict'
const { makeWorkerUtils, runOnce } = require('graphile-worker')

async function main () {
  const connectionString = process.argv[2]
  const utils = await makeWorkerUtils({ connectionString })
  await utils.migrate()
  const later = new Date(Date.now() + 3600 * 1000)
  await utils.addJob('flaky', { n: 1 }, { maxAttempts: 1 })
  await utils.addJob('flaky', { n: 2 }, { maxAttempts: 5 })
  await utils.addJob('ok', { n: 1 })
  await runOnce({
    connectionString,
    concurrency: 1,
    noHandleSignals: true,
    taskList: {
      flaky: async () => { throw new Error('boom') },
      ok: async () => {}
    }
  })
  await utils.addJob('send_email', { n: 1 }, { queueName: 'mail' })
  await utils.addJob('send_email', { n: 2 }, { queueName: 'mail' })
  await utils.addJob('send_email', { n: 3 }, { runAt: later })
  await utils.release()
  console.log(JSON.stringify({ ok: true }))
}

main().catch((err) => { console.error(err); process.exit(1) })
