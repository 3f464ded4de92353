"""The native Handle protocol (RFC 3651/3652): resolution over UDP and TCP."""
