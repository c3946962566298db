"""Accounts, passwords and the management of client credentials."""
