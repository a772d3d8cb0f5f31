"""Task definitions, by name: the one place tasks plug into the episode runner (``TASKS``, ``get_task``)."""
from __future__ import annotations

from jepa_episodes.tasks.base import GoalScene, StartScene, Task
from jepa_episodes.tasks.grasp import GRASP
from jepa_episodes.tasks.pick_place import PICK_PLACE
from jepa_episodes.tasks.push import PUSH, PUSH_FROM_BEHIND
from jepa_episodes.tasks.reach import REACH

TASKS: dict[str, Task] = {task.name: task for task in (REACH, PUSH, PUSH_FROM_BEHIND, GRASP, PICK_PLACE)}

__all__ = ["GoalScene", "StartScene", "TASKS", "Task", "get_task"]


def get_task(name: str) -> Task:
    """The task named ``name`` (ValueError lists the known ones)."""
    if name not in TASKS:
        raise ValueError(f"no task {name!r}; choose from {list(TASKS)}")
    return TASKS[name]
