-- Token issuance the RFC 6749 way: POST grant_type=client_credentials as a
-- form, the client authenticated with HTTP Basic (client_secret_basic).
-- Used for netcalc's /oauth2/token and every peer's token endpoint.
-- bench/run.py passes the Basic credentials in BENCH_BASIC so that the
-- client secret is never written to a file.
--
-- An answer counts as a failure unless it is a 2xx that carries an
-- access_token: a peer's 200 is checked, not assumed.

dofile((os.getenv("BENCH_LUA_DIR") or ".") .. "/common.lua")

local basic = assert(os.getenv("BENCH_BASIC"), "BENCH_BASIC is not set")
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. basic

function response(status, headers, body)
  if status < 200 or status > 299 or not body:find('"access_token"', 1, true) then
    non2xx = non2xx + 1
  end
end
