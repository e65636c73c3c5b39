"""The removal options on the command line, made from their one declaration
(cutout.options): `i`, `p` and `report` take them all, `submit` those a job may set.
A value not given is None: the setting (or the default) applies."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from cutout.models import FAMILIES
from cutout.options import JOB_OPTIONS, OPTIONS, Option, merged
from cutout.pipeline import Remover
from settings import Settings, engine
from settings.config import env_name

F = TypeVar("F", bound=Callable[..., Any])


def _click_option(opt: Option) -> Callable[[F], F]:
    decls = [opt.name, *opt.cli_flags]
    kind: Any = None
    if opt.type is bool:
        decls[-1] += "/--no-" + decls[-1].removeprefix("--")  # both ways, over a setting
    elif opt.choices:
        kind = click.Choice(opt.choices, case_sensitive=False)
    elif opt.type is int:
        kind = click.IntRange(opt.ge, opt.le)  # type: ignore[arg-type]
    elif opt.type is float:
        low = opt.gt if opt.gt is not None else opt.ge
        kind = click.FloatRange(low, opt.le, min_open=opt.gt is not None)
    return click.option(
        *decls, type=kind, default=None, help=f"{opt.help} [{env_name(opt.setting_name)}]"
    )


def option_flags(options: Iterable[Option] = OPTIONS) -> Callable[[F], F]:
    """Decorate a command with these options (in declaration order in --help)."""
    chosen = list(options)

    def decorate(func: F) -> F:
        for opt in reversed(chosen):
            func = _click_option(opt)(func)
        return func

    return decorate


removal_options = option_flags(OPTIONS)
job_options = option_flags(JOB_OPTIONS)


def model_file_flags(func: F) -> F:
    """`--model-path FILE --model-family NAME`: your own ONNX file, for the commands that
    run the model in-process (a job never names a file: README "The task contract")."""
    func = click.option(
        "--model-family",
        type=click.Choice(tuple(FAMILIES)),
        default=None,
        help="How --model-path's file is fed: its family (default: --model's). "
        f"[{env_name('model_family')}]",
    )(func)
    return click.option(
        "--model-path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="Your own ONNX file, used as given, in place of --model's. "
        f"[{env_name('model_path')}]",
    )(func)


def with_model_file(settings: Settings, params: dict[str, Any]) -> Settings:
    """The settings with the command line's own model file, taken out of `params`."""
    path: Path | None = params.pop("model_path", None)
    family: str | None = params.pop("model_family", None)
    if family is not None and path is None and settings.model_path is None:
        raise click.UsageError("--model-family says how to feed your own file: give --model-path")
    update: dict[str, Any] = {}
    if path is not None:
        update["model_path"] = path.expanduser()
    if family is not None:
        update["model_family"] = family
    return settings.model_copy(update=update) if update else settings


def collect(params: dict[str, Any], options: Iterable[Option] = OPTIONS) -> dict[str, Any]:
    """Take the options out of a command's parameters: those given, by name."""
    given = {opt.name: params.pop(opt.name, None) for opt in options}
    return {name: value for name, value in given.items() if value is not None}


def build_remover(settings: Settings, given: dict[str, Any]) -> Remover:
    """Load the model and bind the options: command line over settings over defaults."""
    options = merged(given, engine.removal_options(settings))
    session = engine.model_session(settings, given.get("model"), precision=given.get("precision"))
    return Remover(session, options)
