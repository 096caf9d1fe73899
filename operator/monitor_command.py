"""`quartermaster monitor`: a live view of the pools and what the operator did, refreshed
every `--interval` seconds until Ctrl-C (exit code 0, the terminal as it was).

Each pool's resources get a bar against capacity: `█` what is used (the requests where
there is no usage yet), `▒` up to the forecast, `░` the rest; then the pressure level and
the most recent decisions and actions (`quartermaster history`'s entries). On a terminal it
is drawn with rich's Live display on the alternate screen, as `top` is; otherwise (a pipe,
a file, a CI log) it prints plain lines once per interval, or once with `--once`.

`pool_lines`, `bar` and `plain_lines` are pure; `run` reads, draws and sleeps.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Mapping, Optional

from quartermaster.operator import cli_client, history_command
from quartermaster.operator.cli_client import number
from quartermaster.operator.quantities import RESOURCES

BAR_WIDTH = 30
RECENT = 8  # how many of the newest history entries the view shows
LEVEL_STYLE = {"Normal": "green", "Warning": "yellow", "Critical": "red", "Emergency": "bold red"}


@dataclass(frozen=True)
class PoolLine:
    """One resource of one pool, as the status reports it (amounts as written there)."""

    pool: str
    resource: str
    capacity: str
    used: Optional[str]
    requested: Optional[str]
    forecast: Optional[str]
    pressure: str

    def share(self, amount: Optional[str]) -> Optional[float]:
        capacity, value = number(self.capacity), number(amount)
        return None if not capacity or value is None else value / capacity

    @property
    def load(self) -> Optional[str]:
        """What the solid part of the bar shows: the usage, else the requests."""
        return self.used if self.used is not None else self.requested


def pool_lines(pools: Iterable[Mapping]) -> list[PoolLine]:
    """A line per pool and resource with a capacity, pools by name."""
    lines = []
    for pool in sorted(pools, key=cli_client.qualified_name):
        status = pool.get("status") or {}
        for resource in RESOURCES:
            capacity = (status.get("capacity") or {}).get(resource)
            if number(capacity):
                lines.append(PoolLine(
                    pool["metadata"]["name"], resource, str(capacity),
                    *((status.get(f) or {}).get(resource) for f in ("used", "requested", "forecast")),
                    (status.get("pressure") or {}).get(resource, "-")))
    return lines


def bar(load: Optional[float], forecast: Optional[float], width: int = BAR_WIDTH, glyphs: str = "█▒░") -> str:
    """`width` cells: the load's share of capacity solid, shaded on to the forecast's, the rest empty."""
    solid = round(min(max(load or 0.0, 0.0), 1.0) * width)
    shaded = max(solid, round(min(max(forecast or 0.0, 0.0), 1.0) * width))
    return glyphs[0] * solid + glyphs[1] * (shaded - solid) + glyphs[2] * (width - shaded)


def _percent(share: Optional[float]) -> str:
    return "-" if share is None else f"{share:.0%}"


def plain_lines(lines: Iterable[PoolLine], recent: Iterable[Mapping], now: datetime) -> list[str]:
    """The view as plain text, one fact a line, each starting with the time (for logs and grep)."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    shown = [f"{stamp} pool {p.pool} {p.resource} [{bar(p.share(p.load), p.share(p.forecast), glyphs='#+.')}] "
             f"used {p.used or '-'} requested {p.requested or '-'} forecast {p.forecast or '-'} "
             f"capacity {p.capacity} ({_percent(p.share(p.load))} now, {_percent(p.share(p.forecast))} forecast) "
             f"pressure {p.pressure}" for p in lines]
    shown += [f"{stamp} action {e['time']} {e['kind']}/{e['name']} {e['reason']}: {e['message']}" for e in recent]
    return shown or [f"{stamp} no pools and no recorded actions"]


def _view(lines: list[PoolLine], recent: list[dict], now: datetime, interval: float, problem: Optional[str]):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    pools = Table(title="Pools: used █, forecast ▒, against capacity", title_justify="left", expand=False)
    for column in ("POOL", "RESOURCE", "LOAD", "USED", "REQUESTED", "FORECAST", "CAPACITY", "PRESSURE"):
        pools.add_column(column, no_wrap=True)
    for p in lines:
        style = LEVEL_STYLE.get(p.pressure, "")
        pools.add_row(p.pool, p.resource, Text(bar(p.share(p.load), p.share(p.forecast)), style=style),
                      p.used or "-", p.requested or "-", f"{p.forecast or '-'} ({_percent(p.share(p.forecast))})",
                      p.capacity, Text(p.pressure, style=style))
    actions = Table(title="Recent decisions and actions", title_justify="left")
    for column in ("AGE", "OBJECT", "REASON", "MESSAGE"):
        actions.add_column(column, no_wrap=column != "MESSAGE")
    for row in history_command.table(recent, now)[1:]:
        actions.add_row(row[0], f"{row[1] + '/' if row[1] else ''}{row[2]}", row[4], row[6])
    header = Text(f"Quartermaster — {now:%H:%M:%S} UTC, every {interval:g}s — Ctrl-C to quit", style="bold")
    parts = [header, pools, actions]
    if problem:
        parts.insert(1, Text(f"the last refresh failed, showing the one before: {problem}", style="red"))
    return Group(*parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between refreshes (default 5)")
    parser.add_argument("--once", action="store_true", help="read and show once, then exit")
    cli_client.add_cluster_arguments(parser)


def run(options: argparse.Namespace) -> int:
    if options.interval <= 0:
        print("quartermaster monitor: --interval must be more than 0 seconds", file=sys.stderr)
        return 1

    def snapshot() -> tuple[list[PoolLine], list[dict], datetime]:
        api, namespace = cli_client.api_client(options), cli_client.namespace(options)
        objects, now = cli_client.list_objects(api, namespace), datetime.now(timezone.utc)
        recent = history_command.history(objects, history_command.read_events(api, namespace), now,
                                         namespace=namespace)[:RECENT]
        return pool_lines(objects.get("resourcepools") or []), recent, now

    def watch() -> int:
        try:
            shown = snapshot()  # a cluster that cannot be read at the start ends the command (guarded)
            if sys.stdout.isatty():
                _live(options, snapshot, shown)
            else:
                _plain(options, snapshot, shown)
        except KeyboardInterrupt:
            pass
        return 0
    return cli_client.guarded("monitor", watch)


def _plain(options: argparse.Namespace, snapshot, shown) -> None:
    while True:
        print("\n".join(plain_lines(*shown)), flush=True)
        if options.once:
            return
        time.sleep(options.interval)
        shown, problem = _refreshed(snapshot, shown)
        if problem:
            print(f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} refresh failed, the last figures follow: {problem}")


def _refreshed(snapshot, shown):
    """A new snapshot, or the last one and what went wrong: a monitor outlives a blip."""
    try:
        return snapshot(), None
    except cli_client.cluster_errors() as error:
        return shown, cli_client.explain(error)


def _live(options: argparse.Namespace, snapshot, shown) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console()
    if options.once:
        console.print(_view(*shown, options.interval, None))
        return
    # On the alternate screen, as top: Ctrl-C (KeyboardInterrupt) leaves it, restoring the terminal.
    with Live(_view(*shown, options.interval, None), console=console, screen=True, auto_refresh=False) as live:
        while True:
            time.sleep(options.interval)
            shown, problem = _refreshed(snapshot, shown)
            live.update(_view(*shown, options.interval, problem), refresh=True)
