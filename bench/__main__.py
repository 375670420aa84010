"""Benchmarks (never part of the tests).

``python -m bench [agi options]``: the FastAGI round trip of the IVR menu, (a) ours vs
(b) a minimal handler vs (c) a process per call (issue 3).
``python -m bench ami [--speeds 1,10,100,0] [--backends sqlite,postgres]``: a recorded AMI
stream replayed into the listener (issue 4); speed 0 is flat out.
``python -m bench panel [--calls 1000000] [--users 20] [--backends sqlite,postgres]``: the
panel's p50/p95 over five years of generated data (issue 5).
``python -m bench calls [--calls 100] [--rate 50] [--transport local|sip|both]
[--backend sqlite|postgres|both] [--keys 1]``: IVR capacity, N simultaneous callers through
the real Asterisk (issue 26).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

if sys.argv[1:2] == ["ami"]:
    from .ami_replay import main as ami_main

    parser = argparse.ArgumentParser(prog="python -m bench ami", description=__doc__)
    parser.add_argument("--speeds", default="1,10,100,0")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=3, help="flat-out runs (the median)")
    args = parser.parse_args(sys.argv[2:])
    asyncio.run(ami_main([float(x) for x in args.speeds.split(",")],
                         args.backends.split(","), rounds=args.rounds))
    raise SystemExit(0)

if sys.argv[1:2] == ["calls"]:
    from .calls import main as calls_main

    parser = argparse.ArgumentParser(prog="python -m bench calls", description=__doc__)
    parser.add_argument("--calls", type=int, default=100, help="callers, all up at once")
    parser.add_argument("--rate", type=float, default=50, help="calls placed a second")
    parser.add_argument("--transport", choices=["local", "sip", "both"], default="both")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--keys", default="1", help="what each caller presses during the "
                        "greeting (default 1: the working hours, self-service)")
    args = parser.parse_args(sys.argv[2:])
    asyncio.run(calls_main(
        args.calls, args.rate,
        ["local", "sip"] if args.transport == "both" else [args.transport],
        ["sqlite", "postgres"] if args.backend == "both" else [args.backend], args.keys))
    raise SystemExit(0)

if sys.argv[1:2] == ["panel"]:
    from .panel import main as panel_main

    parser = argparse.ArgumentParser(prog="python -m bench panel", description=__doc__)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--think", default="0,2", help="seconds a user reads a page, "
                        "comma-separated runs")
    parser.add_argument("--workers", type=int, default=2,
                        help="panel processes sharing the port (one per core)")
    args = parser.parse_args(sys.argv[2:])
    asyncio.run(panel_main(args.backends.split(","), args.calls, args.users, args.rounds,
                           [float(x) for x in args.think.split(",")], args.workers))
    raise SystemExit(0)

from .agi_roundtrip import main

parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
parser.add_argument("--levels", default="1,20,50", help="concurrent calls, comma-separated")
parser.add_argument("--targets", default="abc", help="which of (a), (b), (c) to run")
parser.add_argument("--modes", default="paced,saturated")
parser.add_argument("--rounds", type=int, default=None,
                    help="alternating rounds per level (default: 21 saturated, 9 paced, "
                         "3 paced at one call)")
args = parser.parse_args()
asyncio.run(main(levels=[int(n) for n in args.levels.split(",")], targets=args.targets,
                 modes=args.modes.split(","), rounds=args.rounds))
