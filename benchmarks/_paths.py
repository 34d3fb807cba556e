"""Imported first by every benchmark script: the repository on the path, this folder off it.

`python benchmarks/X.py` puts this folder first on sys.path, where `signal.py` (the signal
benchmark) would stand in for the standard library's `signal` module for every import
after it (subprocess, psutil, Locust). So the folder leaves the path before anything
imports `signal`, and the repository root takes its place.
"""

import os
import sys

_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))
