// S2 in JavaScript: one multi-tenant worker presents tenant X's client
// certificate when it calls tenant X's backend — with plain fetch() and a
// `sigil-binding` header naming one of this worker's own bindings. Sigil
// removes the header before the request leaves; a name the worker does not
// have fails the fetch and nothing reaches the backend.
//
//   GET /<tenant>/<path>  -> <backend>/<path> with binding TENANT_<TENANT>
//                            (backend: the `x-backend` request header, or
//                            https://localhost:9443, the example origin)
//   GET /fetch            -> diagnostics used by Sigil's tests: `x-fetch-url`
//                            `x-fetch-count` times with `sigil-binding:
//                            <x-fetch-binding>`; one line per call
//   GET /                 -> hello, with the client-certificate headers

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const url = new URL(request.url);
  if (url.pathname === "/fetch") return diagnostics(request);
  const [, tenant, ...rest] = url.pathname.split("/");
  if (!tenant) {
    const lines = [...request.headers]
      .filter(([k]) => k.startsWith("sigil-client-cert-"))
      .map(([k, v]) => `${k}: ${v}\n`);
    return new Response(`hello from javascript\n${lines.join("")}`);
  }
  const backend = request.headers.get("x-backend") ?? "https://localhost:9443";
  const binding = `TENANT_${tenant.toUpperCase()}`;
  try {
    const answer = await fetch(`${backend}/${rest.join("/")}`, {
      headers: { "sigil-binding": binding },
    });
    // The backend's body streams through, never held whole.
    return new Response(answer.body, { status: answer.status });
  } catch (e) {
    // StarlingMonkey reports every failure as a TypeError; Sigil's log names
    // the cause (an unknown binding, a host not allowed, ...).
    return new Response(`${binding}: ${e}\n`, { status: 502 });
  }
}

async function diagnostics(request) {
  const target = request.headers.get("x-fetch-url");
  const count = Number(request.headers.get("x-fetch-count") ?? "1");
  const binding = request.headers.get("x-fetch-binding");
  const headers = binding ? { "sigil-binding": binding } : {};
  const lines = [];
  for (let i = 0; i < count; i++) {
    try {
      const answer = await fetch(target, { headers });
      lines.push(`ok ${answer.status} ${await answer.text()}`);
    } catch (e) {
      lines.push(`err ${e}`);
    }
  }
  return new Response(lines.join("\n") + "\n");
}
