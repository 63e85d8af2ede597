"""The server's limits: upload size, image checks, admission with a bounded queue.

Uploads are parsed in memory by :func:`read_form` (python-multipart's
streaming parser fed chunk by chunk): Starlette's own form parser spools
files over 1 MB to a temporary file, and an uploaded photo must never touch
the disk. Nothing here logs a photo, its EXIF or its bytes.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, Request

__all__ = ["Admission", "Form", "Limits", "Ticket", "cores", "decode_upload", "read_form"]

MB = 1024 * 1024
#: Room for the form's text fields and multipart headers beyond the images themselves.
_FORM_SLACK = 64 * 1024


def cores() -> int:
    """CPU cores this process may run on (its affinity under ``taskset`` or a container's
    cpuset, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Limits:
    """Limits of one server.

    Attributes
    ----------
    max_upload_mb
        Largest image accepted (413 above it).
    max_batch
        Most images in one ``/v1/predict/batch`` request (413 above it).
    max_concurrent
        Forward passes running at once.
    max_queue
        Requests admitted but not in a running forward pass (reading their
        upload, decoding, waiting for a pass); more get 503 + ``Retry-After``.
    batch_size
        Most images in one forward pass (``trigeo predict --batch-size``);
        1 turns batching off.
    batch_wait_ms
        How long a forward pass waits to fill while more requests are on
        their way (it starts at once when none are).
    max_pixels
        Decompression-bomb guard (``None``: Pillow's ``MAX_IMAGE_PIXELS``).
    max_top_k
        Largest ``top_k`` a request may ask for.
    """

    max_upload_mb: float = 20.0
    max_batch: int = 16
    max_concurrent: int = 1
    max_queue: int = 32
    batch_size: int = 16
    batch_wait_ms: float = 5.0
    max_pixels: int | None = None
    max_top_k: int = 50

    def __post_init__(self) -> None:
        # A request is admitted before its upload is read, so it waits in the queue
        # at least while that happens: a queue of 0 would refuse everything.
        if self.max_concurrent < 1 or self.max_queue < 1 or self.batch_size < 1:
            raise ValueError("max_concurrent, max_queue and batch_size must be >= 1")
        if self.batch_wait_ms < 0:
            raise ValueError(f"batch_wait_ms must be >= 0, got {self.batch_wait_ms}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MB)


@dataclass
class Form:
    """A parsed multipart form: file parts by field (bytes in memory) and text fields."""

    files: dict[str, list[bytes]] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


def _too_large(limits: Limits, what: str) -> HTTPException:
    return HTTPException(
        413, f"{what} is larger than the server's limit of {limits.max_upload_mb:g} MB"
    )


class _Collector:
    """python-multipart callbacks that keep parts in memory, with per-part limits."""

    def __init__(self, limits: Limits, max_files: int) -> None:
        self.limits, self.max_files = limits, max_files
        self.form = Form()
        self.header_field = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.buffer = bytearray()
        self.n_files = 0

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.part_begin,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_header_field": self.header_field_data,
            "on_header_value": self.header_value_data,
            "on_header_end": self.header_end,
        }

    def part_begin(self) -> None:
        self.headers, self.buffer = {}, bytearray()
        self.header_field = self.header_value = b""

    def header_field_data(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def header_value_data(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field = self.header_value = b""

    def _disposition(self) -> tuple[str, bool]:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        return name, b"filename" in options

    def part_data(self, data: bytes, start: int, end: int) -> None:
        self.buffer += data[start:end]
        _, is_file = self._disposition()
        limit = self.limits.max_upload_bytes if is_file else _FORM_SLACK
        if len(self.buffer) > limit:
            raise _too_large(self.limits, "an uploaded image" if is_file else "a form field")

    def part_end(self) -> None:
        name, is_file = self._disposition()
        if is_file:
            self.n_files += 1
            if self.n_files > self.max_files:
                raise HTTPException(
                    413, f"at most {self.max_files} image(s) per request on this server"
                )
            self.form.files.setdefault(name, []).append(bytes(self.buffer))
        else:
            self.form.fields[name] = bytes(self.buffer).decode("utf-8", "replace")
        self.buffer = bytearray()


async def read_form(request: Request, limits: Limits, *, max_files: int = 1) -> Form:
    """Parse a ``multipart/form-data`` request body in memory, enforcing the limits.

    Raises
    ------
    HTTPException
        413 when the body, an image or the number of images is over the
        limit (checked from ``Content-Length`` first, then while streaming);
        415 when the body is not multipart form data.
    """
    from python_multipart.multipart import MultipartParser, parse_options_header

    max_body = max_files * (limits.max_upload_bytes + _FORM_SLACK) + _FORM_SLACK
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise _too_large(limits, "the request")
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise HTTPException(
            415,
            "send multipart/form-data with the photo in the field 'image' "
            f"(got content type {content_type.decode('latin-1') or 'none'!r})",
        )
    collector = _Collector(limits, max_files)
    parser = MultipartParser(boundary, collector.callbacks())
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_body:
            raise _too_large(limits, "the request")
        try:
            parser.write(chunk)
        except HTTPException:
            raise
        except Exception as exc:  # python-multipart raises its own errors on bad framing
            raise HTTPException(400, f"malformed multipart body ({type(exc).__name__})") from exc
    parser.finalize()
    return collector.form


def decode_upload(data: bytes, limits: Limits) -> Any:
    """Decode uploaded bytes to an RGB image, or raise the matching HTTP error.

    Raises
    ------
    HTTPException
        413 over the size limit; 415 when it is not an image (or empty);
        422 for a decompression bomb (Pillow's guard) or a corrupt or
        truncated image.
    """
    from PIL import ImageOps

    from trigeo.data.images import BadImageError, decode_image

    if len(data) > limits.max_upload_bytes:
        raise _too_large(limits, "an uploaded image")
    try:
        image = decode_image(data, max_pixels=limits.max_pixels)
    except BadImageError as exc:
        if exc.reason in ("empty file", "not an image"):
            raise HTTPException(
                415,
                f"the upload is not an image trigeo can read ({exc.reason}); send a JPEG, "
                "PNG, WebP, HEIC/HEIF or AVIF photo",
            ) from exc
        raise HTTPException(422, f"the image cannot be used: {exc.reason}") from exc
    # Upright, as the training loaders and `trigeo predict` see photos (a phone's JPEG is
    # often stored sideways with an EXIF Orientation tag; HEIC is already upright).
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, TypeError, KeyError) as exc:
        raise HTTPException(422, f"the image cannot be used: bad EXIF orientation ({exc})") from exc


class Ticket:
    """One admitted request's place in :class:`Admission`'s counts.

    Attributes
    ----------
    submitted
        Whether its images have been handed to the batcher (until then it is
        "on its way": a filling forward pass may wait for it).
    passes
        Forward passes running that hold at least one of its images.
    """

    __slots__ = ("passes", "submitted")

    def __init__(self) -> None:
        self.submitted = False
        self.passes = 0


class Admission:
    """Requests admitted, on their way to a forward pass, queued and running.

    The queue counts requests (a ``/v1/predict/batch`` request is one), the
    concurrency limit counts forward passes (:class:`~trigeo.serve.batching.Batcher`
    enforces it). :meth:`enter` refuses a request when ``max_queue`` requests
    are already admitted but not in a running pass, with 503 and a
    ``Retry-After`` estimated from the recent forward-pass time.
    """

    def __init__(self, max_concurrent: int, max_queue: int, batch_size: int = 1) -> None:
        if max_concurrent < 1 or max_queue < 1 or batch_size < 1:
            raise ValueError("max_concurrent, max_queue and batch_size must be >= 1")
        self.max_concurrent, self.max_queue = int(max_concurrent), int(max_queue)
        self.batch_size = int(batch_size)
        #: Requests admitted and not yet answered.
        self.inflight = 0
        #: Admitted requests whose images are not yet with the batcher.
        self.arriving = 0
        #: Requests with an image in a running forward pass.
        self.in_pass = 0
        #: Forward passes running (kept by the batcher).
        self.running = 0
        self.seconds = 0.5  # running mean of one forward pass with its answers, for Retry-After
        #: Running mean of the seconds between admitted requests (capped at 1 s): tells
        #: a filling pass whether another request is likely to come within its wait.
        self.arrival_gap = 1.0
        self._last_arrival: float | None = None

    @property
    def queued(self) -> int:
        """Requests admitted but not in a running forward pass."""
        return self.inflight - self.in_pass

    def retry_after(self) -> int:
        per_wave = self.max_concurrent * self.batch_size
        waves = math.ceil((self.queued + 1) / per_wave)
        return max(1, math.ceil(waves * self.seconds))

    def enter(self) -> Ticket:
        """Admit a request, or raise 503 with ``Retry-After`` past the queue."""
        if self.queued >= self.max_queue:
            raise HTTPException(
                503,
                f"busy: {self.running} forward pass(es) running and {self.queued} request(s) "
                f"waiting (limit {self.max_queue}); retry later",
                headers={"Retry-After": str(self.retry_after())},
            )
        self.inflight += 1
        self.arriving += 1
        now = time.monotonic()
        if self._last_arrival is not None:
            # Half-weight: a burst after an idle spell is recognised within a few arrivals.
            self.arrival_gap = 0.5 * self.arrival_gap + 0.5 * min(now - self._last_arrival, 1.0)
        self._last_arrival = now
        return Ticket()

    def submitted(self, ticket: Ticket) -> None:
        """The request's images are with the batcher (or it has none to send)."""
        if not ticket.submitted:
            ticket.submitted = True
            self.arriving -= 1

    def pass_started(self, ticket: Ticket) -> None:
        ticket.passes += 1
        if ticket.passes == 1:
            self.in_pass += 1

    def pass_ended(self, ticket: Ticket) -> None:
        ticket.passes -= 1
        if ticket.passes == 0:
            self.in_pass -= 1

    def leave(self, ticket: Ticket) -> None:
        self.submitted(ticket)
        self.inflight -= 1

    def record(self, seconds: float) -> None:
        """Fold one forward pass's duration into the ``Retry-After`` estimate."""
        self.seconds = 0.8 * self.seconds + 0.2 * seconds
