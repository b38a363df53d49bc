"""An engine in Python driving diskflow with the official Temporal SDK (temporalio).

Creates a disk with Update-With-Start (the call returns once the disk is persisted), waits for
it to be usable, copies it into another repository, reads the copy's status, and sees an error
code; every payload sent and received is checked against diskflow's JSON Schemas.

    PYTHONPATH=.tools/python TEMPORAL_ADDRESS=localhost:7233 DISKFLOW_HOST_ID=$(hostname) \
        python3 docs/examples/python_engine.py default backups
"""
import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import jsonschema
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError

SCHEMAS = Path(os.environ.get("DISKFLOW_SCHEMAS", Path(__file__).resolve().parent.parent.parent / "schemas"))
INDEX = json.loads((SCHEMAS / "index.json").read_text())
TASK_QUEUE = INDEX["taskQueue"]  # diskflow.workflows
PERSISTED = INDEX["persistedUpdate"]  # the update answered once an operation's intent is durable


def checked(workflow_type: str, direction: str, payload):
    """The payload, after validating it against schemas/<type>.<input|output>.json."""
    schema = json.loads((SCHEMAS / INDEX["workflows"][workflow_type][direction]).read_text())
    jsonschema.validate(payload, schema)
    return payload


async def operate(client: Client, workflow_type: str, request: dict, request_id: str) -> tuple[dict, WorkflowHandle]:
    """Starts a mutating operation; returns its answer once persisted, and the handle to wait on."""
    start = WithStartWorkflowOperation(
        workflow_type,
        checked(workflow_type, "input", request),
        id=f"{workflow_type}:{request_id}",  # the same request id twice is one operation
        task_queue=TASK_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    answer = await client.execute_update_with_start_workflow(PERSISTED, start_workflow_operation=start)
    handle = await start.workflow_handle()
    return checked(workflow_type, "output", answer), handle


async def read(client: Client, workflow_type: str, request: dict):
    """Runs a read (getImageStatus, listImagesPage, ...) to its answer."""
    result = await client.execute_workflow(
        workflow_type, checked(workflow_type, "input", request), id=f"{workflow_type}:{uuid.uuid4()}", task_queue=TASK_QUEUE
    )
    return checked(workflow_type, "output", result)


async def main(repository: str, backups: str) -> None:
    client = await Client.connect(os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"), namespace=os.environ.get("TEMPORAL_NAMESPACE", "default"))
    host = os.environ["DISKFLOW_HOST_ID"]  # the host whose repoIds name the repositories

    disk, created = await operate(
        client, "createVirtualDisk", {"hostId": host, "targetRepoId": repository, "size": 8 << 20, "userData": {"vm": "web-1"}}, str(uuid.uuid4())
    )
    checked("createVirtualDisk", "output", await created.result())  # usable now: its autoFix is done

    copy, copied = await operate(client, "copyImage", {"hostId": host, "targetRepoId": backups, "imageId": disk["imageId"]}, str(uuid.uuid4()))
    checked("copyImage", "output", await copied.result())
    status = await read(client, "getImageStatus", {"hostId": host, "repositoryId": backups, "imageId": copy["imageId"]})

    # Errors carry diskflow's code as the failure type.
    try:
        await read(client, "getImageStatus", {"hostId": host, "repositoryId": backups, "imageId": str(uuid.uuid4())})
        code = None
    except WorkflowFailureError as failure:
        code = failure.cause.type if isinstance(failure.cause, ApplicationError) else repr(failure.cause)

    print(json.dumps({"disk": disk["imageId"], "copy": copy["imageId"], "status": status, "missingImageCode": code}))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
    # A short-lived client can crash in the interpreter's teardown, after its work is done, while
    # the SDK's Rust threads still run (temporalio/sdk-python#300): end without that teardown.
    sys.stdout.flush()
    os._exit(0)
