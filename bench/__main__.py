from __future__ import annotations

import asyncio

from .agi_roundtrip import main

asyncio.run(main())
