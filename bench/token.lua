-- Token issuance: POST /api/auth/token with a JSON client-credentials body.
-- bench/run.py passes the body in BENCH_TOKEN_BODY so that the client
-- secret is never written to a file.

dofile((os.getenv("BENCH_LUA_DIR") or ".") .. "/common.lua")

wrk.method = "POST"
wrk.body = assert(os.getenv("BENCH_TOKEN_BODY"), "BENCH_TOKEN_BODY is not set")
wrk.headers["Content-Type"] = "application/json"
