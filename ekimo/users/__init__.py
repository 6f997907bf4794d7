"""Accounts and authentication: registration, login, JWT."""
