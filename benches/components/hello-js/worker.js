// hello-js: a JavaScript worker (componentize-js). fetch() presents the
// worker's default binding or identity; add a `sigil-binding: <name>`
// header to choose one of its bindings, e.g.
//   await fetch(url, { headers: { "sigil-binding": "TENANT_X" } });
addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const url = new URL(request.url);
  return new Response(`hello from hello-js: ${url.pathname}\n`);
}
