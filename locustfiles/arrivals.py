"""Open-loop arrivals at the rates in --steps (requests/s), Poisson or gamma (--arrivals gamma --burstiness 0.5)."""

from harness.load.users import ArrivalUser

__all__ = ["ArrivalUser"]
