// sse_stub.mjs PORTFILE LOGFILE - a stand-in kiln-server for test_cli.sh that drops an event stream.
//
// GET /api/v1/jobs/J/logs (JSON): no lines. GET /api/v1/jobs/J/logs?follow=true:
// the first connection sends log events 1 and 2 and then closes without an
// `end`; a later one must say Last-Event-ID: 2 and gets event 3 and `end`
// (any other id gets a 400). Each stream request's Last-Event-ID is
// appended to LOGFILE. Writes its port to PORTFILE; stops after 20 s.
import {createServer} from "node:http";
import {appendFileSync, writeFileSync} from "node:fs";

const [portFile, logFile] = process.argv.slice(2);
let streams = 0;
const line = (seq, text) => `id: ${seq}\nevent: log\ndata: ${JSON.stringify({seq, attempt: 1, time: "2026-01-01T00:00:0" + seq + "Z", level: "info", text})}\n\n`;
const server = createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname !== "/api/v1/jobs/J/logs") {
    res.writeHead(404, {"Content-Type": "application/json"});
    res.end(JSON.stringify({error: {code: "NOT_FOUND", message: "no route", details: [], request_id: "s"}}));
    return;
  }
  if (url.searchParams.get("follow") !== "true") {
    res.writeHead(200, {"Content-Type": "application/json"});
    res.end(JSON.stringify({job_id: "J", next_seq: 0, lines: []}));
    return;
  }
  const last = req.headers["last-event-id"] || "";
  appendFileSync(logFile, `stream ${++streams} last-event-id=${last}\n`);
  if (streams > 1 && last !== "2") {
    res.writeHead(400, {"Content-Type": "application/json"});
    res.end(JSON.stringify({error: {code: "INVALID_ARGUMENT", message: "resumed from '" + last + "', not 2", details: [], request_id: "s"}}));
    return;
  }
  res.writeHead(200, {"Content-Type": "text/event-stream"});
  if (streams === 1) {
    res.write(": stub\n\n" + line(1, "first") + line(2, "second"));
    setTimeout(() => res.destroy(), 100); /* dropped: no end event */
  } else {
    res.end(line(3, "third") + `event: end\ndata: {"job_id":"J","state":"SUCCEEDED"}\n\n`);
  }
});
server.listen(0, "127.0.0.1", () => writeFileSync(portFile, String(server.address().port)));
setTimeout(() => process.exit(0), 20000);
