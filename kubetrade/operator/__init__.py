"""Kopf handlers that turn custom resources into runner Deployments and Jobs."""
