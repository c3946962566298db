-- Introspection (RFC 7662): POST token=... with HTTP Basic credentials of
-- a client of the token's own account. bench/run.py passes both in the
-- environment (BENCH_TOKEN, BENCH_BASIC) so that neither lands in a file.
-- An answer counts as a failure unless it is a 2xx saying the token is
-- active.

dofile((os.getenv("BENCH_LUA_DIR") or ".") .. "/common.lua")

local token = assert(os.getenv("BENCH_TOKEN"), "BENCH_TOKEN is not set")
local basic = assert(os.getenv("BENCH_BASIC"), "BENCH_BASIC is not set")
wrk.method = "POST"
wrk.body = "token=" .. token
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. basic

function response(status, headers, body)
  if status < 200 or status > 299 or not body:find('"active":%s*true') then
    non2xx = non2xx + 1
  end
end
