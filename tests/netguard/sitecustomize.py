"""Python runs this at start-up when tests/netguard is on PYTHONPATH (tests/conftest.py puts
it there for every subprocess a test starts): install the socket guard, then run the
sitecustomize this one shadows, if there is one."""

import importlib.util
import os
import sys

import bertlab_netguard

bertlab_netguard.install()

_here = os.path.dirname(os.path.abspath(__file__))
for _entry in sys.path:
    if os.path.abspath(_entry or os.curdir) == _here:
        continue
    _path = os.path.join(_entry or os.curdir, "sitecustomize.py")
    if os.path.isfile(_path):
        _spec = importlib.util.spec_from_file_location("_shadowed_sitecustomize", _path)
        _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
        break
