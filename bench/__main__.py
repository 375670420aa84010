"""Benchmarks: the FastAGI round trip of the IVR menu, (a) ours vs (b) a minimal handler vs
(c) a process per call (issue 3)."""

from __future__ import annotations

import argparse
import asyncio

from .agi_roundtrip import main

parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
parser.add_argument("--levels", default="1,20,50", help="concurrent calls, comma-separated")
parser.add_argument("--targets", default="abc", help="which of (a), (b), (c) to run")
parser.add_argument("--modes", default="paced,saturated")
parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per level")
args = parser.parse_args()
asyncio.run(main(levels=[int(n) for n in args.levels.split(",")], targets=args.targets,
                 modes=args.modes.split(","), rounds=args.rounds))
