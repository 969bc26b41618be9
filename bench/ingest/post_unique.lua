-- wrk script: POSTs small JSON messages, each with an id unique across threads and runs.
local threads = {}
local next_thread = 0
local run = tostring(os.time())

function setup(thread)
  next_thread = next_thread + 1
  thread:set("tid", run .. "-" .. next_thread)
  table.insert(threads, thread)
end

local counter = 0
local path = os.getenv("BENCH_PATH") or "/ingest/bench"

function request()
  counter = counter + 1
  local body = '{"id":"' .. tid .. '-' .. counter ..
    '","resourceType":"Patient","name":[{"family":"Doe","given":["Jane"]}],"birthDate":"1980-01-15"}'
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f non2xx=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
