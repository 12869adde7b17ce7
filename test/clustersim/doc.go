// Package clustersim measures the controller manager at cluster scale: the real manager binary
// (built from ./cmd/manager, run as its own process) against envtest's kube-apiserver + etcd,
// with N simulated nodes of D domains each. Every simulated node is agentd's Kubernetes side as
// agentd assembles it (a controller-runtime manager with agentd's client limits and cache scope,
// the real publish.Publisher and execute.Executor); only the guest side is simulated: realistic
// guest data is handed to the publisher and changes at a configurable rate, and commands are
// executed by an in-memory service.
//
// BenchmarkCluster runs only with GA_CLUSTER=1; docs/benchmarks.md describes the method, the
// knobs (GA_CLUSTER_NODES, GA_CLUSTER_DOMAINS, GA_CLUSTER_WINDOW, GA_CLUSTER_SETTLE,
// GA_CLUSTER_CHANGES, GA_CLUSTER_COMMAND_EVERY, GA_CLUSTER_CACHE_COMPARE, GA_CLUSTER_MANAGER_BIN) and the figures.
package clustersim
