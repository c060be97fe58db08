-- wrk script for bench/run's paced scenarios: each connection waits 1 ms before each request, so the offered load
-- is about connections / (1 ms + latency), whatever the server could take.
function delay()
    return 1
end
