"""gradeflow inside Jupyter: a jupyter-server extension serving the teacher's page at /gradeflow.

There a teacher picks an assignment from the course's gradebook, starts grading (on this
server, sandboxed and in parallel, or on Argo when its client is installed), watches the
progress, retries failed submissions and opens the run's report. Formgrader's sidebar gets a
link to the page. Enable it once per environment:

    jupyter server extension enable pipelines.jupyter

The course is the server's root dir unless `c.GradeflowConfig.course_dir` says otherwise.
See docs/teacher-ui.md.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from traitlets import Int, List, Unicode, default
from traitlets.config import LoggingConfigurable

from steps.params import OnArgo, grade_params

__all__ = [
    "GradeflowConfig",
    "ArgoConfig",
    "argo_config",
    "_jupyter_server_extension_points",
    "_load_jupyter_server_extension",
]


def _grade_args_help() -> str:
    """The help of `grade_args`, generated from the steps' parameters (steps/params.py)."""
    flags = [f"--{p.teacher_flag}" for p in grade_params()]
    on_argo = [f"--{p.teacher_flag}" for p in grade_params() if isinstance(p.argo, OnArgo)]
    not_on_argo = [f"--{p.teacher_flag}" for p in grade_params() if not isinstance(p.argo, OnArgo)]
    return (
        "More `gradeflow grade` arguments, e.g. ['--cell-timeout', '60', '--memory', '2048']. "
        f"The steps' settings: {', '.join(flags)}. A run on Argo takes {', '.join(on_argo)}; "
        f"{', '.join(not_on_argo)} are not applied there (the run's log says why)."
    )


class GradeflowConfig(LoggingConfigurable):
    """Settings of the /gradeflow page (put them in jupyter_server_config.py as c.GradeflowConfig.*)."""

    course_dir = Unicode(
        "", help="The nbgrader course folder (holds nbgrader_config.py). Default: the server's root dir."
    ).tag(config=True)
    jobs = Int(0, help="Parallel execute jobs for local grading. Default (0): the CPU count.").tag(config=True)
    sandbox = Unicode(
        "", help="Sandbox for local grading (gradeflow grade --sandbox). Default: gradeflow's default."
    ).tag(config=True)
    store = Unicode("", help="Artifact store URL (gradeflow grade --store). Default: COURSE_DIR/gradeflow_runs.").tag(
        config=True
    )
    grade_args = List(Unicode(), help=_grade_args_help()).tag(config=True)
    argo_store = Unicode(
        help="The bucket of Argo runs (s3://BUCKET): a finished Argo run is synced into the course from it. "
        "Default: GRADEFLOW_ARGO_STORE."
    ).tag(config=True)

    @default("argo_store")
    def _argo_store_from_env(self) -> str:
        return os.environ.get("GRADEFLOW_ARGO_STORE", "")


@dataclass
class ArgoConfig:
    """How the page reaches Argo, read once at the edge and handed to the jobs."""

    settings: Any  # pipelines.argo.settings.ArgoSettings
    store: str = ""  # the bucket a finished run is synced from; empty: not synced


def argo_config(store: str | None = None, env: Mapping[str, str] | None = None) -> ArgoConfig:
    """The page's Argo settings from the server's environment (the argo CLI's ARGO_* variables,
    KUBECONFIG, the in-cluster account) and its store (GRADEFLOW_ARGO_STORE unless given)."""
    from ..argo.settings import ArgoSettings

    env = os.environ if env is None else env
    return ArgoConfig(ArgoSettings.from_env(env), env.get("GRADEFLOW_ARGO_STORE", "") if store is None else store)


class _State:
    """What the handlers share: the course, where its runs are, and the job manager."""

    def __init__(self, config: GradeflowConfig, root_dir: str, log: Any) -> None:
        from steps.sandbox import DEFAULT_SANDBOX

        from ..store import RUNS_DIR
        from .jobs import JobManager

        self.course_dir = Path(config.course_dir or root_dir).expanduser().resolve()
        self.runs_dir = self.course_dir / RUNS_DIR
        self.sandbox = config.sandbox or DEFAULT_SANDBOX
        jobs = config.jobs or os.cpu_count() or 1
        self.jobs_label = f"{jobs} parallel job(s)"
        args = [
            "--jobs",
            str(jobs),
            "--sandbox",
            self.sandbox,
            *(["--store", config.store] if config.store else []),
            *config.grade_args,
        ]
        self.jobs = JobManager(self.course_dir, args, log, argo=argo_config(config.argo_store))


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "pipelines.jupyter"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from .handlers import handlers

    config = GradeflowConfig(parent=serverapp)
    webapp = serverapp.web_app
    state = _State(config, serverapp.root_dir, serverapp.log)
    webapp.settings["gradeflow"] = state
    webapp.add_handlers(".*$", handlers(webapp.settings["base_url"]))
    atexit.register(state.jobs.stop_all)
    if not link_from_formgrader(webapp, serverapp.log):
        from tornado.ioloop import IOLoop

        IOLoop.current().add_callback(link_from_formgrader, webapp, serverapp.log)  # formgrader may load after us
    serverapp.log.info(
        "gradeflow: grading page at %sgradeflow for course %s", webapp.settings["base_url"], state.course_dir
    )


FORMGRADER_LINK = (
    '<ul class="nav nav-pills nav-stacked" id="gradeflow-nav" style="margin-top:12px">'
    '<li role="presentation"><a href="{{ base_url }}/gradeflow" title="grade submissions in a sandbox, in '
    'parallel">Autograde (gradeflow)</a></li></ul>'
)


def link_from_formgrader(webapp: Any, log: Any) -> bool:
    """Add an "Autograde (gradeflow)" link under Formgrader's sidebar, if Formgrader is loaded.

    Formgrader renders every page from its own base.tpl through a Jinja environment in the
    web app's settings; a copy of that template with our link after the sidebar is put in
    front of it. Any surprise (another nbgrader layout) leaves Formgrader untouched.
    """
    env = webapp.settings.get("nbgrader_jinja2_env")
    if env is None:
        return False
    try:
        from jinja2 import ChoiceLoader, DictLoader

        source, _, _ = env.loader.get_source(env, "base.tpl")
        if "gradeflow-nav" in source:
            return True
        marker = "{%- block sidebar -%}"
        end = source.find("</ul>", source.find(marker))
        if source.find(marker) < 0 or end < 0:
            log.info(
                "gradeflow: Formgrader's sidebar has an unexpected layout; no link added (the page is at /gradeflow)"
            )
            return True
        patched = source[: end + len("</ul>")] + FORMGRADER_LINK + source[end + len("</ul>") :]
        env.loader = ChoiceLoader([DictLoader({"base.tpl": patched}), env.loader])
        if getattr(env, "cache", None) is not None:
            env.cache.clear()
    except Exception:  # noqa: BLE001 - a link is a convenience; never break Formgrader for it
        log.warning("gradeflow: could not add a link to Formgrader (the page is at /gradeflow)", exc_info=True)
    return True
