"""The WSGI entry point gunicorn loads in each worker: `shop.wsgi:application`.

The release is this file's real directory, resolved when the worker loads it: gunicorn
imports the shop through `{deploy_path}/current`, and a worker must go on serving the
release it loaded after `current` moves on (its pages, REVISION and manifest), until it
has finished its requests and exits. The StatsD address comes from SHOP_STATSD
(`gunicorn --env SHOP_STATSD=HOST:PORT`); empty or unset: no StatsD.
"""

import os

from shop.app import Shop
from shop.statsd import StatsD

RELEASE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
DEPLOY_PATH = os.path.dirname(os.path.dirname(RELEASE))  # {deploy_path}/releases/<id>

application = Shop(RELEASE, DEPLOY_PATH, StatsD(os.environ.get("SHOP_STATSD", "")))
