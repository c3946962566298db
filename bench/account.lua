-- Account API: GET with a bearer token. bench/run.py passes the token in
-- BENCH_TOKEN so that it is never written to a file.

dofile((os.getenv("BENCH_LUA_DIR") or ".") .. "/common.lua")

local token = assert(os.getenv("BENCH_TOKEN"), "BENCH_TOKEN is not set")
wrk.headers["Authorization"] = "Bearer " .. token
