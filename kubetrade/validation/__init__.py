"""The runbook's validation: paper-trade a strategy, then decide GO or NO-GO.

Two ways to feed it, one code path to judge it: ``--replay FILE`` pushes recorded
candles through the engine and paper broker at full speed (ENGINE's ``run_replay``),
and ``--duration`` trades forward on the exchange's public candles as they close,
through the very same engine and broker. Either way the result is one report: the
decision, each criterion with its shortfall, the metrics, every trade, the equity
curve, and exactly what was run (strategy, parameters, data range, code version), so
a GO can be audited and a NO-GO explained.

The report goes to a JSON file, to stdout as a summary, to Redis (keys.validation_latest
plus an alert the notifier sends to Telegram) and, in a cluster, to a ConfigMap named in
the ValidationRun's status together with the decision and the progress.

Modules, by job:

- :mod:`.plan` — the plan of a run and the loading of its parts (durations, risk
  policy files, candle files), the engine and paper broker a run trades with.
- :mod:`.replay` — the replay driver; :mod:`.forward` — the forward run.
- :mod:`.run` — the GO/NO-GO run: a plan traded and judged into a report.
- :mod:`.report` — the report JSON and its files; :mod:`.summary` — its text.
- :mod:`.progress` — percentage and ETA.
- :mod:`.cluster` — Strategy, RiskPolicy and finished ValidationRuns from the cluster;
  :mod:`.cluster_report` — the report ConfigMap and the ValidationRun's status.
- :mod:`.publish` — the verdict into Redis (latest, alert, audit).
- :mod:`.preflight` — gathering pre-flight's inputs (exchange, environment, reports).

The criteria and the pre-flight checks themselves are pure and live in
:mod:`kubetrade.domain.gonogo` and :mod:`kubetrade.domain.preflight`.
"""
