"""The few Kubernetes calls the operator makes itself (Kopf does the watching).

Writes are server-side apply with one field manager, so "create or update" is one
idempotent call: an operator restarted mid-reconcile re-applies the same object and
the API server converges it, never a duplicate. The ``kubernetes`` client is
synchronous; calls run in worker threads.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from kubetrade.resources import PLURALS

FIELD_MANAGER = "kubetrade-operator"

_CORE_PLURALS = {
    ("apps/v1", "Deployment"): "deployments",
    ("batch/v1", "Job"): "jobs",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
}


def new_api_client(kubeconfig: str | None = None) -> k8s.ApiClient:
    """In a pod the service account, elsewhere the kubeconfig (KUBECONFIG or ~/.kube)."""
    try:
        k8s_config.load_incluster_config()
        return k8s.ApiClient()
    except k8s_config.ConfigException:
        api: k8s.ApiClient = k8s_config.new_client_from_config(config_file=kubeconfig)
        return api


def _path(api_version: str, plural: str, namespace: str, name: str | None = None) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


def plural_of(manifest: dict[str, Any]) -> str:
    key = (manifest["apiVersion"], manifest["kind"])
    if key in _CORE_PLURALS:
        return _CORE_PLURALS[key]
    return PLURALS[manifest["kind"]]


class Kube:
    """Async wrapper over one ApiClient."""

    def __init__(self, api_client: k8s.ApiClient) -> None:
        self.api = api_client

    def close(self) -> None:
        """Close the client's connection pool."""
        self.api.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> Any:
        """One API call in a worker thread (the client blocks); the JSON reply, None when
        empty. ApiException on a status outside 2xx."""

        def call() -> Any:
            method_, url, headers, payload, _ = self.api.param_serialize(
                method=method,
                resource_path=path,
                query_params=query or [],
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(method_, url, headers, payload, _request_timeout=30)
            response.read()
            if not 200 <= response.status <= 299:
                raise ApiException(http_resp=response)
            return json.loads(response.data) if response.data else None

        return await asyncio.to_thread(call)

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply (create or update) of a namespaced object we own."""
        meta = manifest["metadata"]
        path = _path(manifest["apiVersion"], plural_of(manifest), meta["namespace"], meta["name"])
        result: dict[str, Any] = await self.request(
            "PATCH",
            path,
            json.dumps(manifest),
            "application/apply-patch+yaml",
            [("fieldManager", FIELD_MANAGER), ("force", "true")],
        )
        return result

    async def create(self, manifest: dict[str, Any]) -> bool:
        """Create unless it exists (by name); True when this call created it."""
        meta = manifest["metadata"]
        path = _path(manifest["apiVersion"], plural_of(manifest), meta["namespace"])
        try:
            await self.request("POST", path, manifest, query=[("fieldManager", FIELD_MANAGER)])
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def get(
        self, api_version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.request(
                "GET", _path(api_version, plural, namespace, name)
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return result

    async def delete(self, api_version: str, plural: str, namespace: str, name: str) -> bool:
        try:
            await self.request(
                "DELETE",
                _path(api_version, plural, namespace, name),
                {"propagationPolicy": "Background"},
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def merge_patch(
        self,
        api_version: str,
        plural: str,
        namespace: str,
        name: str,
        body: dict[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any] | None:
        path = _path(api_version, plural, namespace, name)
        if subresource:
            path += f"/{subresource}"
        try:
            result: dict[str, Any] = await self.request(
                "PATCH", path, body, "application/merge-patch+json"
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return result
