"""Which value of each spec field ``kubetrade local`` keeps at a restart: the file's or
the one stored (changed on the dashboard or in Telegram while it ran).

The rule is ``kubectl apply``'s three-way merge at the level of a spec's fields (the
file of the last start plays its ``last-applied-configuration``):

* a field the file sets and that changed in the file since the last start (or is new
  in it) takes the file's value: the person edited the file, the edit applies;
* a field the file sets, unchanged since the last start, keeps the stored value (a
  settings change made while it ran survives the restart);
* a field the last start's file set and this one no longer does is dropped from the
  stored spec (its default applies again, as ``kubectl apply`` deletes it);
* a field the file never set keeps the stored value.

With no record of the last start (a store written before records were kept, or a
policy first made on the dashboard) the file's fields win, as ``kubectl apply`` patches
an object without the annotation. Pure: values are compared as given (the caller
normalises both sides to one form).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SpecMerge:
    """The merged spec and why each differing field is what it is.

    ``from_file``: field -> (stored value, file value) for fields the file's edit
    replaced; ``kept``: field -> (stored value kept, file value) for fields the file
    sets differently but did not change since the last start; ``dropped``: fields
    removed from the file (and from the spec)."""

    spec: dict[str, Any]
    from_file: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    kept: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)


def merge_spec(
    file: dict[str, Any], last_applied: dict[str, Any] | None, stored: dict[str, Any]
) -> SpecMerge:
    """Three-way merge of one spec: ``file`` (the fields this start's file sets),
    ``last_applied`` (the fields the last start's file set; None when unknown) and
    ``stored`` (the spec in desired state now). See the module doc for the rule."""
    spec = dict(stored)
    merge = SpecMerge(spec)
    last = last_applied if last_applied is not None else {}
    for name, value in file.items():
        before = stored.get(name)
        changed_in_file = last_applied is None or name not in last or last[name] != value
        if changed_in_file or name not in stored:
            spec[name] = value
            if name in stored and before != value:
                merge.from_file[name] = (before, value)
        elif before != value:
            merge.kept[name] = (before, value)
    for name in last:
        if name not in file and name in spec:
            del spec[name]
            merge.dropped.append(name)
    return merge


__all__ = ["SpecMerge", "merge_spec"]
