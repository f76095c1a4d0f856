"""Parallel multi-instance results in the order of their inputs.

SpiffWorkflow appends each instance's output item to the output collection when the instance
completes. In memory instances complete in input order, but on the platform they run concurrently
(their service or script tasks are activities) and finish in any order: `results` came back as
[6, 4, 2] for inputs [1, 2, 3]. As in Camunda, the item of input i goes to position i here.

A workflow opts in (`ORDERED` attribute set true): new instances do, through a Temporal patch, so
histories recorded before this replay with the order they had.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask, ParallelMultiInstanceTask

ORDERED = "aimatrix_ordered_mi_outputs"
_ITEMS = "aimatrix_output_items"  # internal data of the multi-instance task: str(index) → item

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    original = MultiInstanceTask.merge_child

    def merge_child(self: Any, workflow: Any, child: Any) -> None:
        my_task = child.parent
        index = child.internal_data.get("key_or_index")
        if (
            getattr(my_task.workflow.top_workflow, ORDERED, False)
            and isinstance(self, ParallelMultiInstanceTask)
            and self.data_output is not None
            and self.output_item is not None
            and isinstance(index, int)
            and self.output_item.exists(child)
        ):
            data_output = self.data_output.get(my_task)
            data_input = self.data_input.get(my_task) if self.data_input is not None else None
            if not isinstance(data_output, Mapping) and data_input is not data_output:
                items = my_task.internal_data.setdefault(_ITEMS, {})
                items[str(index)] = self.output_item.get(child)
                data_output[:] = [items[key] for key in sorted(items, key=int)]
                my_task.internal_data["merged"].append(str(child.id))
                return
        original(self, workflow, child)

    MultiInstanceTask.merge_child = merge_child
