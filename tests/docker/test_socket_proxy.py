"""The docker socket proxy's rules (docker/socket-proxy/haproxy.cfg) in front of the real
engine: DockerOperator's calls pass, the rest of the Docker API answers 403."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import docker
import pytest
from compose_helpers import ROOT

SERVICES_IMAGE = "nightly-retrain-services:standin"
PROBE_IMAGE = "nightly-retrain-base:bookworm"


@pytest.fixture(scope="module")
def proxy(docker_client) -> Iterator[docker.APIClient]:
    """HAProxy with the stack's config, published on a free loopback port; a low-level client
    (the one DockerOperator uses) pointed at it."""
    with running_proxy(docker_client, {}) as client:
        yield client


@contextmanager
def running_proxy(docker_client, environment: dict[str, str]) -> Iterator[docker.APIClient]:
    try:
        docker_client.images.get(SERVICES_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{SERVICES_IMAGE} is not built; run `make standin-images`")
    container = docker_client.containers.run(
        SERVICES_IMAGE,
        ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"],
        name=f"socket-proxy-test-{uuid.uuid4().hex[:8]}",
        volumes={
            str(ROOT / "docker" / "socket-proxy" / "haproxy.cfg"): {
                "bind": "/usr/local/etc/haproxy/haproxy.cfg",
                "mode": "ro",
            },
            "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
        },
        ports={"2375/tcp": ("127.0.0.1", None)},
        environment=environment,
        detach=True,
    )
    try:
        client = None
        for _ in range(60):
            container.reload()
            bindings = container.ports.get("2375/tcp")
            if bindings:
                try:
                    client = docker.APIClient(base_url=f"tcp://127.0.0.1:{bindings[0]['HostPort']}")
                    client.ping()
                    break
                except (docker.errors.DockerException, OSError):
                    client = None
            time.sleep(0.5)
        assert client is not None, container.logs().decode()[-2000:]
        yield client
    finally:
        container.remove(force=True)


def assert_forbidden(call, *args, **kwargs) -> None:
    with pytest.raises(docker.errors.APIError) as caught:
        call(*args, **kwargs)
    assert caught.value.response.status_code == 403


def test_the_calls_docker_operator_makes_pass(proxy, docker_client):
    docker_client.images.get(PROBE_IMAGE)
    assert proxy.images(name=PROBE_IMAGE)
    container = proxy.create_container(
        PROBE_IMAGE, ["sh", "-c", "echo trained"], name=f"proxy-probe-{uuid.uuid4().hex[:8]}"
    )
    try:
        stream = proxy.attach(container["Id"], stdout=True, stderr=True, stream=True)
        proxy.start(container["Id"])
        output = b"".join(stream)
        assert proxy.wait(container["Id"])["StatusCode"] == 0
        assert b"trained" in output
        assert b"trained" in proxy.logs(container["Id"])
        assert proxy.inspect_container(container["Id"])["State"]["Status"] == "exited"
        proxy.stop(container["Id"], timeout=1)
    finally:
        proxy.remove_container(container["Id"], force=True)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(container["Id"])


def test_everything_else_is_refused(proxy):
    container = proxy.create_container(
        PROBE_IMAGE, ["sleep", "30"], name=f"proxy-probe-{uuid.uuid4().hex[:8]}"
    )
    try:
        proxy.start(container["Id"])
        assert_forbidden(proxy.exec_create, container["Id"], ["id"])
        assert_forbidden(proxy.put_archive, container["Id"], "/tmp", b"")
        assert_forbidden(proxy.get_archive, container["Id"], "/etc/passwd")
        exported = proxy.get(f"{proxy.base_url}/containers/{container['Id']}/export")
        assert exported.status_code == 403  # a raw request: export streams, it never raises
        assert_forbidden(proxy.commit, container["Id"], repository="stolen")
    finally:
        proxy.remove_container(container["Id"], force=True)
    assert_forbidden(proxy.create_volume, name=f"proxy-probe-{uuid.uuid4().hex[:8]}")
    assert_forbidden(proxy.create_network, f"proxy-probe-{uuid.uuid4().hex[:8]}")
    assert_forbidden(proxy.remove_image, PROBE_IMAGE)
    assert_forbidden(proxy.prune_containers)
    assert_forbidden(proxy.df)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/build"),
        ("POST", "/images/load"),
        ("POST", "/images/nightly-retrain-base:bookworm/push"),
        ("POST", "/auth"),
        ("POST", "/swarm/init"),
        ("GET", "/secrets"),
        ("GET", "/plugins"),
        ("GET", "/events"),
        ("GET", "/info"),
        ("POST", "/v1.41/session"),
    ],
)
def test_engine_wide_endpoints_are_refused(proxy, method, path):
    # Raw requests: docker-py's streaming helpers do not raise on an error status.
    response = proxy.request(method, proxy.base_url + path)
    assert response.status_code == 403, response.text


# A registry that refuses connections at once: a pull that passes the proxy fails at the engine.
UNREACHABLE_IMAGE = "127.0.0.1:1/nightly-retrain-elsewhere:latest"


def test_image_pulls_are_refused_unless_the_deployment_turns_them_on(proxy, docker_client):
    """A pull would run whatever a registry serves under the image's name with the S3 keys."""
    refused = proxy.post(f"{proxy.base_url}/images/create", params={"fromImage": UNREACHABLE_IMAGE})
    assert refused.status_code == 403, refused.text
    with running_proxy(docker_client, {"RETRAIN_ALLOW_IMAGE_PULLS": "true"}) as pulling:
        passed = pulling.post(f"{pulling.base_url}/images/create", params={"fromImage": UNREACHABLE_IMAGE})
        assert passed.status_code != 403, "the deployment turned pulls on; the proxy still refused"
