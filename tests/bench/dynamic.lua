-- The workloads whose requests change from one to the next (tests/bench/bench.py drives it):
--   BENCH_MODE=refresh   W2: each token rotates; its successor, read from the response, is the
--                        next request's (every connection keeps its own family going)
--   BENCH_MODE=code      W3: GET authorize with the session cookie (a remembered consent
--                        answers 302 with a code), then POST token with that code and PKCE
--   BENCH_MODE=bearer    W4 userinfo: GET with one of the live access tokens, round-robin
--   BENCH_MODE=spend     W5: POST a Buzz spend for one of the users' tokens, each with its own
--                        idempotency key; 200 (spent) and 403 insufficient_funds (the cap or
--                        the balance said no) are both correct answers
-- Environment: BENCH_PATH, BENCH_PATH2 (code: the token path), BENCH_AUTH (Authorization of the
-- POSTs), BENCH_COOKIE, BENCH_QUERY (code: the authorize query), BENCH_VERIFIER,
-- BENCH_REDIRECT, BENCH_TOKENS (a file, one token per line; each thread takes every n-th),
-- BENCH_AMOUNT, BENCH_LABEL.
-- Prints: RESULT label=.. requests=.. duration_s=.. rps=.. p50_ms=.. p90_ms=.. p99_ms=..
--         max_ms=.. ok=.. refused=.. non200=.. badbody=.. sockerr=..
-- where ok counts the answers that completed the workload's unit of work (a rotation, a
-- token from a code, a userinfo, a spend) and refused the spends the cap refused.

local mode = os.getenv("BENCH_MODE")
local path = os.getenv("BENCH_PATH")
local path2 = os.getenv("BENCH_PATH2") or ""
local auth = os.getenv("BENCH_AUTH") or ""
local cookie = os.getenv("BENCH_COOKIE") or ""
local query = os.getenv("BENCH_QUERY") or ""
local verifier = os.getenv("BENCH_VERIFIER") or ""
local redirect = os.getenv("BENCH_REDIRECT") or ""
local amount = os.getenv("BENCH_AMOUNT") or "1"

local threads = {}
local counter = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
  thread:set("nthreads", 0)
end

ok = 0
refused = 0
non200 = 0
badbody = 0
first_bad = ""
local pool = {}
local codes = {}
local cursor = 0

local function urlenc(s)
  return (string.gsub(s, "[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function init(args)
  local file = os.getenv("BENCH_TOKENS")
  if file and file ~= "" then
    local n = tonumber(os.getenv("BENCH_THREADS") or "2")
    local i = 0
    for line in io.lines(file) do
      if line ~= "" then
        if i % n == id - 1 then table.insert(pool, line) end
        i = i + 1
      end
    end
  end
end

local function post(p, body)
  local h = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Accept"] = "application/json" }
  if auth ~= "" then h["Authorization"] = auth end
  return wrk.format("POST", p, h, body)
end

function request()
  counter = counter + 1
  if mode == "refresh" then
    local t = table.remove(pool) or "exhausted"
    return post(path, "grant_type=refresh_token&refresh_token=" .. urlenc(t))
  elseif mode == "code" then
    local c = table.remove(codes)
    if c then
      return post(path2, "grant_type=authorization_code&code=" .. urlenc(c) ..
        "&code_verifier=" .. verifier .. "&redirect_uri=" .. urlenc(redirect))
    end
    return wrk.format("GET", path .. "?" .. query, { ["Cookie"] = cookie })
  elseif mode == "bearer" then
    cursor = cursor % #pool + 1
    return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. pool[cursor] })
  elseif mode == "spend" then
    cursor = cursor % #pool + 1
    return post(path, "token=" .. urlenc(pool[cursor]) .. "&amount=" .. amount ..
      "&purpose=ai_services&idempotency_key=w5-" .. id .. "-" .. counter .. "-" .. os.time())
  end
end

local function bad(status, body)
  if first_bad == "" then first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 200) end
end

function response(status, headers, body)
  if mode == "refresh" then
    local t = status == 200 and string.match(body, '"refresh_token":"([^"]+)"')
    if t then ok = ok + 1; table.insert(pool, t) else non200 = non200 + 1; bad(status, body) end
  elseif mode == "code" then
    if status == 302 then
      local loc = headers["location"] or headers["Location"] or ""
      local c = string.match(loc, "[?&]code=([^&]+)")
      if c then table.insert(codes, (string.gsub(c, "%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)))
      else badbody = badbody + 1; bad(status, loc) end
    elseif status == 200 and string.find(body, '"access_token"', 1, true) then
      ok = ok + 1
    else
      non200 = non200 + 1; bad(status, body)
    end
  elseif mode == "bearer" then
    if status == 200 and string.find(body, '"sub"', 1, true) then ok = ok + 1
    else non200 = non200 + 1; bad(status, body) end
  elseif mode == "spend" then
    if status == 200 and string.find(body, '"replayed":false', 1, true) then ok = ok + 1
    elseif status == 403 and string.find(body, "insufficient_funds", 1, true) then refused = refused + 1
    else non200 = non200 + 1; bad(status, body) end
  end
end

function done(summary, latency, requests)
  local o, r, n2, bb, fb = 0, 0, 0, 0, ""
  for _, t in ipairs(threads) do
    o = o + t:get("ok")
    r = r + t:get("refused")
    n2 = n2 + t:get("non200")
    bb = bb + t:get("badbody")
    local f = t:get("first_bad")
    if fb == "" and f and f ~= "" then fb = f end
  end
  local e = summary.errors
  local dur = summary.duration / 1e6
  io.write(string.format(
    "RESULT label=%s requests=%d duration_s=%.2f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f ok=%d refused=%d non200=%d badbody=%d sockerr=%d\n",
    os.getenv("BENCH_LABEL") or "-", summary.requests, dur, summary.requests / dur,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, o, r, n2, bb, e.connect + e.read + e.write + e.timeout))
  if fb ~= "" then io.write("FIRST_BAD " .. fb .. "\n") end
end
