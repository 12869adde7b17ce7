// Package scale measures agentd at scale: the real agentd assembly (app.Build with the real
// virt.Manager, QemuGuestAgentPoller and LibvirtAPI, the oVirt guest agent Listener, the
// publisher and the executor) against libvirt's test:/// driver loaded with a generated node of
// N domains, and the envtest control plane (real kube-apiserver + etcd).
//
// The tests (scale_test.go: TestScale, BenchmarkAgentdIdle100/1000, BenchmarkAgentdQemuGA100/1000)
// run only with GA_SCALE=1; see
// docs/benchmarks.md for the method, the knobs (GA_SCALE_SIZES, GA_SCALE_WINDOW, GA_SCALE_SETTLE,
// GA_SCALE_QGA, GA_SCALE_OGA_EVERY, GA_SCALE_CPUPROFILE, GA_SCALE_HEAPPROFILE) and the figures.
//
// GA_SCALE_QGA=qemu-ga (qemuga_test.go) replaces the LibvirtAPI with qga.SocketAPI and gives every
// domain a real qemu-ga process on the host (commands that would act on the machine blocked), so
// that the cost of agents answering is measured; the agents' own CPU and memory are reported
// separately. Real data may change, so in that mode the test records which status fields change
// in the window (statuswatch_test.go) instead of asserting zero writes.
package scale
