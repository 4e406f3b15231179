"""Accounts: clinics, users, API keys, web sessions, and who is calling (the principal)."""
