// Package scale measures agentd at scale: the real agentd assembly (app.Build with the real
// virt.Manager, QemuGuestAgentPoller and LibvirtAPI, the oVirt guest agent Listener, the
// publisher and the executor) against libvirt's test:/// driver loaded with a generated node of
// N domains, and the envtest control plane (real kube-apiserver + etcd).
//
// The tests (scale_test.go: TestScale, BenchmarkAgentdIdle100/1000; startup_race_test.go:
// TestStartupSlowDiscovery) run only with GA_SCALE=1; see docs/benchmarks.md for the
// method, the knobs (GA_SCALE_SIZES, GA_SCALE_WINDOW, GA_SCALE_SETTLE, GA_SCALE_QGA,
// GA_SCALE_OGA_EVERY, GA_SCALE_CPUPROFILE) and the figures.
package scale
