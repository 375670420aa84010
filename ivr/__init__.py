"""Hotline core: settings, database, domain services, calendar, TTS, AMI, CLI."""
