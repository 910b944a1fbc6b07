"""Suites: loading and validating YAML, and expanding a suite into a plan of jobs."""

from kdbench.jobs import Component, Job, Upstream

from .errors import SpecError
from .load import Suite, load_suite
from .plan import Plan, PlanEntry, expand

__all__ = ["Component", "Job", "Plan", "PlanEntry", "SpecError", "Suite", "Upstream", "expand", "load_suite"]
