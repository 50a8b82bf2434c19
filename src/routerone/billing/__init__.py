"""Money: prices in integer micro-dollars, reservation before a call and settlement after."""
from .prices import Price, price_to_micros, usd_to_micros

__all__ = ["Price", "price_to_micros", "usd_to_micros"]
