"""Simulated bridges (the real bridge protocol, no sandbox behind them) and browser sockets: the
fan-out to 50 viewers of one session and 200 sessions streaming at once. Part of the `sessions` group."""

import asyncio
import statistics

from django.db import transaction

from bench._common import goal, p50, report, say
from bench._live import (
    Platform,
    Stream,
    StreamResult,
    fake_ready_image,
    make_user,
    session_on,
    simulated_sandbox,
    stream_events,
)
from sandboxes.lifecycle import State
from sandboxes.models import Repo, Sandbox

SIMULATED_REPO = "bench-sessions-sim"
FANOUT_VIEWERS = 50
FANOUT_EVENTS = 200
FANOUT_RATE = 50.0  # events per second
FANOUT_SLOW_EVENTS = 20  # the same 50 viewers, at a rate one Daphne keeps up with alone
FANOUT_SLOW_RATE = 5.0
CONCURRENT_SESSIONS = 200
# Per session: 2,000 events in all keep the run short; the latency and the stored rate are what count.
CONCURRENT_EVENTS = 10
CONCURRENT_RATE = 5.0  # events per second per session: 1,000/s offered in all


def simulated_streams(label: str, repo: Repo, sessions: int, viewers_each: int, platform: Platform) -> list[Stream]:
    """Sessions on running sandbox rows (no processes), each with its members signed in."""
    image = fake_ready_image(repo)
    streams = []
    with transaction.atomic():
        for index in range(sessions):
            viewers = [make_user(f"{label}-{index}-{v}") for v in range(viewers_each)]
            sandbox, token = simulated_sandbox(repo, image)
            session = session_on(repo, sandbox, viewers)
            streams.append(Stream(session.pk, str(sandbox.pk), token, [platform.browser_headers(u) for u in viewers]))
    return streams


def pct(samples: list[float], q: int) -> float:
    ordered = sorted(samples)
    if len(ordered) < 2:
        return ordered[0] if ordered else float("nan")
    return statistics.quantiles(ordered, n=100, method="inclusive")[q - 1]


def latency_line(samples: list[float]) -> str:
    if not samples:
        return "none"
    return (f"min {min(samples) * 1000:.1f} / p50 {pct(samples, 50) * 1000:.1f} / p90 {pct(samples, 90) * 1000:.1f} / "
            f"p99 {pct(samples, 99) * 1000:.1f} / max {max(samples) * 1000:.1f} ms")


def stream_context(result: StreamResult, events: int, rate: float) -> None:
    acked = sum(s.acked for s in result.streams)
    lags = [x for s in result.streams for x in s.send_lag]
    say(f"sockets open and subscribed in {result.connect_seconds:.1f} s; {result.sent} events sent ({events} per "
        f"bridge at {rate:g}/s, {rate * len(result.streams):g}/s offered in all) in {result.send_seconds:.1f} s "
        f"(sends p99 {pct(lags, 99) * 1000:.1f} ms behind schedule)")
    say(f"stored and acked: {acked} of {result.sent}, {result.stored_per_second:.1f} events/s "
        f"(first send → last ack); last delivery {result.drain_seconds:.1f} s after the last send")
    say(f"bridge send → ack (stored, fan-out handed to Redis): {latency_line(result.ack_latencies)}")
    say(f"bridge send → viewer, {result.received} of {result.expected} deliveries: {latency_line(result.latencies)}")
    for problem in result.order_problems()[:5]:
        say(f"ORDER PROBLEM {problem}")


def fanout(platform: Platform, repo: Repo) -> None:
    say(f"one session, {FANOUT_VIEWERS} viewer sockets (50 members, each signed in), one simulated bridge socket")
    [slow] = simulated_streams("fanout-slow", repo, 1, FANOUT_VIEWERS, platform)
    low = asyncio.run(stream_events(platform.ws_url, [slow], FANOUT_SLOW_EVENTS, FANOUT_SLOW_RATE))
    report("fanout_50_low_rate_p99", pct(low.latencies, 99) * 1000, "ms", 1)
    say(f"at {FANOUT_SLOW_RATE:g} events/s (within what one Daphne keeps up with alone):")
    stream_context(low, FANOUT_SLOW_EVENTS, FANOUT_SLOW_RATE)

    [stream] = simulated_streams("fanout", repo, 1, FANOUT_VIEWERS, platform)
    result = asyncio.run(stream_events(platform.ws_url, [stream], FANOUT_EVENTS, FANOUT_RATE))
    lat = result.latencies
    report("fanout_50_p99", pct(lat, 99) * 1000, "ms", 1)
    report("fanout_50_p50", pct(lat, 50) * 1000, "ms", 1)
    report("fanout_50_lost", result.expected - result.received, "deliveries", 0)
    report("fanout_50_stored_rate", result.stored_per_second, "events/s", 1)
    say(f"at {FANOUT_RATE:g} events/s:")
    stream_context(result, FANOUT_EVENTS, FANOUT_RATE)
    goal("fan-out to 50 viewers at 50 events/s, delivery p99", pct(lat, 99) * 1000, "ms", 50)


def concurrent(platform: Platform, repo: Repo) -> None:
    streams = simulated_streams("concurrent", repo, CONCURRENT_SESSIONS, 1, platform)
    result = asyncio.run(stream_events(platform.ws_url, streams, CONCURRENT_EVENTS, CONCURRENT_RATE, grace=30))
    lat = result.latencies
    lost = result.sent - result.received
    problems = result.order_problems()
    report("concurrent_200_lost", lost, "events", 0)
    if lat:
        report("concurrent_200_p99", pct(lat, 99) * 1000, "ms", 1)
        report("concurrent_200_p50", p50(lat) * 1000, "ms", 1)
    report("concurrent_200_stored_rate", result.stored_per_second, "events/s", 1)
    say(f"{CONCURRENT_SESSIONS} sessions, each with its own simulated bridge socket and one viewer socket (a member; "
        f"{2 * CONCURRENT_SESSIONS} sockets on {len(platform.lives)} Daphne(s)); {CONCURRENT_EVENTS} events per "
        f"session (not 50: see docs/benchmarks.md); lost = sent - received once all arrived or nothing arrived "
        f"for 30 s")
    say(f"viewers whose seqs were not exactly 1..n in order, or got an event twice: {len(problems)}")
    stream_context(result, CONCURRENT_EVENTS, CONCURRENT_RATE)
    goal("200 concurrent sessions, events lost", lost, "events", 0)
    goal("200 concurrent sessions, viewers with a gap or duplicate", len(problems), "viewers", 0)
    if lat:
        goal("200 concurrent sessions, delivery p99", pct(lat, 99) * 1000, "ms", 250)


def end_simulated() -> None:
    """The simulated sandboxes have no processes: mark them ended without announcing it to 200 sessions."""
    Sandbox.objects.filter(repo__name=SIMULATED_REPO, state__in=State.LIVE).update(
        state=State.TERMINATED, backend_ref="")
