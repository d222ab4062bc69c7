"""creditbot: how much money is left on your LLM API accounts."""

__version__ = "0.1.0"
