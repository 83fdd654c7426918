// A JavaScript hello exporting wasi:http/incoming-handler directly (the form
// that can serve many requests on one instance with `instance_reuse`;
// StarlingMonkey's addEventListener("fetch") form cannot).
import {
  Fields,
  OutgoingBody,
  OutgoingResponse,
  ResponseOutparam,
} from "wasi:http/types@0.2.10";

const encoder = new TextEncoder();

export const incomingHandler = {
  handle(request, responseOut) {
    const response = new OutgoingResponse(new Fields());
    response.setStatusCode(200);
    const body = response.body();
    ResponseOutparam.set(responseOut, { tag: "ok", val: response });
    const stream = body.write();
    stream.blockingWriteAndFlush(
      encoder.encode(`hello from hello-js-raw: ${request.pathWithQuery()}\n`),
    );
    stream[Symbol.dispose]();
    OutgoingBody.finish(body, undefined);
  },
};
