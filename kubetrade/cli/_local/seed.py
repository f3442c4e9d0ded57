"""The files of ``kubetrade local --strategies DIR`` into local desired state."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kubetrade.cli._local.apply_merge import SpecMerge, merge_spec
from kubetrade.cli._risk_env import risk_policy_from_env
from kubetrade.logs import get_logger
from kubetrade.resources import RiskPolicy, Strategy, load_manifests
from kubetrade.runner.assembly import manifest_of
from kubetrade.state.desired import (
    LocalDesiredState,
    NotFoundError,
    risk_policy_manifest,
    risk_spec_fields_set,
)

log = get_logger("kubetrade.local")


def load_strategy_dir(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(Strategy manifests, RiskPolicy manifests) of a directory of YAML files.

    Raises ValueError when ``path`` is not a directory or holds no Strategy.
    """
    if not path.is_dir():
        raise ValueError(f"--strategies: {path} is not a directory")
    found = [(file, r) for file in sorted(path.iterdir())
             if file.is_file() and file.suffix in (".yaml", ".yml")
             for r in load_manifests(file)]
    _refuse_duplicate_names(found)
    resources = [r for _, r in found]
    strategies = [manifest_of(r) for r in resources if isinstance(r, Strategy)]
    policies = [as_written(r) for r in resources if isinstance(r, RiskPolicy)]
    if not strategies:
        raise ValueError(f"--strategies: no Strategy manifest in {path}")
    return strategies, policies


def _refuse_duplicate_names(found: list[tuple[Path, Any]]) -> None:
    """ValueError naming both files when two Strategies share a name (one name is one
    runner and one set of books in Redis: two runners of it would both trade and book
    each other's fills, e.g. a copied example left unrenamed), or two RiskPolicies share
    a name with different specs (which one holds would depend on the file order)."""
    seen: dict[tuple[str, str], tuple[Path, Any]] = {}
    for file, resource in found:
        if not isinstance(resource, Strategy | RiskPolicy):
            continue
        kind = type(resource).__name__
        key = (kind, resource.metadata.name)
        first = seen.setdefault(key, (file, resource))
        if first[1] is resource or (kind == "RiskPolicy" and first[1].spec == resource.spec):
            continue
        why = ("one name is one runner and one set of books" if kind == "Strategy"
               else "their specs differ")
        where = (f"twice in {file.name}" if first[0] == file
                 else f"in both {first[0].name} and {file.name}")
        raise ValueError(f"--strategies: {kind} {key[1]!r} is {where}: each {kind} needs "
                         f"its own metadata.name ({why})")


def as_written(policy: RiskPolicy) -> dict[str, Any]:
    """A RiskPolicy as its file wrote it: the fields it sets, no defaults filled in (the
    restart merge tells a field the file sets from one it leaves to the default)."""
    data: dict[str, Any] = policy.model_dump(mode="json", by_alias=True, exclude_none=True,
                                             exclude_unset=True)
    return data


def load_risk_policy_file(path: Path | None) -> list[dict[str, Any]]:
    """The RiskPolicy manifests of ``--risk-policy`` (none when ``path`` is None)."""
    if path is None:
        return []
    return [as_written(r) for r in load_manifests(path) if isinstance(r, RiskPolicy)]


def with_risk_policy_file(policies: list[dict[str, Any]], strategies_dir: Path,
                          path: Path | None) -> list[dict[str, Any]]:
    """``policies`` (of ``--strategies``) and those of the RiskPolicy file ``path``.
    ValueError naming both when one name has two different specs (which one held
    depended on the order they were read in, and changed the limits at each start)."""
    extra = load_risk_policy_file(path)
    given = {p["metadata"]["name"]: p for p in policies}
    for policy in extra:
        name = policy["metadata"]["name"]
        if name in given and given[name].get("spec") != policy.get("spec"):
            raise ValueError(
                f"--risk-policy {path}: RiskPolicy {name!r} is also in --strategies "
                f"{strategies_dir} with a different spec; keep one of them")
    return policies + [p for p in extra if p["metadata"]["name"] not in given]


async def seed_desired(
    desired: LocalDesiredState,
    strategies: list[dict[str, Any]],
    policies: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Put the files' manifests into local desired state; paper mode is forced.

    With a persistent REDIS_URL, desired state outlives the process and holds what
    people changed while it ran (a dashboard/Telegram toggle of ``enabled``, risk
    settings). Each field is merged as ``kubectl apply`` does
    (:mod:`kubetrade.cli._local.apply_merge`): a value edited in the file since the last
    start applies, a value the file did not change keeps what people set, and a stored
    strategy otherwise takes the file's spec. What is missing is seeded from the files.
    Each choice is logged; a file value not in force is a warning. Returns the stored
    Strategy manifests.
    """
    out = [await _seed_strategy(desired, manifest) for manifest in strategies]
    await _remove_strategies_not_in(desired, {m["metadata"]["name"] for m in out})
    for policy in policies:
        await _seed_policy(desired, policy)
    for policy in _env_policies(strategies, policies):
        await _seed_policy(desired, policy, source="environment")
    return out


def _env_policies(
    strategies: list[dict[str, Any]], policies: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """RiskPolicies from the runbook's STOP_LOSS_PCT etc. (``.env``) for the names the
    Strategies refer to that no file defines (as preflight and runner read them)."""
    given = {(p.get("metadata") or {}).get("name") for p in policies}
    wanted = {(s.get("spec") or {}).get("riskPolicyRef") or "default" for s in strategies}
    # none set: an empty one, so limits the environment set at the last start and no
    # longer does go back to their defaults
    return [risk_policy_from_env(name, os.environ) or risk_policy_manifest(name, {})
            for name in sorted(wanted - given)]


async def _remove_strategies_not_in(desired: LocalDesiredState, names: set[str]) -> None:
    """Strategies stored by an earlier start whose file is gone: no runner trades them
    now, so they are removed from desired state (as ``kubectl apply --prune`` and Helm
    remove what left the manifests) instead of showing ``Running`` with nothing
    behind it. Their books stay in Redis; the log names each."""
    for stored in await desired.list_strategies():
        name = (stored.get("metadata") or {}).get("name")
        if name and name not in names:
            log.warning("local.strategy_removed", strategy=name,
                        note="no file of --strategies defines it any more; its trades and "
                        "books stay readable, no runner trades it")
            await desired.remove_strategy(name, actor="local")


async def _seed_strategy(desired: LocalDesiredState, manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest.setdefault("spec", {})
    name = manifest["metadata"]["name"]
    if spec.get("mode") == "live":
        log.warning(
            "local.paper_only",
            strategy=name,
            note="kubetrade local trades paper money only; mode forced to paper",
        )
        spec["mode"] = "paper"
    try:
        stored: dict[str, Any] | None = await desired.get_strategy(name)
    except NotFoundError:
        stored = None
    in_file = {"enabled": bool(spec.get("enabled", True))}
    last = await desired.last_applied("Strategy", name)
    if stored is None:
        log.info("local.seed_strategy", strategy=name, source="file")
    else:
        kept = {"enabled": bool((stored.get("spec") or {}).get("enabled", True))}
        # unknown last start: a strategy someone disabled is not enabled by inference
        merge = merge_spec(in_file, last if last is not None else in_file, kept)
        spec["enabled"] = merge.spec["enabled"]
        _log_merge("Strategy", name, merge, "file")
        log.info(
            "local.seed_strategy",
            strategy=name,
            source=("file spec, enabled from the file (changed since the last start)"
                    if merge.from_file else "file spec, enabled from stored desired state"),
            enabled=spec["enabled"],
            file_enabled=in_file["enabled"],
        )
    put = await desired.put_strategy(manifest, actor="local")
    await desired.record_applied("Strategy", name, in_file)
    return put


async def _seed_policy(
    desired: LocalDesiredState, policy: dict[str, Any], source: str = "file"
) -> None:
    name = (policy.get("metadata") or {}).get("name") or "default"
    in_file = risk_spec_fields_set(policy.get("spec") or {})
    if not await desired.has_risk_policy(name):
        log.info("local.seed_riskpolicy", policy=name, source=source)
        await desired.put_risk_policy(policy, actor="local")
    else:
        stored = (await desired.get_risk_policy(name))["spec"]
        merge = merge_spec(in_file, await desired.last_applied("RiskPolicy", name), stored)
        _log_merge("RiskPolicy", name, merge, source)
        log.info("local.seed_riskpolicy", policy=name, source=f"stored desired state and {source}",
                 from_file=sorted(merge.from_file), kept_as_stored=sorted(merge.kept))
        if merge.spec != stored:
            await desired.put_risk_policy(risk_policy_manifest(name, merge.spec), actor="local")
    await desired.record_applied("RiskPolicy", name, in_file)


def _log_merge(kind: str, name: str, merge: SpecMerge, source: str) -> None:
    """One line per field whose value changed at this start or is not the ``source``'s
    (the file, or the environment's STOP_LOSS_PCT ...)."""
    for field_name, (before, value) in sorted(merge.from_file.items()):
        log.info("local.seed_field_from_file", kind=kind, name=name, field=field_name,
                 stored=before, file=value, source=source,
                 note=f"edited in the {source} since the last start")
    for field_name, (kept, value) in sorted(merge.kept.items()):
        log.warning("local.seed_field_kept", kind=kind, name=name, field=field_name,
                    in_force=kept, file=value, source=source,
                    note=f"changed on the dashboard or in Telegram while it ran; the "
                    f"{source}'s value applies once it is edited there")
    for field_name in merge.dropped:
        log.info("local.seed_field_dropped", kind=kind, name=name, field=field_name,
                 source=source,
                 note=f"removed from the {source} since the last start: its default applies")
