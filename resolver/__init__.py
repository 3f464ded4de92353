"""A secondary node of the industrial internet identifier resolution system."""

__version__ = "0.1.0"
