"""DBOS Transact: chain5 as a workflow of five steps, on SQLite or PostgreSQL.

Executions start with `DBOS.start_workflow` in this process (DBOS is a library,
not a service): no HTTP layer, unlike Stageline's measurements.
"""

from __future__ import annotations

import os
from importlib.metadata import version
from typing import Any

import sqlalchemy as sa
from common import Engine, arguments, emit, measure, spec
from dbos import DBOS, DBOSConfig, WorkflowHandle


@DBOS.step()
def s1(d: dict[str, Any]) -> dict[str, Any]:
    return spec.step(d, 1)


@DBOS.step()
def s2(d: dict[str, Any]) -> dict[str, Any]:
    return spec.step(d, 2)


@DBOS.step()
def s3(d: dict[str, Any]) -> dict[str, Any]:
    return spec.step(d, 3)


@DBOS.step()
def s4(d: dict[str, Any]) -> dict[str, Any]:
    return spec.step(d, 4)


@DBOS.step()
def s5(d: dict[str, Any]) -> dict[str, Any]:
    return spec.step(d, 5)


@DBOS.workflow()
def chain5(d: dict[str, Any]) -> dict[str, Any]:
    return s5(s4(s3(s2(s1(d)))))


class DbosEngine(Engine):
    def __init__(self, url: str) -> None:
        self.url = url
        config: DBOSConfig = {"name": "stageline-bench", "system_database_url": url,
                              "log_level": "WARNING"}
        DBOS(config=config)
        DBOS.launch()

    def start(self, i: int) -> WorkflowHandle[dict[str, Any]]:
        return DBOS.start_workflow(chain5, spec.input_of(i))

    def wait(self, handle: WorkflowHandle[dict[str, Any]], poll: float) -> Any:
        return handle.get_result()

    def records(self, executions: int) -> dict[str, dict[str, int]]:
        schema = "" if self.url.startswith("sqlite") else "dbos."
        engine = sa.create_engine(self.url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            done = conn.execute(sa.text(
                f"SELECT count(*) FROM {schema}workflow_status WHERE status = 'SUCCESS'"
            )).scalar_one()
            steps = conn.execute(sa.text(
                f"SELECT count(*) FROM {schema}operation_outputs")).scalar_one()
        engine.dispose()
        return {"workflows_succeeded": {"expected": executions, "found": done},
                "step_outputs": {"expected": executions * spec.STEPS, "found": steps}}

    def engine_pid(self) -> int:
        return os.getpid()


def main() -> None:
    args = arguments(__doc__ or "")
    engine = DbosEngine(args.db_url)
    try:
        result = measure(engine, args)
    finally:
        DBOS.destroy()
    emit(result, {"dbos": version("dbos"), "sqlalchemy": version("sqlalchemy")},
         "in-process start_workflow; CPU includes the client threads")


if __name__ == "__main__":
    main()
