-- wrk script for bench/small_uploads.sh: every request is a 1 KiB file in a
-- multipart form, as a browser would send it, with the token from the
-- environment.
local boundary = "s3up-bench-boundary-5e0f"
local payload = string.rep("0123456789abcdef", 64)  -- 1 KiB
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("S3UP_BENCH_TOKEN")
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
wrk.body = "--" .. boundary .. "\r\n" ..
  "Content-Disposition: form-data; name=\"file\"; filename=\"small.txt\"\r\n" ..
  "Content-Type: text/plain\r\n\r\n" ..
  payload .. "\r\n--" .. boundary .. "--\r\n"
