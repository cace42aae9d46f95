"""``python -m rag``: run one command, then end the process without tearing the interpreter down.

Unloading torch, transformers, scikit-learn and the rest at exit costs ~1.5 s on every command
and protects nothing: by the time ``main`` returns, every write is committed (each Chroma and
record-manager write is its own transaction, which is also why an indexer killed mid-run is safe).
So exit handlers run, output is flushed, and the process ends at once.
"""

import atexit
import os
import sys

from rag.cli import main

code = main()
atexit._run_exitfuncs()  # logging.shutdown and any library's handlers, as a normal exit would
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
