"""The files under {deploy_path}/run/ that master and ctl share: `key=value` lines,
replaced atomically.

ctl.py runs on every host on every deploy, so these files are read without the json
module: importing it (it pulls in `re`) more than doubled ctl's start-up.
"""

import os


def write_fields(path, fields):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for key, value in fields.items():
            f.write(f"{key}={' '.join(str(value).split())}\n")  # a value never spans lines
    os.replace(tmp, path)


def read_fields(path):
    """The file's fields as strings; {} when it is missing."""
    try:
        with open(path, encoding="utf-8") as f:
            return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    except OSError:
        return {}
