// A real graphile-worker runner holding a job of the named queue `serial` (argv[2]: the database):
// 2 jobs on `serial` (the second waits behind the queue lock the first holds: job_queues.is_available
// false, dist/sql/getJobs.js skips it) + 1 `hold` job in no queue the runner (concurrency 1) leaves
// ready. Prints {"held": true} once the first job runs, releases it when stdin closes, then stops.
'use strict'
const { makeWorkerUtils, run } = require('graphile-worker')

async function main () {
  const connectionString = process.argv[2]
  const utils = await makeWorkerUtils({ connectionString })
  await utils.migrate()
  await utils.addJob('hold', { n: 1 }, { queueName: 'serial' })
  await utils.addJob('hold', { n: 2 }, { queueName: 'serial', runAt: new Date(Date.now() + 500) })
  await utils.addJob('hold', { n: 3 }, { runAt: new Date(Date.now() + 500) })
  await utils.release()
  let release
  const held = new Promise((resolve) => { release = resolve })
  let started
  const running = new Promise((resolve) => { started = resolve })
  const runner = await run({
    connectionString,
    concurrency: 1,
    noHandleSignals: true,
    pollInterval: 200,
    taskList: { hold: async () => { started(); await held } }
  })
  await running
  await new Promise((resolve) => setTimeout(resolve, 600)) // the other two jobs are due now
  console.log(JSON.stringify({ held: true }))
  process.stdin.resume()
  await new Promise((resolve) => process.stdin.on('end', resolve))
  release()
  await runner.stop()
}

main().catch((err) => { console.error(err); process.exit(1) })
