"""Results -> metric families. The only module that knows metric names.

Families are built afresh on every scrape from the store's immutable snapshot, so a scrape
never waits on a probe and a vanished node or port vanishes from the output with it.
Sample output:

    cucm_tls_version_accepted{cluster="lab",node="p",port="2445",service="tvs",version="TLS 1.0"} 0
    cucm_tls_min_version{cluster="lab",node="p",port="2445",service="tvs"} 1.2
    cucm_probe_success{cluster="lab",node="p",probe="tls"} 1
"""

from __future__ import annotations

import asyncio
import functools
import platform
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.catalogue import Catalogue, load_catalogue
from exporter.config import ScheduledProbeConfig
from exporter.impact import ClusterPhones, required_version, summarize
from exporter.results import (
    DirectoryProbeResult,
    PortResult,
    ProbeRun,
    RouteResult,
    SnmpProbeResult,
    TlsProbeResult,
)
from exporter.store import ExporterState, Key, ResultStore

_PORT_LABELS = ["cluster", "node", "port", "service"]
_ROUTE_LABELS = ["cluster", "node", "route"]
_PROBE_LABELS = ["cluster", "node", "probe"]


def _cached(what: str, interval: float | None) -> str:
    """HELP text that says where the value came from; `interval` None means /probe."""
    if interval is None:
        return f"{what} Probed on demand by /probe."
    # Probes run on a schedule, not at scrape time (DESIGN.md): say so where users look.
    return f"{what} Cached: refreshed by the scheduled probe every {interval:g}s."


class CucmCollector(Collector):
    """Exposes the latest probe results and the exporter's own state."""

    def __init__(
        self,
        store: ResultStore,
        state: ExporterState,
        *,
        on_demand_timeouts: Mapping[str, float] | None = None,
    ) -> None:
        """With `on_demand_timeouts` (probe -> the deadline it had), the families describe
        one /probe request: no exporter self-metrics, and the deadlines exposed."""
        self._store = store
        self._state = state
        self._on_demand = on_demand_timeouts
        self._catalogue: tuple[object, Catalogue] | None = None
        # The phone summary costs O(phones); scrapes reuse it until a result it used changes.
        self._phones: dict[str, tuple[tuple[int, ...], ClusterPhones]] = {}

    def describe(self) -> list[Metric]:
        return []  # collect() is cheap but dynamic; nothing to pre-register

    def collect(self) -> Iterator[Metric]:
        snapshot = self._store.snapshot()
        yield from self._target_families(snapshot)
        if self._on_demand is None:
            yield from self.self_families()
        else:
            yield self._timeout_family(snapshot, self._on_demand)

    def _target_families(self, snapshot: Mapping[Key, ProbeRun]) -> Iterator[Metric]:
        yield from self._probe_families(snapshot)
        yield from self._tls_families(snapshot)
        yield from self._directory_families(snapshot)
        yield from self._snmp_families(snapshot)

    # --- pieces for a cached rendering (exporter/exposition.py) ------------------------------

    def template(self) -> list[Metric]:
        """Every target family, empty: their names, HELP and TYPE, in output order."""
        return list(self._target_families({}))

    def segments(self) -> list[Segment]:
        """The target families cut into pieces that change independently: one per probe run
        and one per cluster's phone summary. A piece whose `token` is unchanged since the last
        scrape renders to the same text, so a scrape re-renders only what probes changed."""
        snapshot = self._store.snapshot()
        pieces: list[Segment] = []
        for cluster, runs in _by_cluster(snapshot).items():
            for key, run in runs.items():
                pieces.append(Segment(key, run, functools.partial(self._run_families, key, run)))
            summary = self._cluster_summary(cluster, runs)
            pieces.append(
                Segment(
                    ("phones", cluster),
                    summary,
                    functools.partial(self._phone_families, cluster, summary),
                )
            )
        return pieces

    def _run_families(self, key: Key, run: ProbeRun) -> Iterator[Metric]:
        single = {key: run}
        yield from self._probe_families(single)
        yield from self._tls_families(single)
        yield from self._directory_families(single)
        if isinstance(run.result, SnmpProbeResult):
            families = _SnmpFamilies(self._interval(self._state.config.probes.snmp))
            families.add_node(key[0], key[1], run.result)
            yield from families.all()

    def _phone_families(self, cluster: str, summary: ClusterPhones) -> Iterator[Metric]:
        families = _SnmpFamilies(self._interval(self._state.config.probes.snmp))
        families.add_phones(cluster, summary)
        yield from families.all()

    def _interval(self, settings: ScheduledProbeConfig) -> float | None:
        return None if self._on_demand is not None else settings.interval

    def _timeout_family(
        self, snapshot: Mapping[Key, ProbeRun], timeouts: Mapping[str, float]
    ) -> Metric:
        family = GaugeMetricFamily(
            "cucm_probe_timeout_seconds",
            "The deadline of this on-demand run: the module's timeout, cut to the scrape "
            "timeout Prometheus announced minus a margin.",
            labels=_PROBE_LABELS,
        )
        for cluster, node, probe in sorted(snapshot):
            family.add_metric([cluster, node, probe], timeouts[probe])
        return family

    def _probe_families(self, snapshot: Mapping[Key, ProbeRun]) -> Iterator[Metric]:
        success = GaugeMetricFamily(
            "cucm_probe_success",
            "1 if the last run of the probe gave a clean verdict for every target.",
            labels=_PROBE_LABELS,
        )
        duration = GaugeMetricFamily(
            "cucm_probe_duration_seconds",
            "How long the last run of the probe took.",
            labels=_PROBE_LABELS,
        )
        last_run = GaugeMetricFamily(
            "cucm_probe_last_run_timestamp_seconds",
            "When the last run of the probe started (unix time); all cucm_ target "
            "metrics are as of this run.",
            labels=_PROBE_LABELS,
        )
        for (cluster, node, probe), run in sorted(snapshot.items()):
            labels = [cluster, node, probe]
            success.add_metric(labels, 1.0 if run.success else 0.0)
            duration.add_metric(labels, run.duration_seconds)
            last_run.add_metric(labels, run.started)
        yield from (success, duration, last_run)

    def _tls_families(self, snapshot: Mapping[Key, ProbeRun]) -> Iterator[Metric]:
        families = _TlsFamilies(self._interval(self._state.config.probes.tls))
        for (cluster, node, probe), run in sorted(snapshot.items()):
            if probe == "tls" and isinstance(run.result, TlsProbeResult):
                for port in run.result.ports:
                    families.add(cluster, node, port)
        yield from families.all()

    def _directory_families(self, snapshot: Mapping[Key, ProbeRun]) -> Iterator[Metric]:
        families = _DirectoryFamilies(self._interval(self._state.config.probes.directory))
        for (cluster, node, probe), run in sorted(snapshot.items()):
            if probe == "directory" and isinstance(run.result, DirectoryProbeResult):
                for route in run.result.routes:
                    families.add(cluster, node, route)
        yield from families.all()

    def _snmp_families(self, snapshot: Mapping[Key, ProbeRun]) -> Iterator[Metric]:
        families = _SnmpFamilies(self._interval(self._state.config.probes.snmp))
        for cluster, runs in _by_cluster(snapshot).items():
            for (_, node, probe), run in runs.items():
                if probe == "snmp" and isinstance(run.result, SnmpProbeResult):
                    families.add_node(cluster, node, run.result)
            families.add_phones(cluster, self._cluster_summary(cluster, runs))
        yield from families.all()

    def _cluster_summary(self, cluster: str, runs: Mapping[Key, ProbeRun]) -> ClusterPhones:
        polls = {
            node: run.result
            for (_, node, probe), run in runs.items()
            if probe == "snmp" and isinstance(run.result, SnmpProbeResult)
        }
        tls = {
            node: run.result
            for (_, node, probe), run in runs.items()
            if probe == "tls" and isinstance(run.result, TlsProbeResult)
        }
        return self._phone_summary(cluster, polls, tls)

    def _phone_summary(
        self,
        cluster: str,
        polls: Mapping[str, SnmpProbeResult],
        tls: Mapping[str, TlsProbeResult],
    ) -> ClusterPhones:
        config = self._state.config
        if self._catalogue is None or self._catalogue[0] is not config:
            self._catalogue = (config, load_catalogue(config.catalogue))
            self._phones.clear()
        key = tuple(id(r) for r in (*polls.values(), *tls.values()))
        cached = self._phones.get(cluster)
        if cached is not None and cached[0] == key:
            return cached[1]
        inventories = {node: poll.phones for node, poll in polls.items() if poll.phones is not None}
        required = {node: required_version(result) for node, result in tls.items()}
        summary = summarize(inventories, required, self._catalogue[1])
        self._phones[cluster] = (key, summary)
        return summary

    def self_families(self) -> Iterator[Metric]:
        """The exporter's own state: cheap, and different on every scrape."""
        build = GaugeMetricFamily(
            "cucm_exporter_build_info",
            "A metric with a constant '1' value labeled by the exporter's version and the "
            "Python it runs on.",
            labels=["version", "python_version"],
        )
        build.add_metric([__version__, platform.python_version()], 1.0)
        yield build
        yield GaugeMetricFamily(
            "cucm_exporter_asyncio_tasks",
            "Tasks alive on the exporter's event loop; growth over time would be a leak.",
            value=float(_running_tasks()),
        )
        skipped = CounterMetricFamily(
            "cucm_exporter_probe_runs_skipped",
            "Scheduled probe runs skipped because the node's previous run of that probe was "
            "still going or waiting for a slot (scheduler.max_concurrent_probes): the exporter "
            "is not keeping up.",
            labels=["probe"],
        )
        counts = self._store.skipped()
        probes = self._state.config.probes
        enabled = {name for name in type(probes).model_fields if getattr(probes, name).enabled}
        for probe in sorted(enabled | set(counts)):  # zero from the start, so rate() works
            skipped.add_metric([probe], float(counts.get(probe, 0)))
        yield skipped
        yield GaugeMetricFamily(
            "cucm_exporter_config_last_reload_successful",
            "1 if the last configuration (re)load succeeded; 0 means the previous config runs on.",
            value=1.0 if self._state.last_reload_successful else 0.0,
        )
        yield GaugeMetricFamily(
            "cucm_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully (unix time).",
            value=self._state.last_reload_success_timestamp,
        )


def _running_tasks() -> int:
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:
        return 0  # collected outside the event loop (e.g. in a test): nothing to count


@dataclass(frozen=True)
class Segment:
    """A piece of the exposition: `build()` gives its families; same `token`, same text."""

    key: object
    token: object
    build: Callable[[], Iterable[Metric]]


def _by_cluster(snapshot: Mapping[Key, ProbeRun]) -> dict[str, dict[Key, ProbeRun]]:
    grouped: dict[str, dict[Key, ProbeRun]] = {}
    for key, run in sorted(snapshot.items()):
        grouped.setdefault(key[0], {})[key] = run
    return grouped


class _TlsFamilies:
    """The cucm_tls_* families of one scrape, filled port by port."""

    def __init__(self, interval: float | None) -> None:
        def family(name: str, what: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, _cached(what, interval), labels=[*_PORT_LABELS, *extra])

        self.up = family(
            "cucm_tls_up", "1 if the port answered TLS at all (accepted or refused a version)."
        )
        self.accepted = family(
            "cucm_tls_version_accepted",
            "1 if a handshake pinned to the version (min = max) succeeded, 0 if the server "
            "rejected it; absent when the probe could not tell.",
            ("version",),
        )
        self.result = family(
            "cucm_tls_version_result",
            "1 for the classified outcome of the handshake pinned to the version.",
            ("version", "result"),
        )
        self.min_version = family(
            "cucm_tls_min_version", "Lowest TLS version the port accepts (1.0, 1.1, 1.2, 1.3)."
        )
        self.max_version = family(
            "cucm_tls_max_version", "Highest TLS version the port accepts (1.0, 1.1, 1.2, 1.3)."
        )
        self.negotiated = family(
            "cucm_tls_version_info",
            "1 for the TLS version a modern default client negotiates.",
            ("version",),
        )
        self.cipher = family(
            "cucm_tls_cipher_info",
            "1 for the cipher suite (OpenSSL name) a modern default client negotiates.",
            ("cipher",),
        )
        self.handshake = family(
            "cucm_tls_handshake_duration_seconds", "Time of the modern default handshake."
        )
        self.not_after = family(
            "cucm_tls_cert_not_after_timestamp_seconds",
            "When the port's leaf certificate expires (unix time).",
        )
        self.not_before = family(
            "cucm_tls_cert_not_before_timestamp_seconds",
            "When the port's leaf certificate became valid (unix time); it moves when the "
            "certificate is regenerated.",
        )
        self.cert_info = family(
            "cucm_tls_cert_info",
            "1, labeled with the port's leaf certificate; a new fingerprint means the "
            "certificate was regenerated.",
            ("fingerprint_sha256", "serial", "subject", "issuer"),
        )
        self.verified = family(
            "cucm_tls_cert_verified",
            "1 if the certificate verified against the configured CA bundle and node name; "
            "absent when no ca_file is configured.",
        )

    def add(self, cluster: str, node: str, port: PortResult) -> None:
        labels = [cluster, node, str(port.port), port.service]
        self.up.add_metric(labels, 1.0 if port.speaks_tls else 0.0)
        for handshake in port.pinned:
            assert handshake.pinned is not None
            version = handshake.pinned.label
            accepted = port.accepted(handshake)
            if accepted is not None:
                self.accepted.add_metric([*labels, version], 1.0 if accepted else 0.0)
            self.result.add_metric([*labels, version, handshake.outcome.value], 1.0)
        if (lowest := port.min_version) is not None:
            self.min_version.add_metric(labels, lowest.number)
        if (highest := port.max_version) is not None:
            self.max_version.add_metric(labels, highest.number)
        modern = port.modern
        if modern.negotiated is not None:
            self.negotiated.add_metric([*labels, modern.negotiated.label], 1.0)
            self.handshake.add_metric(labels, modern.duration_seconds)
        if modern.cipher is not None:
            self.cipher.add_metric([*labels, modern.cipher], 1.0)
        if (certificate := port.certificate) is not None:
            self.not_after.add_metric(labels, certificate.not_after)
            self.not_before.add_metric(labels, certificate.not_before)
            self.cert_info.add_metric(
                [
                    *labels,
                    certificate.fingerprint_sha256,
                    certificate.serial,
                    certificate.subject,
                    certificate.issuer,
                ],
                1.0,
            )
        if port.verified is not None:
            self.verified.add_metric(labels, 1.0 if port.verified else 0.0)

    def all(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            self.up,
            self.accepted,
            self.result,
            self.min_version,
            self.max_version,
            self.negotiated,
            self.cipher,
            self.handshake,
            self.not_after,
            self.not_before,
            self.cert_info,
            self.verified,
        )


class _DirectoryFamilies:
    """The cucm_directory_* families of one scrape, filled route by route."""

    def __init__(self, interval: float | None) -> None:
        def family(name: str, what: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, _cached(what, interval), labels=[*_ROUTE_LABELS, *extra])

        self.up = family(
            "cucm_directory_up",
            "1 if the whole directory chain (menu, search form, canary search and its pages) "
            "worked on the route.",
        )
        self.result = family(
            "cucm_directory_result", "1 for the classified outcome of the route.", ("result",)
        )
        self.failed_step = family(
            "cucm_directory_failed_step_info",
            "1 for the step of the chain where the route failed (tvs, menu, input, search, "
            "next_page); absent when it worked.",
            ("step",),
        )
        self.status = family(
            "cucm_directory_status_code", "The last HTTP status code the route received."
        )
        self.duration = family(
            "cucm_directory_duration_seconds", "How long the walk of the chain took."
        )
        self.entries = family(
            "cucm_directory_entries",
            "Entries the canary search found, over the pages walked (max_pages).",
        )
        self.tls_version = family(
            "cucm_directory_tls_version_info",
            "1 for the TLS version negotiated on the route (HTTPS routes).",
            ("version",),
        )

    def add(self, cluster: str, node: str, route: RouteResult) -> None:
        labels = [cluster, node, route.route.value]
        self.up.add_metric(labels, 1.0 if route.up else 0.0)
        self.result.add_metric([*labels, route.outcome.value], 1.0)
        if route.failed_step is not None:
            self.failed_step.add_metric([*labels, route.failed_step.value], 1.0)
        if route.status_code is not None:
            self.status.add_metric(labels, float(route.status_code))
        self.duration.add_metric(labels, route.duration_seconds)
        if route.entries is not None:
            self.entries.add_metric(labels, float(route.entries))
        if route.tls_version is not None:
            self.tls_version.add_metric([*labels, route.tls_version.label], 1.0)

    def all(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            self.up,
            self.result,
            self.failed_step,
            self.status,
            self.duration,
            self.entries,
            self.tls_version,
        )


class _SnmpFamilies:
    """Phone inventory and node state from CISCO-CCM-MIB, and what it means for the directory."""

    def __init__(self, interval: float | None) -> None:
        def family(name: str, what: str, labels: list[str]) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, _cached(what, interval), labels=labels)

        node = ["cluster", "node"]
        self.phones = family(
            "cucm_phones",
            "Phones in the node's ccmPhoneTable by model, status and the highest TLS version the "
            'model can speak ("unknown" when no catalogue entry matches); a phone seen by several '
            "nodes is counted once, where it is registered.",
            [*node, "model", "status", "max_tls"],
        )
        self.at_risk = family(
            "cucm_phones_directory_at_risk",
            "Registered phones whose highest TLS version is below what the node's HTTPS "
            'directory path (TVS and Tomcat) now requires: they show "Host not found".',
            [*node, "model"],
        )
        self.required = family(
            "cucm_node_required_tls_version",
            "The TLS version a phone needs for the node's HTTPS directory: the stricter of its "
            "TVS (2445) and Tomcat (8443) minimum.",
            node,
        )
        self.registered = family(
            "cucm_node_registered_phones",
            "ccmRegisteredPhones: phones registered to the node.",
            node,
        )
        self.unregistered = family(
            "cucm_node_unregistered_phones", "ccmUnregisteredPhones of the node.", node
        )
        self.rejected = family("cucm_node_rejected_phones", "ccmRejectedPhones of the node.", node)
        self.boot_time = family(
            "cucm_node_boot_time_seconds",
            "When the node's SNMP agent started (unix time, from sysUpTime); a jump means the "
            "node restarted.",
            node,
        )
        self.start_time = family(
            "cucm_node_callmanager_start_time_seconds",
            "When the node's Cisco CallManager service started (ccmCallManagerStartTime).",
            node,
        )
        self.walked = family(
            "cucm_snmp_phone_table_walk_timestamp_seconds",
            "When ccmPhoneTable was last walked; it is walked only when ccmPhoneTableStateId or "
            "the CallManager start time changed.",
            node,
        )
        self.requests = family(
            "cucm_snmp_poll_requests", "SNMP requests the last poll of the node sent.", node
        )

    def add_node(self, cluster: str, node: str, poll: SnmpProbeResult) -> None:
        labels = [cluster, node]
        self.requests.add_metric(labels, float(poll.requests))
        if poll.walked_at is not None:
            self.walked.add_metric(labels, poll.walked_at)
        scalars = poll.scalars
        if scalars is None:
            return
        self.registered.add_metric(labels, float(scalars.registered))
        self.unregistered.add_metric(labels, float(scalars.unregistered))
        self.rejected.add_metric(labels, float(scalars.rejected))
        self.boot_time.add_metric(labels, scalars.boot_time)
        if scalars.callmanager_start is not None:
            self.start_time.add_metric(labels, scalars.callmanager_start)

    def add_phones(self, cluster: str, summary: ClusterPhones) -> None:
        for (node, model, status, max_tls), count in sorted(summary.phones.items()):
            self.phones.add_metric([cluster, node, model, status, max_tls], float(count))
        for (node, model), count in sorted(summary.at_risk.items()):
            self.at_risk.add_metric([cluster, node, model], float(count))
        for node, version in sorted(summary.required.items()):
            self.required.add_metric([cluster, node], version.number)

    def all(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            self.phones,
            self.at_risk,
            self.required,
            self.registered,
            self.unregistered,
            self.rejected,
            self.boot_time,
            self.start_time,
            self.walked,
            self.requests,
        )
