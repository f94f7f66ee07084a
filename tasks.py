"""The deploy console's command line: `invoke --list` shows every task, `invoke TASK --help` its options.

Tasks are thin: each lives in a module of `console/tasks/` and calls the engine.
"""

from invoke import Collection

from console.tasks import bench, bench_deploy, bench_fanout, demo, deploy, lab, metrics, screenshots

ns = Collection(*deploy.TASKS, screenshots.screenshots)
for module in (lab, demo, metrics, bench):
    ns.add_collection(module.ns)
bench.ns.add_task(bench_deploy.deploy)
bench.ns.add_task(bench_fanout.fanout)
