"""`kubetrade notify`: the Telegram bot (runbook commands) and the alert dispatcher.

Environment: TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID, optional TELEGRAM_ALLOWED_USER_IDS
and TELEGRAM_API_BASE_URL, REDIS_URL, KUBETRADE_REDIS_PREFIX. In a cluster (a
namespace from --namespace, KUBETRADE_NAMESPACE or POD_NAMESPACE) commands change
the Emergency resource, exactly like the API; without one they use the local
desired state in Redis (``kubetrade local``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any

from kubetrade.cli._command import add_cluster_arguments, add_command

EXIT_CONFIG = 2
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "notify", run, "run the Telegram bot and alert dispatcher",
                    "Telegram commands /stop /closeall /resume /status /pnl /positions /help "
                    "for the configured chat, and delivery of every alert in the Redis alert "
                    "stream.")
    add_cluster_arguments(
        p, (_default_namespace(), "act on the Emergency resource in this namespace (default: "
            "$KUBETRADE_NAMESPACE, $POD_NAMESPACE, or the pod's own namespace when running in "
            "a cluster; none = local desired state in Redis)"),
        local="use the local desired state in Redis even inside a cluster",
    )
    p.add_argument("--log-level", default=None, help="default: $LOG_LEVEL or INFO")


def _default_namespace() -> str | None:
    """In a pod the service account's namespace file says where the Emergency lives, so
    the bot takes the cluster path even if the Deployment sets no namespace variable."""
    env = os.environ.get("KUBETRADE_NAMESPACE") or os.environ.get("POD_NAMESPACE")
    if env:
        return env
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            with open(SA_NAMESPACE_FILE, encoding="utf-8") as f:
                return f.read().strip() or None
        except OSError:
            return None
    return None


def _settings() -> Any:
    from pydantic import ValidationError

    from kubetrade.notify.settings import NotifySettings

    try:
        return NotifySettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        # messages name the variable and the rule; input values are not printed
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]).upper() or "settings"
            msg = str(err['msg']).removeprefix('Value error, ').removeprefix(f'{name}: ')
            print(f"kubetrade notify: {name}: {msg}", file=sys.stderr)
        return None


def _desired(args: argparse.Namespace, redis: Any, keys: Any) -> Any:
    if args.local or not args.namespace:
        from kubetrade.state.desired import LocalDesiredState

        return LocalDesiredState(redis, keys)
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    from kubetrade.state.desired_k8s import KubernetesDesiredState

    if args.kubeconfig:
        k8s_config.load_kube_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    else:
        try:
            k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException:
            k8s_config.load_kube_config()  # type: ignore[no-untyped-call]
    return KubernetesDesiredState(args.namespace, k8s.ApiClient(), redis=redis, keys=keys)


async def _main(args: argparse.Namespace, settings: Any) -> int:
    from kubetrade.notify.service import Notifier
    from kubetrade.state.client import connect
    from kubetrade.state.keys import keys_from_env

    url = os.environ.get("REDIS_URL")
    if not url:
        print("kubetrade notify: REDIS_URL: required (alerts are read from Redis)",
              file=sys.stderr)
        return EXIT_CONFIG
    redis = connect(url)
    keys = keys_from_env()
    try:
        desired = _desired(args, redis, keys)
        where = (f"the Emergency resource in namespace {args.namespace}"
                 if not args.local and args.namespace else "local desired state in Redis")
        logging.getLogger("kubetrade.notify").info("notify: commands act on %s", where)
        notifier = Notifier(settings, redis, keys, desired)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, notifier.stop)
        await notifier.run()
    finally:
        await redis.aclose()
    return 0


def run(args: argparse.Namespace) -> int:
    from kubetrade.logs import configure_logging
    from kubetrade.notify.redact import install_secret_redaction

    settings = _settings()
    if settings is None:
        return EXIT_CONFIG
    install_secret_redaction(settings.telegram_bot_token.get_secret_value())
    configure_logging(args.log_level)
    return asyncio.run(_main(args, settings))
