-- wrk script: cycles through pre-formatted POST requests read from a file (one JSON body a line), sends the
-- Bearer token from BENCH_TOKEN, and prints one JSON line of results at the end.
local requests_ = {}
local n, i = 0, 0

function init(args)
  local path, url_path = args[1], args[2]
  local headers = { ["Content-Type"] = "application/json" }
  local token = os.getenv("BENCH_TOKEN")
  if token and token ~= "" then headers["Authorization"] = "Bearer " .. token end
  for line in io.lines(path) do
    n = n + 1
    requests_[n] = wrk.format("POST", url_path, headers, line)
  end
  i = math.random(n) - 1
end

function request()
  i = i % n + 1
  return requests_[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
