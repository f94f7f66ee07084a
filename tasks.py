"""The deploy console's command line: `invoke --list` shows every task, `invoke TASK --help` its options.

Tasks are thin: each lives in a module of `console/tasks/` and calls the engine.
"""

from invoke import Collection

from console.tasks import demo, deploy, lab, metrics

ns = Collection(*deploy.TASKS)
ns.add_collection(lab.ns)
ns.add_collection(demo.ns)
ns.add_collection(metrics.ns)
