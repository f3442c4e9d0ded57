"""ValidatingAdmissionPolicies for the one rule CRD validation cannot state: a live
Strategy needs its RiskPolicy to have a stop-loss and a daily loss limit.

The rule spans two objects, so CEL in the CRD cannot see it; a ValidatingAdmission-
Policy with the other kind as its parameter can (``paramRef.selector`` evaluates every
object of that kind in the namespace; the expression only bites on the referenced
one). Two policies close both doors: creating/updating a live Strategy that points at
a policy without limits, and removing the limits from a policy a live Strategy uses.
The operator still checks the same rule and reports it as a condition and an Event,
for clusters installed without these policies and for a policy created afterwards.

``python -m kubetrade.operator.admission`` prints the manifests (cluster-scoped);
the rendered copy is ``kubetrade/operator/admission.yaml``.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from kubetrade.resources import GROUP, VERSION

STRATEGY_POLICY = "kubetrade-live-strategy-risk-limits"
RISKPOLICY_POLICY = "kubetrade-riskpolicy-used-live"

# Absent fields take the CRD defaults (5 % and 3 %), so only an explicit 0 fails.
_LIMITS_OK = (
    "(!has({o}.spec.stopLossPct) || {o}.spec.stopLossPct > 0.0) && "
    "(!has({o}.spec.dailyLossLimitPct) || {o}.spec.dailyLossLimitPct > 0.0)"
)


def _rule(resource: str) -> dict[str, Any]:
    return {
        "apiGroups": [GROUP],
        "apiVersions": [VERSION],
        "operations": ["CREATE", "UPDATE"],
        "resources": [resource],
    }


def manifests(namespace_selector: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/part-of": "kubetrade"}
    strategy_policy = _policy(
        STRATEGY_POLICY,
        labels,
        param_kind="RiskPolicy",
        resource="strategies",
        match_conditions=[{"name": "live", "expression": "object.spec.mode == 'live'"}],
        expression="params.metadata.name != object.spec.riskPolicyRef || "
        + _LIMITS_OK.format(o="params"),
        message_expression="'spec.riskPolicyRef: live mode needs a stop-loss and "
        "a daily loss limit, but RiskPolicy ' + params.metadata.name + ' has "
        "spec.stopLossPct=' + string(params.spec.stopLossPct) + ' and "
        "spec.dailyLossLimitPct=' + string(params.spec.dailyLossLimitPct)",
    )
    riskpolicy_policy = _policy(
        RISKPOLICY_POLICY,
        labels,
        param_kind="Strategy",
        resource="riskpolicies",
        match_conditions=None,
        expression="params.spec.mode != 'live' || "
        "params.spec.riskPolicyRef != object.metadata.name || "
        + _LIMITS_OK.format(o="object"),
        message_expression="'spec.stopLossPct and spec.dailyLossLimitPct must be "
        "> 0: live Strategy ' + params.metadata.name + ' uses this RiskPolicy'",
    )
    return [
        strategy_policy,
        riskpolicy_policy,
        *(_binding(p, labels, namespace_selector) for p in (STRATEGY_POLICY, RISKPOLICY_POLICY)),
    ]


def _policy(
    name: str,
    labels: dict[str, str],
    *,
    param_kind: str,
    resource: str,
    match_conditions: list[dict[str, str]] | None,
    expression: str,
    message_expression: str,
) -> dict[str, Any]:
    """A ValidatingAdmissionPolicy (failurePolicy Fail) on CREATE/UPDATE of our
    ``resource``, with ``param_kind`` objects as parameters and one CEL validation
    (reason Invalid)."""
    spec: dict[str, Any] = {
        "failurePolicy": "Fail",
        "paramKind": {"apiVersion": f"{GROUP}/{VERSION}", "kind": param_kind},
        "matchConstraints": {"resourceRules": [_rule(resource)]},
    }
    if match_conditions is not None:
        spec["matchConditions"] = match_conditions
    spec["validations"] = [
        {"expression": expression, "messageExpression": message_expression, "reason": "Invalid"}
    ]
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }


def _binding(
    policy: str, labels: dict[str, str], namespace_selector: dict[str, Any] | None
) -> dict[str, Any]:
    """The binding that enforces ``policy`` (Deny), in the selected namespaces or all."""
    binding: dict[str, Any] = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy, "labels": labels},
        "spec": {
            "policyName": policy,
            "validationActions": ["Deny"],
            # every object of the parameter kind in the request's namespace
            "paramRef": {"selector": {}, "parameterNotFoundAction": "Allow"},
        },
    }
    if namespace_selector is not None:
        binding["spec"]["matchResources"] = {"namespaceSelector": namespace_selector}
    return binding


def render(namespace_selector: dict[str, Any] | None = None) -> str:
    header = "# Generated by `python -m kubetrade.operator.admission`; do not edit.\n"
    return header + yaml.safe_dump_all(manifests(namespace_selector), sort_keys=False)


if __name__ == "__main__":
    sys.stdout.write(render())
