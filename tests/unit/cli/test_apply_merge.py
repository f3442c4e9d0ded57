"""kubetrade local's restart merge (kubectl apply's three-way rule, field by field)."""

from __future__ import annotations

from kubetrade.cli._local.apply_merge import merge_spec


def test_a_field_edited_in_the_file_replaces_what_was_set_on_the_dashboard() -> None:
    merge = merge_spec({"stopLossPct": "3.0"}, {"stopLossPct": "5.0"},
                       {"stopLossPct": "2.5", "maxDrawdownPct": "15.0"})
    assert merge.spec == {"stopLossPct": "3.0", "maxDrawdownPct": "15.0"}
    assert merge.from_file == {"stopLossPct": ("2.5", "3.0")}
    assert not merge.kept and not merge.dropped


def test_a_field_the_file_did_not_change_keeps_the_dashboard_value() -> None:
    merge = merge_spec({"stopLossPct": "5.0"}, {"stopLossPct": "5.0"}, {"stopLossPct": "2.5"})
    assert merge.spec == {"stopLossPct": "2.5"}
    assert merge.kept == {"stopLossPct": ("2.5", "5.0")} and not merge.from_file


def test_a_field_removed_from_the_file_is_dropped_and_one_never_in_it_is_kept() -> None:
    merge = merge_spec({}, {"stopLossPct": "5.0"},
                       {"stopLossPct": "5.0", "dailyLossLimitPct": "2.0"})
    assert merge.spec == {"dailyLossLimitPct": "2.0"} and merge.dropped == ["stopLossPct"]


def test_a_field_new_in_the_file_applies() -> None:
    merge = merge_spec({"stopLossPct": "5.0", "maxDrawdownPct": "8.0"},
                       {"stopLossPct": "5.0"},
                       {"stopLossPct": "5.0", "maxDrawdownPct": "15.0"})
    assert merge.spec["maxDrawdownPct"] == "8.0"
    assert merge.from_file == {"maxDrawdownPct": ("15.0", "8.0")}


def test_without_a_record_of_the_last_start_the_file_wins_as_kubectl_apply_does() -> None:
    merge = merge_spec({"stopLossPct": "5.0"}, None, {"stopLossPct": "2.5"})
    assert merge.spec == {"stopLossPct": "5.0"} and not merge.dropped
