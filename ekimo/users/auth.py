"""Bearer-token authentication (placeholder until the Accounts issue lands)."""

from __future__ import annotations

from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

from ekimo.container import Container


class _NoAuth(InitPluginProtocol):
    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        return app_config


def auth_plugin(container: Container) -> InitPluginProtocol:
    return _NoAuth()
