"""One process of tests/test_tab.py's several-writers test: waits for the start file, then adds its
verdicts to the labels folder (each a picture of its own, then one picture every process labels)."""

import sys
import time
from pathlib import Path

import numpy as np

from lib_humanrefine import teach
from lib_humanrefine.errors import CannotWrite

folder, start, worker, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
while not start.exists():
    time.sleep(0.001)
for n in range(count):
    picture = np.random.default_rng([worker, n]).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    teach.add(folder, picture, n % 2, "hand", kind=f"worker{worker}")
shared = np.full((16, 16, 3), 77, np.uint8)
try:
    taught = teach.add(folder, shared, worker % 2, "face")
    print("new" if taught.new else "same")
except CannotWrite as exc:
    print("refused:", exc)
