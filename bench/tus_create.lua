-- wrk script for bench/tus.sh: every request creates a tus upload of 1 KiB
-- and carries its bytes (creation-with-upload), as tus-js-client does with
-- uploadDataDuringCreation; the token from the environment, if any.
local payload = string.rep("0123456789abcdef", 64)  -- 1 KiB
wrk.method = "POST"
wrk.headers["Tus-Resumable"] = "1.0.0"
wrk.headers["Upload-Length"] = "1024"
wrk.headers["Content-Type"] = "application/offset+octet-stream"
local token = os.getenv("S3UP_BENCH_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
wrk.body = payload
