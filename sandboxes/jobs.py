"""Celery tasks enqueued by name, so that code which starts work never imports a tasks module (tasks call
back into that code: importing them would make a cycle). An unknown name fails here, at once."""

from celery import current_app


def enqueue(task_name: str, *args) -> None:
    """Send a task to the workers, as `task.delay(*args)` would."""
    if task_name not in current_app.tasks:  # the first look finalizes the app, which imports every tasks module
        raise LookupError(f"No Celery task named {task_name!r}.")
    current_app.send_task(task_name, args=args)
