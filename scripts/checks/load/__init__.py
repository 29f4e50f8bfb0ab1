"""HTTP load against the variants: closed-loop throughput (wrk), open-loop latency at one rate
(vegeta), and the CPU pinning that keeps the race fair."""
