"""The Grafana dashboards and provisioning files: structure, PromQL and metric names.

Every PromQL expression (panel targets, annotations, the selectors inside `label_values()`
variable queries) is checked by the real promtool: written as a recording rule, with the
template variables substituted, and run through `promtool check rules`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import exposed_metrics

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
OVERVIEW = "cucm-directory-overview"
NODE = "cucm-directory-node"
DASHBOARD_FILES = {uid: GRAFANA / "dashboards" / f"{uid}.json" for uid in (OVERVIEW, NODE)}
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
# React panels only: Angular graph/singlestat/table-old are gone in Grafana 12.
CURRENT_PANEL_TYPES = frozenset(
    {
        "timeseries",
        "stat",
        "gauge",
        "bargauge",
        "table",
        "state-timeline",
        "status-history",
        "text",
        "row",
    }
)
PANELS_WITHOUT_QUERIES = frozenset({"row", "text"})

# Every metric the exporter serves: what its collector declares.
KNOWN_METRICS = exposed_metrics()

TLS_VERSION_TEXTS = {"1": "TLS 1.0", "1.1": "TLS 1.1", "1.2": "TLS 1.2", "1.3": "TLS 1.3"}
DIRECTORY_RESULTS = frozenset(
    {
        "ok",
        "dns_error",
        "refused",
        "timeout",
        "tls_version_rejected",
        "tls_error",
        "http_error",
        "bad_content",
        "next_hop_not_http",
        "empty_result",
    }
)
TLS_RESULTS = frozenset(
    {
        "accepted",
        "accepted_then_certificate_required",
        "accepted_then_handshake_failure",
        "accepted_then_bad_certificate",
        "accepted_then_decrypt_error",
        "accepted_then_reset",
        "accepted_then_timeout",
        "accepted_then_tls_error",
        "rejected_higher_version",
        "rejected_protocol_version",
        "rejected_unsupported_protocol",
        "rejected_handshake_failure",
        "reset",
        "timeout",
        "refused",
        "unreachable",
        "dns_error",
        "not_tls",
        "tls_error",
        "probe_error",
    }
)

# What Grafana would put in place of each template variable; any other `$name` fails.
SUBSTITUTIONS = {
    "cluster": "x",
    "job": "x",
    "node": "x",
    "datasource": "x",
    "__rate_interval": "5m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")
METRIC_NAME = re.compile(r"\bcucm_[a-zA-Z0-9_]+")
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$", re.DOTALL)
# `<code> * (<metric>{..., <label>="<value>"} == 1)`: one label value encoded as a number so
# that state timelines and stats can map it back to text (see the dashboards' queries).
ENCODED_TERM = re.compile(
    r'(?P<code>\d+(?:\.\d+)?) \* \((?P<metric>cucm_\w+)\{[^}]*\b(?P<label>\w+)="(?P<value>[^"]+)"\}'
    r" == 1\)"
)

Json = dict[str, Any]


def load(uid: str) -> Json:
    data = json.loads(DASHBOARD_FILES[uid].read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(params=sorted(DASHBOARD_FILES))
def dashboard(request: pytest.FixtureRequest) -> Json:
    uid = request.param
    assert isinstance(uid, str)
    return load(uid)


def all_panels(dashboard: Json) -> Iterator[Json]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def variables(dashboard: Json) -> dict[str, Json]:
    return {var["name"]: var for var in dashboard["templating"]["list"]}


def variable_query(var: Json) -> str:
    query = var["query"]
    text = query["query"] if isinstance(query, dict) else query
    assert isinstance(text, str)
    return text


def expressions(dashboard: Json) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every query in the dashboard."""
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"]
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            yield f"annotation {annotation['name']!r}", annotation["expr"]
        if "expr" in annotation.get("target", {}):
            yield f"annotation {annotation['name']!r} target", annotation["target"]["expr"]
    for name, var in variables(dashboard).items():
        if var["type"] == "query":
            match = LABEL_VALUES.match(variable_query(var))
            assert match, f"variable {name}: not a label_values() query"
            yield f"variable {name}", match["selector"]


def substitute(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group is not None)
        if name.isdigit():  # a label_replace() back-reference such as "$1", not a variable
            return match.group(0)
        assert name in SUBSTITUTIONS, f"unknown template variable ${name} in {expr!r}"
        return SUBSTITUTIONS[name]

    return VARIABLE.sub(value, expr)


def texts_of(mappings: list[Json]) -> dict[str, str]:
    """Value-mapping key -> display text."""
    texts: dict[str, str] = {}
    for mapping in mappings:
        if mapping["type"] == "value":
            for key, result in mapping["options"].items():
                texts.setdefault(key, result["text"])
    return texts


def all_mapped_texts(panel: Json) -> set[str]:
    """Every text a panel's value mappings (defaults and overrides) can show."""
    field_config = panel.get("fieldConfig", {})
    mappings = list(field_config.get("defaults", {}).get("mappings", []))
    for override in field_config.get("overrides", []):
        for prop in override["properties"]:
            if prop["id"] == "mappings":
                mappings.extend(prop["value"])
    return set(texts_of(mappings).values())


def query_mappings(panel: Json, ref_id: str) -> dict[str, str]:
    """The value mappings Grafana applies to the values of query `ref_id` of a panel.

    An override matching the query (by query or by its table column "Value #<ref>") replaces
    the panel default, as in Grafana.
    """
    field_config = panel.get("fieldConfig", {})
    mappings = field_config.get("defaults", {}).get("mappings", [])
    for override in field_config.get("overrides", []):
        matcher = override["matcher"]
        if (matcher["id"], matcher["options"]) in {
            ("byFrameRefID", ref_id),
            ("byName", f"Value #{ref_id}"),
        }:
            for prop in override["properties"]:
                if prop["id"] == "mappings":
                    mappings = prop["value"]
    return texts_of(mappings)


def test_dashboard_files_are_well_formed() -> None:
    for uid, path in DASHBOARD_FILES.items():
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["uid"] == uid, path
        assert data["title"]
        assert data["id"] is None
        assert isinstance(data["schemaVersion"], int)
        assert data["schemaVersion"] >= 39
        for key in ("__inputs", "__requires", "__elements"):
            assert key not in data, f"{path.name}: {key} only works through the import dialog"
        assert "templating" in data
        assert "annotations" in data


def test_uids_are_distinct_and_fixed() -> None:
    uids = [load(uid)["uid"] for uid in DASHBOARD_FILES]
    assert sorted(uids) == sorted(DASHBOARD_FILES)


def test_datasource_variable(dashboard: Json) -> None:
    sources = [var for var in dashboard["templating"]["list"] if var["type"] == "datasource"]
    assert len(sources) == 1
    assert sources[0]["name"] == "datasource"
    assert sources[0]["query"] == "prometheus"


def test_cluster_and_node_variables() -> None:
    expected = {OVERVIEW: ("cluster",), NODE: ("cluster", "node")}
    for uid, names in expected.items():
        found = variables(load(uid))
        for name in names:
            var = found[name]
            assert var["type"] == "query", (uid, name)
            assert var["datasource"] == DATASOURCE_REF, (uid, name)
            match = LABEL_VALUES.match(variable_query(var))
            assert match, (uid, name)
            assert match["label"] == name
    node_selector = variable_query(variables(load(NODE))["node"])
    assert "$cluster" in node_selector, "the node list must follow the chosen cluster"


def test_every_panel_and_query_uses_the_datasource_variable(dashboard: Json) -> None:
    for panel in all_panels(dashboard):
        if panel["type"] in PANELS_WITHOUT_QUERIES:
            assert not panel.get("targets"), panel["title"]
            continue
        assert panel.get("datasource") == DATASOURCE_REF, panel["title"]
        assert panel.get("targets"), f"{panel['title']}: no queries"
        for target in panel["targets"]:
            assert target.get("datasource") == DATASOURCE_REF, (panel["title"], target)
    for annotation in dashboard["annotations"]["list"]:
        if not annotation.get("builtIn"):
            assert annotation["datasource"] == DATASOURCE_REF, annotation["name"]
            assert annotation["target"]["datasource"] == DATASOURCE_REF, annotation["name"]


def test_annotation_queries_agree_in_both_shapes(dashboard: Json) -> None:
    """Newer Grafana runs `target`; older releases read the top-level `expr` and `step`."""
    for annotation in dashboard["annotations"]["list"]:
        if annotation.get("builtIn"):
            continue
        assert annotation["target"]["expr"] == annotation["expr"], annotation["name"]
        assert annotation["target"]["interval"] == annotation["step"], annotation["name"]
        assert annotation["titleFormat"], annotation["name"]


def test_only_current_panel_types(dashboard: Json) -> None:
    for panel in all_panels(dashboard):
        assert panel["type"] in CURRENT_PANEL_TYPES, (panel["title"], panel["type"])


def test_panel_ids_are_unique_and_every_panel_has_a_place(dashboard: Json) -> None:
    ids = [panel["id"] for panel in all_panels(dashboard)]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids))
    for panel in all_panels(dashboard):
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= grid.keys(), panel["title"]
        assert all(isinstance(grid[k], int) for k in "hwxy"), panel["title"]
        assert grid["w"] > 0, panel["title"]
        assert grid["h"] > 0, panel["title"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


def test_panels_do_not_overlap(dashboard: Json) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_panels_have_titles_and_descriptions(dashboard: Json) -> None:
    for panel in all_panels(dashboard):
        assert panel.get("title", "").strip(), panel["id"]
        if panel["type"] != "row":
            assert panel.get("description", "").strip(), panel["title"]


def test_query_ref_ids_are_unique_per_panel(dashboard: Json) -> None:
    for panel in all_panels(dashboard):
        refs = [target["refId"] for target in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]


def test_value_mappings_for_tls_versions_and_result_classes() -> None:
    for uid in DASHBOARD_FILES:
        panels = list(all_panels(load(uid)))
        assert any(
            all(query_mappings(panel, "A").get(k) == text for k, text in TLS_VERSION_TEXTS.items())
            for panel in panels
        ), f"{uid}: no value mapping 1 -> TLS 1.0 ... 1.3 -> TLS 1.3"
        shown = set().union(*(all_mapped_texts(panel) for panel in panels))
        assert shown >= DIRECTORY_RESULTS, f"{uid}: {DIRECTORY_RESULTS - shown} not mapped"
    node_shown = set().union(*(all_mapped_texts(panel) for panel in all_panels(load(NODE))))
    assert node_shown >= TLS_RESULTS, f"{TLS_RESULTS - node_shown} not mapped"


def test_encoded_label_values_map_back_to_their_text(dashboard: Json) -> None:
    """A query encoding label values as numbers has mappings that decode every one of them."""
    encoded = 0
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            texts = query_mappings(panel, target["refId"])
            for term in ENCODED_TERM.finditer(target["expr"]):
                encoded += 1
                assert texts.get(term["code"]) == term["value"], (
                    f"{panel['title']}: {term['code']} should read {term['value']!r}"
                )
    assert encoded, "no encoded result classes found; has the query pattern changed?"


def test_dashboards_link_to_each_other() -> None:
    for uid, other in ((OVERVIEW, NODE), (NODE, OVERVIEW)):
        links = load(uid)["links"]
        assert any(f"/d/{other}" in link.get("url", "") for link in links), uid
        assert all(link.get("includeVars") and link.get("keepTime") for link in links), uid


def test_node_links_carry_the_node() -> None:
    urls = [link["url"] for panel in all_panels(load(OVERVIEW)) for link in _field_links(panel)]
    assert urls, "the overview offers no per-node drill-down"
    for url in urls:
        assert url.startswith(f"/d/{NODE}"), url
        assert "var-node=" in url, url
        assert "${cluster:queryparam}" in url, url


def _field_links(panel: Json) -> Iterator[Json]:
    field_config = panel.get("fieldConfig", {})
    yield from field_config.get("defaults", {}).get("links", [])
    for override in field_config.get("overrides", []):
        for prop in override["properties"]:
            if prop["id"] == "links":
                yield from prop["value"]


def test_metric_names_are_known(dashboard: Json) -> None:
    used = {name for _, expr in expressions(dashboard) for name in METRIC_NAME.findall(expr)}
    assert used, "no cucm_ metric referenced"
    assert used <= KNOWN_METRICS, f"unknown metrics: {sorted(used - KNOWN_METRICS)}"


def test_every_expression_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run scripts/system-deps (Debian package prometheus)"
    rules: list[Json] = []
    for uid in sorted(DASHBOARD_FILES):
        for where, expr in expressions(load(uid)):
            substituted = substitute(expr)
            assert "$" not in re.sub(r"\$\d", "", substituted), (where, substituted)
            rules.append(
                {
                    "record": f"grafana_check:{uid.replace('-', '_')}:{len(rules)}",
                    "expr": substituted,
                    "labels": {"where": where},
                }
            )
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    report = checked.stdout + checked.stderr
    assert checked.returncode == 0, report
    assert f"SUCCESS: {len(rules)} rules found" in report, report


def test_substitution_covers_the_variables_used() -> None:
    assert substitute('x{cluster="$cluster"}[$__range]') == 'x{cluster="x"}[1h]'
    assert substitute('label_replace(x, "a", "$1", "b", "(.*)")') == (
        'label_replace(x, "a", "$1", "b", "(.*)")'
    )
    with pytest.raises(AssertionError, match="unknown template variable"):
        substitute("x[$nonsense]")


def test_provisioned_datasource() -> None:
    path = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["access"] == "proxy"
    assert source["name"]


def test_provisioned_dashboards() -> None:
    path = GRAFANA / "provisioning" / "dashboards" / "cucm.yml"
    raw = path.read_text(encoding="utf-8")
    config = yaml.safe_load(raw)
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["name"]
    assert provider["options"]["path"].startswith("/var/lib/grafana/dashboards")
    assert "grafana/dashboards" in raw, "say how to mount the repository's dashboards"


# --- several jobs, All clusters, runbook links ------------------------------------------------

_SELECTOR = re.compile(r"\b(cucm_[a-zA-Z0-9_]+)(\{[^}]*\})?")


def test_the_cluster_variable_offers_all_and_several() -> None:
    for uid in sorted(DASHBOARD_FILES):
        cluster = variables(load(uid))["cluster"]
        assert (cluster["includeAll"], cluster["multi"]) == (True, True), uid
        for where, expr in expressions(load(uid)):
            # Several values arrive as a regular expression: only =~ matches them.
            assert 'cluster="$cluster"' not in expr.replace(" ", ""), (uid, where)


def test_every_query_reads_one_job(dashboard: Json) -> None:
    """A /probe job beside the scheduled one has the same series under another job: every
    selector names the chosen job, the scheduled exporter's by default, so no sum counts a
    node twice (the rules read job="cucm-directory-exporter" alike)."""
    job = variables(dashboard)["job"]
    assert job["current"]["value"] == "cucm-directory-exporter"
    assert (job["includeAll"], job["multi"]) == (False, False)
    unfiltered = [
        (where, match.group(0))
        for where, expr in expressions(dashboard)
        if where != "variable job"
        for match in _SELECTOR.finditer(expr)
        if 'job="$job"' not in (match.group(2) or "")
    ]
    assert unfiltered == []


def test_every_panel_links_its_runbook_section(dashboard: Json) -> None:
    from tests.test_alert_rules import _runbook_anchors

    runbook = variables(dashboard)["runbook"]
    assert runbook["type"] == "textbox"
    assert runbook["query"] == "http://localhost:10027/runbook"  # the compose stack's exporter
    anchors = _runbook_anchors()
    sections = set()
    for panel in all_panels(dashboard):
        if panel["type"] == "row":
            continue
        links = [link for link in panel.get("links", []) if link["url"].startswith("${runbook}")]
        assert len(links) == 1, f"panel {panel['title']!r}: no runbook link"
        base, _, section = links[0]["url"].partition("#")
        assert base == "${runbook}"
        assert not section or section in anchors, f"{panel['title']!r}: no section #{section}"
        sections.add(section)
    assert len(sections) >= 5  # the panels lead to the alerts they are about, not all to the top
