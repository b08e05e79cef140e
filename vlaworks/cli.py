"""One entry point: ``vlaworks generate | render | train | eval | demo``.

Each command is a thin shell over a library function, so everything the CLI does is
also a Python call. Heavy imports happen inside the commands to keep ``--help`` fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

PerturbOpt = Annotated[
    list[str] | None,
    typer.Option("--perturb", help="FAMILY:SEVERITY, repeatable (e.g. lighting:0.5, camera:1.0)."),
]


@app.command()
def generate(
    suite: Annotated[list[str], typer.Option(help="Task suite(s): spatial, object, goal, long.")],
    episodes: Annotated[int, typer.Option(help="Demonstrations per suite.")],
    out: Annotated[Path, typer.Option(help="Dataset folder to write (LeRobotDataset v3 layout).")],
    seed: int = 0,
    image_size: int = 128,
    perturb: PerturbOpt = None,
    depth: Annotated[bool, typer.Option(help="Also store depth and segmentation per camera.")] = False,
    noise: Annotated[float, typer.Option(help="Scripted expert's action noise (std, action units).")] = 0.1,
    overwrite: bool = False,
    render_check: Annotated[Path | None, typer.Option(help="Also write a PNG of base + wrist views.")] = None,
) -> None:
    """Roll out the scripted expert and write a dataset; print per-suite success and steps/s."""
    from vlaworks.sim.generate import generate as run_generate
    from vlaworks.sim.render_check import render_check as run_render_check

    run_generate(
        suites=suite,
        episodes=episodes,
        out=out,
        seed=seed,
        image_size=image_size,
        perturb=perturb or [],
        depth=depth,
        noise=noise,
        overwrite=overwrite,
    )
    if render_check is not None:
        run_render_check(
            render_check, suite=suite[0], seed=seed, image_size=image_size, perturb=perturb or []
        )


@app.command()
def render(
    out: Annotated[Path, typer.Option(help="PNG to write.")],
    suite: str = "spatial",
    seed: int = 0,
    image_size: int = 256,
    perturb: PerturbOpt = None,
) -> None:
    """Write a picture of the base and wrist views (and depth / segmentation) of one scene."""
    from vlaworks.sim.render_check import render_check

    render_check(out, suite=suite, seed=seed, image_size=image_size, perturb=perturb or [])


if __name__ == "__main__":
    app()
