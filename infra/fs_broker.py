"""The embedded broker: kombu's ``filesystem://`` transport with atomic message files.

kombu's own transport creates a message file under its final name and then writes it, while a
consumer takes any file with that name (it moves the file away; the writer's ``flock`` does not
stop a rename). A consumer polling at the wrong moment read an empty file, raised
``JSONDecodeError`` and took the Celery worker down (``synib serve`` with it). It creates a new
exchange table (which queues an exchange routes to) the same way, and a producer reading it
at that moment failed to publish.

Here a message is written under a temporary name that no consumer matches and renamed into
place once complete, and a new exchange table is linked into place with its content (both
atomic on one filesystem). A consumer that still meets a message it cannot
decode (written by something else) logs it and goes on; the job's row is committed before its
message is sent, so the reconciler sends it again.

Importing this module makes ``filesystem://`` URLs use this transport (``infra.broker`` and the
worker's Celery app import it).
"""

from __future__ import annotations

import logging
import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"  # "<name>.<queue>.msg.partial": not "<queue>.msg", never consumed


class Channel(filesystem.Channel):
    # kombu's filesystem.Channel._put already differs from its base's (queue, message).
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Write the message under a temporary name, then rename it into the queue."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as f:
                f.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        """The next message of ``queue``; an undecodable one is logged and skipped."""
        while True:
            try:
                return super()._get(queue)
            except ValueError as exc:  # JSONDecodeError: the file is gone, the next one waits
                log.error("skipped an unreadable message of queue %s: %s", queue, exc)

    def _queue_bind(self, exchange: Any, routing_key: Any, pattern: Any, queue: Any) -> Any:
        """Bind ``queue``; a new exchange table file appears with its content (kombu's own
        creates it empty and then writes it, and a producer reading it then failed)."""
        file = self._exchange_file(exchange)
        if not file.exists():
            self.control_folder.mkdir(parents=True, exist_ok=True)
            row = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
            partial = file.with_name(f"{file.name}.{uuid.uuid4()}{PARTIAL_SUFFIX}")
            partial.write_bytes(dumps([row]).encode())
            try:
                os.link(partial, file)  # create-if-absent, complete: atomic
                return None
            except FileExistsError:  # another process made it meanwhile: update it below
                pass
            finally:
                partial.unlink(missing_ok=True)
        return super()._queue_bind(exchange, routing_key, pattern, queue)


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
