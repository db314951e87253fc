"""``python -m sysexport``: the command line (:func:`sysexport.cli.main`), left quickly.

A build of 100,000 files ends holding millions of objects, which the interpreter would
free one by one on its way out (0.2-0.4 s of CPU, measured with the benchmark's tree).  By
then the command's output is installed and closed, so once the exit handlers have run (the
``weakref.finalize`` clean-ups among them) and the standard streams are flushed, the process
leaves with ``os._exit``.  A thread still running (none of ours is) gets the ordinary exit,
which waits for it."""
import atexit
import os
import sys
import threading

try:
    from .cli import main
except KeyboardInterrupt:                   # Ctrl-C while Python imports: one line, no traceback
    print("sysexport: error: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

status = main()
if threading.active_count() > 1:
    raise SystemExit(status)
atexit._run_exitfuncs()
try:
    sys.stdout.flush()
    sys.stderr.flush()
except (OSError, ValueError):
    raise SystemExit(status) from None
os._exit(status)
