"""Pydantic models of the custom resources; crds/*.yaml are generated from them.

Group ``kubetrade.io``, version ``v1alpha1``. The models accept the CR field names
(camelCase) and Python names alike, and carry the descriptions and bounds that the
generated CRDs give ``kubectl explain`` and the API server's validation.
"""

from kubetrade.resources.algorithms import algorithms
from kubetrade.resources.common import API_VERSION, GROUP, VERSION, Condition, ObjectMeta
from kubetrade.resources.emergency import (
    EMERGENCY_NAME,
    Emergency,
    EmergencySpec,
    EmergencyStatus,
)
from kubetrade.resources.loader import (
    KINDS,
    AnyResource,
    ManifestError,
    load_manifests,
    load_strategy_file,
    parse_manifest,
)
from kubetrade.resources.riskpolicy import RiskPolicy, RiskPolicySpec, RiskPolicyStatus
from kubetrade.resources.strategy import ExchangeSpec, Strategy, StrategySpec, StrategyStatus
from kubetrade.resources.validationrun import (
    GoNoGoCriteria,
    ValidationRun,
    ValidationRunSpec,
    ValidationRunStatus,
)

PLURALS: dict[str, str] = {
    "Strategy": "strategies",
    "RiskPolicy": "riskpolicies",
    "Emergency": "emergencies",
    "ValidationRun": "validationruns",
}

__all__ = [
    "API_VERSION",
    "EMERGENCY_NAME",
    "GROUP",
    "KINDS",
    "PLURALS",
    "VERSION",
    "AnyResource",
    "Condition",
    "Emergency",
    "EmergencySpec",
    "EmergencyStatus",
    "ExchangeSpec",
    "GoNoGoCriteria",
    "ManifestError",
    "ObjectMeta",
    "RiskPolicy",
    "RiskPolicySpec",
    "RiskPolicyStatus",
    "Strategy",
    "StrategySpec",
    "StrategyStatus",
    "ValidationRun",
    "ValidationRunSpec",
    "ValidationRunStatus",
    "algorithms",
    "load_manifests",
    "load_strategy_file",
    "parse_manifest",
]
