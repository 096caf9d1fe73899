"""The test bed: real servers on loopback ports for the tests and `make demo`.

A control plane (etcd, kube-apiserver with RBAC) and a kwok-simulated cluster
(cluster.py), the operator as the chart installs it (operator.py), a real Prometheus
backfilled with promtool and scraping live usage (prometheus.py), that usage exporter
(usage.py), and the bundled real traces it all follows (traces.py, traces/). Every
server is a ProcessGroup (processes.py): started together, stopped together.
"""
