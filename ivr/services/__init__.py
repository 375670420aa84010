"""Domain services: each takes an ``AsyncSession`` explicitly and does one transaction step."""
