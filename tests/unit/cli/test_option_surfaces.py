"""Every surface offers every removal option declared in cutout.options, with its default,
help and limits: the settings, `cutout i`/`p`/`submit`/`report`, the task payload, the HTTP
gateway's form and `remove()`. An option added to the declaration and forgotten in one place
fails here."""

from __future__ import annotations

import dataclasses
import inspect
import io
import subprocess
import sys
from typing import Any

import click
import pytest
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from cutout import api
from cutout.options import (
    BY_NAME,
    JOB_OPTIONS,
    OPTIONS,
    EncodeOptions,
    MattingOptions,
    Option,
    RemovalOptions,
    flat,
    merged,
)
from cutout_cli.i import i_command
from cutout_cli.options import collect
from cutout_cli.p import p_command
from cutout_cli.report import REPORT_OPTIONS, report_command
from cutout_cli.submit import submit_command
from cutout_http.fields import REMBG_ALIASES, form_model, job_options
from settings import Settings, SettingsError, engine, load_settings
from settings.config import env_name
from worker.jobs import JobError, RemoveJob, parse_job

# A value other than the default for each option, valid everywhere.
CHANGED: dict[str, Any] = {
    "model": "u2netp",
    "precision": "bf16",
    "background": "#102030ff",
    "format": "webp",
    "only_mask": True,
    "crop": True,
    "crop_margin": 3,
    "refine": "guided",
    "matting_fg_threshold": 200,
    "matting_bg_threshold": 20,
    "matting_erode_size": 4,
    "post_process_mask": True,
    "decontaminate": True,
    "exact_colours": True,
    "blur_radius": 7.5,
    "png_compress_level": 9,
    "webp_quality": 70,
    "jpeg_quality": 80,
    "max_pixels": 1_000_000,
}


def test_every_option_has_a_changed_value_here() -> None:
    assert set(CHANGED) == set(BY_NAME)
    assert all(CHANGED[o.name] != o.default for o in OPTIONS)


def _leaves(cls: type, prefix: str = "") -> set[str]:
    places = set()
    for f in dataclasses.fields(cls):
        kind = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if kind in (MattingOptions, EncodeOptions):
            places |= _leaves(kind, f"{prefix}{f.name}.")  # type: ignore[arg-type]
        else:
            places.add(prefix + f.name)
    return places


def test_every_engine_field_is_an_option_and_defaults_agree() -> None:
    assert _leaves(RemovalOptions) == {o.place for o in OPTIONS if o.place}
    assert flat(RemovalOptions()) == {o.name: o.default for o in OPTIONS if o.place}


@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: o.name)
def test_settings_take_the_option(opt: Option, monkeypatch: pytest.MonkeyPatch) -> None:
    field = Settings.model_fields[opt.setting_name]
    assert (field.default, field.description) == (opt.default, opt.help)
    value = CHANGED[opt.name]
    monkeypatch.setenv(env_name(opt.setting_name), str(value))
    settings = load_settings()
    assert getattr(settings, opt.setting_name) == (value if opt.name != "format" else "webp")
    for bad in _out_of_range(opt):
        monkeypatch.setenv(env_name(opt.setting_name), str(bad))
        with pytest.raises(SettingsError, match=env_name(opt.setting_name)):
            load_settings()


@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: o.name)
def test_the_task_payload_takes_every_option_a_job_may_set(opt: Option) -> None:
    if not opt.per_job:
        # The operator's limit: a job asking to raise it is refused, not obeyed.
        with pytest.raises(JobError, match=f"{opt.name}: Extra inputs are not permitted"):
            parse_job({"input_path": "a.jpg", opt.name: CHANGED[opt.name]}, inline_max_bytes=1)
        return
    field = RemoveJob.model_fields[opt.name]
    assert (field.default, field.description) == (None, opt.help)
    job = parse_job({"input_path": "a.jpg", opt.name: CHANGED[opt.name]}, inline_max_bytes=1)
    assert job.options() == {opt.name: CHANGED[opt.name]}
    for bad in _out_of_range(opt):
        with pytest.raises(JobError, match=opt.name):
            parse_job({"input_path": "a.jpg", opt.name: bad}, inline_max_bytes=1)


def test_a_job_setting_every_option_gets_each_in_the_engine() -> None:
    payload = {o.name: CHANGED[o.name] for o in JOB_OPTIONS}
    job = parse_job({"input_path": "a.jpg", **payload}, inline_max_bytes=1)
    options = merged(job.options(), RemovalOptions(), local=False)
    expected = {k: v for k, v in payload.items() if k in flat(options)}
    assert {k: flat(options)[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (i_command, OPTIONS),
        (p_command, OPTIONS),
        (submit_command, JOB_OPTIONS),
        (report_command, REPORT_OPTIONS),
    ],
    ids=["i", "p", "submit", "report"],
)
def test_commands_take_the_options(command: click.Command, options: tuple[Option, ...]) -> None:
    params = {p.name: p for p in command.params if isinstance(p, click.Option)}
    for opt in options:
        param = params[opt.name]
        assert set(opt.cli_flags) <= set(param.opts), opt.name
        assert param.default is None, f"{opt.name}: not given must mean the setting"
        assert env_name(opt.setting_name) in (param.help or "")


def _form(**fields: str) -> dict[str, Any]:
    """The gateway's form as a browser or curl sends it: every value a string."""
    upload = UploadFile(io.BytesIO(b""), filename="a.jpg")
    form = form_model().model_validate({"file": upload, **fields})
    return {name: getattr(form, name) for name in type(form).model_fields if name != "file"}


@pytest.mark.parametrize("opt", JOB_OPTIONS, ids=lambda o: o.name)
def test_the_gateway_form_takes_every_option_a_job_may_set(opt: Option) -> None:
    field = form_model().model_fields[opt.name]
    assert (field.default, field.description) == (None, opt.help)
    assert job_options(_form(**{opt.name: str(CHANGED[opt.name])})) == {opt.name: CHANGED[opt.name]}
    for bad in _out_of_range(opt):
        with pytest.raises(ValidationError, match=opt.name):
            _form(**{opt.name: str(bad)})


def test_the_gateway_form_takes_rembgs_names_for_ours() -> None:
    """`rembg s`'s form fields, mapped onto the options they mean, with the options' limits."""
    rembg = {
        "om": "true",
        "ppm": "true",
        "af": "200",
        "ab": "20",
        "ae": "4",
        "a": "true",
        "dc": "true",
    }
    assert job_options(_form(**rembg, bgc="16,32,48,255", model="u2netp")) == {
        "model": "u2netp",
        **{name: CHANGED[name] for name in REMBG_ALIASES.values()},
        "refine": "matting",
        "background": "#102030ff",
    }
    for alias, name in REMBG_ALIASES.items():
        bounds = form_model().model_fields[alias].metadata
        assert bounds == form_model().model_fields[name].metadata, alias


def test_the_command_line_reaches_the_engine() -> None:
    """Every flag of `cutout i`, parsed by click, lands in the options the engine runs with."""
    argv = ["in.jpg", "out.png"]
    for opt in OPTIONS:
        flag = opt.cli_flags[-1]
        argv += [flag] if opt.type is bool else [flag, str(CHANGED[opt.name])]
    context = i_command.make_context("i", argv)
    given = collect(dict(context.params))
    options = merged(given, engine.removal_options(load_settings()))
    assert flat(options) == {o.name: CHANGED[o.name] for o in OPTIONS if o.place}


def test_remove_takes_every_option_with_its_default() -> None:
    keywords = (
        inspect.signature(api.remove).parameters | inspect.signature(api.new_session).parameters
    )
    for opt in OPTIONS:
        assert keywords[opt.name].default == opt.default, opt.name


def test_the_engine_checks_the_limits_whoever_calls_it() -> None:
    with pytest.raises(ValueError, match="crop_margin: -1 is out of range"):
        RemovalOptions(crop_margin=-1)
    with pytest.raises(ValueError, match="blur_radius: 0 is out of range; accepted: above 0"):
        merged({"blur_radius": 0})
    with pytest.raises(ValueError, match="unknown option 'colour'"):
        merged({"colour": "red"})


def test_the_declaration_loads_no_engine() -> None:
    """Settings, the payload and the watcher read the options without numpy or ONNX Runtime."""
    code = (
        "import sys, cutout.options, settings.config, worker.jobs; "
        "print(sorted(m for m in ('numpy', 'onnxruntime', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _out_of_range(opt: Option) -> list[Any]:
    bad: list[Any] = []
    if opt.ge is not None:
        bad.append(opt.type(opt.ge) - 1)
    if opt.gt is not None:
        bad.append(opt.type(opt.gt))
    if opt.le is not None:
        bad.append(opt.type(opt.le) + 1)
    return bad
