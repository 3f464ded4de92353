"""The node's services: the rules of registration, enterprises, templates, accounts and statistics, on top of the store."""
