"""``hashmesh sim``: run the deterministic DHT simulator and print its figures.

A thin shell over :func:`hashmesh.sim.runner.run`: options become a
:class:`~hashmesh.sim.runner.SimParams`, the result becomes a table or one JSON
object, and ``--plot`` writes a PNG of the hop and latency distributions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hashmesh.cli import render
from hashmesh.cli.common import JsonOpt

_Frac = Annotated[float, typer.Option(min=0.0, max=1.0)]


def sim(
    nodes: Annotated[int, typer.Option("--nodes", "-n", min=2, help="Nodes at start.")] = 1000,
    lookups: Annotated[
        int, typer.Option("--lookups", "-l", min=0, help="Lookups to measure.")
    ] = 1000,
    churn: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Fraction of nodes that depart (and as many join) during the window.",
        ),
    ] = 0.0,
    dead: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fraction of nodes silently dead.")
    ] = 0.0,
    adversarial: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fraction of nodes that lie.")
    ] = 0.0,
    adversary_mode: Annotated[
        str, typer.Option(help="How adversaries lie: collude, random or silent.")
    ] = "collude",
    disjoint: Annotated[int, typer.Option(min=1, help="Disjoint lookup paths (d).")] = 1,
    k: Annotated[int, typer.Option("--k", min=1, help="Bucket size / replication.")] = 20,
    alpha: Annotated[int, typer.Option("--alpha", min=1, help="Lookup parallelism.")] = 3,
    loss: Annotated[float, typer.Option(min=0.0, max=0.99, help="Message loss probability.")] = 0.0,
    values: Annotated[
        int, typer.Option(min=0, help="Store this many values, churn their holders, get them back.")
    ] = 0,
    republish: Annotated[
        bool,
        typer.Option("--republish/--no-republish", help="Republish timers on (values scenario)."),
    ] = True,
    window: Annotated[
        float, typer.Option(min=1.0, help="Virtual seconds over which lookups and churn spread.")
    ] = 600.0,
    build: Annotated[
        str, typer.Option(help="How tables are built: auto, join (real bootstraps) or oracle.")
    ] = "auto",
    latency_ms: Annotated[float, typer.Option(min=0.1, help="Median one-way link latency.")] = 50.0,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same figures.")] = 1,
    json_out: JsonOpt = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG of hop and latency histograms.")
    ] = None,
) -> None:
    """Simulate a network of real DHT cores on a virtual clock and measure lookups."""
    from hashmesh.sim.plot import render as render_png
    from hashmesh.sim.report import table_rows
    from hashmesh.sim.runner import SimParams, run

    params = SimParams(
        nodes=nodes,
        lookups=lookups,
        seed=seed,
        k=k,
        alpha=alpha,
        disjoint=disjoint,
        loss=loss,
        churn=churn,
        dead=dead,
        adversarial=adversarial,
        adversary_mode=adversary_mode,
        values=values,
        republish=republish,
        build=build,
        window=window,
        latency_ms=latency_ms,
    )
    result = run(params)
    latencies = result.pop("_latencies_ms")
    if plot is not None:
        hops = [int(h) for h, n in result["hops_histogram"].items() for _ in range(n)]
        plot.write_bytes(render_png(hops, latencies))
    if json_out:
        render.print_json(result)
        return
    render.key_values(table_rows(result))
    if plot is not None:
        render.out(f"plot written to {plot}")


def register(app: typer.Typer) -> None:
    """Add ``sim`` to ``app``."""
    app.command("sim")(sim)
