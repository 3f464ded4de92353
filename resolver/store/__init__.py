"""Postgres access: every SQL statement and every asyncpg call of the node lives here."""
