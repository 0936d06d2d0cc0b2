-- One wrk script for every request kind of `make bench`, configured from the environment:
--   BENCH_METHOD, BENCH_BODY, BENCH_AUTH (the Authorization value), BENCH_CONTENT_TYPE,
--   BENCH_TRACK_ETAG=1 sends If-None-Match with the last ETag this connection's thread saw, so a
--   poll stays conditional (304) even when the job moves on mid-run.
-- done() prints one JSON line: counts, latency percentiles in microseconds, answers by status.

local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
local auth = os.getenv("BENCH_AUTH")
local content_type = os.getenv("BENCH_CONTENT_TYPE")
local track_etag = os.getenv("BENCH_TRACK_ETAG") == "1"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local etag = os.getenv("BENCH_ETAG")
-- Globals, not locals: done() reads them from each thread with thread:get().
statuses = {}
local headers = {}
local path

function init(args)
  path = wrk.path
  if auth and auth ~= "" then headers["Authorization"] = auth end
  if content_type and content_type ~= "" then headers["Content-Type"] = content_type end
  statuses = {}
end

function request()
  if track_etag and etag then headers["If-None-Match"] = etag end
  return wrk.format(method, path, headers, body)
end

function response(status, response_headers, response_body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if track_etag then
    local tag = response_headers["ETag"] or response_headers["etag"]
    if tag then etag = tag end
  end
end

local function fmt(value)
  return string.format("%d", value)
end

function done(summary, latency, requests)
  local by_status = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses") or {}
    for code, count in pairs(counts) do
      by_status[code] = (by_status[code] or 0) + count
    end
  end
  local parts = {}
  for code, count in pairs(by_status) do
    table.insert(parts, string.format('"%s": %d', code, count))
  end
  io.write(string.format(
    '\nBENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %s, "p90": %s, "p99": %s, "max": %s, "mean": %.1f}, "statuses": {%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout,
    fmt(latency:percentile(50)), fmt(latency:percentile(90)), fmt(latency:percentile(99)),
    fmt(latency.max), latency.mean, table.concat(parts, ", ")))
end
