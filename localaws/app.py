"""moto's WSGI application, with the routing tweak of ``localaws.server``, for a WSGI server to import."""

from __future__ import annotations

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from . import server as _tuned  # noqa: F401 - moto's routing tweak

app = DomainDispatcherApplication(create_backend_app)
