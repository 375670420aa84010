"""The staff panel (aiohttp) and its JSON API."""
