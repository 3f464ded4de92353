"""The domain: identifier codes, values, permissions. No I/O and no HTTP here."""
