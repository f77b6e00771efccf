"""The synib Python client and the ``synib`` CLI: the standard library, httpx and PyYAML only
(``pip install 'synib[client]'``), so it installs and runs without the server or the library.

``from synib_client.client import Client``; the console script is ``synib_client.main:main``.
"""
