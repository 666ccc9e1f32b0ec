// Install the schema of the real pg-boss 9 (package alias pg-boss9, pinned in package.json) into the
// database given as argv[2] (schema argv[3]), and send one job: an older schema than the exporter's preset supports.
'use strict'
const PgBoss = require('pg-boss9')

async function main () {
  const boss = new PgBoss({ connectionString: process.argv[2], schema: process.argv[3], noSupervisor: true, noScheduling: true })
  boss.on('error', (err) => { console.error(err); process.exitCode = 1 })
  await boss.start()
  await boss.send('emails', { n: 1 })
  await boss.stop({ graceful: false, wait: true })
  console.log(JSON.stringify({ ok: true }))
}

main().catch((err) => { console.error(err); process.exit(1) })
