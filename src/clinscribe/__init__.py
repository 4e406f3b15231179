"""clinscribe: a self-hostable clinical scribe (consultation audio -> transcript -> note)."""

__version__ = "0.1.0"
