"""Load testing: phases (cold/warm/hot), records, metrics, cost and reports.

Nothing here imports locust: only ``harness.load.users`` does, and only locustfiles import that
(importing locust monkey-patches the process with gevent).
"""
