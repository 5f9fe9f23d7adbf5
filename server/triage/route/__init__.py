"""Routing: which models answer a classified request (`_policy`, a pure function), and what an answer costs
against sending everything to the strongest model (`_cost`)."""

from triage.route._cost import Cost, Usage, cost_of, estimate_tokens
from triage.route._policy import RoutePlan, RouteReason, plan_route

__all__ = ["Cost", "RoutePlan", "RouteReason", "Usage", "cost_of", "estimate_tokens", "plan_route"]
