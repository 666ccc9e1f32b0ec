"""Never-analyzed tables (issue 21 item 5): a library preset's tables restored or loaded with
autovacuum off have no statistics (pg_class.reltuples = -1 until the first VACUUM or ANALYZE), so
their plans guess. The preset says so in `jobqueue_postgres_tables_unanalyzed` and `doctor` names
the tables and the ANALYZE to run. River's schema as its migrations write it (tests/support/postgres.py)."""

from __future__ import annotations

from exporter.config import parse_config
from exporter.doctor import diagnose
from tests.support.postgres import RIVER, admin, collect, scratch_database

BODY = "    queues:\n      - preset: river\n        schema: lib\n"


async def test_never_analyzed_tables_are_counted_and_doctor_says_what_to_run() -> None:
    with scratch_database() as dsn:
        with admin(dsn) as conn:
            conn.execute("CREATE SCHEMA lib;" + RIVER.format(s="lib"))
            # a fresh load with autovacuum off: nothing has ever analyzed river_job (about 20 MB)
            conn.execute("ALTER TABLE lib.river_job SET (autovacuum_enabled = false)")
            conn.execute("INSERT INTO lib.river_job (kind, queue, state, args, finalized_at) SELECT 'k', 'q', "
                         "'completed', jsonb_build_object('pad', repeat('x', 100)), now() - interval '2 days' "
                         "FROM generate_series(1, 100000)")
            assert conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'lib.river_job'::regclass"
                                ).fetchone() == (-1,)
        text = f"sources:\n  - name: pg\n    type: postgres\n    dsn: {dsn}\n{BODY}"
        reading = await collect(dsn, BODY)
        assert {s.labels: s.value for s in reading.samples
                if s.metric == "jobqueue_postgres_tables_unanalyzed"} == {("river",): 1}
        [report] = await diagnose(parse_config(text, "<test>", {}))
        [finding] = [f for f in report.findings if f.check == "table statistics"]
        assert (finding.ok, finding.detail) == (False, "never analyzed: lib.river_job")
        assert finding.fix.startswith("Run ANALYZE lib.river_job;")
        with admin(dsn) as conn:
            conn.execute("ANALYZE lib.river_job")
        analyzed = await collect(dsn, BODY)
        assert {s.labels: s.value for s in analyzed.samples
                if s.metric == "jobqueue_postgres_tables_unanalyzed"} == {("river",): 0}
        [report] = await diagnose(parse_config(text, "<test>", {}))
        assert [(f.ok, f.detail) for f in report.findings if f.check == "table statistics"] == [(True, "present")]
