"""S1 in Python: the `writer` and `reader` workers run this same component
(componentize-py) and call one records API; each presents its own Sigil
identity (spiffe://<trust domain>/worker/<name>), so the API can let only
`writer` write. Nothing here chooses a certificate: the worker's identity is
its default.

Routes:
  GET|POST /records  -> the same request to the records API named by the
                        `x-records-api` request header (default
                        https://localhost:9443, the example origin), answered as it
                        answers (its body streamed back)
  GET /fetch         -> diagnostics used by Sigil's tests: `x-fetch-url`
                        `x-fetch-count` times, with `sigil-binding:
                        <x-fetch-binding>` when given; one line per call,
                        `ok <status> <body>` or `err <error-code>`
  GET /              -> hello, with the client-certificate headers Sigil set
"""
from urllib.parse import urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import outgoing_handler
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    ErrorCode_InternalError,
    Fields,
    IncomingRequest,
    Method_Get,
    Method_Post,
    OutgoingBody,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
    Scheme_Https,
)

CHUNK = 64 * 1024
DEFAULT_API = "https://localhost:9443"


def respond(out: ResponseOutparam, status: int, text: str) -> None:
    resp = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
    resp.set_status_code(status)
    body = resp.body()
    ResponseOutparam.set(out, Ok(resp))
    with body.write() as stream:
        data = text.encode()
        for i in range(0, len(data), 4096):  # at most 4096 bytes per call
            stream.blocking_write_and_flush(data[i : i + 4096])
    OutgoingBody.finish(body, None)


def header(request: IncomingRequest, name: str):
    values = request.headers().get(name)
    return values[0].decode() if values else None


def outgoing(url: str, method, headers):
    parts = urlsplit(url)
    req = OutgoingRequest(Fields.from_list(headers))
    req.set_method(method)
    req.set_scheme(Scheme_Http() if parts.scheme == "http" else Scheme_Https())
    req.set_authority(parts.netloc)
    req.set_path_with_query(parts.path + (f"?{parts.query}" if parts.query else ""))
    return req


def send(req: OutgoingRequest, body: OutgoingBody):
    """Send `req` (its body already written); the response or an error text."""
    try:
        future = outgoing_handler.handle(req, None)
    except Err as e:
        return None, describe(e.value)
    OutgoingBody.finish(body, None)
    while (result := future.get()) is None:
        with future.subscribe() as pollable:
            pollable.block()
    inner = result.value
    if isinstance(inner, Err):
        return None, describe(inner.value)
    return inner.value, None


def describe(code) -> str:
    if isinstance(code, ErrorCode_InternalError):
        return f"InternalError({code.value})"
    return type(code).__name__.replace("ErrorCode_", "")


def read_all(response) -> bytes:
    body = response.consume()
    data = b""
    with body.stream() as src:
        while True:
            try:
                data += src.blocking_read(CHUNK)
            except Err as e:
                if isinstance(e.value, StreamError_Closed):
                    break
                raise
    return data


def pump(src, dst) -> None:
    """Copy src to dst on the host side (splice), never through Python."""
    while True:
        try:
            dst.blocking_splice(src, CHUNK)
        except Err as e:
            if isinstance(e.value, StreamError_Closed):
                return
            raise


def fetch(request: IncomingRequest, out: ResponseOutparam) -> None:
    url = header(request, "x-fetch-url")
    count = int(header(request, "x-fetch-count") or "1")
    binding = header(request, "x-fetch-binding")
    headers = [("sigil-binding", binding.encode())] if binding else []
    lines = []
    for _ in range(count):
        req = outgoing(url, Method_Get(), headers)
        response, error = send(req, req.body())
        if error:
            lines.append(f"err {error}")
        else:
            lines.append(f"ok {response.status()} {read_all(response).decode()}")
    respond(out, 200, "\n".join(lines) + "\n")


def records(request: IncomingRequest, out: ResponseOutparam) -> None:
    api = header(request, "x-records-api") or DEFAULT_API
    post = request.method() == Method_Post()
    req = outgoing(api + "/records", Method_Post() if post else Method_Get(), [])
    body = req.body()
    if post:
        incoming = request.consume()
        with incoming.stream() as src, body.write() as dst:
            pump(src, dst)
    response, error = send(req, body)
    if error:
        return respond(out, 502, f"the records API failed: {error}\n")
    forward = OutgoingResponse(Fields())
    forward.set_status_code(response.status())
    out_body = forward.body()
    ResponseOutparam.set(out, Ok(forward))
    incoming = response.consume()  # kept: its stream must not outlive it
    with incoming.stream() as src, out_body.write() as dst:
        pump(src, dst)
    OutgoingBody.finish(out_body, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = urlsplit(request.path_with_query() or "/").path
        if path == "/fetch":
            return fetch(request, response_out)
        if path == "/records":
            return records(request, response_out)
        seen = "".join(
            f"{k}: {v.decode()}\n"
            for k, v in request.headers().entries()
            if k.startswith("sigil-client-cert-")
        )
        respond(response_out, 200, f"hello from python\n{seen}")
