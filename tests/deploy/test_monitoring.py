"""The alert rules (deploy/prometheus/alerts.yaml) and the Grafana dashboard
(deploy/grafana/flowlog.json) name only metrics flowlog exports, documented in docs/api.md;
every alert says what happened and how long it must last; promtool accepts the rules and fires
them on the series they are for.

The exported names come from a live registry (app/api/metrics.py's ``Metrics``), so a metric
renamed there fails this test instead of leaving a dashboard blank."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flowlog.api.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "flowlog.json"
METRICS_DOC = ROOT / "docs" / "api.md"

NEW_METRICS: set[str] = set()
"""Metrics an alert or a panel may name before app/api/metrics.py exports them (work on
another branch); empty once they land."""

# PromQL's words that are not metrics: aggregations, functions, operators and modifiers.
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp",
    "floor", "histogram_quantile", "holt_winters", "hour", "idelta", "increase", "irate",
    "label_join", "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear",
    "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "time",
    "timestamp", "vector", "year", "avg_over_time", "min_over_time", "max_over_time",
    "sum_over_time", "count_over_time", "quantile_over_time", "stddev_over_time",
    "stdvar_over_time", "last_over_time", "present_over_time",
}  # fmt: skip
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}

TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<variable>\$\{?\w+\}?)
  | (?P<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|[smhdwy])*(?:\d+(?:ms|[smhdwy]))*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=,(){}\[\]:@])
    """,
    re.VERBOSE,
)


def tokens(expr: str) -> Iterator[tuple[str, str]]:
    position = 0
    while position < len(expr):
        match = TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot read {expr[position:]!r} in {expr!r}")
        position = match.end()
        assert match.lastgroup is not None
        if match.lastgroup != "space":
            yield match.lastgroup, match.group()


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: every identifier that is not a label (inside a
    selector's braces, or a ``by (...)``-like list), a function, an aggregation or a keyword.
    A name no list here knows counts as a metric, so a misspelt function fails too."""
    names: set[str] = set()
    listed = list(tokens(expr))
    braces = 0
    in_label_list = False
    for index, (kind, text) in enumerate(listed):
        following = listed[index + 1][1] if index + 1 < len(listed) else ""
        if kind == "op":
            braces += {"{": 1, "}": -1}.get(text, 0)
            if text == ")":
                in_label_list = False
            continue
        if kind != "ident" or braces:
            continue
        if text in LABEL_LISTS:
            in_label_list = following == "("
        elif not in_label_list and is_metric(text, following, expr):
            names.add(text)
    return names


def is_metric(text: str, following: str, expr: str) -> bool:
    """Whether an identifier outside braces and label lists selects a metric."""
    if text.lower() in KEYWORDS:
        return False
    if following == "(":
        if text in FUNCTIONS or text in AGGREGATIONS:
            return False
        raise AssertionError(f"{text!r} in {expr!r} is no PromQL function")
    return not (text in AGGREGATIONS and following in LABEL_LISTS)


def exported() -> set[str]:
    """Every sample name a ``Metrics`` registry exposes: the samples it collects now, and the
    names its labelled families will have once a label set is observed (a counter's
    ``_total``, a histogram's ``_bucket``, ``_sum`` and ``_count``)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
    }
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names |= {sample.name for sample in family.samples}
        names |= {family.name + suffix for suffix in suffixes[family.type]}
    return names


def documented() -> set[str]:
    """The metric names in docs/api.md's table (its first column)."""
    return set(re.findall(r"^\| `(flowlog_[a-z_]+)` \|", METRICS_DOC.read_text(), re.MULTILINE))


def base_name(name: str) -> str:
    return re.sub(r"_(bucket|sum|count|created)$", "", name)


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[str]:
        for panel in panels:
            yield from (target["expr"] for target in panel.get("targets", []))
            yield from walk(panel.get("panels", []))

    return list(walk(json.loads(DASHBOARD.read_text())["panels"]))


def test_the_tokenizer_finds_metrics_and_nothing_else() -> None:
    expr = (
        'sum by (status, le) (rate(flowlog_a_count{status=~"5..", route!="x"}[5m] offset 1h))'
        " / on (route) group_left (status) max without (le) (flowlog_b) > bool 0.5"
        " and absent(flowlog_c) or histogram_quantile(0.9, flowlog_d_bucket[$__rate_interval])"
    )
    assert metric_names(expr) == {"flowlog_a_count", "flowlog_b", "flowlog_c", "flowlog_d_bucket"}
    assert metric_names('count(up{job="flowlog"})') == {"up"}
    assert metric_names("sum(x) by (instance)") == {"x"}
    with pytest.raises(AssertionError, match="no PromQL function"):
        metric_names("rates(flowlog_flows[5m])")
    with pytest.raises(ValueError, match="cannot read"):
        metric_names("flowlog_flows ; drop")


def test_the_exported_names_come_from_the_registry() -> None:
    names = exported()
    assert {"flowlog_flows", "flowlog_reactor_lag_seconds", "flowlog_reads_total",
            "flowlog_http_request_duration_seconds_count",
            "flowlog_node_duration_seconds_bucket"} <= names  # fmt: skip
    assert "flowlog_reads" not in names  # a counter is exported with its _total
    assert not NEW_METRICS & names, "the new gauge is exported now: drop it from NEW_METRICS"


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_expression_names_only_exported_and_documented_metrics(source: str) -> None:
    expressions = (
        [rule["expr"] for rule in rules()] if source == "alerts" else dashboard_expressions()
    )
    assert expressions
    known = exported() | NEW_METRICS
    docs = documented() | NEW_METRICS
    for expr in expressions:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= known, (
            f"{sorted(names - known)} in {expr!r}: flowlog exports no such metric"
        )
        undocumented = {base_name(name) for name in names} - docs
        assert not undocumented, f"{sorted(undocumented)} are not in docs/api.md's metrics table"


def test_every_alert_says_what_and_lasts() -> None:
    found = rules()
    assert found
    for rule in found:
        assert re.fullmatch(r"Flowlog[A-Za-z]+", rule["alert"]), rule
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{rule['alert']} has no for:"
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), rule
        assert len(annotations["description"]) > 80, rule
        assert rule["labels"]["severity"] in {"page", "ticket"}
    assert len({rule["alert"] for rule in found}) == len(found)


def test_the_dashboard_reads_prometheus_through_its_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for subject in ("status", "node", "reactor", "requests", "task", "replica", "archive"):
        assert subject in titles


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("FLOWLOG_REQUIRE_PROMTOOL"):
            pytest.fail("promtool is missing (Debian's prometheus package has it)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return found


SERIES = {
    'flowlog_reactor_lag_seconds{instance="a"}': "0 0 120x10",
    'flowlog_http_request_duration_seconds_count{route="/r",status="200"}': "0+10x30",
    'flowlog_http_request_duration_seconds_count{route="/r",status="503"}': "0+5x30",
    'flowlog_replica_up{replica="r1",instance="a"}': "1x30",
    'flowlog_archive_unfinished_seconds{instance="a"}': "0x30",
}
FIRING = [  # (when, alert, its summary as rendered then)
    ("12m", "FlowlogReactorLagging", "Due flows wait 2m 0s for a reactor"),
    ("20m", "FlowlogHttpErrors", "33.33% of flowlog's HTTP answers are 5xx"),
]
QUIET = [("4m", "FlowlogReactorLagging"), ("20m", "FlowlogReplicaDown"),
         ("20m", "FlowlogArchiveStuck"), ("20m", "FlowlogNotScraped")]  # fmt: skip


def rule_tests() -> dict[str, Any]:
    """promtool's unit tests of the rules: series in, the alerts expected out."""
    descriptions = {rule["alert"]: rule["annotations"]["description"] for rule in rules()}
    firing = [
        {"eval_time": when, "alertname": alert, "exp_alerts": [{
            "exp_labels": {"severity": "page"},
            "exp_annotations": {"summary": summary, "description": descriptions[alert]},
        }]}
        for when, alert, summary in FIRING
    ]  # fmt: skip
    quiet = [{"eval_time": when, "alertname": alert, "exp_alerts": []} for when, alert in QUIET]
    return {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": k, "values": v} for k, v in SERIES.items()],
            "alert_rule_test": firing + quiet,
        }],
    }  # fmt: skip


def test_promtool_checks_the_rules_and_fires_them(tmp_path: Path) -> None:
    tool = promtool()
    checked = subprocess.run(
        [tool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout
    tests = tmp_path / "tests.yaml"
    tests.write_text(yaml.safe_dump(rule_tests()))
    ran = subprocess.run(
        [tool, "test", "rules", str(tests)], capture_output=True, text=True, check=False
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
