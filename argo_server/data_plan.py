"""Where each step fetches its inputs and stores its outputs (DESIGN.md section 5). Pure functions.

The rule, for step ``i`` of a job whose data area is ``data_url`` (``<data root>/<job id>/``):

* an input file is fetched from ``<data_url><name>`` when an earlier step lists it among its outputs
  (the earlier step stored it there); otherwise from ``<input_url>/<name>`` when the job has an
  ``input_url``; otherwise from ``<data_url><name>`` (the file is expected to be in the data area
  already, e.g. put there by the user);
* every output file goes to ``<data_url><name>``; the last step's outputs also go to
  ``<output_url>/<name>`` when the job has an ``output_url``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from argobalsam.argo.v1 import job_pb2
from argobalsam.balsam.v1 import assignment_pb2


def job_data_url(data_root: str, job_id: str) -> str:
    """The job's data area, ending in ``/``."""
    return f"{data_root.rstrip('/')}/{job_id}/"


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def step_inputs(steps: Sequence[job_pb2.Step], index: int, data_url: str,
                input_url: str) -> list[assignment_pb2.InputFile]:
    """Where step ``index`` fetches each of its input files."""
    assign = assignment_pb2.Assign()
    add_step_inputs(assign.inputs, steps, index, data_url, input_url)
    return list(assign.inputs)


def step_outputs(steps: Sequence[job_pb2.Step], index: int, data_url: str,
                 output_url: str) -> list[assignment_pb2.OutputFile]:
    """Where step ``index`` stores each of its output files."""
    assign = assignment_pb2.Assign()
    add_step_outputs(assign.outputs, steps, index, data_url, output_url)
    return list(assign.outputs)


def add_step_inputs(inputs: Any, steps: Sequence[job_pb2.Step], index: int, data_url: str, input_url: str) -> None:
    """:func:`step_inputs`, added to ``inputs`` (an ``Assign.inputs``) in place."""
    produced = {name for step in steps[:index] for name in step.output_files}
    for name in steps[index].input_files:
        if name in produced or not input_url:
            source = data_url + name
        else:
            source = _join(input_url, name)
        inputs.add(name=name, source_url=source)


def add_step_outputs(outputs: Any, steps: Sequence[job_pb2.Step], index: int, data_url: str,
                     output_url: str) -> None:
    """:func:`step_outputs`, added to ``outputs`` (an ``Assign.outputs``) in place."""
    last = index == len(steps) - 1
    for name in steps[index].output_files:
        destinations = [data_url + name]
        if last and output_url:
            destinations.append(_join(output_url, name))
        outputs.add(name=name, destination_urls=destinations)
