"""bench/gap.py's repacking (issue #15's cost decomposition): small models' instances fill the
idle slots of a faster type's VMs, instance counts kept, never onto a slower type."""

from dataclasses import replace

import numpy as np

from bench.gap import repacked_gpus
from planner.config import load_config
from planner.sim.fleet import params_from_config


def test_floors_fill_the_idle_half_of_a_faster_vm() -> None:
    p = params_from_config(load_config("configs/default.yaml"))
    a100, h100 = p.vm_types.index("a100x8"), p.vm_types.index("h100x8")
    m = {name: i for i, name in enumerate(p.models)}
    inst = np.zeros((1, len(p.models), len(p.vm_types)))
    inst[0, m["llama2-70b"], h100] = 1  # half an H100 VM
    inst[0, m["bloom-176b"], h100] = 1  # a whole one
    inst[0, m["llama3.1-8b"], a100] = 1
    inst[0, m["llama3.2-3b"], a100] = 1
    held = 8 * (2 + 1)  # two H100 VMs (1.5 used) and one A100 VM
    assert repacked_gpus(p, inst) == 16 < held  # 8B and 3B move into the idle H100 half


def test_never_moves_onto_a_slower_type() -> None:
    p = params_from_config(load_config("configs/default.yaml"))
    a100, h100 = p.vm_types.index("a100x8"), p.vm_types.index("h100x8")
    m = {name: i for i, name in enumerate(p.models)}
    inst = np.zeros((1, len(p.models), len(p.vm_types)))
    inst[0, m["llama3.1-8b"], h100] = 1  # a quarter of an H100 VM
    inst[0, m["llama2-70b"], a100] = 1  # half an A100 VM
    assert repacked_gpus(p, inst) == 8  # 70B moves up into the H100 VM (0.75 of it)
    theta = p.theta.copy()
    theta[m["llama2-70b"], h100] = theta[m["llama2-70b"], a100] * 0.9  # H100 slower for 70B
    slow = replace(p, theta=theta)
    assert repacked_gpus(slow, inst) == 16  # neither may move onto a slower type
