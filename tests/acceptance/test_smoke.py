"""The embedded server starts, runs an execution over HTTP, and stops."""

from __future__ import annotations

from tests.acceptance.conftest import Server, wait_for_status


def test_start_and_complete_over_http(server: Server) -> None:
    with server.client() as client:
        created = client.post("/api/v1/executions",
                              json={"pipeline": "words", "input": {"text": "a b\nc"}})
        assert created.status_code == 201, created.text
        done = wait_for_status(client, created.json()["id"], {"completed"})
        assert done["result"] == 3
        assert done["status"] == "completed"
