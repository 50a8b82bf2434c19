"""Money: prices in integer micro-dollars, reservation before a call and settlement after."""
from .prices import Price, usd_to_micros

__all__ = ["Price", "usd_to_micros"]
