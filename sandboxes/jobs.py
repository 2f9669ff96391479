"""Celery tasks enqueued by name, so that code which starts work never imports a tasks module (tasks call
back into that code: importing them would make a cycle). The tests check every name against the tasks the
workers run (tests/support/fixtures.py, `enqueued`)."""

from celery import current_app


def enqueue(task_name: str, *args) -> None:
    """Send a task to the workers, as `task.delay(*args)` would."""
    current_app.send_task(task_name, args=args)
