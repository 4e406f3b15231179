"""Automatic deletion of consultation data after configurable periods (audited)."""
