-- wrk script for bench/small_uploads.sh: every request is a 1 KiB file in a
-- multipart form, as a browser would send it, with the token from the
-- environment. The part's Content-Type is S3UP_BENCH_PART_TYPE (default
-- text/plain); application/octet-stream (what curl -F and browsers send for
-- an unknown extension) makes the service sniff the bytes for a type.
local boundary = "s3up-bench-boundary-5e0f"
local payload = string.rep("0123456789abcdef", 64)  -- 1 KiB
local part_type = os.getenv("S3UP_BENCH_PART_TYPE") or "text/plain"
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("S3UP_BENCH_TOKEN")
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
wrk.body = "--" .. boundary .. "\r\n" ..
  "Content-Disposition: form-data; name=\"file\"; filename=\"small.dat\"\r\n" ..
  "Content-Type: " .. part_type .. "\r\n\r\n" ..
  payload .. "\r\n--" .. boundary .. "--\r\n"
