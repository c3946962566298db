-- Shared by every workload: counts non-2xx answers across wrk's threads and
-- prints one machine-readable line for bench/run.py. Used alone, it is the
-- plain GET workload (the floor and the public calculator).
--
-- wrk's own "Non-2xx or 3xx responses" line counts only statuses of 400 and
-- up, and only when there are some; this count is exact and always printed.

local threads = {}
non2xx = 0

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local non2xx_total = 0
  for _, thread in ipairs(threads) do
    non2xx_total = non2xx_total + thread:get("non2xx")
  end
  local errors = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d"
      .. " connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), non2xx_total,
    errors.connect, errors.read, errors.write, errors.timeout))
end
