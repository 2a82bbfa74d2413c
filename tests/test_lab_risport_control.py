"""RisPort70's fault switches through the lab's control API (`lab risport-fault`), as the probe
sees them: every switch gives the probe's classified outcome, and `none` heals."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from exporter.lab import Lab
from exporter.lab.cli import start_control
from exporter.lab.risport import RisportFault
from exporter.lab.tls import unused_port
from exporter.probes.risport_result import RisportOutcome
from tests.test_risport_probe import FakeClock, result_of, risport_config, run_risport, runner_for


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(restart_downtime=0.0) as running:
        yield running


@pytest.fixture
async def control(lab: Lab) -> AsyncIterator[str]:
    port = unused_port()
    runner = await start_control(lab, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        lab.risport["lab"].set_fault(RisportFault.NONE)
        await runner.cleanup()


@pytest.fixture
def clock(lab: Lab) -> FakeClock:
    fake = FakeClock()
    lab.risport["lab"].set_clock(fake)
    return fake


async def switch(control: str, node: str, fault: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(f"{control}/nodes/{node}/risport-fault", json={"fault": fault})


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        ("stall", RisportOutcome.TIMEOUT),
        ("garbage", RisportOutcome.BAD_RESPONSE),
        ("rate_limited", RisportOutcome.RATE_LIMITED),
        ("node_not_responding", RisportOutcome.NODE_NOT_RESPONDING),
    ],
)
async def test_each_switch_gives_the_probes_classified_outcome_and_none_heals(
    lab: Lab, control: str, clock: FakeClock, fault: str, outcome: RisportOutcome
) -> None:
    # Set through a subscriber: the fault belongs to the cluster's RisPort70, asked on the pub.
    answer = await switch(control, "cucm-sub1", fault)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"risport_fault": fault}
    assert lab.risport["lab"].fault is RisportFault(fault)
    config = risport_config(lab, request_timeout="1s", timeout="5s")
    broken = runner_for(clock)
    try:
        result = result_of(await run_risport(broken, config))
    finally:
        await broken.aclose()
    assert result.outcome is outcome, result.detail
    if outcome is RisportOutcome.NODE_NOT_RESPONDING:
        assert result.not_responding == ("cucm-sub1",)
        assert result.phones is not None
        assert "cucm-sub1" not in result.phones

    healed = await switch(control, "cucm-pub", "none")
    assert healed.json() == {"risport_fault": "none"}
    clock.now += 3600  # past any backoff and the lab's rate-limit window
    fresh = runner_for(clock)  # a budget of its own: the broken runner's backoff stays there
    try:
        result = result_of(await run_risport(fresh, config))
    finally:
        await fresh.aclose()
    assert result.outcome is RisportOutcome.OK, result.detail


async def test_an_unknown_fault_or_node_is_refused_with_the_reason(lab: Lab, control: str) -> None:
    unknown = await switch(control, "cucm-pub", "melt")
    assert unknown.status_code == 400
    assert "bad risport fault request" in unknown.text
    assert "melt" in unknown.text
    nowhere = await switch(control, "cucm-nowhere", "stall")
    assert nowhere.status_code == 400
    assert "no single lab node named 'cucm-nowhere'" in nowhere.text
    assert lab.risport["lab"].fault is RisportFault.NONE
