"""The Argo client reads its configuration only at the edges, and finds a run group's shards in a store.

Scenario: the environment names an Argo Server, an in-cluster account and a bucket
(ARGO_SERVER, KUBERNETES_SERVICE_HOST, GRADEFLOW_ARGO_STORE), but the settings and store a
library call is given say otherwise: the call follows what it was given. `ArgoSettings.from_env`
(called by the CLI and the Jupyter page with `os.environ`) turns every documented variable into
settings. A store holding the shard folders of two run groups and a look-alike run gives back
exactly the shards of the group asked for, also for a run id cut to fit 63 characters.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.argo.workflow import shard_run_ids
from pipelines.client import ArgoSettings, KubernetesBackend, connect, shards_in_store, sync
from pipelines.jupyter import GradeflowConfig, argo_config
from steps.errors import TeacherError


def test_kubeconfig_and_the_in_cluster_account_come_from_the_environment_given() -> None:
    inside = ArgoSettings.from_env({"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert (inside.in_cluster, inside.kubeconfig) == (True, None)
    pointed = ArgoSettings.from_env({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBECONFIG": "/a:/b"})
    assert (pointed.in_cluster, pointed.kubeconfig) == (False, "/a:/b")  # KUBECONFIG wins, as before
    assert ArgoSettings.from_env({}, kube_context="c").kube_context == "c"


def test_library_calls_follow_their_arguments_not_the_environment(
    squares_course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGO_SERVER", "127.0.0.1:9")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("GRADEFLOW_ARGO_STORE", f"file://{tmp_path}/store")
    from kubernetes import config

    loaded: list[tuple[str, str | None]] = []

    def refuse(how: str):
        def load(config_file: str | None = None, **kwargs: object) -> None:
            loaded.append((how, config_file))
            raise config.ConfigException("refused by the test")

        return load

    monkeypatch.setattr(config, "load_incluster_config", refuse("in-cluster"))
    monkeypatch.setattr(config, "new_client_from_config", refuse("kubeconfig"))
    # no server in the settings: the Kubernetes API, with the kubeconfig the settings name
    settings = ArgoSettings(kubeconfig=str(tmp_path / "no-such-kubeconfig"))
    with pytest.raises(TeacherError, match="no usable kubeconfig"):
        connect(settings)
    assert loaded == [("kubeconfig", settings.kubeconfig)]
    with pytest.raises(TeacherError, match="no usable kubeconfig"):
        KubernetesBackend(ArgoSettings(in_cluster=True))
    assert loaded[-1] == ("in-cluster", None)
    # no store given: sync says which one it needs, whatever GRADEFLOW_ARGO_STORE holds
    with pytest.raises(TeacherError, match="sync needs the bucket"):
        sync("ps1-x", squares_course)


def test_the_jupyter_page_reads_its_argo_configuration_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADEFLOW_ARGO_STORE", "s3://from-env")
    assert GradeflowConfig().argo_store == "s3://from-env"
    cfg = argo_config(env={"ARGO_SERVER": "argo.example.edu:443", "GRADEFLOW_ARGO_STORE": "s3://b"})
    assert (cfg.settings.server, cfg.store) == ("argo.example.edu:443", "s3://b")
    assert argo_config("s3://configured", env={"GRADEFLOW_ARGO_STORE": "s3://b"}).store == "s3://configured"


@pytest.mark.parametrize("run", ["big", "ps1-final-" + "x" * 50])
def test_a_run_groups_shards_are_found_in_the_store(tmp_path: Path, run: str) -> None:
    base = tmp_path / "gradeflow"
    ids = shard_run_ids(run, 3)
    for rid in [*ids, *shard_run_ids("other", 3), f"{run}-final", f"{run}x-1of2"]:
        (base / rid).mkdir(parents=True)
        (base / rid / "manifest.json").write_text("{}")
    assert all(len(i) <= 63 for i in ids)
    assert shards_in_store(run, str(tmp_path)) == ids
    assert shards_in_store("ps1", str(tmp_path)) == []
    assert shards_in_store("Not A Run Id", str(tmp_path)) == []
