"""``trigeo demo``: the study reproduced on the built-in synthetic world.

:mod:`~trigeo.demo.pipeline` runs the stages (:mod:`~trigeo.demo.stages`) as
the CLI commands a user would type; the report modules turn the evaluation
into the study's findings and tables.
"""

from trigeo.demo.pipeline import (
    MESH_RULES,
    ROLES,
    DemoStage,
    demo,
    demo_stages,
    mesh_args,
    run_demo,
)

__all__ = ["MESH_RULES", "ROLES", "DemoStage", "demo", "demo_stages", "mesh_args", "run_demo"]
