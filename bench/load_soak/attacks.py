"""Attacks: the three front-door attacks of issue 14, each while a legitimate client scrapes.

For each attack a fresh daemon, started with the soft RLIMIT_NOFILE that systemd and a login
shell give a service (1024), probes a small healthy lab (every probe should succeed):

1. settle: until every target has a result (at most `SETTLE_LIMIT` s);
2. `--duration` s of the attack, while a legitimate client scrapes `/metrics` every second on a
   new connection each time (as Prometheus does after any reconnect; 10 s timeout, its default
   scrape_timeout) and /proc is read every half second (RSS, open fds, CPU);
3. `--recovery` s more of legitimate scrapes: a probe run the attack spoilt reports when it ends.

Then the same attack on blackbox_exporter (same soft limit, same web config), whose legitimate
client asks `/probe` for a TLS 1.2 handshake with one of the lab's nodes.

* idle: `--idle` TCP connections that never send a byte, held for the whole attack;
* auth: basic auth on (bcrypt, cost 10); `--auth-clients` clients send wrong passwords back to back
  (the legitimate client has the right one);
* probe: `--probe-clients` clients ask `/probe` back to back (ours: the directory and the tls
  module of a configured node in turn; blackbox: its tls module on that node's Tomcat port).

Goals (issue 14), judged on our side: no legitimate scrape fails; no probe result fails because
of the attack (a target that succeeded before it reads `cucm_probe_success 0` in any legitimate
scrape); open fds stay under 90% of the process's soft fd limit as /proc reads it at the end
(so accept() and the probes never meet EMFILE; a daemon that raises its own limit, as Go
programs do, is judged against the raised one) and RSS within `RSS_BOUND_MIB` of its level
before the attack. The exit status is 1 when a goal of ours is not met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import yaml

from bench import blackbox
from bench.exposition import samples
from bench.labserver import LabInfo, lab_process
from bench.load_soak.common import tune_config
from bench.processes import Daemon, Service, cpu_seconds, exit_on_signals, open_fds, resident_bytes
from bench.report import RESULTS, environment, loadavg, utc_stamp, write_json
from bench.table import table

ATTACKS = ("idle", "auth", "probe")
SOFT_NOFILE = 1024
RSS_BOUND_MIB = 100.0
SETTLE_LIMIT = 30.0
SCRAPE_TIMEOUT = 10.0  # Prometheus' default scrape_timeout
USER, PASSWORD = "prometheus", "legitimate-password"
CONNECT_TIMEOUT = 3.0  # an idle connection the victim no longer accepts counts as refused
MIB = 2**20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="15 s attacks, 100 clients (~3 min)")
    parser.add_argument("--only", default=",".join(ATTACKS), help="comma-separated attacks")
    parser.add_argument("--no-blackbox", action="store_true", help="attack our daemon only")
    parser.add_argument("--duration", type=float, default=60.0, help="s of each attack")
    parser.add_argument("--recovery", type=float, default=10.0, help="s of scrapes after it")
    parser.add_argument("--idle", type=int, default=1100, help="idle connections")
    parser.add_argument("--auth-clients", type=int, default=400, help="wrong-password clients")
    parser.add_argument("--probe-clients", type=int, default=400, help="/probe clients")


@dataclass(frozen=True)
class Victim:
    """What an attack is aimed at, and how its legitimate client reads an answer."""

    name: str  # "ours" or "blackbox"
    service: Service
    legit_path: str
    probe_paths: tuple[str, ...]  # what the /probe flood asks for
    failing: Callable[[bytes], set[str]]  # the probe results an answer shows failed
    auth: aiohttp.BasicAuth | None

    @property
    def url(self) -> str:
        return self.service.url


@dataclass
class Figures:
    """One attack on one victim."""

    attack: str
    victim: str
    legit_scrapes: int = 0
    failed_scrapes: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # asdict() garbles a Counter
    failing_before: list[str] = field(default_factory=list)
    caused_failures: list[str] = field(default_factory=list)  # failing since the attack
    rss_mib_before: float = 0.0
    rss_mib_peak: float = 0.0
    fds_before: int = 0
    fds_peak: int = 0
    fd_limit: int = SOFT_NOFILE  # its soft RLIMIT_NOFILE at the end (a fix may raise it)
    cpu_percent: float = 0.0  # of one core, over the attack and the recovery
    log_lines_added: int = 0
    attacker: dict[str, Any] = field(default_factory=dict)
    exited: bool = False
    loadavg: str = ""

    def goals(self) -> dict[str, bool]:
        return {
            "no failed legitimate scrape": self.failed_scrapes == 0,
            "no probe result caused by the attack": not self.caused_failures,
            f"fds under 90% of its fd limit ({self.fd_limit})": self.fds_peak < 0.9 * self.fd_limit,
            f"RSS within {RSS_BOUND_MIB:g} MiB": self.rss_mib_peak - self.rss_mib_before
            < RSS_BOUND_MIB,
        }


# --- the legitimate client and the /proc sampler -------------------------------------------


async def legitimate(victim: Victim, until: float, figures: Figures, seen: set[str]) -> None:
    """One request a second on a fresh connection until `until`; failures and failing probes
    (`victim.failing`) go into `figures` and `seen`."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, auth=victim.auth) as session:
        while (start := time.monotonic()) < until:
            error, body = "", b""
            try:
                async with asyncio.timeout(SCRAPE_TIMEOUT):
                    async with session.get(victim.url + victim.legit_path) as answer:
                        body = await answer.read()
                        if answer.status != 200:
                            error = f"HTTP {answer.status}"
            except TimeoutError:
                error = f"timeout after {SCRAPE_TIMEOUT:g}s"
            except aiohttp.ClientError as failure:
                error = type(failure).__name__
            figures.legit_scrapes += 1
            if error:
                figures.failed_scrapes += 1
                figures.failures[error] = figures.failures.get(error, 0) + 1
            else:
                seen |= victim.failing(body)
            await asyncio.sleep(max(0.0, start + 1.0 - time.monotonic()))


async def sample_proc(pid: int, until: float, figures: Figures) -> None:
    while time.monotonic() < until:
        try:
            figures.rss_mib_peak = max(figures.rss_mib_peak, resident_bytes(pid) / MIB)
            figures.fds_peak = max(figures.fds_peak, open_fds(pid))
        except OSError:  # gone: the attack killed it
            figures.exited = True
            return
        await asyncio.sleep(0.5)


# --- the attacks ----------------------------------------------------------------------------


async def hold_idle(victim: Victim, count: int, until: float) -> dict[str, Any]:
    """`count` connections that send nothing, held until `until`."""
    port = int(victim.url.rsplit(":", 1)[1])

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | str:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                return await asyncio.open_connection("127.0.0.1", port)
        except (OSError, TimeoutError) as error:
            return type(error).__name__

    opened = await asyncio.gather(*(connect() for _ in range(count)))
    held = [pair for pair in opened if not isinstance(pair, str)]
    await asyncio.sleep(max(0.0, until - time.monotonic()))
    closed_by_victim = sum(reader.at_eof() for reader, _ in held)
    for _, writer in held:
        writer.close()
    return {
        "connections": count,
        "held": len(held),
        "not_opened": dict(Counter(pair for pair in opened if isinstance(pair, str))),
        "closed_by_victim": closed_by_victim,
    }


async def hammer(
    victim: Victim, paths: tuple[str, ...], clients: int, until: float, wrong_password: bool
) -> dict[str, Any]:
    """`clients` clients requesting `paths` (in turn) back to back until `until`."""
    answers: Counter[str] = Counter()
    timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client(number: int) -> None:
            turn = number
            while time.monotonic() < until:
                path, turn = paths[turn % len(paths)], turn + 1
                # A new wrong password each time: a cache of checked passwords cannot help.
                wrong = aiohttp.BasicAuth(USER, f"wrong-{number}-{turn}")
                auth = wrong if wrong_password else None
                try:
                    async with session.get(victim.url + path, auth=auth) as answer:
                        await answer.read()
                        answers[f"HTTP {answer.status}"] += 1
                except (aiohttp.ClientError, TimeoutError) as error:
                    answers[type(error).__name__] += 1

        with contextlib.suppress(TimeoutError):  # requests still in flight at the end
            async with asyncio.timeout(max(0.0, until - time.monotonic()) + 1.0):
                await asyncio.gather(*(client(n) for n in range(clients)))
    return {"clients": clients, "answers": dict(answers), "requests": sum(answers.values())}


# --- one attack on one victim ---------------------------------------------------------------


async def settle(victim: Victim, expected: int) -> set[str]:
    """Until `expected` probe results are readable (or SETTLE_LIMIT): those failing now."""
    deadline = time.monotonic() + SETTLE_LIMIT
    async with aiohttp.ClientSession(auth=victim.auth) as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(victim.url + victim.legit_path) as answer:
                    body = await answer.read()
                    results = len(samples(body, ["cucm_probe_success"]))
                    if answer.status == 200 and (results >= expected or expected == 0):
                        return victim.failing(body)
            if time.monotonic() > deadline:
                return {"(not settled)"}
            await asyncio.sleep(1.0)


async def assault(attack: str, victim: Victim, args: argparse.Namespace, expected: int) -> Figures:
    figures = Figures(attack, victim.name)
    pid = victim.service.pid
    before = await settle(victim, expected)
    figures.failing_before = sorted(before)
    figures.rss_mib_before = figures.rss_mib_peak = resident_bytes(pid) / MIB
    figures.fds_before = figures.fds_peak = open_fds(pid)
    lines_before, cpu_before = _lines(victim.service.log), cpu_seconds(pid)
    started = time.monotonic()
    until = started + args.duration
    seen: set[str] = set()
    if attack == "idle":
        attacker = hold_idle(victim, args.idle, until)
    elif attack == "auth":
        attacker = hammer(victim, ("/metrics",), args.auth_clients, until, wrong_password=True)
    else:
        attacker = hammer(victim, victim.probe_paths, args.probe_clients, until, False)
    end = until + args.recovery
    figures.attacker, *_ = await asyncio.gather(
        attacker, legitimate(victim, end, figures, seen), sample_proc(pid, end, figures)
    )
    with contextlib.suppress(OSError):
        figures.cpu_percent = 100 * (cpu_seconds(pid) - cpu_before) / (time.monotonic() - started)
        figures.fd_limit = soft_fd_limit(pid)
    figures.caused_failures = sorted(seen - before)
    figures.log_lines_added = _lines(victim.service.log) - lines_before
    figures.loadavg = loadavg()
    return figures


def soft_fd_limit(pid: int) -> int:
    """The soft "Max open files" of /proc/<pid>/limits ("unlimited" reads as a large number)."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft = line.split()[3]
            return int(soft) if soft.isdigit() else 2**31
    return SOFT_NOFILE


def _lines(log: Path) -> int:
    with contextlib.suppress(OSError), log.open("rb") as file:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))
    return 0


# --- the victims ----------------------------------------------------------------------------


def our_failing(body: bytes) -> set[str]:
    return {
        f"{s.labels['node']}/{s.labels['probe']}"
        for s in samples(body, ["cucm_probe_success"])
        if s.value == 0.0
    }


def blackbox_failing(body: bytes) -> set[str]:
    return {"probe_success"} if b"\nprobe_success 0" in b"\n" + body else set()


def web_config(path: Path) -> Path:
    """Basic auth for USER (bcrypt cost 10, as `htpasswd -nBC 10` makes)."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    path.write_text(yaml.safe_dump({"basic_auth_users": {USER: hashed}}))
    return path


def victims(
    attack: str, lab: LabInfo, args: argparse.Namespace, base: Path
) -> Generator[Victim, None, None]:
    """Ours, then blackbox (unless --no-blackbox): each running while the caller attacks it,
    stopped before the next starts (close the generator to stop the current one early)."""
    node = lab.base_config()["clusters"][0]["nodes"][0]
    tomcat = f"{node['address']}:{node['port_map'][8443]}"
    auth = aiohttp.BasicAuth(USER, PASSWORD) if attack == "auth" else None
    options = [f"--web.config.file={web_config(Path(f'{base}-web.yml'))}"] if auth else []
    daemon = Daemon(lab.config, Path(f"{base}-daemon.log"), options=options)
    daemon.soft_nofile = SOFT_NOFILE
    probes = tuple(f"/probe?target={node['name']}&module={m}" for m in ("directory", "tls"))
    with daemon:
        yield Victim("ours", daemon, "/metrics", probes, our_failing, auth)
    if args.no_blackbox:
        return
    box = blackbox.Blackbox(("1.2",), RESULTS, f"{base.name}-blackbox", options=options)
    box.soft_nofile = SOFT_NOFILE
    probe = f"/probe?target={tomcat}&module={blackbox.module_name('1.2')}"
    with box:
        yield Victim("blackbox", box, probe, (probe,), blackbox_failing, auth)


# --- entry ----------------------------------------------------------------------------------


COLUMNS = (
    ("attack", ""),
    ("victim", ""),
    ("scrapes", "d"),
    ("failed", "d"),
    ("probes failed", "d"),
    ("RSS MiB", ""),
    ("fds", ""),
    ("CPU %", ".0f"),
    ("log lines", "d"),
    ("attacker", ""),
)


def row(f: Figures) -> tuple[object, ...]:
    answers = f.attacker.get("answers") or {k: v for k, v in f.attacker.items() if k != "answers"}
    return (
        f.attack,
        f.victim + (" (exited)" if f.exited else ""),
        f.legit_scrapes,
        f.failed_scrapes,
        len(f.caused_failures),
        f"{f.rss_mib_before:.0f}->{f.rss_mib_peak:.0f}",
        f"{f.fds_before}->{f.fds_peak}",
        f.cpu_percent,
        f.log_lines_added,
        json.dumps(answers, separators=(",", ":")),
    )


def raise_own_fd_limit(needed: int) -> int:
    """This process holds every attacking connection: its soft limit goes up to the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed:
        print(f"hard RLIMIT_NOFILE {hard} < {needed}: fewer idle connections", file=sys.stderr)
    return min(needed, hard - 200)


def main(args: argparse.Namespace) -> int:
    if args.quick:
        args.duration, args.recovery = 15.0, 5.0
        args.auth_clients, args.probe_clients = 100, 100
    chosen = [name for name in ATTACKS if name in args.only.split(",")]
    args.idle = raise_own_fd_limit(args.idle)
    exit_on_signals()
    stamp = utc_stamp()
    path = RESULTS / f"attacks-{stamp}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "benchmark": "attacks",
        "environment": environment(argv=sys.argv),
        "settings": {k: v for k, v in vars(args).items() if k != "command"},
        "figures": [],
    }
    all_figures: list[Figures] = []
    config = RESULTS / f"attacks-{stamp}-lab.yml"
    with lab_process(2, 5, config, interval=5.0, timeout=4.0) as lab:
        tune_config(lab.config, None, jitter=1.0)
        expected = len(lab.nodes) * 3  # tls, directory and snmp per node
        for attack in chosen:
            base = RESULTS / f"attacks-{stamp}-{attack}"
            with contextlib.closing(victims(attack, lab, args, base)) as targets:
                for victim in targets:
                    print(f"{attack} on {victim.name}: {args.duration:g}s ...", flush=True)
                    want = expected if victim.name == "ours" else 0
                    figures = asyncio.run(assault(attack, victim, args, want))
                    all_figures.append(figures)
                    result["figures"].append(asdict(figures) | {"goals": figures.goals()})
                    write_json(path, result)
    print(table(COLUMNS, map(row, all_figures)))
    unmet = 0
    for figures in all_figures:
        if figures.victim != "ours":
            continue
        goals = figures.goals()
        unmet += not all(goals.values())
        verdicts = "; ".join(f"{goal}: {'met' if ok else 'NOT met'}" for goal, ok in goals.items())
        print(f"{figures.attack}: {verdicts}")
        if figures.failures:
            print(f"  failed scrapes: {dict(figures.failures)}")
        if figures.caused_failures:
            print(f"  probe results failed by the attack: {', '.join(figures.caused_failures)}")
    print(f"soft RLIMIT_NOFILE {SOFT_NOFILE} for both; loadavg now {loadavg()}; raw data: {path}")
    return 1 if unmet else 0
